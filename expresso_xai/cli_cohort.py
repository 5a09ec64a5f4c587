"""The ``expresso-xai cohort`` commands:

* ``expresso-xai cohort run MANIFEST --model demo --methods ... --store cohort.zarr
  [--workers N | --scheduler tcp://HOST:PORT | --sequential] [--restart]`` — explain every
  participant on Dask into a cohort store; run it again to finish what is missing.
* ``expresso-xai cohort report cohort.zarr --out report/`` — the audit's tables (CSV)
  and figures (PDF, PNG).
"""

from __future__ import annotations

from .cli_args import COUNT, INDEX, output
from .cli_explain import add_device_options, auto_or_count


def _quiet_dask(args) -> None:
    """Dask logs its own tracebacks (e.g. when the scheduler goes away) before the one-line
    error the command prints; ``-v`` shows them."""
    import logging

    import distributed  # noqa: F401 - importing it sets its loggers' levels: quieten after

    if not args.verbose:
        for name in ("distributed", "distributed.client"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def cmd_cohort_run(args) -> int:
    from .cohort import run

    _quiet_dask(args)

    client = "sequential" if args.sequential else args.scheduler
    done = run(args.manifest, args.model, methods=[m.strip() for m in args.methods.split(",") if m.strip()],
               store=args.store, client=client, workers=args.workers, resume=not args.restart,
               progress=not args.quiet, torch_threads=args.torch_threads, regions=args.regions,
               stride=args.stride, batch_size=args.batch_size, seed=args.seed, slice_frames=args.slice_frames,
               device=args.device, clips_per_batch=args.clips_per_batch, autocast=args.autocast)
    print(repr(done))
    print(f"open it with expresso_xai.cohort.open({str(done.store)!r}); "
          f"report: expresso-xai cohort report {done.store} --out report/")
    return 1 if done.counts()["failed"] else 0


def cmd_cohort_report(args) -> int:
    from .cohort import report

    written = report(args.store, args.out, time_bins=args.time_bins, n_boot=args.n_boot, seed=args.seed,
                     correct_within=args.correct_within, progress=not args.quiet)
    for path in written:
        print(path)
    return 0


def add_cohort(commands) -> None:
    """Register ``cohort run`` and ``cohort report`` on the main parser's sub-commands."""
    from .cli_args import AMOUNT

    cohort = commands.add_parser("cohort", help="explain and audit a cohort (a manifest of videos) on Dask")
    verbs = cohort.add_subparsers(dest="cohort_command", required=True)
    run = verbs.add_parser("run", help="explain every participant of a manifest into a cohort store")
    run.add_argument("manifest", help="CSV: participant, video, score[, openface][, split]")
    run.add_argument("--model", default="demo", help="'demo', a zoo architecture or a .pt2 path")
    run.add_argument("--methods", default="gradcam,integrated_gradients,occlusion", help="comma-separated methods")
    run.add_argument("--store", default="cohort.zarr", help="the cohort store (a folder; resumed when it exists)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--workers", type=COUNT, default=None, help="local worker processes (default: one per core)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="submit to a running dask scheduler, e.g. tcp://127.0.0.1:8786")
    where.add_argument("--sequential", action="store_true", help="run in this process, without Dask")
    run.add_argument("--restart", action="store_true", help="start the store again instead of resuming it")
    run.add_argument("--regions", default="partition", choices=["partition", "boxes"])
    run.add_argument("--stride", type=COUNT, default=8)
    run.add_argument("--batch-size", type=auto_or_count, default="auto",
                     help="samples per forward, or 'auto' (timed once, recorded in the store)")
    run.add_argument("--seed", type=INDEX, default=0)
    run.add_argument("--slice-frames", type=COUNT, default=None,
                     help="explain a video longer than this many frames in slices of about as many, one task each")
    run.add_argument("--torch-threads", type=COUNT, default=1, help="torch threads per task")
    add_device_options(run)
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_cohort_run)

    report = verbs.add_parser("report", help="write the audit's tables and figures")
    report.add_argument("store")
    report.add_argument("--out", default="report", type=output(folder=True), help="a folder")
    report.add_argument("--time-bins", type=COUNT, default=10)
    report.add_argument("--n-boot", type=COUNT, default=2000, help="bootstrap resamples")
    report.add_argument("--correct-within", type=AMOUNT, default=5.0)
    report.add_argument("--seed", type=INDEX, default=0)
    report.add_argument("--quiet", action="store_true")
    report.set_defaults(func=cmd_cohort_report)
