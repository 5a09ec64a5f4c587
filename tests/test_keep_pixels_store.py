"""``keep_pixels="maps.zarr"``: the pixel maps go to a Zarr store as the clips finish,
bit for bit those of ``keep_pixels=True``; an existing path is written only by the run
that made it; the figures and the Explorer read the lazy cube; memory does not grow with
the video's pixels."""

from __future__ import annotations

import tracemalloc

import matplotlib
import numpy as np
import pytest
import xarray as xr

import expresso_xai as ex
from expresso_xai.files import OutputError
from expresso_xai.testing import tiny_model
from expresso_xai.widgets import payload, stream

matplotlib.use("Agg")

# 29 frames, stride 3, 16-frame clips: every frame is covered by several clips, in different
# numbers, and the last clip is padded past the video's end
RUN = dict(methods=["gradcam", "saliency"], stride=3, progress=False)


@pytest.fixture(scope="module")
def setting():
    video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=29)
    faces = ex.track_faces(video, progress=False)
    model = tiny_model(input_size=(64, 64))
    reference = ex.explain(model, video, faces=faces, keep_pixels=True, **RUN)
    return model, video, faces, reference


def _on_disk(setting, path, **options):
    model, video, faces, _ = setting
    return ex.explain(model, video, faces=faces, keep_pixels=str(path), **{**RUN, **options})


def test_the_maps_on_disk_are_those_kept_in_memory_bit_for_bit(setting, tmp_path):
    reference = setting[3]
    cube = _on_disk(setting, tmp_path / "maps.zarr")
    assert cube.pixels.chunks is not None, "the pixel maps stay on disk until read"
    assert cube.pixels.attrs["store"] == str(tmp_path / "maps.zarr")
    assert cube.pixels.values.tobytes() == reference.pixels.values.tobytes()
    assert cube.region_label.values.tobytes() == reference.region_label.values.tobytes()
    assert cube.region_label.dtype == reference.region_label.dtype
    assert float(np.abs(reference.pixels).max()) > 0  # a real comparison, not of zeros
    for name in ("attribution", "prediction", "crop_matrix", "region_area"):
        np.testing.assert_array_equal(cube[name].values, reference[name].values)
    # a cube file copies the maps in: it no longer needs the store
    saved = ex.open_cube(cube.xai.to_netcdf(tmp_path / "cube.nc"))
    assert saved.pixels.values.tobytes() == reference.pixels.values.tobytes()


def test_a_path_in_use_is_refused_unless_the_same_run_made_it(setting, tmp_path):
    mine = tmp_path / "mine.zarr"
    mine.write_text("my notes")
    with pytest.raises(OutputError, match="not a pixel store"):
        _on_disk(setting, mine)
    assert mine.read_text() == "my notes"
    other = tmp_path / "other.zarr"
    first = _on_disk(setting, other, methods=["saliency"]).pixels.values
    with pytest.raises(OutputError, match="another run"):
        _on_disk(setting, other)  # gradcam too: another run
    untouched = xr.open_zarr(other, consolidated=False, mask_and_scale=False)["pixels"].values
    assert untouched.tobytes() == first.tobytes()
    again = _on_disk(setting, other, methods=["saliency"])  # the same call again: allowed, same maps
    assert again.pixels.values.tobytes() == first.tobytes()


def test_an_interrupted_run_resumes_into_its_store(setting, tmp_path, fragile_saliency):
    model, video, faces, _ = setting
    fragile = fragile_saliency("fragile_store_saliency", model, on_call=3)
    run = dict(faces=faces, methods=["gradcam", "fragile_store_saliency"], stride=3, progress=False,
               keep_pixels=str(tmp_path / "maps.zarr"), checkpoint=tmp_path / "run.npz", checkpoint_every=1e9)
    with pytest.raises(KeyboardInterrupt):
        ex.explain(model, video, **run)
    assert (tmp_path / "run.npz").exists()
    fragile.interrupt = False
    fragile.calls.clear()
    resumed = ex.explain(model, video, **run)
    assert len(fragile.calls) == 6 - 2, "only the clips not yet done are computed again"
    fresh = ex.explain(model, video, faces=faces, methods=run["methods"], stride=3, progress=False,
                       keep_pixels=True)
    assert resumed.pixels.values.tobytes() == fresh.pixels.values.tobytes()
    assert resumed.region_label.values.tobytes() == fresh.region_label.values.tobytes()


def test_figures_and_the_explorer_read_the_lazy_cube(setting, tmp_path):
    _, video, _, reference = setting
    cube = _on_disk(setting, tmp_path / "maps.zarr")
    strips = [ex.figures.frame_strip(c, video, frames=[5, 20], explainer="saliency") for c in (reference, cube)]
    overlays = [[ax.images[1].get_array() for ax in figure.axes[:2]] for figure in strips]
    for mine, theirs in zip(*overlays):
        np.testing.assert_array_equal(np.ma.getdata(mine), np.ma.getdata(theirs))
    built = [payload.build(c, video) for c in (reference, cube)]
    assert built[1]["overlay"] == built[0]["overlay"] and built[1]["labels"] == built[0]["labels"]
    assert built[1]["overlay"] is not None
    # the windowed Explorer of a long video: the kernel reads one window of maps from the store
    messages = []
    for c in (reference, cube):
        options = dict(signed=payload.signed_explainers(c), scales=payload.overlay_scales(c),
                       heat=payload.heat_array(c))
        messages.append(stream.window_message(c, None, 1, 16, **options))
    assert messages[1] == messages[0] and messages[1][0]["overlays"]


def _traced_peak(run) -> int:
    """Peak of what Python and numpy allocate while ``run`` runs (torch's buffers do not
    depend on the video's length)."""
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


@pytest.mark.slow
def test_pixels_on_disk_do_not_grow_memory_with_the_video(tmp_path):
    from expresso_xai.samples import SampleSpec, render
    from expresso_xai.samples.files import write_video

    side = 160
    sample = render(SampleSpec(seed=2, seconds=2, size=side, score=30))
    paths = {s: write_video(np.concatenate([sample.frames] * (s // 2)), tmp_path / f"v{s}.mp4", 25.0) for s in (4, 12)}
    model = ex.models.load("demo")

    def run(seconds, name):
        ex.explain(model, paths[seconds], methods=["saliency"], stride=16, progress=False,
                   keep_pixels=str(tmp_path / f"{name}.zarr"))

    run(4, "warm")  # imports and first-call caches
    short, long = _traced_peak(lambda: run(4, "short")), _traced_peak(lambda: run(12, "long"))
    frame, (height, width) = side * side * 3, model.input_size
    growth = (long - short) / ((12 - 4) * 25 * frame)
    print(f"growth {growth:.3f} frame per frame; pixels kept in memory would add "
          f"{(4 + 1) * height * width / frame:.2f} frame per frame")
    assert growth < 0.1


def test_the_cli_takes_a_store_path(tmp_path, capsys):
    from expresso_xai.cli import main

    sample = str(ex.samples.sample_path("participant_low"))
    common = ["explain", sample, "--model", "demo", "--methods", "saliency", "--max-frames", "24"]
    main([*common, "--keep-pixels", "--out", str(tmp_path / "memory.nc")])
    main([*common, "--keep-pixels", str(tmp_path / "maps.zarr"), "--out", str(tmp_path / "disk.nc")])
    memory, disk = (ex.open_cube(tmp_path / name) for name in ("memory.nc", "disk.nc"))
    assert (tmp_path / "maps.zarr").is_dir()
    assert disk.pixels.values.tobytes() == memory.pixels.values.tobytes()
