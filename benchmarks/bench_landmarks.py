"""Landmarking speed and accuracy: detect-and-track vs per-frame detection, on 640x480 video.

Three scenes, each tracked both ways in the same process on the same frames, interleaved
over several rounds, so the ratio holds on a shared, noisy machine:

- ``synthetic``: a generated face (expressions, head motion).
- ``occluded``: a generated face that turns its head to 25 degrees and back, then has a
  hand-like shape pass over its mouth (``expresso_xai.testing.occluded_face``).
- ``noface``: a stretch without any face: frames per second of the detector's back-off
  against running it on every frame (``max_search_gap=1``, what the tracker did before).

Errors are tracked vs per-frame detection, in % of the inter-ocular distance: on all
frames, on the frames where per-frame detection is confident (detector score >= 0.5 and
no landmark group marked lost), and on the occluded frames.

    .venv/bin/python benchmarks/bench_landmarks.py [--frames 250] [--rounds 3] [--scene all]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

import expresso_xai as ex
from expresso_xai import samples
from expresso_xai.errors import NoFaceWarning
from expresso_xai.testing import occluded_face


def _timed(video, rounds: int, **options) -> tuple[float, float, ex.FaceTrack]:
    """Best wall-clock and CPU time of ``rounds`` runs of track_faces, and its track (CPU
    time says more than wall-clock time on a machine shared with other jobs)."""
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoFaceWarning)
            track = ex.track_faces(video, progress=False, **options)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), track


def _error(tracked: ex.FaceTrack, detected: ex.FaceTrack) -> np.ndarray:
    """Mean point distance per frame, in % of the per-frame detection's IOD."""
    distance = np.linalg.norm(tracked.landmarks - detected.landmarks, axis=-1).mean(axis=-1)
    return 100 * distance / detected.inter_ocular_distance()


def _figures(label: str, error: np.ndarray) -> str:
    error = error[np.isfinite(error)]
    if not error.size:
        return f"{label}: no frames"
    return f"{label}: mean {error.mean():.2f}%, max {error.max():.2f}% IOD ({error.size} frames)"


def compare(video, rounds: int, detect_every: int, occluded: np.ndarray | None = None) -> None:
    """Detect-and-track against per-frame detection on one video: speed and errors."""
    t_track = t_detect = c_track = c_detect = np.inf
    for _ in range(rounds):  # interleaved, so both see the same machine load
        seconds, cpu, tracked = _timed(video, 1, detect_every=detect_every)
        t_track, c_track = min(t_track, seconds), min(c_track, cpu)
        seconds, cpu, detected = _timed(video, 1, detect_every=1)
        t_detect, c_detect = min(t_detect, seconds), min(c_detect, cpu)
    n = video.n_frames
    print(f"  detect every {detect_every} + track: {n / t_track:7.1f} fps ({t_track * 1000 / n:.2f} ms/frame, "
          f"detector ran on {int(tracked.detected.sum())} frames)")
    print(f"  detect every frame     : {n / t_detect:7.1f} fps ({t_detect * 1000 / n:.2f} ms/frame)")
    print(f"  speed-up (same run)    : {t_detect / t_track:.2f}x wall-clock, {c_detect / c_track:.2f}x CPU time")
    error = _error(tracked, detected)
    print("  " + _figures("tracked vs per-frame, all frames", error))
    confident = (detected.confidence >= 0.5) & ~(detected.landmark_quality < 0.5).any(axis=1)
    print("  " + _figures("tracked vs per-frame, confident frames", np.where(confident, error, np.nan)))
    if occluded is not None:
        print("  " + _figures("tracked vs per-frame, occluded frames", np.where(occluded, error, np.nan)))
        quality = tracked.landmark_quality
        groups = list(ex.faces.QUALITY_GROUPS)
        for name, frames in (("occluded", occluded), ("clear", ~occluded)):
            means = np.nanmean(quality[frames], axis=0)
            print(f"  landmark_quality on {name} frames: "
                  + ", ".join(f"{g} {m:.2f}" for g, m in zip(groups, means)))
    print(f"  faces found: tracked {int(tracked.face_found.sum())}/{n}, per-frame {int(detected.face_found.sum())}/{n}")


def no_face(frames: int, rounds: int, detect_every: int) -> None:
    """Frames per second through a stretch without a face: back-off vs every frame."""
    rng = np.random.default_rng(0)
    texture = rng.integers(60, 200, size=(1, 480, 640, 1)).astype(np.uint8)
    video = ex.Video.from_array(np.repeat(np.repeat(texture, 3, axis=-1), frames, axis=0), fps=25)
    t_back, c_back, backed = _timed(video, rounds, detect_every=detect_every)
    t_every, c_every, every = _timed(video, rounds, detect_every=detect_every, max_search_gap=1)
    print(f"  back-off (up to every {detect_every}): {frames / t_back:7.1f} fps, detector on "
          f"{int(backed.detected.sum())} of {frames} frames")
    print(f"  detector on every frame : {frames / t_every:7.1f} fps, detector on {int(every.detected.sum())}")
    print(f"  speed-up                : {t_every / t_back:.2f}x wall-clock, {c_every / c_back:.2f}x CPU time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--detect-every", type=int, default=15)
    parser.add_argument("--scene", choices=["synthetic", "occluded", "noface", "all"], default="all")
    parser.add_argument("--hand", type=float, default=1.0, help="size of the occluding hand (1: a palm 0.8 IOD wide)")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}")
    if args.scene in ("synthetic", "all"):
        spec = samples.SampleSpec(seed=21, seconds=args.frames / 25, size=300, canvas=(480, 640),
                                  score=40, name="bench640")
        video = samples.render(spec).to_video()
        print(f"synthetic: {video.n_frames} frames {video.width}x{video.height}")
        compare(video, args.rounds, args.detect_every)
    if args.scene in ("occluded", "all"):
        video, _, occluded = occluded_face(n_frames=args.frames, size=300, canvas=(480, 640), hand=args.hand)
        print(f"occluded (head turn, then a hand over the mouth on {int(occluded.sum())} frames): "
              f"{video.n_frames} frames {video.width}x{video.height}")
        compare(video, args.rounds, args.detect_every, occluded)
    if args.scene in ("noface", "all"):
        print(f"no face: {args.frames} frames 640x480")
        no_face(args.frames, args.rounds, args.detect_every)


if __name__ == "__main__":
    main()
