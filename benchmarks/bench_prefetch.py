"""Decoding and cropping overlapped with the model: ``ex.explain(model, path)`` on a
video streamed from disk with ``prefetch=0`` (each clip decoded, cropped and
preprocessed when the model asks for it) against ``prefetch=N`` (a background thread
keeps N clips ready), in the same run, interleaved.

For each setting: wall time, the cube's ``decode_wait_fraction`` (seconds the loop waited
for its next clip over the loop's seconds) and the model's share of the wall time
(``wall x (1 - wait)``: if the background thread fought the model for cores, the model's
seconds would grow with prefetch on). With ``--cv-threads 1`` OpenCV's own thread pool
is limited too (process-wide, for comparison).

On a machine with more runnable threads than cores (a shared CI box), torch's OpenMP
workers spin between parallel regions and the model's own time varies several-fold with
the load; run it a second time with ``OMP_WAIT_POLICY=PASSIVE`` in the environment to see
the overlap without that effect.

    .venv/bin/python benchmarks/bench_prefetch.py [--seconds 20] [--r3d-frames 64] [--repeats 2]
        [--prefetch 2] [--methods gradcam,saliency] [--device cpu|cuda] [--cv-threads N]

The videos are synthetic (the samples generator, 192x192 at 25 fps), written to a
temporary folder and removed afterwards: the demo model explains ``--seconds`` of it,
r3d_18 (random weights, 112x112) the first ``--r3d-frames`` frames (a few clips).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from bench_explain import build_model, interleaved, ratio

import expresso_xai as ex


def synthetic(folder: Path, seconds: float, name: str) -> tuple[Path, object]:
    """A streamed synthetic face video and its face track (from the OpenFace CSV the
    samples generator writes: no landmarker in the timing)."""
    sample = ex.samples.render(ex.samples.SampleSpec(seed=14, seconds=seconds, name=name))
    files = ex.samples.write_sample(sample, folder, name)
    faces, _ = ex.faces.read_openface(files["openface"], frame_size=sample.frames.shape[1:3])
    return files["video"], faces


def compare(label: str, model, path: Path, faces, args) -> None:
    """Both settings on one video, interleaved; one line each and their ratio."""
    cubes = {}

    def explain_with(prefetch: int):
        def run():
            cubes[prefetch] = ex.explain(model, path, faces=faces, methods=args.methods, progress=False,
                                         batch_size=4, device=args.device, prefetch=prefetch)
        return run

    times = interleaved(args.repeats, {0: explain_with(0), args.prefetch: explain_with(args.prefetch)})
    clips = cubes[0].sizes["clip"]
    print(f"{label}: {len(faces)} frames, {clips} clips, methods {','.join(args.methods)}")
    for prefetch, cube in cubes.items():
        wall, wait = float(np.median(times[prefetch])), cube.attrs["decode_wait_fraction"]
        print(f"   prefetch={prefetch}: wall {wall:6.2f} s (median of {args.repeats}), "
              f"{wall / clips * 1000:6.1f} ms/clip, model waited {wait:6.1%} of the loop, "
              f"model share {wall * (1 - wait):6.2f} s")
    print(f"   wall ratio prefetch={args.prefetch} / prefetch=0: {ratio(times, args.prefetch, 0):.3f} "
          "(median of per-round ratios)")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the demo model's video")
    parser.add_argument("--r3d-frames", type=int, default=64, help="frames r3d_18 explains (0: skip it)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--prefetch", type=int, default=2)
    parser.add_argument("--methods", type=lambda text: text.split(","), default=["gradcam", "saliency"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cv-threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's)")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, OpenCV {cv2.__version__} with "
          f"{cv2.getNumThreads()} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()}, "
          f"device {args.device}")
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        path, faces = synthetic(Path(folder), args.seconds, "long")
        print(f"(made a {args.seconds:.0f} s 192x192 video in {time.perf_counter() - started:.0f} s)")
        compare("demo", build_model("demo"), path, faces, args)
        if args.r3d_frames:
            path, faces = synthetic(Path(folder), args.r3d_frames / 25, "short")
            compare("r3d_18", build_model("r3d_18"), path, faces, args)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
