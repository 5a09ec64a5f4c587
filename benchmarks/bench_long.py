"""Long runs on one machine (issue #14): a synthetic interview of ``--minutes`` minutes,
explained end to end through the public API as a user would, face tracking included.

1. make the video with the samples generator (rendered and encoded in 30 s pieces, so
   making it does not hold the whole video in memory), timed;
2. ``ex.explain(demo, path, methods=["gradcam", "saliency", "integrated_gradients"],
   stride=16)`` and the same through the ``expresso-xai explain`` command: wall time,
   frames per second, peak RSS and the cube's size;
3. peak RSS of a 60 s against a 10 s video (goal <= 1.1x), through the CLI and through
   ``ex.explain(model, path)`` without ``keep_pixels``, and through ``ex.explain`` with
   ``keep_pixels="maps.zarr"`` (pixel maps written to disk as the clips finish).

Every run is its own subprocess, so each peak RSS (``ru_maxrss``) is that run's alone.

    nice -n 10 .venv/bin/python benchmarks/bench_long.py [--minutes 10] [--out FOLDER]
    .venv/bin/python benchmarks/bench_long.py --quick      # 1 minute, a smoke run
    .venv/bin/python benchmarks/bench_long.py --only ratios

The videos go to ``--out`` (default: a temporary folder, removed at the end); never
commit them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ["gradcam", "saliency", "integrated_gradients"]
SIZE = 192
FPS = 25.0
PIECE_SECONDS = 30.0


def make_video(path: Path, seconds: float, seed: int = 0) -> float:
    """Render ``seconds`` of synthetic interview into ``path``; returns the time taken."""
    import cv2
    import numpy as np

    from expresso_xai.samples import SampleSpec, render

    start = time.perf_counter()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (SIZE, SIZE))
    done, piece = 0.0, 0
    try:
        while done < seconds - 1e-9:
            # Pieces of one participant (seed) with their own events (piece), so the whole
            # is never held in memory: a 10-minute 192 px video is 1.7 GB of frames.
            length = min(PIECE_SECONDS, seconds - done)
            sample = render(SampleSpec(seed=seed * 1000 + piece, seconds=length, size=SIZE, fps=FPS, score=30))
            for frame in sample.frames:
                writer.write(np.ascontiguousarray(frame[..., ::-1]))
            done, piece = done + length, piece + 1
    finally:
        writer.release()
    return time.perf_counter() - start


CHILD_API = """
import json, resource, sys, time
import expresso_xai as ex
path, stride, keep = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
methods = json.loads(sys.argv[4])
model = ex.models.load("demo")
start = time.perf_counter()
cube = ex.explain(model, path, methods=methods, stride=stride, keep_pixels=keep, progress=False)
wall = time.perf_counter() - start
print(json.dumps({"wall_s": wall, "frames": int(cube.sizes["time"]), "cube_bytes": int(cube.nbytes),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CHILD_CLI = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(json.dumps({"wall_s": time.perf_counter() - start,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def _child(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_api(path: Path, stride: int = 16, keep_pixels=False, methods=METHODS) -> dict:
    """``ex.explain(demo, path, ...)`` in a fresh process: wall time, peak RSS, cube size."""
    result = _child(CHILD_API, path, stride, json.dumps(keep_pixels), json.dumps(methods))
    result["fps"] = result["frames"] / result["wall_s"]
    return result


def run_cli(path: Path, out: Path, stride: int = 16, methods=METHODS, extra=()) -> dict:
    """``expresso-xai explain PATH --model demo ...`` in a fresh process; its peak RSS."""
    exe = shutil.which("expresso-xai") or str(Path(sys.executable).with_name("expresso-xai"))
    result = _child(CHILD_CLI, exe, "explain", path, "--model", "demo", "--methods", ",".join(methods),
                    "--stride", stride, "--out", out, *extra)
    result["cube_file_mb"] = out.stat().st_size / 1e6
    return result


def end_to_end(folder: Path, minutes: float) -> None:
    path = folder / f"interview_{minutes:g}min.mp4"
    made = make_video(path, minutes * 60)
    print(f"made {path.name}: {minutes * 60:.0f} s, {minutes * 60 * FPS:.0f} frames of {SIZE}x{SIZE} "
          f"in {made:.0f} s ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
    api = run_api(path)
    print(f"ex.explain  {', '.join(METHODS)} stride 16: {api['wall_s']:.0f} s, {api['fps']:.1f} frames/s, "
          f"peak RSS {api['peak_rss_mb']:.0f} MB, cube {api['cube_bytes'] / 1e6:.1f} MB in memory", flush=True)
    cli = run_cli(path, folder / "cube.nc")
    print(f"CLI explain same:  {cli['wall_s']:.0f} s, {api['frames'] / cli['wall_s']:.1f} frames/s, "
          f"peak RSS {cli['peak_rss_mb']:.0f} MB, cube file {cli['cube_file_mb']:.1f} MB", flush=True)


def ratios(folder: Path) -> None:
    """Peak RSS of a 60 s against a 10 s video, each run in its own process."""
    paths = {s: folder / f"clip_{s}s.mp4" for s in (10, 60)}
    for seconds, path in paths.items():
        if not path.exists():
            make_video(path, seconds, seed=1)
    # saliency alone at stride 16: the run is short and memory, not compute, is measured
    methods = ["gradcam", "saliency"]
    rows = {
        "CLI, no pixels": lambda p, s: run_cli(p, folder / f"r{s}.nc", methods=methods),
        "ex.explain, no pixels": lambda p, s: run_api(p, methods=methods),
        'ex.explain, keep_pixels="maps.zarr"': lambda p, s: run_api(p, methods=methods,
                                                                   keep_pixels=str(folder / f"maps{s}.zarr")),
    }
    for label, run in rows.items():
        rss = {s: run(p, s)["peak_rss_mb"] for s, p in paths.items()}
        print(f"{label:<38} peak RSS 10 s {rss[10]:.0f} MB, 60 s {rss[60]:.0f} MB: {rss[60] / rss[10]:.3f}x",
              flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="a 1-minute video (smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the videos (default: a temporary one)")
    parser.add_argument("--only", choices=("long", "ratios"), default=None)
    args = parser.parse_args(argv)
    minutes = 1.0 if args.quick else args.minutes
    folder = args.out or Path(tempfile.mkdtemp(prefix="bench_long_"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    try:
        if args.only in (None, "long"):
            end_to_end(folder, minutes)
        if args.only in (None, "ratios"):
            ratios(folder)
    finally:
        if args.out is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
