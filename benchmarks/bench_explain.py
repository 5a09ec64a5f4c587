"""Explanation engine costs, each against the obvious alternative measured in the same run.

1. gradcam + saliency + input_x_gradient through the engine's shared pass, against one
   bare forward+backward of the model (goal <= 1.15x) and against calling Captum's
   LayerGradCam, Saliency and InputXGradient one after the other; and the whole of
   ``ex.explain`` on the same one-clip video, as a user calls it.
2. occlusion (regions x 4-frame windows) against Captum's FeatureAblation with the same
   feature mask at its best perturbations_per_eval (goal <= 1.0x), and against the raw
   time of the same number of forwards.
3. integrated gradients: passes the adaptive rule needs to reach 1% completeness error,
   against Captum's fixed default (Gauss-Legendre, 50 steps), with the error each reaches.

4. the public API goal: the gradient family through ``ex.explain`` (crop, regions,
   preprocessing, the prediction and the cube included) per clip, against two references
   in the same run: one forward+backward with gradients into the parameters (``bare``,
   as in 1.) and, stricter, one forward + backward to the input only
   (``torch.autograd.grad(out, x)``, what Captum's Saliency does); on one clip and on a
   several-clip video (``--frames``, default 64: 7 clips at stride 8).

    .venv/bin/python benchmarks/bench_explain.py --model small|demo|r3d_18 [--repeats 3]
        [--device cpu|cuda] [--clips-per-batch auto|N] [--autocast bf16] [--frames 64] [--only public]
    .venv/bin/python benchmarks/bench_explain.py --quick [--device cuda]

``--quick`` runs only section 4, on the demo model and r3d_18, two repeats (a few
minutes on a 2-core CPU, well under three on a GPU). Timings are the best of
``--repeats`` runs, interleaved, on clips of a shipped sample video; on CUDA every timed
call ends with ``torch.cuda.synchronize()``.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np
import torch

import expresso_xai as ex
from expresso_xai.explain import METHODS, ClipContext, fastest_batch
from expresso_xai.explain.base import precision
from expresso_xai.explain.features import feature_mask, mask_tensor
from expresso_xai.testing import tiny_cnn


def build_model(name: str):
    if name == "demo":
        return ex.models.load("demo")
    if name == "r3d_18":
        from torchvision.models.video import r3d_18

        torch.manual_seed(0)
        net = r3d_18(weights=None)
        net.fc = torch.nn.Linear(net.fc.in_features, 1)
        return ex.models.wrap(net, input_size=(112, 112), gradcam_layer="layer4", name="r3d_18")
    net = tiny_cnn(widths=(16, 32, 32), strides=(1, 2, 1))
    return ex.models.wrap(net, input_size=(112, 112), name="small")


def synchronize() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        synchronize()
        times.append(time.perf_counter() - started)
    return min(times)


def interleaved(repeats: int, functions: dict) -> dict:
    """Times of each function per round, the functions run in turns within a round
    (each warmed up once), so load changes on a shared machine hit a round's functions
    alike: compare them by the median of the per-round ratios (:func:`ratio`)."""
    for function in functions.values():
        function()
    synchronize()
    times = {key: [] for key in functions}
    for _ in range(repeats):
        for key, function in functions.items():
            times[key].append(best_of(1, function))
    return {key: np.asarray(values) for key, values in times.items()}


def ratio(times: dict, numerator: str, denominator: str) -> float:
    """The median over rounds of one function's time over another's in the same round."""
    return float(np.median(times[numerator] / times[denominator]))


def public_api(model, args, n_frames: int) -> None:
    """Section 4: ``ex.explain`` with the gradient family per clip, against one
    forward+backward into the parameters and one forward + backward to the input only."""
    video = ex.load_video(ex.samples.sample_path("participant_high"), max_frames=n_frames)
    faces = ex.track_faces(video, progress=False)
    crop = ex.FaceCrop.from_track(faces, size=model.input_size)
    length, stride = model.clip_length, 8
    starts = range(0, max(len(faces) - length, 0) + 1, stride)
    inputs = [model.preprocess(crop[start:start + length].apply(video.frames[start:start + length]), args.device)
              for start in starts]
    methods = ["gradcam", "saliency", "input_x_gradient"]

    def into_parameters():  # in the precision explain runs in: the same arithmetic, one pass
        for x in inputs:
            leaf = x.detach().clone().requires_grad_(True)
            with precision(args.device, args.autocast):
                out = model(leaf)[:, 0].sum()
            out.backward()

    def to_input_only():
        for x in inputs:
            leaf = x.detach().clone().requires_grad_(True)
            with precision(args.device, args.autocast):
                out = model(leaf)[:, 0].sum()
            torch.autograd.grad(out, leaf)

    def public():
        return ex.explain(model, video, faces=faces, crop=crop, methods=methods, target=0, stride=stride,
                          progress=False, device=args.device, clips_per_batch=args.clips_per_batch,
                          autocast=args.autocast or False)

    cube = public()
    assert cube.sizes["clip"] == len(inputs), (cube.sizes["clip"], len(inputs))
    times = interleaved(args.repeats, {"parameters": into_parameters, "input": to_input_only, "explain": public})
    best = {key: values.min() / len(inputs) * 1000 for key, values in times.items()}  # ms per clip
    print(f"   {n_frames:4d} frames, {len(inputs)} clip(s): ex.explain {best['explain']:7.1f} ms/clip = "
          f"{ratio(times, 'explain', 'parameters'):.2f}x fwd+bwd into parameters ({best['parameters']:.1f} ms/clip), "
          f"{ratio(times, 'explain', 'input'):.2f}x fwd+bwd to the input only ({best['input']:.1f} ms/clip)  "
          "(goal <= 1.15x; ratios: median over rounds, times: best)")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small", choices=["small", "demo", "r3d_18"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--clips-per-batch", default="auto", type=lambda v: v if v == "auto" else int(v),
                        help="clips per forward+backward in section 4: auto (1 on CPU, by memory on CUDA) or N")
    parser.add_argument("--autocast", choices=["bf16"], default=None, help="section 4 in bfloat16 autocast")
    parser.add_argument("--frames", type=int, default=64, help="frames of section 4's several-clip video")
    parser.add_argument("--only", choices=["public"], default=None, help="run only section 4")
    parser.add_argument("--quick", action="store_true",
                        help="only section 4, on the demo model and r3d_18, 2 repeats (unattended on a GPU)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device cuda: CUDA is not available here (torch {torch.__version__}, built with CUDA "
                     f"{torch.version.cuda or 'none'}); run it on a GPU machine or use --device cpu")
    return args


def main() -> None:
    args = arguments()
    torch.set_grad_enabled(True)
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    if args.quick or args.only == "public":
        for name in (["demo", "r3d_18"] if args.quick else [args.model]):
            model = build_model(name)
            model.module.to(args.device)
            print(f"\n4. gradient family through ex.explain, per clip: {model.describe()}; device {args.device}, "
                  f"clips_per_batch {args.clips_per_batch}, autocast {args.autocast}, threads {torch.get_num_threads()}")
            args.repeats = 2 if args.quick else args.repeats
            for n_frames in (model.clip_length, args.frames):
                public_api(model, args, n_frames)
        return

    model = build_model(args.model)
    model.module.to(args.device)
    print(f"model {model.describe()}; threads {torch.get_num_threads()}")
    clip = one_clip(model, args.device)
    shared_pass(clip, args)
    chosen, baseline = occlusion(clip, args)
    integrated_gradients(clip, chosen, baseline)
    print(f"\n4. gradient family through ex.explain, per clip (clips_per_batch {args.clips_per_batch}, "
          f"autocast {args.autocast})")
    public_api(model, args, model.clip_length)
    public_api(model, args, args.frames)


def one_clip(model, device) -> SimpleNamespace:
    """The clip sections 1-3 time: model, video, faces, crop, region map, frames, input."""
    video = ex.load_video(ex.samples.sample_path("participant_high"), max_frames=model.clip_length)
    faces = ex.track_faces(video, progress=False)
    crop = ex.FaceCrop.from_track(faces, size=model.input_size)
    region_map = ex.region_map(faces, crop)
    frames = crop.apply(video)
    x = model.preprocess(frames, device)

    def context(batch=None):
        return ClipContext(model=model, x=x, frames=frames, region_map=region_map, target=0,
                           batch_size=batch, gradient_layer=model.gradcam_layer, device=device)

    return SimpleNamespace(model=model, video=video, faces=faces, crop=crop, region_map=region_map, x=x,
                           layer=model.gradcam_layer, context=context)


def shared_pass(clip, args) -> None:
    """Section 1: the engine's shared pass against one bare pass and three Captum calls."""
    model, x, layer, context = clip.model, clip.x, clip.layer, clip.context
    video, faces, crop = clip.video, clip.faces, clip.crop
    from captum.attr import InputXGradient, LayerGradCam, Saliency

    def bare_pass():
        inputs = x.detach().clone().requires_grad_(True)
        model(inputs)[:, 0].sum().backward()

    def engine_three():
        ctx = context()
        for name in ("gradcam", "saliency", "input_x_gradient"):
            METHODS[name]().attribute(ctx)

    def captum_three():
        cam = LayerGradCam(model, layer).attribute(x, target=0, relu_attributions=True)
        torch.nn.functional.interpolate(cam, size=tuple(x.shape[2:]), mode="trilinear")
        Saliency(model).attribute(x, target=0)
        InputXGradient(model).attribute(x.clone().requires_grad_(True), target=0)

    for function in (bare_pass, engine_three, captum_three):  # warm up
        function()
    times = {"bare": [], "engine": [], "captum": []}
    for _ in range(args.repeats):
        for key, function in (("bare", bare_pass), ("engine", engine_three), ("captum", captum_three)):
            started = time.perf_counter()
            function()
            times[key].append(time.perf_counter() - started)
    bare, engine, captum = (min(times[k]) for k in ("bare", "engine", "captum"))
    print("\n1. gradcam + saliency + input_x_gradient")
    print(f"   one forward+backward      {bare * 1000:8.1f} ms")
    print(f"   engine, shared pass       {engine * 1000:8.1f} ms  = {engine / bare:.2f}x one pass (goal <= 1.15x)")
    print(f"   Captum, three calls       {captum * 1000:8.1f} ms  = {captum / bare:.2f}x one pass; "
          f"engine is {captum / engine:.2f}x faster")
    public = best_of(args.repeats, lambda: ex.explain(model, video, faces=faces, crop=crop, progress=False,
                                                      methods=["gradcam", "saliency", "input_x_gradient"],
                                                      device=args.device))
    print(f"   ex.explain, the public API {public * 1000:7.1f} ms  = {public / bare:.2f}x one pass (goal <= 1.15x; "
          "crop, regions, preprocessing and the cube around one forward+backward that also gives the prediction)")


