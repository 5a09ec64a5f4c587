"""The ``expresso-xai`` command.

Sub-commands:

* ``expresso-xai regions VIDEO --out PNG`` — track the face and draw the region map
  over a frame (what ``make demo`` runs).
* ``expresso-xai landmarks VIDEO --out NPZ`` — track the face and save the landmarks.
* ``expresso-xai samples make --out DIR`` — generate a synthetic cohort.
* ``expresso-xai samples ship`` — regenerate the shipped samples in ``data_samples/``.
* ``expresso-xai demo --out DIR`` — the demo on a shipped sample.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .errors import ExpressoError
from .samples import SHIPPED

log = logging.getLogger("expresso_xai")


def _regions(video_path: str, out: Path, frame: int | None, scheme: str, size: int, max_frames: int | None,
             progress: bool = True) -> dict:
    import numpy as np

    from . import regions
    from .faces import track_faces
    from .video import load_video

    from .errors import RegionError

    started = time.perf_counter()
    video = load_video(video_path, max_frames=max_frames)
    if frame is not None and not 0 <= frame < video.n_frames:
        raise RegionError(f"{video_path}: --frame {frame} is outside its {video.n_frames} frames (0..{video.n_frames - 1})")
    faces = track_faces(video, progress=progress)
    faces.require_face("drawing regions")
    crop = regions.FaceCrop.from_track(faces, size=(size, size))
    region_map = regions.region_map(faces, crop, scheme=scheme)
    if frame is None:  # a frame where a face was found, near the middle
        found = np.nonzero(faces.face_found)[0]
        frame = int(found[len(found) // 2])
    out.parent.mkdir(parents=True, exist_ok=True)
    regions.plot_region_map(video, faces, region_map, crop, frame=frame, path=out,
                            title=f"{Path(video_path).name}: frame {frame}")
    area = region_map.area().sel(time=frame)
    return {
        "video": video, "faces": faces, "frame": frame, "seconds": time.perf_counter() - started,
        "area": {str(r): int(a) for r, a in zip(area.region.values, area.values)},
    }


def _print_regions_summary(result: dict, out: Path) -> None:
    video, faces = result["video"], result["faces"]
    print(f"video      {video.source}: {video.n_frames} frames, {video.width}x{video.height}, {video.fps:g} fps")
    print(f"faces      found in {int(faces.face_found.sum())}/{len(faces)} frames "
          f"(detector ran on {int(faces.detected.sum())}, tracked the rest), {result['seconds']:.1f} s")
    biggest = sorted(((a, r) for r, a in result["area"].items() if r != "background"), reverse=True)
    print("regions    " + ", ".join(f"{r} {a}px" for a, r in biggest[:6]) + ", ...")
    print(f"figure     {out}  (frame {result['frame']}: landmarks, crop and region map)")


def cmd_regions(args) -> int:
    out = Path(args.out)
    result = _regions(args.video, out, args.frame, args.scheme, args.size, args.max_frames)
    _print_regions_summary(result, out)
    return 0


def cmd_landmarks(args) -> int:
    import numpy as np

    from .faces import track_faces

    faces = track_faces(args.video, detect_every=args.detect_every)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, landmarks=faces.landmarks, face_found=faces.face_found,
                        confidence=faces.confidence, boxes=faces.boxes, n_faces=faces.n_faces)
    print(f"landmarks of {int(faces.face_found.sum())}/{len(faces)} frames written to {out}")
    return 0


def cmd_samples_make(args) -> int:
    from .samples import make_cohort

    manifest = make_cohort(args.out, n_participants=args.participants, seconds=args.seconds,
                           size=args.size, seed=args.seed)
    print(f"cohort of {args.participants} participants in {manifest.parent}; manifest: {manifest}")
    return 0


def cmd_samples_ship(args) -> int:
    from .samples import SHIPPED, render, write_sample

    out = Path(args.out)
    for name, spec in SHIPPED.items():
        paths = write_sample(render(spec, progress=True), out, name)
        print(f"{name}: " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_demo(args) -> int:
    from .samples import sample_path

    out_dir = Path(args.out)
    video_path = sample_path(args.sample)
    out = out_dir / f"{args.sample}_regions.png"
    result = _regions(str(video_path), out, None, "partition", 112, None)
    print("expresso-xai demo: landmarks and facial regions of a shipped sample video")
    _print_regions_summary(result, out)
    print(f"\nOpen {out.resolve()} to see the region map the model will be explained with.")
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage mistakes read like every other error: ``expresso-xai: error: ...``, exit 2."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"expresso-xai: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="expresso-xai", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True)

    regions = commands.add_parser("regions", help="draw the facial region map over a frame")
    regions.add_argument("video")
    regions.add_argument("--out", default="regions.png", help="image file (png, pdf, svg)")
    regions.add_argument("--frame", type=int, default=None, help="frame index (default: middle face frame)")
    regions.add_argument("--scheme", default="partition", choices=["partition", "boxes"])
    regions.add_argument("--size", type=int, default=112, help="model input side in pixels")
    regions.add_argument("--max-frames", type=int, default=None)
    regions.set_defaults(func=cmd_regions)

    landmarks = commands.add_parser("landmarks", help="track 68 landmarks and save them (.npz)")
    landmarks.add_argument("video")
    landmarks.add_argument("--out", default="landmarks.npz")
    landmarks.add_argument("--detect-every", type=int, default=15)
    landmarks.set_defaults(func=cmd_landmarks)

    samples = commands.add_parser("samples", help="synthetic sample videos")
    sample_commands = samples.add_subparsers(dest="samples_command", required=True)
    make = sample_commands.add_parser("make", help="generate a synthetic cohort with a planted score")
    make.add_argument("--out", required=True)
    make.add_argument("--participants", type=int, default=24)
    make.add_argument("--seconds", type=float, default=10.0)
    make.add_argument("--size", type=int, default=192)
    make.add_argument("--seed", type=int, default=0)
    make.set_defaults(func=cmd_samples_make)
    ship = sample_commands.add_parser("ship", help="regenerate the shipped samples")
    ship.add_argument("--out", default="data_samples")
    ship.set_defaults(func=cmd_samples_ship)

    demo = commands.add_parser("demo", help="run the demo on a shipped sample")
    demo.add_argument("--out", default="demo_output")
    demo.add_argument("--sample", default="participant_high", choices=sorted(SHIPPED))
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage mistake already explained on stderr
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ExpressoError as exc:
        print(f"expresso-xai: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("expresso-xai: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
