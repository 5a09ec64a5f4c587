"""Cohort runs on Dask against the loop a user writes, measured in the same run.

0. The machine's parallel capacity: the explanations' kind of work (forward + backward of
   the demo model) in one process on one thread, in two such processes at once, and in
   one process on two threads; the most a cluster of 2 can gain over the loop is their
   ratio, whatever the scheduler does.
1. Throughput of a synthetic cohort of 6 participants (``--seconds`` of video each,
   OpenFace CSVs from the generator, methods ``--methods``, the demo model):
   (a) ``loop``: a sequential loop of ``ex.explain`` as a user writes it (read the video
   and its OpenFace CSV, explain, torch's default threads), (b) ``sequential``:
   ``ex.cohort.run(client="sequential")`` (this process, one torch thread), (c)
   ``cluster``: ``ex.cohort.run(workers=2)`` (a ``LocalCluster`` of 2 processes x 1
   thread, started and closed by the run), (c') ``untrimmed``: the same without the
   ``MALLOC_TRIM_THRESHOLD_=65536`` Dask gives its workers (see ``without_malloc_trim``).
   Optional: (d) ``--worker-threads N``, (c) with ``torch_threads=N`` (2 x 2 threads
   oversubscribe 2 cores: one run under load took 4x the 1-thread cluster); ``--warm``,
   ``ex.cohort.run(client=...)`` on a ``LocalCluster`` started beforehand and warmed by a
   2-participant cohort (the steady state of a long-lived cluster); ``--loop-threads N``,
   (a') the loop on N torch threads. Each in a fresh store; the ratio loop / cluster is
   the goal (>= 1.7x on 2 cores). The cluster's start-up is timed alone: an empty
   ``LocalCluster(2)`` and its ``Client`` started and closed.
2. Scheduler overhead per task: N participants of 16 frames (0.64 s), gradcam, with
   ``workers=2``: (wall - cluster start-up - sum of the tasks' own ``seconds`` / 2) / N;
   the same on the warm cluster (no start-up to subtract) and in ``client="sequential"``
   (wall - sum of seconds) / N; and the floor, N no-op ``client.submit`` calls gathered.
4. One participant with a long video (24 s, 600 frames) on ``workers=2``: one task
   (the other worker idles) vs ``slice_frames`` slices (4 of 150 frames), and the loop.
3. Peak RSS for 6 vs 24 participants (1.2 s, gradcam, ``workers=2``), each size run in a
   fresh subprocess (``--rss-child``): the client's (``getrusage`` of the subprocess at the
   end; the workers are other processes) and the workers' (the largest ``peak_rss_mb`` of
   the run's table), with Dask's malloc setting and without it. Goal: 24 / 6 <= 1.1x.

    .venv/bin/python benchmarks/bench_cohort.py [--quick] [--part 0|1|2|3|4|all] [--repeats 3]
        [--seconds 6] [--methods gradcam,integrated_gradients] [--worker-threads 0] [--loop-threads 0]
        [--warm] [--tiny 24]

Timings are medians of ``--repeats`` runs, the order of the variants reversed on every
other repeat (``--quick``: 2 s videos, one repeat, 12 tiny tasks).
Cohorts and stores are generated in a temporary folder deleted at the end. A full run
took 11 minutes on the shared 2-core machine at a load average of 2, ``--quick`` 2; when
other processes load the cores, the loop on torch's default threads slows down most
(2-thread intra-op parallelism waits for the descheduled thread: 200-400 s instead of 30).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import expresso_xai as ex

MODEL = "demo"
N_THROUGHPUT = 6
TINY_SECONDS = 0.64  # 16 frames at 25 fps: one clip
RSS_SECONDS = 1.2
RSS_SIZES = (6, 24)


def timed(function) -> tuple[float, object]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@contextmanager
def local_cluster(workers: int = 2):
    """A ``LocalCluster`` as ``ex.cohort.run`` starts one (processes, one thread each,
    a dashboard on a free port when bokeh is there), with its workers up; yields its client."""
    from distributed import Client, LocalCluster

    try:
        import bokeh  # noqa: F401

        dashboard = ":0"
    except ImportError:
        dashboard = None
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=dashboard,
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        yield client


#: Dask's nanny gives its worker processes MALLOC_TRIM_THRESHOLD_=65536 (config
#: ``distributed.nanny.pre-spawn-environ``) and writes it into this process's environment
#: too; with it, glibc sends every large allocation to mmap and an explanation costs
#: about 1.6x the CPU. What the environment held before the first cluster, for subprocesses.
TRIM = "MALLOC_TRIM_THRESHOLD_"
TRIM_AT_START = os.environ.get(TRIM)


@contextmanager
def without_malloc_trim():
    """LocalClusters started inside start their workers with glibc's default malloc."""
    import dask

    inherited = os.environ.pop(TRIM, None)
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{TRIM}": None}):
            yield
    finally:
        if inherited is not None:
            os.environ[TRIM] = inherited