def occlusion(clip, args):
    """Section 2: occlusion against Captum's FeatureAblation at its best setting; returns
    the batch size chosen and the blur baseline (section 3 uses them)."""
    model, x, region_map, context = clip.model, clip.x, clip.region_map, clip.context
    from captum.attr import FeatureAblation

    mask = feature_mask(region_map, 4)
    n_features = int(mask.max()) + 1
    baseline = context().baseline("blur")
    mask_t = mask_tensor(model, mask, x.device)
    chosen = fastest_batch(model, x)

    def captum_occlusion(per_eval):
        with torch.no_grad():
            FeatureAblation(model).attribute(x, baselines=baseline, target=0, feature_mask=mask_t,
                                             perturbations_per_eval=per_eval)

    captum_times = {k: best_of(args.repeats, lambda k=k: captum_occlusion(k)) for k in (1, 2, 4, 8)}
    best_k = min(captum_times, key=captum_times.get)
    ours = best_of(args.repeats, lambda: METHODS["occlusion"]().attribute(context(chosen)))

    def raw_forwards():
        with torch.no_grad():
            for _ in range(n_features + 1):
                model(x)

    raw = best_of(args.repeats, raw_forwards)
    print(f"\n2. occlusion: {n_features} features (regions x 4-frame windows)")
    print("   Captum FeatureAblation by perturbations_per_eval: "
          + ", ".join(f"{k}: {t:.2f} s" for k, t in captum_times.items()))
    print(f"   engine (chose {chosen} per forward)   {ours:6.2f} s = {ours / captum_times[best_k]:.2f}x Captum at its "
          f"best ({best_k}) (goal <= 1.0x)")
    print(f"   {n_features + 1} raw forwards, batch 1   {raw:6.2f} s; engine = {ours / raw:.2f}x that")
    return chosen, baseline


