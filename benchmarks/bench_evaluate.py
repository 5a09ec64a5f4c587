"""Evaluation costs, each against the obvious alternative measured in the same run.

1. Deletion + insertion curves of K steps through ``ex.evaluate(..., metrics=["deletion",
   "insertion"])`` on the demo model and one 16-frame clip of participant_high: the
   model's forwards (a forward hook counting batch rows) per clip and per order (a
   deletion and an insertion curve), against 2K; the time against the raw forwards (the
   same number of inputs through the model, in batches of the same size, nothing else)
   and against Quantus's PixelFlipping (one MoRF deletion curve of K steps on the same
   clip and fill; Quantus takes at most 2-D inputs with channels, so it sees the clip as
   one tall image ``(1, 3, 16·H, W)``, the frames stacked, and the model unstacks it).
2. The whole default evaluation (``metrics=None``: deletion, insertion, random, mprt) of
   the demo on the 10 s sample (participant_high, 250 frames) against ``ex.explain``
   itself on it (gradcam, saliency, integrated_gradients, occlusion), with the time and
   the model inputs (forward hook, randomised copies included) of each metric group.

    .venv/bin/python benchmarks/bench_evaluate.py [--quick] [--part 1|2|all] [--repeats 3] [--steps 24]

Timings of part 1 are medians of ``--repeats`` interleaved runs; part 2 runs the
evaluation once, between two runs of the explanation. Part 1 takes under a minute; part 2
is dominated by MPRT and took 10-12 minutes on the shared 2-core machine (``--quick``: one
repeat and part 2 on the first 64 frames, 7 clips, about 4 minutes there). K defaults to
24 because PixelFlipping's step (the clip's 3·16·64·64 values / K) must divide one
channel's 16·64·64.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

import expresso_xai as ex
from expresso_xai.evaluate import DEFAULT_METRICS, METRICS
from expresso_xai.explain import fastest_batch, prepare_clip

EXPLAINERS = ("gradcam", "saliency")
FULL_METHODS = ("gradcam", "saliency", "integrated_gradients", "occlusion")


class ForwardCounter:
    """Counts the forwards of a module: calls and batch rows (inputs). The hook is a plain
    function, so a deep copy of the module (a randomised model) keeps counting here."""

    def __init__(self, module):
        self.calls = self.rows = 0

        def count(module, inputs, output):
            self.calls += 1
            self.rows += int(inputs[0].shape[0])

        self.handle = module.register_forward_hook(count)

    def remove(self):
        self.handle.remove()


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def medians(repeats: int, functions: dict) -> dict:
    """Median seconds of each function, run interleaved ``repeats`` times."""
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            times[name].append(timed(function))
    return {name: statistics.median(values) for name, values in times.items()}


def quantus_pixel_flipping(model, ctx, attribution, steps: int):
    """A function running Quantus's PixelFlipping once on the clip, or the reason it cannot."""
    try:
        import quantus
    except ImportError:
        return None, "Quantus is not installed (`make` installs quantus==0.6.0 with --no-deps)"
    if model.layout != "NCTHW":
        return None, f"the {model.layout} layout is not folded here"
    x = ctx.x.detach().cpu().numpy()
    n, channels, frames, height, width = x.shape
    folded = x.reshape(n, channels, frames * height, width)
    fill = ctx.baseline("blur").cpu().numpy().reshape(n, -1)
    per_value = np.broadcast_to(attribution[None, None], x.shape).reshape(folded.shape).astype(np.float64)
    if folded[0, 0].size % (folded[0].size // steps) or folded[0].size % steps:
        return None, f"PixelFlipping needs {folded[0].size} / K to divide {folded[0, 0].size}; K={steps} does not"

    class Unfolded(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model.module

        def forward(self, images):
            return model(images.reshape(images.shape[0], channels, frames, height, width))

    def copy_fill(arr, indices, **_):
        out = arr.copy()
        rows = np.arange(len(arr))[:, None]
        out[rows, indices] = fill[rows, indices]
        return out

    metric = quantus.PixelFlipping(features_in_step=folded[0].size // steps, normalise=False, abs=False,
                                   perturb_func=copy_fill, disable_warnings=True)
    wrapped = Unfolded().eval()

    def run():
        return metric(model=wrapped, x_batch=folded, y_batch=np.array([int(ctx.target)]), a_batch=per_value,
                      channel_first=True, softmax=False, device=str(ctx.x.device))

    return run, None


def curves(model, repeats: int, steps: int, n_random: int) -> None:
    video = ex.load_video(ex.samples.sample_path("participant_high"), max_frames=model.clip_length)
    faces = ex.track_faces(video, progress=False)
    cube = ex.explain(model, video, faces, methods=list(EXPLAINERS), keep_pixels=True, progress=False)
    ctx = prepare_clip(model, video.frames, faces, ex.FaceCrop.from_track(faces, size=model.input_size))
    batch = fastest_batch(model, ctx.x)
    kwargs = dict(faces=faces, metrics=["deletion", "insertion"], steps=steps, n_random=n_random, batch_size=batch,
                  progress=False)

    counter = ForwardCounter(model.module)
    ex.evaluate(model, video, cube, **kwargs)
    counter.remove()
    clips = cube.sizes["clip"]
    orders = 2 * len(EXPLAINERS) + n_random  # morf and lerf per explainer, and the random orders
    perturbed = counter.rows - clips  # the clip step's own forward reads the clean clip
    n_curves = 2 * orders  # a deletion and an insertion curve per order
    print(f"\n1. deletion + insertion, K = {steps} steps, {len(EXPLAINERS)} explainers "
          f"({', '.join(EXPLAINERS)}) + {n_random} random orders = {orders} orders, {n_curves} curves, "
          f"{clips} clip(s), batch {batch}")
    print(f"   forwards: {counter.rows} inputs in {counter.calls} calls; {perturbed / clips:.0f} perturbed inputs per "
          f"clip = {perturbed / clips / orders:.1f} per order (deletion + insertion) against 2K = {2 * steps}; "
          f"{perturbed / clips / n_curves:.1f} per curve")

    x_batch = ctx.x.expand(batch, *ctx.x.shape[1:]).contiguous()

    def raw_forwards():
        with torch.no_grad():
            for start in range(0, counter.rows, batch):
                model(x_batch[: min(batch, counter.rows - start)])

    functions = {"ours": lambda: ex.evaluate(model, video, cube, **kwargs), "raw": raw_forwards}
    saliency = cube.pixels.sel(explainer="saliency").values.astype(np.float64)  # (time, y, x)
    quantus_run, reason = quantus_pixel_flipping(model, ctx, saliency, steps)
    if quantus_run is not None:
        quantus_run()  # warm up
        functions["quantus"] = quantus_run
        functions["single"] = lambda: [ctx.output() for _ in range(steps)]  # Quantus's forwards, alone
    times = medians(repeats, functions)
    ours, raw = times["ours"], times["raw"]
    print(f"   ex.evaluate            {ours * 1000:8.1f} ms = {ours / raw:.2f}x the raw forwards; "
          f"{ours / n_curves * 1000:.1f} ms per curve")
    print(f"   {counter.rows} raw forwards      {raw * 1000:8.1f} ms ({raw / n_curves * 1000:.1f} ms per curve)")
    if quantus_run is None:
        print(f"   Quantus PixelFlipping: skipped: {reason}")
    else:
        quantus_time = times["quantus"]
        print(f"   Quantus PixelFlipping {quantus_time * 1000:8.1f} ms for one MoRF deletion curve of K = {steps} steps "
              f"(voxels ranked by saliency) = {quantus_time / (ours / n_curves):.1f}x ours per curve; its {steps} "
              f"forwards of one clip alone take {times['single'] * 1000:.1f} ms")


class GroupTimes:
    """Seconds and model inputs spent in each metric group (its ``add`` and ``finish``)
    during one evaluation: the classes' methods are wrapped while inside the ``with``.
    What groups share (a clip's units, its re-explanation) counts for the first that
    asks; the clip step's preparation counts for none."""

    def __init__(self, names, counter: ForwardCounter):
        self.classes = {name: METRICS[name] for name in names}
        self.counter = counter
        self.seconds = {name: 0.0 for name in names}
        self.rows = {name: 0 for name in names}
        self.saved = []

    def _wrap(self, name, function):
        def wrapped(group, *args):
            rows, started = self.counter.rows, time.perf_counter()
            try:
                return function(group, *args)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.rows[name] += self.counter.rows - rows

        return wrapped

    def __enter__(self):
        for name, cls in self.classes.items():
            for verb in ("add", "finish"):
                self.saved.append((cls, verb, cls.__dict__.get(verb)))
                setattr(cls, verb, self._wrap(name, getattr(cls, verb)))
        return self

    def __exit__(self, *exc):
        for cls, verb, own in reversed(self.saved):
            if own is None:
                delattr(cls, verb)
            else:
                setattr(cls, verb, own)


def whole_evaluation(model, n_frames: int | None) -> None:
    """The default evaluation against the explanation, timed before and after it: on a
    shared machine the load drifts over minutes, and the mean of the two brackets it."""
    video = ex.load_video(ex.samples.sample_path("participant_high"), max_frames=n_frames)
    faces = ex.track_faces(video, progress=False)
    methods = list(FULL_METHODS)
    counter = ForwardCounter(model.module)
    cube = None

    def explain():
        nonlocal cube
        cube = ex.explain(model, video, faces, methods=methods, progress=False)

    before = timed(explain)
    explain_rows = counter.rows
    names = [name for name in DEFAULT_METRICS if not METRICS[name].needs_truth]
    print(f"\n2. {len(video)} frames ({len(video) / video.fps:.1f} s) of participant_high, {cube.sizes['clip']} clips; "
          f"methods {', '.join(methods)}")
    evaluation = {}

    def evaluate(metrics):
        evaluation["dataset"] = ex.evaluate(model, video, cube, faces=faces, metrics=metrics, progress=False)

    counter.rows = 0
    try:
        with GroupTimes(names, counter) as groups:
            seconds = timed(lambda: evaluate(None))
    except NotImplementedError as exc:
        print(f"   the default evaluation ({', '.join(names)}) does not run yet: {exc}; deletion + insertion only")
        names = ["deletion", "insertion"]
        counter.rows = 0
        with GroupTimes(names, counter) as groups:
            seconds = timed(lambda: evaluate(names))
    rows = counter.rows
    after = timed(explain)
    counter.remove()
    explained = (before + after) / 2
    batch = json.loads(evaluation["dataset"].attrs["evaluation"]).get("batch_size")
    print(f"   ex.explain                          {explained:7.1f} s (mean of {before:.1f} s before the evaluation and "
          f"{after:.1f} s after), {explain_rows} model inputs")
    print(f"   ex.evaluate, metrics={'None' if len(names) > 2 else names} ({', '.join(names)}), batch {batch}")
    print(f"     whole                             {seconds:7.1f} s = {seconds / explained:.2f}x the explanation, "
          f"{rows} model inputs = {rows / explain_rows:.1f}x the explanation's")
    print("     by group (what groups share counts for the first: insertion reads deletion's outputs)")
    for name in names:
        print(f"     {name:<33} {groups.seconds[name]:7.1f} s = {groups.seconds[name] / explained:.2f}x, "
              f"{groups.rows[name]} model inputs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--n-random", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="one repeat; part 2 on 64 frames")
    parser.add_argument("--part", choices=["1", "2", "all"], default="all")
    args = parser.parse_args()
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    model = ex.models.load("demo")
    print(f"model {model.describe()}; threads {torch.get_num_threads()}")
    if args.part in ("1", "all"):
        curves(model, 1 if args.quick else args.repeats, args.steps, args.n_random)
    if args.part in ("2", "all"):
        whole_evaluation(model, 64 if args.quick else None)


if __name__ == "__main__":
    main()
