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

    .venv/bin/python benchmarks/bench_explain.py --model small|demo|r3d_18 [--repeats 3]

Timings are the best of ``--repeats`` runs, interleaved, on one 16-frame clip of a
shipped sample video.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import expresso_xai as ex
from expresso_xai.explain import METHODS, ClipContext, fastest_batch
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


def best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small", choices=["small", "demo", "r3d_18"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_grad_enabled(True)

    model = build_model(args.model)
    video = ex.load_video(ex.samples.sample_path("participant_high"), max_frames=model.clip_length)
    faces = ex.track_faces(video, progress=False)
    crop = ex.FaceCrop.from_track(faces, size=model.input_size)
    region_map = ex.region_map(faces, crop)
    frames = crop.apply(video)
    x = model.preprocess(frames)
    layer = model.gradcam_layer

    def context(batch=None):
        return ClipContext(model=model, x=x, frames=frames, region_map=region_map, target=0,
                           batch_size=batch, gradient_layer=layer)

    print(f"model {model.describe()}; threads {torch.get_num_threads()}")

    # 1. shared gradient pass ------------------------------------------------------------
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

    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
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
                                                      methods=["gradcam", "saliency", "input_x_gradient"]))
    print(f"   ex.explain, the public API {public * 1000:7.1f} ms  = {public / bare:.2f}x one pass (goal <= 1.15x; "
          "crop, regions, preprocessing and the cube around one forward+backward that also gives the prediction)")

    # 2. occlusion -----------------------------------------------------------------------
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

    # 3. integrated gradients ------------------------------------------------------------
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