def integrated_gradients(clip, chosen: int, baseline) -> None:
    """Section 3: adaptive integrated gradients' passes and error against Captum's default."""
    model, x, context = clip.model, clip.x, clip.context
    from captum.attr import IntegratedGradients

    ig = METHODS["integrated_gradients"]
    adaptive = ig().attribute(context(chosen))
    trapezoid = ig(rule="trapezoid").attribute(context(chosen))
    attribution, delta = IntegratedGradients(model).attribute(
        x, baselines=baseline, target=0, n_steps=50, method="gausslegendre",
        internal_batch_size=chosen, return_convergence_delta=True)
    with torch.no_grad():
        difference = float(model(x)[0, 0] - model(baseline)[0, 0])
    fixed_error = abs(float(delta.sum())) / max(abs(difference), 1e-12)
    print("\n3. integrated gradients (blur baseline), completeness error relative to |f(x) - f(b)|")
    print(f"   Captum fixed, Gauss-Legendre 50 steps: {50 + 2:4d} passes, error {fixed_error:.3%}")
    for label, result in (("adaptive Gauss-Legendre", adaptive), ("adaptive nested trapezoid", trapezoid)):
        print(f"   {label:<26} {result.passes:4d} passes, error {result.stats['completeness_error']:.3%}, "
              f"{result.stats['steps']} steps, converged {result.stats['converged']}  "
              f"= {result.passes / 52:.2f}x Captum's passes")


if __name__ == "__main__":
    main()
