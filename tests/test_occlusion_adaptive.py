"""Adaptive occlusion: coarse-to-fine over region × time windows finds the planted units
with fewer forwards than exhaustive occlusion, counts them in the cube, and marks what it
did not resolve."""

from __future__ import annotations

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.explain import prepare_clip
from expresso_xai.testing import clip_inputs, white_box

WINDOW = 4
PLANTED = [("mouth", range(4, 8)), ("left_eye", range(12, 16))]


@pytest.fixture(scope="module")
def planted():
    model, frames, faces, crop = clip_inputs(input_size=(64, 64))
    regions = prepare_clip(model, frames, faces, crop).region_map
    mask = np.zeros(regions.labels.shape, bool)
    for region, frames_in in PLANTED:
        mask[list(frames_in)] |= regions.mask(region)[list(frames_in)]
    video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=16)
    wrapped = ex.models.wrap(white_box(mask), input_size=(64, 64), name="white-box")
    # two planted units in two regions of a 4-window clip need 12 + 2 x 4 forwards: budget 1/2
    options = {False: {}, True: {"adaptive": True, "budget": 0.5}, "default": {"adaptive": True}}
    return {key: ex.explain(wrapped, video, faces=faces, methods=["occlusion"], progress=False, batch_size=4,
                            occlusion={"window": WINDOW, **extra}) for key, extra in options.items()}


def _units(cube) -> dict:
    values = cube.attribution.sel(explainer="occlusion")
    windows = values.groupby((values.time - values.time.min()) // WINDOW).sum()
    return {(region, int(w)): float(windows.sel(region=region).isel(time=i))
            for i, w in enumerate(windows.time.values) for region in values.region.values}


def test_adaptive_finds_the_planted_units_with_fewer_forwards_counted_in_the_cube(planted):
    import json

    exhaustive = json.loads(planted[False].attrs["passes"])["occlusion"]
    adaptive = json.loads(planted[True].attrs["passes"])["occlusion"]
    assert adaptive <= exhaustive / 2
    assert json.loads(planted["default"].attrs["passes"])["occlusion"] <= exhaustive / 3
    assert int(planted[True]["occlusion_forwards"][0]) == adaptive
    assert int(planted[True]["occlusion_exhaustive_forwards"][0]) == exhaustive
    units = _units(planted[True])
    top = sorted(units, key=lambda unit: -abs(units[unit]))[:2]
    assert set(top) == {(region, frames_in.start // WINDOW) for region, frames_in in PLANTED}
    reference = _units(planted[False])
    for unit in top:  # resolved units are measured, so they equal the exhaustive value
        assert units[unit] == pytest.approx(reference[unit], rel=1e-5)


def test_unresolved_units_are_flagged_and_carry_only_the_measured_coarse_value(planted):
    resolved = float(planted[True]["occlusion_resolved_fraction"][0])
    assert 0 < resolved < 1
    values = planted[True].attribution.sel(explainer="occlusion")
    # the white box ignores every other region: a whole-clip leaf measured zero, and so
    # its unresolved windows hold zero, not a guess
    assert float(np.abs(values.sel(region="nose")).sum()) == 0.0
    ex.cube.check_cube(planted[True])


def test_each_cell_says_whether_it_was_measured_alone_and_unresolved_cells_share_one_measurement(planted, tmp_path):
    cube = planted[True]
    cells = cube["occlusion_resolved"]
    assert cells.dims == ("time", "region") and set(np.unique(cells.values)) <= {0.0, 1.0}
    for region, frames_in in PLANTED:  # the planted units were split down to single windows
        assert (cells.sel(region=region).isel(time=list(frames_in)) == 1).all()
    values = cube.attribution.sel(explainer="occlusion")
    exhaustive = planted[False].attribution.sel(explainer="occlusion")
    measured = cells.values == 1
    present = cube.region_area.values > 0
    # a measured cell holds the exhaustive value; an unresolved one does not (in general)
    np.testing.assert_allclose(values.values[measured & present], exhaustive.values[measured & present],
                               rtol=1e-4, atol=1e-6)
    assert (~measured & present).any()
    for region in cube.region.values:  # an unresolved region holds its one coarse value, by pixel share
        rows = ~measured[:, list(cube.region.values).index(region)]
        if rows.any() and (cube.region_area.sel(region=region).values[rows] > 0).all():
            per_pixel = values.sel(region=region).values[rows] / cube.region_area.sel(region=region).values[rows]
            np.testing.assert_allclose(per_pixel, per_pixel[0], rtol=1e-4, atol=1e-9)
    cube.xai.to_netcdf(tmp_path / "cube.nc")
    np.testing.assert_array_equal(ex.open_cube(tmp_path / "cube.nc")["occlusion_resolved"].values, cells.values)


def test_a_cell_covered_by_overlapping_clips_holds_the_share_of_them_that_resolved_it():
    resolved = np.zeros((2, 4, 2), bool)
    resolved[0, :, 0] = True  # the first clip resolved region "a", the second nothing
    cube = ex.cube.make_cube(np.zeros((1, 6, 2)), explainers=["occlusion"], time=np.arange(10, 16),
                             seconds=np.arange(6) / 25, regions=["a", "b"], region_area=np.ones((6, 2), int),
                             face_found=np.ones(6, bool), prediction=np.zeros(6), clip_start=[10, 12],
                             clip_stats={"occlusion_resolved": resolved})
    assert cube["occlusion_resolved"].dims == ("time", "region")
    assert cube["occlusion_resolved"].sel(region="a").values.tolist() == [1, 1, 0.5, 0.5, 0, 0]
    assert not cube["occlusion_resolved"].sel(region="b").values.any()
    with pytest.raises(ex.errors.CubeError, match="per-cell"):
        ex.cube.make_cube(np.zeros((1, 6, 2)), explainers=["occlusion"], time=np.arange(6), seconds=np.arange(6) / 25,
                          regions=["a", "b"], region_area=np.ones((6, 2), int), face_found=np.ones(6, bool),
                          prediction=np.zeros(6), clip_start=[0], clip_stats={"occlusion_resolved": resolved})
