"""The ``expresso-xai`` command.

Sub-commands:

* ``expresso-xai regions VIDEO --out PNG`` — track the face and draw the region map
  over a frame (what ``make demo`` runs).
* ``expresso-xai landmarks VIDEO --out NPZ`` — track the face and save the landmarks.
* ``expresso-xai explain VIDEO --model demo|PATH --methods ... --out cube.nc`` — explain
  a video and write the attribution cube.
* ``expresso-xai inspect cube.nc`` — summarise a cube.
* ``expresso-xai evaluate cube.nc --video VIDEO --model demo|PATH --out eval.nc`` — can the
  cube's explanations be trusted? Faithfulness, sanity and localisation scores.
* ``expresso-xai explore cube.nc --video VIDEO --out explorer.html`` — the interactive
  Explorer as a standalone HTML file (no kernel, no network needed to open it).
* ``expresso-xai train MANIFEST --model r3d_18`` — fine-tune on a cohort (participant-level metrics).
* ``expresso-xai cohort run MANIFEST --store cohort.zarr`` / ``cohort report`` — explain a
  cohort on Dask, then its audit (see :mod:`expresso_xai.cli_cohort`).
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

from .cli_args import AMOUNT, COUNT, FIGURE, INDEX, SHARE, Parser, number, one_line, output, warnings_as_lines
from .cli_cohort import add_cohort
from .cli_explain import _explain_video, _top_lines, add_explain
from .errors import ExpressoError
from .files import atomic_path
from .samples import SHIPPED

log = logging.getLogger("expresso_xai")


def _regions(video_path: str, out: Path, frame: int | None, scheme: str, size: int, max_frames: int | None,
             progress: bool = True) -> dict:
    import numpy as np

    from . import regions
    from .crop import FaceCrop
    from .faces import track_faces
    from .figures import plot_region_map
    from .video import load_video

    from .errors import RegionError

    started = time.perf_counter()
    video = load_video(video_path, max_frames=max_frames)
    if frame is not None and not 0 <= frame < video.n_frames:
        raise RegionError(f"{video_path}: --frame {frame} is outside its {video.n_frames} frames (0..{video.n_frames - 1})")
    faces = track_faces(video, progress=progress)
    faces.require_face("drawing regions")
    crop = FaceCrop.from_track(faces, size=(size, size))
    region_map = regions.region_map(faces, crop, scheme=scheme)
    if frame is None:  # a frame where a face was found, near the middle
        found = np.nonzero(faces.face_found)[0]
        frame = int(found[len(found) // 2])
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_region_map(video, faces, region_map, crop, frame=frame, path=out,
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


def cmd_inspect(args) -> int:
    import json

    from .cube import open_cube
    from .cube.views import range_caution

    cube = open_cube(args.cube)
    attrs = cube.attrs
    print(f"cube       {args.cube}")
    print(f"model      {attrs.get('model_name')} (weights sha256 {str(attrs.get('model_hash'))[:12]}...)")
    print(f"video      {attrs.get('video_source')} ({cube.sizes['time']} frames, "
          f"{float(cube.seconds[-1]):.2f} s, face in {int(cube.face_found.sum())})")
    print(f"regions    {attrs.get('region_scheme')}: {', '.join(cube.xai.regions)}")
    print(f"explainers {', '.join(cube.xai.explainers)}")
    caution = range_caution(cube)
    if caution:
        print(f"caution    {caution}")
    print("highest attribution per pixel (summed over time):")
    print("\n".join(_top_lines(cube)))
    if "integrated_gradients_converged" in cube:
        converged = cube.integrated_gradients_converged.values
        print(f"integrated gradients: {int(converged.sum())}/{len(converged)} clips within tolerance, "
              f"worst completeness error {float(cube.integrated_gradients_completeness_error.max()):.2%}, "
              f"steps {int(cube.integrated_gradients_steps.min())}-{int(cube.integrated_gradients_steps.max())}")
    print(f"created    {attrs.get('created')}; methods {json.dumps(cube.xai.params())}")
    return 0


def _score_lines(ev) -> list[str]:
    """The scores, a row per metric (with its direction) and a column per method; ✓ / ✗
    where a score passes or fails its threshold."""
    from .figures import VERDICTS
    from .evaluate.table import ARROWS, DIGITS

    marks = ev["passed"].to_pandas().T.map(lambda p: VERDICTS[None if p != p else bool(p)][0] or "  ")
    table = ev["score"].to_pandas().T.map(lambda v: "–  " if v != v else f"{v:.{DIGITS}f}") + marks
    table.index = [f"{m} {ARROWS.get(str(b), '')}".rstrip() for m, b in zip(ev["metric"].values, ev["better"].values)]
    return ["  " + line for line in table.rename_axis(index=None, columns=None).to_string().splitlines()]


def cmd_evaluate(args) -> int:
    import json

    from . import models
    from .cube import open_cube
    from .errors import EvaluationError
    from .evaluate import evaluate, save_evaluation
    from .evaluate.base import check_metric_names
    from .faces.openface import read_openface_for
    from .samples import truth_mask
    from .video import load_video

    metrics = args.metrics if args.metrics is None else check_metric_names(
        [name.strip() for name in args.metrics.split(",") if name.strip()])
    if args.figure and metrics and not {"deletion", "insertion"} & set(metrics):
        raise EvaluationError("--figure draws the deletion and insertion curves: add one of them to --metrics")
    cube = open_cube(args.cube)
    try:
        truth = truth_mask(args.truth, cube) if args.truth else None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:  # not JSON, or the JSON of something else
        raise EvaluationError(f"{args.truth}: not a sample's ground-truth JSON ({exc!r})") from None
    model = models.load(args.model)
    frames = int(cube.time.values[-1]) + 1  # a cube of the first frames (explain --max-frames) covers only those
    video = load_video(args.video, max_frames=frames)
    openface = args.openface or cube.attrs.get("openface_csv")  # the landmarks the cube was explained with
    faces = read_openface_for(openface, video, frames)[0] if openface else None
    ev = evaluate(model, video, cube, faces=faces, metrics=metrics, truth=truth, window=args.window, fill=args.fill,
                  steps=args.steps, n_random=args.n_random, seed=args.seed, max_clips=args.max_clips)
    save_evaluation(ev, args.out)
    run = json.loads(ev.attrs["evaluation"])
    print("\n".join([f"evaluated {args.cube} with {model.name} on {len(run['clips_evaluated'])} of "
                     f"{cube.sizes['clip']} clips ({run['fill']} fill, units of {run['window']} frames): "
                     f"{', '.join(run['metrics'])}",
                     "scores (↑ higher is better, ↓ lower, no arrow: descriptive; ✓ pass, ✗ fail):",
                     *_score_lines(ev), f"evaluation {args.out}  (open with expresso_xai.open_evaluation)"]))
    if args.figure:
        from .figures import perturbation_curves

        perturbation_curves(ev, path=args.figure)
        print(f"figure     {args.figure}")
    return 0


def cmd_explore(args) -> int:
    from .cube import open_cube
    from .widgets import Explorer

    cube = open_cube(args.cube)
    explorer = Explorer(cube, args.video, method=args.method)
    path = explorer.save_html(args.out)
    for message in explorer.messages + explorer.cautions:
        print(f"note: {message}")
    print(f"explorer   {path} ({path.stat().st_size / 1e6:.1f} MB; open it in a browser)")
    return 0


def cmd_train(args) -> int:
    import torch

    from . import models
    from .models import training

    torch.manual_seed(args.seed)
    model = models.load(args.model, weights=args.weights)
    result = training.finetune(model, args.manifest, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                               clip_stride=args.stride, label_noise=args.label_noise, seed=args.seed,
                               checkpoint=args.checkpoint)
    out = Path(args.out)
    with atomic_path(out) as partial:
        torch.save(model.module.state_dict(), partial)
    with atomic_path(out.with_suffix(".json")) as partial:
        partial.write_text(training.result_to_json(result))
    print(f"trained {model.name} for {args.epochs} epochs in {result.seconds:.0f} s; best epoch {result.best_epoch + 1}")
    for split in ("val", "test"):
        metrics = getattr(result, split)
        if metrics:
            base = result.baseline[split]
            print(f"{split:<5} participants {metrics['n_participants']}: MAE {metrics['mae']:.2f}, RMSE "
                  f"{metrics['rmse']:.2f} (predicting the training mean: MAE {base['mae']:.2f}, RMSE {base['rmse']:.2f})")
    print(f"weights    {out}  (metrics in {out.with_suffix('.json')})")
    return 0


def cmd_landmarks(args) -> int:
    import numpy as np

    from .faces import track_faces
    from .video import load_video, stream_video

    if args.max_frames is None:  # streamed: a long video never sits in memory
        faces = track_faces(args.video, detect_every=args.detect_every)
        # a second, light decode for the timestamps (tracking takes far longer)
        timestamps = np.concatenate([chunk.timestamps for chunk in stream_video(args.video)])
    else:
        video = load_video(args.video, max_frames=args.max_frames)
        faces, timestamps = track_faces(video, detect_every=args.detect_every), video.timestamps
    out = Path(args.out)
    with atomic_path(out) as partial:
        # each row's time in seconds: lines up with the video without trusting a nominal rate
        np.savez_compressed(partial, **faces.to_arrays(), timestamps=np.asarray(timestamps, dtype=np.float64))
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
    from .figures import region_time_heatmap
    from .samples import load_truth, sample_path

    out_dir = Path(args.out)
    video_path = sample_path(args.sample)
    regions_png = out_dir / f"{args.sample}_regions.png"
    result = _regions(str(video_path), regions_png, None, "partition", 64, None)
    print("expresso-xai demo: explain a shipped sample video with the demo model")
    _print_regions_summary(result, regions_png)
    methods = ["gradcam", "integrated_gradients", "occlusion"]
    cube_path = out_dir / f"{args.sample}.nc"
    started = time.perf_counter()
    cube = _explain_video(str(video_path), "demo", methods, cube_path, keep_pixels=True)
    truth = load_truth(args.sample)
    print(f"explained  {len(methods)} methods over {cube.sizes['clip']} clips in {time.perf_counter() - started:.0f} s; "
          f"predicted score {float(cube.prediction.mean()):.1f} (true {truth['score']:.1f})")
    print("highest attribution per pixel (summed over time):")
    print("\n".join(_top_lines(cube)))
    figures = []
    for method in methods:
        figure = out_dir / f"{args.sample}_{method}"
        region_time_heatmap(cube, method, path=figure)
        figures.append(figure.with_suffix(".png"))
    from .widgets import Explorer

    explorer = Explorer(cube, video_path, method="occlusion").save_html(out_dir / f"{args.sample}_explorer.html")
    print(f"cube       {cube_path}")
    print(f"figures    {', '.join(str(f) for f in figures)} (and .pdf)")
    print(f"explorer   {explorer} (interactive; open it in a browser)")
    print(f"\nLook at {figures[-1].resolve()}: the eyes light up during the long eye closures "
          f"(ground truth: {sum(e['type'] == 'long_closure' for e in truth['events'])} closures in {args.sample}.json).")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="expresso-xai", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command")

    regions = commands.add_parser("regions", help="draw the facial region map over a frame")
    regions.add_argument("video")
    regions.add_argument("--out", default="regions.png", type=FIGURE, help="image file (png, pdf, svg)")
    regions.add_argument("--frame", type=INDEX, default=None, help="frame index (default: middle face frame)")
    regions.add_argument("--scheme", default="partition", choices=["partition", "boxes"])
    regions.add_argument("--size", type=number(int, least=16), default=112, help="model input side in pixels")
    regions.add_argument("--max-frames", type=COUNT, default=None)
    regions.set_defaults(func=cmd_regions)

    add_explain(commands)

    train = commands.add_parser("train", help="fine-tune a model on a manifest (video,participant,score,split)")
    train.add_argument("manifest")
    train.add_argument("--model", default="r3d_18", help="a zoo architecture, or 'demo' to continue from it")
    train.add_argument("--weights", default=None, help="local weights to start from")
    train.add_argument("--epochs", type=COUNT, default=10)
    train.add_argument("--lr", type=AMOUNT, default=0.01)
    train.add_argument("--batch-size", type=COUNT, default=8)
    train.add_argument("--stride", type=COUNT, default=8, help="frames between clip starts")
    train.add_argument("--label-noise", type=SHARE, default=0.0)
    train.add_argument("--seed", type=INDEX, metavar="N", default=0)
    train.add_argument("--checkpoint", default=None, type=output(), help="resume from / save to this file after every epoch")
    train.add_argument("--out", default="weights.pt", type=output(".pt", ".pth"))
    train.set_defaults(func=cmd_train)

    inspect = commands.add_parser("inspect", help="summarise an attribution cube")
    inspect.add_argument("cube")
    inspect.set_defaults(func=cmd_inspect)

    explore = commands.add_parser("explore", help="write the interactive Explorer of a cube as standalone HTML")
    explore.add_argument("cube")
    explore.add_argument("--video", default=None, help="the video the cube was made from (for overlays)")
    explore.add_argument("--method", default=None, help="the explainer shown first")
    explore.add_argument("--out", default="explorer.html", type=output(".html", ".htm"))
    explore.set_defaults(func=cmd_explore)

    _add_evaluate(commands)
    add_cohort(commands)

    landmarks = commands.add_parser("landmarks", help="track 68 landmarks and save them (.npz)")
    landmarks.add_argument("video")
    landmarks.add_argument("--out", default="landmarks.npz", type=output(".npz"))
    landmarks.add_argument("--detect-every", type=COUNT, default=15)
    landmarks.add_argument("--max-frames", type=COUNT, default=None, help="track only the first N frames")
    landmarks.set_defaults(func=cmd_landmarks)

    samples = commands.add_parser("samples", help="synthetic sample videos")
    sample_commands = samples.add_subparsers(dest="samples_command", required=True)
    make = sample_commands.add_parser("make", help="generate a synthetic cohort with a planted score")
    make.add_argument("--out", required=True, type=output(folder=True))
    make.add_argument("--participants", type=COUNT, default=24)
    make.add_argument("--seconds", type=AMOUNT, default=10.0)
    make.add_argument("--size", type=number(int, least=32), default=192)
    make.add_argument("--seed", type=INDEX, metavar="N", default=0)
    make.set_defaults(func=cmd_samples_make)
    ship = sample_commands.add_parser("ship", help="regenerate the shipped samples")
    ship.add_argument("--out", default="data_samples", type=output(folder=True))
    ship.set_defaults(func=cmd_samples_ship)

    demo = commands.add_parser("demo", help="run the demo on a shipped sample")
    demo.add_argument("--out", default="demo_output", type=output(folder=True))
    demo.add_argument("--sample", default="participant_high", choices=sorted(SHIPPED))
    demo.set_defaults(func=cmd_demo)
    parser._command_names = list(commands.choices)
    return parser


def _add_evaluate(commands) -> None:
    from .evaluate import FILLS

    evaluate = commands.add_parser("evaluate", help="score how far a cube's explanations can be trusted")
    evaluate.add_argument("cube", help="the attribution cube (.nc or .zarr) made by explain")
    evaluate.add_argument("--video", required=True, help="the video the cube was made from")
    evaluate.add_argument("--model", default="demo", help="the cube's model: 'demo', a zoo architecture or a .pt2 path")
    evaluate.add_argument("--out", default="eval.nc", type=output(".nc"), metavar="FILE.nc", help="evaluation file (.nc)")
    evaluate.add_argument("--metrics", default=None, metavar="NAMES",
                          help="comma-separated metric groups (default: deletion,insertion,random,mprt, and "
                               "pointing_game,relevance_mass with --truth)")
    evaluate.add_argument("--openface", default=None, metavar="CSV",
                          help="the OpenFace CSV the cube was explained with (default: the one the cube records)")
    evaluate.add_argument("--truth", default=None, metavar="JSON", help="a sample's ground-truth JSON, for the localisation metrics")
    evaluate.add_argument("--window", type=COUNT, metavar="N", default=4, help="frames per region x time unit")
    evaluate.add_argument("--fill", default="blur", choices=FILLS, help="what replaces a removed unit")
    evaluate.add_argument("--steps", type=COUNT, metavar="N", default=None, help="points of the perturbation curves")
    evaluate.add_argument("--n-random", type=number(int, least=2), metavar="N", default=8, help="random orders and draws")
    evaluate.add_argument("--seed", type=INDEX, metavar="N", default=0)
    evaluate.add_argument("--max-clips", type=COUNT, metavar="N", default=None, help="evaluate only N of the clips, evenly spread")
    evaluate.add_argument("--figure", default=None, type=FIGURE, metavar="PNG|PDF|SVG",
                          help="also draw the perturbation curves")
    evaluate.set_defaults(func=cmd_evaluate)


def _parse(argv: list[str] | None):
    """The arguments; a usage mistake names what was wrong (an unknown option before the
    command is reported as such, not as a missing command)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.error(f"choose a command: {', '.join(parser._command_names)}")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parse(argv)
    except SystemExit as exc:  # --help, or a usage mistake already explained on stderr
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        with warnings_as_lines():
            return int(args.func(args) or 0)
    except ExpressoError as exc:
        print(f"expresso-xai: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused: a read-only folder, a full disk, a locked file
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"expresso-xai: error: {where}{exc.strerror or one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("expresso-xai: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
