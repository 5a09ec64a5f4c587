"""Long videos: what ``ex.explain(model, path)`` and ``expresso-xai explain`` hold in
memory does not grow with the video's length (frames are streamed clip by clip; only
frame x region arrays and landmarks grow)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.cli import main
from expresso_xai.samples import SampleSpec, render
from expresso_xai.samples.files import write_video

SIDE = 160


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    sample = render(SampleSpec(seed=2, seconds=2, size=SIDE, score=30))
    paths = {}
    for seconds in (4, 12):
        paths[seconds] = write_video(np.concatenate([sample.frames] * (seconds // 2)), folder / f"v{seconds}.mp4", 25.0)
    return paths


def _peak(run) -> int:
    """Peak of the memory Python and numpy allocate while ``run`` runs (torch's own
    buffers are not traced: they do not depend on the video's length)."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _growth(videos, run) -> float:
    """Extra peak memory per extra frame, as a fraction of one decoded frame."""
    run(videos[4])  # imports and first-call caches, paid once whatever the length
    short, long = (_peak(lambda: run(videos[s])) for s in (4, 12))
    print(f"growth {(long - short) / ((12 - 4) * 25 * SIDE * SIDE * 3):.3f} frame per frame")
    return (long - short) / ((12 - 4) * 25 * SIDE * SIDE * 3)


@pytest.mark.slow
def test_explaining_a_file_holds_a_few_clips_of_frames_not_the_video(videos):
    model = ex.models.load("demo")
    growth = _growth(videos, lambda path: ex.explain(model, path, methods=["saliency"], stride=16, progress=False))
    assert growth < 0.1  # holding every frame would be >= 1; it was 0.4-0.8 with 256-frame chunks


@pytest.mark.slow
def test_the_cli_streams_the_file(videos, tmp_path, capsys):
    growth = _growth(videos, lambda path: main(["explain", str(path), "--model", "demo", "--methods", "saliency",
                                                "--stride", "16", "--out", str(tmp_path / "cube.nc")]))
    assert growth < 0.1  # the CLI decoded the whole video into memory before (growth >= 1)
