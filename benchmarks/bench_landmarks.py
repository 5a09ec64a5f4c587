"""Landmarking speed: detect-and-track vs per-frame detection, on 640x480 video.

Both run in the same process on the same decoded frames, interleaved over several
rounds, so the ratio holds on a shared, noisy machine. Also prints how far the tracked
landmarks are from per-frame detection, in % of the inter-ocular distance.

    .venv/bin/python benchmarks/bench_landmarks.py [--frames 250] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import expresso_xai as ex
from expresso_xai import samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--detect-every", type=int, default=15)
    args = parser.parse_args()

    spec = samples.SampleSpec(seed=21, seconds=args.frames / 25, size=300, canvas=(480, 640),
                              score=40, name="bench640")
    video = samples.render(spec).to_video()
    print(f"video: {video.n_frames} frames {video.width}x{video.height}; cores: {os.cpu_count()}")

    tracked_times, detected_times = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        tracked = ex.track_faces(video, detect_every=args.detect_every, progress=False)
        tracked_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        detected = ex.track_faces(video, detect_every=1, progress=False)
        detected_times.append(time.perf_counter() - start)
    t_track, t_detect = min(tracked_times), min(detected_times)
    iod = detected.inter_ocular_distance()
    error = np.linalg.norm(tracked.landmarks - detected.landmarks, axis=-1).mean(axis=-1) / iod
    print(f"detect every {args.detect_every} + track: {video.n_frames / t_track:7.1f} fps "
          f"({t_track * 1000 / video.n_frames:.2f} ms/frame, detector ran on {int(tracked.detected.sum())} frames)")
    print(f"detect every frame     : {video.n_frames / t_detect:7.1f} fps ({t_detect * 1000 / video.n_frames:.2f} ms/frame)")
    print(f"speed-up (same run)    : {t_detect / t_track:.2f}x")
    print(f"tracked vs per-frame detection: mean {100 * np.nanmean(error):.2f}% , "
          f"max {100 * np.nanmax(error):.2f}% of inter-ocular distance")
    print(f"faces found: tracked {int(tracked.face_found.sum())}/{len(tracked)}, "
          f"per-frame {int(detected.face_found.sum())}/{len(detected)}")


if __name__ == "__main__":
    main()