def untrimmed_run(manifest: Path, methods: list[str], store: Path) -> dict:
    with without_malloc_trim():
        return cohort_run(manifest, methods, store, workers=2)


def cluster_startup(workers: int = 2) -> float:
    """Seconds to start an empty LocalCluster and its Client and close them."""
    started = time.perf_counter()
    with local_cluster(workers):
        pass
    return time.perf_counter() - started


def _noop(index: int) -> int:
    return index


def submit_floor(client, n_tasks: int) -> float:
    """Seconds for ``n_tasks`` no-op tasks submitted and gathered (after one warm-up batch,
    so the function is already on the workers)."""
    def batch():
        futures = [client.submit(_noop, i, pure=False) for i in range(n_tasks)]
        return client.gather(futures)

    batch()
    return timed(batch)[0]


def explain_loop(manifest: Path, methods: list[str], threads: int | None = None) -> None:
    """What a user writes without the cohort module: one participant after the other
    (on torch's default threads, or ``threads``)."""
    import torch

    from expresso_xai.cohort import read_manifest
    from expresso_xai.faces.openface import read_openface_for

    default = torch.get_num_threads()
    torch.set_num_threads(threads or default)
    try:
        model = ex.models.load(MODEL)
        for entry in read_manifest(manifest):
            video = ex.load_video(entry.video)
            faces, _ = read_openface_for(entry.openface, video)
            ex.explain(model, video, faces=faces, methods=methods, progress=False)
    finally:
        torch.set_num_threads(default)


def cohort_run(manifest: Path, methods: list[str], store: Path, **options) -> dict:
    """One ``ex.cohort.run``: its wall seconds and what its table says of the tasks."""
    wall, done = timed(lambda: ex.cohort.run(manifest, MODEL, methods=methods, store=store, progress=False,
                                             **options))
    table = done.table
    if (table.status != "done").any():
        raise SystemExit(f"the benchmark's cohort run did not finish every participant:\n{done}")
    return {"wall": wall, "task_seconds": float(table.seconds.sum()), "worker_peak_mb": float(table.peak_rss_mb.max()),
            "workers": int(table.worker.nunique())}


def warm_run(manifest: Path, warm_manifest: Path, methods: list[str], store: Path) -> dict:
    """``ex.cohort.run`` on a cluster started before and warmed (imports, model loaded) by
    a small cohort: the steady state of a long-lived scheduler."""
    with local_cluster(2) as client:
        cohort_run(warm_manifest, methods, store.with_name(store.name + "-warmup"), client=client)
        return cohort_run(manifest, methods, store, client=client)


def variants(manifest: Path, warm_manifest: Path, methods: list[str], args) -> dict:
    """name -> function(store) -> {"wall": seconds, ...}, in the order of the first repeat."""
    def loop(threads=None):
        return lambda store: {"wall": timed(lambda: explain_loop(manifest, methods, threads))[0]}

    chosen = {
        "loop": loop(),
        "sequential": lambda store: cohort_run(manifest, methods, store, client="sequential"),
        "cluster": lambda store: cohort_run(manifest, methods, store, workers=2),
        "untrimmed": lambda store: untrimmed_run(manifest, methods, store),
        "startup": lambda store: {"wall": cluster_startup(2)},
    }
    if args.warm:
        chosen["warm"] = lambda store: warm_run(manifest, warm_manifest, methods, store)
    if args.worker_threads:
        chosen["threads"] = lambda store: cohort_run(manifest, methods, store, workers=2,
                                                     torch_threads=args.worker_threads)
    if args.loop_threads:
        chosen["loop_threads"] = loop(args.loop_threads)
    return chosen


