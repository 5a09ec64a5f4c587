"""No existing file is destroyed: cubes and every other output are written under a
temporary name and moved into place; a Zarr store replaces only a store of ours."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import xarray as xr

import expresso_xai as ex
from expresso_xai.cli import main
from expresso_xai.files import OutputError, atomic_path
from expresso_xai.testing import example_cube


def test_a_zarr_store_is_not_written_into_a_folder_of_other_work(tmp_path):
    folder = tmp_path / "d.zarr"
    folder.mkdir()
    (folder / "thesis.docx").write_text("three years of work")
    with pytest.raises(OutputError, match="thesis.docx.*refusing to replace it"):
        example_cube().xai.to_zarr(folder)
    assert (folder / "thesis.docx").read_text() == "three years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr"], "no temporary left behind"


def test_the_cli_refuses_that_folder_before_any_work(tmp_path, capsys):
    folder = tmp_path / "d.zarr"
    folder.mkdir()
    (folder / "thesis.docx").write_text("three years of work")
    code = main(["explain", str(ex.samples.sample_path("participant_low")), "--out", str(folder),
                 "--model", "/nonexistent-model-never-loaded.pt"])
    assert code == 2 and "thesis.docx" in capsys.readouterr().err
    assert (folder / "thesis.docx").exists()


def test_a_store_of_ours_is_replaced_whole(tmp_path):
    path = tmp_path / "cube.zarr"
    first = example_cube(explainers=["gradcam"])
    first.xai.to_zarr(path)
    second = example_cube(explainers=["gradcam", "saliency"])
    second.xai.to_zarr(path)
    assert ex.open_cube(path).identical(second)
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    first.xai.to_zarr(empty)  # an empty folder is fine too
    assert ex.open_cube(empty).identical(first)


def test_a_failed_netcdf_write_keeps_the_previous_cube(tmp_path, monkeypatch):
    path = tmp_path / "cube.nc"
    cube = example_cube()
    cube.xai.to_netcdf(path)
    before = path.read_bytes()

    def broken(self, target, *args, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"\x89HDF\r\n" + b"\0" * 233)  # a 239-byte start of a file
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    with pytest.raises(OSError, match="No space left"):
        cube.xai.to_netcdf(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and ex.open_cube(path).identical(cube)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.nc"]


def test_a_cube_can_be_written_over_a_file_that_is_open_for_reading(tmp_path):
    path = tmp_path / "cube.nc"
    example_cube().xai.to_netcdf(path)
    with xr.open_dataset(path, engine="netcdf4") as held:
        example_cube(explainers=["saliency"]).xai.to_netcdf(path)
        assert held.sizes["explainer"] == 2  # the reader keeps the file it opened
    assert ex.open_cube(path).xai.explainers == ("saliency",)


def test_two_writers_of_one_store_leave_a_whole_cube(tmp_path):
    path = tmp_path / "cube.zarr"
    cubes = [example_cube(explainers=["gradcam"]), example_cube(explainers=["saliency", "gradcam"])]
    outcomes = []

    def write(cube):
        try:
            cube.xai.to_zarr(path)
            outcomes.append("written")
        except OutputError as exc:  # the loser of the swap is told, never half-written
            outcomes.append(str(exc))

    threads = [threading.Thread(target=write, args=(cube,)) for cube in cubes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert "written" in outcomes
    stored = ex.open_cube(path)
    assert "attribution" in stored and any(stored.identical(cube) for cube in cubes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.zarr"]


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "weights.pt"
    target.write_bytes(b"good weights")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as partial:
            partial.write_bytes(b"half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"good weights"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.pt"]


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    path = example_cube().xai.to_netcdf(tmp_path / "cube.nc")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert np.isfinite(ex.open_cube(path).attribution.values).all()


def test_the_explorer_refuses_another_video_of_the_same_size(tmp_path, capsys):
    """explore --video OTHER.mp4 once drew the overlays on another person's frames."""
    from expresso_xai.samples import write_video
    from expresso_xai.testing import tiny_model

    low = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=24)
    high = ex.load_video(ex.samples.sample_path("participant_high"), max_frames=24)
    right, wrong = write_video(low.frames, tmp_path / "right.mp4", 25), write_video(high.frames, tmp_path / "w.mp4", 25)
    cube = ex.explain(tiny_model(), right, methods=["saliency"], keep_pixels=True, progress=False)
    cube_path = cube.xai.to_netcdf(tmp_path / "cube.nc")
    assert main(["explore", str(cube_path), "--video", str(right), "--out", str(tmp_path / "ok.html")]) == 0
    capsys.readouterr()
    code = main(["explore", str(cube_path), "--video", str(wrong), "--out", str(tmp_path / "bad.html")])
    err = capsys.readouterr().err
    assert code == 2 and "is not the video the cube was made from" in err
    assert not (tmp_path / "bad.html").exists()
