"""``expresso-xai explain VIDEO``: explain a video and write the attribution cube.

Its options are :func:`expresso_xai.explain`'s, spelled for the command line, e.g.
``--device cuda --clips-per-batch auto --autocast bf16`` for the GPU path.
"""

from __future__ import annotations

from pathlib import Path

from .cli_args import COUNT, FIGURE, INDEX, output

#: the options of ``explain`` that go to :func:`expresso_xai.explain` as they are
ENGINE_ARGS = ("regions", "stride", "keep_pixels", "device", "batch_size", "clips_per_batch", "autocast",
               "prefetch")


def auto_or_count(text: str):
    """A whole number of at least 1, or ``auto`` (``--batch-size``, ``--clips-per-batch``).

    Example:
        >>> auto_or_count("auto"), auto_or_count("4")
        ('auto', 4)
    """
    return text if text == "auto" else COUNT(text)


def _top_lines(cube, k: int = 3) -> list[str]:
    """One line per explainer: its regions with the highest attribution per pixel."""
    top = cube.xai.top(k=k, by="density", dim="region")
    lines = []
    for explainer in cube.xai.explainers:
        rows = top[top.explainer == explainer]
        ranked = ", ".join(f"{r.region} {r.value:+.3g}" for r in rows.itertuples())
        lines.append(f"  {explainer:<22}" + (ranked or "no finite attribution (all NaN)"))
    return lines


def _explain_video(video_path: str, model_name: str, methods: list[str], out: Path, openface: str | None = None,
                   progress: bool = True, max_frames: int | None = None, **engine):
    """Explain a file as the command does and write the cube; ``engine`` goes to ``explain``."""
    from . import models
    from .explain import explain
    from .faces.openface import read_openface_for
    from .video import load_video

    model = models.load(model_name)
    # Without --max-frames the file is streamed (memory does not grow with its length).
    video = load_video(video_path, max_frames=max_frames if max_frames is not None else 1)
    faces, action_units = read_openface_for(openface, video, max_frames, streamed=max_frames is None) \
        if openface else (None, None)
    if max_frames is None:
        video = video_path
    cube = explain(model, video, faces=faces, methods=methods, progress=progress, **engine)
    if action_units is not None:
        cube["au_intensity"] = (("time", "au"), action_units.values)
        cube["au_presence"] = (("time", "au"), action_units.presence.values)
        cube = cube.assign_coords(au=action_units.au.values)
        cube.attrs["openface_csv"] = str(openface)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".zarr":
        cube.xai.to_zarr(out)
    else:
        cube.xai.to_netcdf(out)
    return cube


def cmd_explain(args) -> int:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    out = Path(args.out)
    engine = {name: getattr(args, name) for name in ENGINE_ARGS}
    cube = _explain_video(args.video, args.model, methods, out, args.openface, max_frames=args.max_frames, **engine)
    print(f"explained {args.video} with {cube.attrs['model_name']}: {cube.sizes['time']} frames, "
          f"{cube.sizes['clip']} clips, methods {', '.join(methods)}")
    print("highest attribution per pixel (summed over time):")
    print("\n".join(_top_lines(cube)))
    print(f"cube       {out}  (open with expresso_xai.open_cube or xarray.open_dataset)")
    if args.figure:
        from .figures import region_time_heatmap

        figure = Path(args.figure)
        region_time_heatmap(cube, methods[0], path=figure)
        print(f"figure     {figure}")
    return 0


def add_device_options(parser) -> None:
    """``--device``, ``--clips-per-batch`` and ``--autocast``, shared by ``explain`` and
    ``cohort run``."""
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    parser.add_argument("--clips-per-batch", type=auto_or_count, default="auto", metavar="N|auto",
                        help="clips per forward+backward (auto: 1 on CPU, up to a memory budget on CUDA)")
    parser.add_argument("--autocast", default=False, choices=["bf16"],
                        help="run the model in bfloat16 (completeness of integrated gradients checked and stored)")


def add_explain(commands) -> None:
    """Register ``explain`` on the main parser's sub-commands."""
    explain = commands.add_parser("explain", help="explain a video and write the attribution cube")
    explain.add_argument("video")
    explain.add_argument("--model", default="demo",
                         help="'demo', a zoo architecture (e.g. r3d_18) or the path of a model saved with torch.export.save (.pt2)")
    explain.add_argument("--methods", default="gradcam,integrated_gradients,occlusion",
                         help="comma-separated registered methods")
    explain.add_argument("--out", default="cube.nc", type=output(".nc", ".zarr", folder=True),
                         help="cube file (.nc or .zarr)")
    explain.add_argument("--openface", default=None, help="OpenFace 2.0 CSV: its landmarks and action units")
    explain.add_argument("--regions", default="partition", choices=["partition", "boxes"])
    explain.add_argument("--stride", type=COUNT, default=8)
    explain.add_argument("--max-frames", type=COUNT, default=None, help="explain only the first N frames")
    explain.add_argument("--keep-pixels", nargs="?", const=True, default=False, metavar="PATH",
                         help="store per-pixel maps for overlays; with PATH (e.g. maps.zarr) they go to a Zarr "
                              "store there as the clips finish, so memory does not grow with the video")
    explain.add_argument("--batch-size", type=auto_or_count, default="auto", metavar="N|auto",
                         help="perturbations or path steps per forward (auto: timed once, remembered)")
    explain.add_argument("--prefetch", type=INDEX, default=2, metavar="N",
                         help="clips decoded and cropped ahead of the model in a background thread (0: none)")
    add_device_options(explain)
    explain.add_argument("--figure", default=None, type=FIGURE,
                         help="also write the first method's region x time heatmap (attribution per pixel, as in Python)")
    explain.set_defaults(func=cmd_explain)