def run_repeats(functions: dict, repeats: int, stores: Path) -> dict[str, dict[str, float]]:
    """Each function ``repeats`` times, the order reversed on every other repeat, each in a
    fresh store (deleted after); the median of every figure it returns."""
    results = {name: [] for name in functions}
    for repeat in range(repeats):
        order = list(functions) if repeat % 2 == 0 else list(reversed(functions))
        for name in order:
            store = stores / f"{name}-{repeat}.zarr"
            results[name].append(functions[name](store))
            for path in stores.glob(f"{name}-{repeat}.zarr*"):
                shutil.rmtree(path, ignore_errors=True)
        print(f"   repeat {repeat + 1}: " + ", ".join(f"{name} {results[name][-1]['wall']:.1f} s" for name in order),
              flush=True)
    return {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            for name, runs in results.items()}


_CEILING_WORK = r"""
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
import expresso_xai as ex
model = ex.models.load("demo")
x = model.probe_input(batch=4).requires_grad_(True)
def step():
    model(x).sum().backward()
step()
started = time.perf_counter()
for _ in range(int(sys.argv[2])):
    step()
print(time.perf_counter() - started)
"""


def _work(processes: int, threads: int, steps: int) -> float:
    """Seconds of the slowest of ``processes`` copies of the same forward+backward loop run at once."""
    children = [subprocess.Popen([sys.executable, "-c", _CEILING_WORK, str(threads), str(steps)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                for _ in range(processes)]
    return max(float(child.communicate()[0].split()[-1]) for child in children)


def ceiling(args, folder: Path, summary: list) -> None:
    """What two cores can give at most: the explanations' work (forward + backward of the
    demo model) in one process on one thread, two such processes at once, and one
    process on two threads (torch's default here)."""
    steps = 40 if args.quick else 150
    print(f"\n0. the machine's parallel capacity: {steps} forward+backward steps of the demo model", flush=True)
    one, two, threads = [], [], []
    for _ in range(args.repeats):
        one.append(_work(1, 1, steps))
        two.append(_work(2, 1, steps))
        threads.append(_work(1, 2, steps))
    one, two, threads = (statistics.median(values) for values in (one, two, threads))
    print(f"   1 process x 1 thread {one:.2f} s; 2 processes x 1 thread at once {two:.2f} s each; "
          f"1 process x 2 threads {threads:.2f} s", flush=True)
    summary += [("2 processes / 1 (work done per second)", f"{2 * one / two:.2f}x", "the most 2 workers give"),
                ("2 torch threads / 1 (work done per second)", f"{one / threads:.2f}x", "what the loop gets"),
                ("most a cluster can gain over the loop", f"{2 * threads / two:.2f}x", "")]


def throughput(args, folder: Path, summary: list) -> None:
    methods = args.methods.split(",")
    manifest = ex.samples.make_cohort(folder / "throughput", n_participants=N_THROUGHPUT, seconds=args.seconds,
                                      seed=args.seed, progress=False)
    warm_manifest = ex.samples.make_cohort(folder / "warmup", n_participants=2, seconds=TINY_SECONDS,
                                           seed=args.seed + 1, progress=False)
    import torch

    print(f"\n1. throughput: {N_THROUGHPUT} participants x {args.seconds:g} s, methods {', '.join(methods)}, "
          f"model {MODEL}; torch's default threads here: {torch.get_num_threads()}", flush=True)
    stores = folder / "stores"
    stores.mkdir(exist_ok=True)
    medians = run_repeats(variants(manifest, warm_manifest, methods, args), args.repeats, stores)
    loop = medians["loop"]["wall"]
    labels = {"loop": "(a) loop of ex.explain, default threads",
              "sequential": "(b) cohort.run sequential, 1 thread",
              "cluster": "(c) cohort.run workers=2 (starts its cluster)",
              "untrimmed": "(c') the same, without Dask's malloc trim",
              "threads": f"(d) cohort.run workers=2, torch_threads={args.worker_threads}",
              "loop_threads": f"(a') loop of ex.explain, {args.loop_threads} torch thread(s)",
              "warm": "    cohort.run on a warm LocalCluster(2)",
              "startup": "    empty LocalCluster(2) start + close"}
    print(f"   medians of {args.repeats}:  {'wall':>8}  {'loop/this':>9}  {'sum of task s':>13}  {'workers':>7}")
    for name, figures in medians.items():
        tasks = f"{figures['task_seconds']:13.1f}" if "task_seconds" in figures else f"{'':13}"
        workers = f"{figures['workers']:7.0f}" if "workers" in figures else f"{'':7}"
        ratio = f"{loop / figures['wall']:8.2f}x" if name != "startup" else f"{'':9}"
        print(f"   {labels[name]:<47} {figures['wall']:7.1f} s {ratio}  {tasks}  {workers}")
    cluster, startup = medians["cluster"]["wall"], medians["startup"]["wall"]
    print(f"   start-up: an empty cluster takes {startup:.1f} s of the cluster run's {cluster:.1f} s; the steady state "
          f"(cluster - start-up) {cluster - startup:.1f} s")
    summary += [("loop / cluster (workers=2), wall", f"{loop / cluster:.2f}x", ">= 1.7x"),
                ("loop / (cluster - start-up)", f"{loop / (cluster - startup):.2f}x", ""),
                (f"loop / cluster without {TRIM}", f"{loop / medians['untrimmed']['wall']:.2f}x", ">= 1.7x"),
                ("sequential / cluster; the same without it",
                 f"{medians['sequential']['wall'] / cluster:.2f}x; "
                 f"{medians['sequential']['wall'] / medians['untrimmed']['wall']:.2f}x", ""),
                ("loop / sequential cohort.run", f"{loop / medians['sequential']['wall']:.2f}x", ""),
                ("LocalCluster(2) start + close", f"{startup:.1f} s", "")]
    if "warm" in medians:
        print(f"   cluster - warm = {cluster - medians['warm']['wall']:.1f} s (the cluster, the workers' imports and "
              "model loads, and noise)")
        summary.append(("loop / warm cluster, wall", f"{loop / medians['warm']['wall']:.2f}x", ""))
    if "threads" in medians:
        summary.append((f"loop / workers=2 x {args.worker_threads} torch threads",
                        f"{loop / medians['threads']['wall']:.2f}x", ""))
    if "loop_threads" in medians:
        summary.append((f"loop {args.loop_threads} thread(s) / cluster",
                        f"{medians['loop_threads']['wall'] / cluster:.2f}x", ""))


def overhead(args, folder: Path, summary: list) -> None:
    n = args.tiny
    manifest = ex.samples.make_cohort(folder / "tiny", n_participants=n, seconds=TINY_SECONDS, seed=args.seed + 2,
                                      progress=False)
    warm_manifest = folder / "warmup" / "manifest.csv"
    if not warm_manifest.exists():
        warm_manifest = ex.samples.make_cohort(folder / "warmup", n_participants=2, seconds=TINY_SECONDS,
                                               seed=args.seed + 1, progress=False)
    print(f"\n2. scheduler overhead: {n} participants of {TINY_SECONDS} s (16 frames, one clip), gradcam", flush=True)
    stores = folder / "tiny-stores"
    stores.mkdir(exist_ok=True)
    methods = ["gradcam"]

    def floor(store):
        with local_cluster(2) as client:
            return {"wall": submit_floor(client, n)}

    functions = {"startup": lambda store: {"wall": cluster_startup(2)},
                 "cluster": lambda store: cohort_run(manifest, methods, store, workers=2),
                 "warm": lambda store: warm_run(manifest, warm_manifest, methods, store),
                 "sequential": lambda store: cohort_run(manifest, methods, store, client="sequential"),
                 "noop": floor}
    medians = run_repeats(functions, args.repeats, stores)
    startup = medians["startup"]["wall"]
    cluster, warm, sequential = (medians[k] for k in ("cluster", "warm", "sequential"))
    per_task = {
        "cluster": (cluster["wall"] - startup - cluster["task_seconds"] / 2) / n,
        "warm": (warm["wall"] - warm["task_seconds"] / 2) / n,
        "sequential": (sequential["wall"] - sequential["task_seconds"]) / n,
        "noop": medians["noop"]["wall"] / n,
    }
    print(f"   workers=2: wall {cluster['wall']:.1f} s, start-up {startup:.1f} s, "
          f"tasks' own {cluster['task_seconds']:.1f} s (/2 = {cluster['task_seconds'] / 2:.1f} s) "
          f"-> {per_task['cluster'] * 1000:.0f} ms per task")
    print(f"   warm cluster: wall {warm['wall']:.1f} s, tasks' own {warm['task_seconds']:.1f} s -> "
          f"{per_task['warm'] * 1000:.0f} ms per task")
    print(f"   sequential: wall {sequential['wall']:.1f} s, tasks' own {sequential['task_seconds']:.1f} s -> "
          f"{per_task['sequential'] * 1000:.0f} ms per task (the run's own checks, store, no Dask)")
    print(f"   floor: {n} no-op client.submit gathered in {medians['noop']['wall'] * 1000:.0f} ms -> "
          f"{per_task['noop'] * 1000:.1f} ms per task")
    print(f"   a tiny task's own time: {warm['task_seconds'] / n * 1000:.0f} ms (warm workers)")
    summary += [("overhead per task, workers=2", f"{per_task['cluster'] * 1000:.0f} ms", ""),
                ("overhead per task, warm cluster", f"{per_task['warm'] * 1000:.0f} ms", ""),
                ("overhead per task, sequential", f"{per_task['sequential'] * 1000:.0f} ms", ""),
                ("no-op client.submit per task", f"{per_task['noop'] * 1000:.1f} ms", "")]


def rss_child(args) -> None:
    """Run in a fresh process: one cohort run with workers=2, then this process's peak."""
    warnings.filterwarnings("ignore")
    manifest = Path(args.folder) / "manifest.csv"
    store = Path(args.folder) / f"cohort-{'untrimmed' if args.untrimmed else 'dask'}.zarr"
    if args.untrimmed:
        done = untrimmed_run(manifest, args.methods.split(","), store)
    else:
        done = cohort_run(manifest, args.methods.split(","), store, workers=2)
    print(json.dumps({**done, "client_peak_mb": peak_rss_mb()}))


def rss_of(cohort: Path, untrimmed: bool) -> dict:
    """``--rss-child`` in a fresh process, with this process's environment as it was before
    any cluster wrote Dask's malloc setting into it."""
    environment = {key: value for key, value in os.environ.items() if key != TRIM}
    environment.update({TRIM: TRIM_AT_START} if TRIM_AT_START is not None else {})
    command = [sys.executable, __file__, "--rss-child", "--folder", str(cohort), "--methods", "gradcam"]
    child = subprocess.run(command + (["--untrimmed"] if untrimmed else []), capture_output=True, text=True,
                           check=False, env=environment)
    if child.returncode != 0:
        raise SystemExit(f"the --rss-child run on {cohort} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def memory(args, folder: Path, summary: list) -> None:
    print(f"\n3. peak RSS, {' vs '.join(map(str, RSS_SIZES))} participants of {RSS_SECONDS} s, gradcam, workers=2, "
          "each size in a fresh process", flush=True)
    cohorts = {n: ex.samples.make_cohort(folder / f"rss-{n}", n_participants=n, seconds=RSS_SECONDS,
                                         seed=args.seed + 3, progress=False).parent for n in RSS_SIZES}
    for untrimmed in (False, True):
        label = "without Dask's malloc trim" if untrimmed else "Dask's malloc trim (default)"
        figures = {n: rss_of(cohorts[n], untrimmed) for n in RSS_SIZES}
        for n, got in figures.items():
            print(f"   {label}, {n:3d} participants: wall {got['wall']:.1f} s, client peak {got['client_peak_mb']:.0f} "
                  f"MB, worker peak {got['worker_peak_mb']:.0f} MB ({got['workers']} workers)", flush=True)
        small, large = (figures[n] for n in RSS_SIZES)
        for role in ("client", "worker"):
            key = f"{role}_peak_mb"
            summary.append((f"{role} peak RSS {RSS_SIZES[1]} / {RSS_SIZES[0]}{', untrimmed' if untrimmed else ''}",
                            f"{large[key] / small[key]:.3f}x ({small[key]:.0f} -> {large[key]:.0f} MB)", "<= 1.1x"))
            print(f"   {label}: {role} {RSS_SIZES[1]} / {RSS_SIZES[0]} = {large[key] / small[key]:.3f}x (goal <= 1.1x)")


def long_video(args, folder: Path, summary: list) -> None:
    """One participant with a long video on a LocalCluster(2): one task (a worker idles)
    against ``slice_frames`` slices, and the loop's ``ex.explain``."""
    methods = args.methods.split(",")
    seconds = 8.0 if args.quick else 24.0
    manifest = ex.samples.make_cohort(folder / "long", n_participants=1, seconds=seconds, seed=args.seed + 3,
                                      progress=False)
    slice_frames = int(seconds * 25 / 4)
    print(f"\n4. one participant of {seconds:g} s ({int(seconds * 25)} frames), methods {', '.join(methods)}: "
          f"workers=2 whole vs in slices of {slice_frames} frames", flush=True)
    stores = folder / "stores"
    stores.mkdir(exist_ok=True)
    medians = run_repeats({
        "loop": lambda store: {"wall": timed(lambda: explain_loop(manifest, methods))[0]},
        "whole": lambda store: cohort_run(manifest, methods, store, workers=2),
        "sliced": lambda store: cohort_run(manifest, methods, store, workers=2, slice_frames=slice_frames),
    }, args.repeats, stores)
    for name, figures in medians.items():
        print(f"   {name:<8} {figures['wall']:7.1f} s")
    summary += [("long video: whole / sliced (workers=2)",
                 f"{medians['whole']['wall'] / medians['sliced']['wall']:.2f}x", ""),
                ("long video: loop / sliced", f"{medians['loop']['wall'] / medians['sliced']['wall']:.2f}x", "")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 s videos, one repeat, 12 tiny tasks")
    parser.add_argument("--part", choices=["0", "1", "2", "3", "4", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (--quick: 1)")
    parser.add_argument("--seconds", type=float, default=None, help="video seconds in part 1 (default 6, --quick 2)")
    parser.add_argument("--methods", default="gradcam,integrated_gradients")
    parser.add_argument("--worker-threads", type=int, default=0,
                        help="also time variant (d): workers=2 with this many torch threads each (default 0: not)")
    parser.add_argument("--loop-threads", type=int, default=0,
                        help="also time the loop on this many torch threads (variant a'; default 0: not)")
    parser.add_argument("--warm", action="store_true",
                        help="also time cohort.run on a LocalCluster started and warmed beforehand in part 1")
    parser.add_argument("--tiny", type=int, default=None, help="tiny tasks in part 2 (default 24, --quick 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--untrimmed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args)
        return
    quick = {"repeats": (3, 1), "seconds": (6.0, 2.0), "tiny": (24, 12)}
    for name, (full, short) in quick.items():
        if getattr(args, name) is None:
            setattr(args, name, short if args.quick else full)
    warnings.filterwarnings("ignore")
    summary: list[tuple[str, str, str]] = []
    load_before = " ".join(f"{value:.1f}" for value in os.getloadavg())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_cohort_", ignore_cleanup_errors=True) as folder:
        parts = {"0": ceiling, "1": throughput, "2": overhead, "3": memory, "4": long_video}
        for key, part in parts.items():
            if args.part in (key, "all"):
                part(args, Path(folder), summary)
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nsummary ({time.perf_counter() - started:.0f} s in all; load average at the end {load}, at the start "
          f"{load_before}: on a shared machine other processes slow some variants more than others)")
    for measure, value, goal in summary:
        print(f"   {measure:<46} {value:<30} {goal}")


if __name__ == "__main__":
    main()
