"""The attribution cube: schema, derived views and NetCDF/Zarr round trips."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from expresso_xai.cube import CUBE_VERSION, check_cube, make_cube, open_cube
from expresso_xai.cube.views import VALUE_LABELS, VALUES, is_signed, value_view
from expresso_xai.errors import CubeError, ExpressoError
from expresso_xai.regions import PARTITION_REGIONS
from expresso_xai.testing import example_cube

EXPLAINERS = ["gradcam", "integrated_gradients", "occlusion"]
N_FRAMES = 24
FIRST_FRAME = 100  # the cube covers frames 100..123 of a longer video
FPS = 30.0
NO_FACE = [5, 6]  # positions without a face
N_CLIPS = 3


def _arrays(rng: np.random.Generator) -> dict:
    """Keyword arguments of make_cube for a synthetic 3-explainer, 24-frame cube."""
    E, T, R = len(EXPLAINERS), N_FRAMES, len(PARTITION_REGIONS)
    area = rng.integers(50, 400, size=(T, R))
    face_found = np.ones(T, bool)
    face_found[NO_FACE] = False
    background = PARTITION_REGIONS.index("background")
    area[~face_found] = 0
    area[:, background] = 112 * 112 - area.sum(axis=1) + area[:, background]
    time = np.arange(FIRST_FRAME, FIRST_FRAME + T)
    return dict(
        attribution=rng.normal(size=(E, T, R)),
        explainers=EXPLAINERS,
        time=time,
        seconds=time / FPS,
        regions=PARTITION_REGIONS,
        region_area=area,
        face_found=face_found,
        prediction=rng.normal(20.0, 3.0, size=T),
    )


def _full_arrays(rng: np.random.Generator) -> dict:
    """As _arrays, plus clips, clip statistics, pixels, a target and nested attrs."""
    arrays = _arrays(rng)
    arrays.update(
        clip_start=np.array([FIRST_FRAME, FIRST_FRAME + 8, FIRST_FRAME + 16]),
        clip_prediction=np.array([19.5, 21.0, 20.25]),
        clip_stats={
            "integrated_gradients_steps": np.array([32, 64, 64]),
            "integrated_gradients_completeness_error": np.array([0.02, 0.004, 0.003]),
            "integrated_gradients_converged": np.array([False, True, True]),
        },
        target="regression",
        pixels=rng.normal(size=(len(EXPLAINERS), N_FRAMES, 16, 16)).astype(np.float32),
        attrs={
            "model_name": "demo-r3d18",
            "model_hash": "sha256:abc123",
            "video_source": "data_samples/participant_high.mp4",
            "video_hash": "sha256:def456",
            "region_scheme": "partition",
            "methods": {"gradcam": {"layer": "layer4", "per_time_slice": False},
                        "integrated_gradients": {"n_steps": 64, "baseline": "blur"},
                        "occlusion": {"window": [8, 1], "baseline": "mean"}},
            "fps": FPS,
        },
    )
    return arrays


@pytest.fixture
def arrays(rng) -> dict:
    return _arrays(rng)


@pytest.fixture
def cube(rng) -> xr.Dataset:
    return make_cube(**_full_arrays(rng))


# --- schema ---------------------------------------------------------------------------


def test_a_cube_has_the_schema_the_other_parts_rely_on(cube):
    E, T, R = len(EXPLAINERS), N_FRAMES, len(PARTITION_REGIONS)
    assert dict(cube.sizes) == {"explainer": E, "time": T, "region": R, "clip": N_CLIPS, "y": 16, "x": 16}
    expected = {
        "attribution": (("explainer", "time", "region"), np.float32),
        "region_area": (("time", "region"), np.int64),
        "face_found": (("time",), np.bool_),
        "prediction": (("time",), np.float32),
        "clip_start": (("clip",), np.int64),
        "clip_prediction": (("clip",), np.float32),
        "integrated_gradients_steps": (("clip",), np.int64),
        "integrated_gradients_completeness_error": (("clip",), np.float64),
        "integrated_gradients_converged": (("clip",), np.bool_),
        "pixels": (("explainer", "time", "y", "x"), np.float32),
    }
    assert set(cube.data_vars) == set(expected)
    for name, (dims, dtype) in expected.items():
        assert cube[name].dims == dims, name
        assert cube[name].dtype == dtype, name
    assert set(cube.coords) == {"explainer", "time", "seconds", "region", "clip"}
    assert cube["explainer"].dtype.kind == "U" and cube["region"].dtype.kind == "U"
    assert cube["time"].dtype == np.int64 and cube["seconds"].dtype == np.float64
    assert cube["seconds"].dims == ("time",)
    assert cube["clip"].values.tolist() == [0, 1, 2]
    assert cube.xai.explainers == tuple(EXPLAINERS)
    assert cube.xai.regions == PARTITION_REGIONS
    assert cube["time"].values[0] == FIRST_FRAME
    np.testing.assert_allclose(cube["seconds"].values, cube["time"].values / FPS)
    assert "method" not in cube.dims and "method" not in cube.variables


def test_attrs_are_netcdf_safe_with_nested_values_as_json(cube):
    for name, value in cube.attrs.items():
        assert type(value) in (str, int, float), (name, value)
    assert cube.attrs["cube_version"] == CUBE_VERSION == 1
    assert cube.attrs["target"] == "regression"
    assert cube.attrs["model_name"] == "demo-r3d18"
    assert cube.attrs["region_scheme"] == "partition"
    assert cube.attrs["fps"] == FPS
    assert pd.Timestamp(cube.attrs["created"]).tzinfo is not None
    versions = json.loads(cube.attrs["versions"])
    assert {"numpy", "xarray", "torch", "captum", "expresso_xai"} <= set(versions)
    assert versions["numpy"] == np.__version__
    assert isinstance(cube.attrs["expresso_xai_version"], str)
    assert json.loads(cube.attrs["methods"])["integrated_gradients"]["n_steps"] == 64


def test_params_decodes_each_methods_parameters(cube):
    assert cube.xai.params("gradcam") == {"layer": "layer4", "per_time_slice": False}
    assert cube.xai.params("occlusion")["window"] == [8, 1]  # tuples come back as lists
    assert set(cube.xai.params()) == set(EXPLAINERS)
    with pytest.raises(CubeError, match="explainers: .*gradcam"):
        cube.xai.params("shapley")


def test_make_cube_fills_provenance_and_merges_the_callers_attrs(arrays):
    cube = make_cube(**arrays, target=np.int64(3),
                     attrs={"versions": {"opencv": "4.10"}, "cube_version": 99, "flipped": True, "note": None})
    assert cube.attrs["target"] == 3 and type(cube.attrs["target"]) is int
    assert cube.attrs["cube_version"] == 1  # not the caller's
    versions = json.loads(cube.attrs["versions"])
    assert versions["opencv"] == "4.10" and "xarray" in versions
    assert cube.attrs["flipped"] == "true" and cube.attrs["note"] == "null"  # JSON text
    for name in ("model_name", "model_hash", "video_source", "video_hash", "region_scheme"):
        assert cube.attrs[name] == ""
    assert "target" not in make_cube(**arrays).attrs
    assert make_cube(**arrays).xai.params("gradcam") == {}


def test_a_scalar_prediction_is_repeated_over_frames(arrays):
    arrays["prediction"] = 12.5
    cube = make_cube(**arrays)
    assert cube["prediction"].dims == ("time",)
    np.testing.assert_array_equal(cube["prediction"].values, np.float32(12.5))


def test_dataarray_inputs_are_put_in_schema_order_by_name(arrays):
    attribution = arrays["attribution"]
    arrays["attribution"] = xr.DataArray(attribution.transpose(2, 0, 1), dims=("region", "explainer", "time"))
    cube = make_cube(**arrays)
    np.testing.assert_array_equal(cube["attribution"].values, attribution.astype(np.float32))


# --- refusals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, bad, message",
    [
        ("attribution", np.zeros((3, 24, 11)), r"attribution has shape \(3, 24, 11\), expected \(3, 24, 12\)"),
        ("attribution", np.zeros((24, 12)), r"attribution has shape \(24, 12\), expected \(3, 24, 12\)"),
        ("region_area", np.zeros((12, 24), int), r"region_area has shape \(12, 24\), expected \(24, 12\)"),
        ("seconds", np.zeros(23), r"seconds has shape \(23,\), expected \(24,\)"),
        ("face_found", np.ones(25, bool), r"face_found has shape \(25,\), expected \(24,\)"),
        ("prediction", np.zeros((24, 2)), r"prediction has shape \(24, 2\), expected \(24,\)"),
        ("region_area", np.full((24, 12), 1.5), "region_area must hold integers"),
        ("region_area", -np.ones((24, 12), int), "negative"),
        ("face_found", np.full(24, 0.5), "face_found must be booleans"),
        ("attribution", np.full((3, 24, 12), "x"), "attribution must hold numbers"),
        ("time", np.arange(24)[::-1], "strictly increasing"),
        ("time", np.zeros(24, int), "strictly increasing"),
        ("explainers", ["gradcam", "gradcam", "occlusion"], r"not unique: \['gradcam'\]"),
        ("explainers", "gradcam", "single string"),
        ("regions", [*PARTITION_REGIONS[:-1], ""], "non-empty strings"),
    ],
)
def test_make_cube_names_the_variable_and_shape_that_is_wrong(arrays, name, bad, message):
    arrays[name] = bad
    with pytest.raises(CubeError, match=message):
        make_cube(**arrays)


def test_cube_errors_are_value_errors_of_the_library(arrays):
    arrays["seconds"] = np.zeros(3)
    with pytest.raises(ValueError):
        make_cube(**arrays)
    with pytest.raises(ExpressoError):
        make_cube(**arrays)


def test_pixels_and_clip_inputs_are_checked(arrays):
    with pytest.raises(CubeError, match=r"pixels has shape \(3, 23, 8, 8\), expected \(explainer=3, time=24"):
        make_cube(**arrays, pixels=np.zeros((3, 23, 8, 8)))
    with pytest.raises(CubeError, match="clip_prediction given without clip_start"):
        make_cube(**arrays, clip_prediction=np.zeros(2))
    with pytest.raises(CubeError, match=r"clip_prediction has shape \(3,\), expected \(2,\)"):
        make_cube(**arrays, clip_start=[0, 8], clip_prediction=np.zeros(3))
    with pytest.raises(CubeError, match=r"clip_stats\['ig_steps'\] has shape \(3,\), expected \(2,\)"):
        make_cube(**arrays, clip_start=[0, 8], clip_stats={"ig_steps": [1, 2, 3]})
    with pytest.raises(CubeError, match="schema"):
        make_cube(**arrays, clip_start=[0, 8], clip_stats={"prediction": [1.0, 2.0]})
    with pytest.raises(CubeError, match="target"):
        make_cube(**arrays, target=True)
    with pytest.raises(CubeError, match=r"parameters for \['shapley'\]"):
        make_cube(**arrays, attrs={"methods": {"shapley": {}}})
    with pytest.raises(CubeError, match="JSON"):
        make_cube(**arrays, attrs={"model": object()})


def test_float16_is_widened_because_netcdf_cannot_store_it(arrays):
    cube = make_cube(**arrays, clip_start=[0, 8], clip_stats={"error": np.array([0.5, 0.25], np.float16)},
                     pixels=np.zeros((3, 24, 4, 4), np.float16))
    assert cube["error"].dtype == np.float32 and cube["pixels"].dtype == np.float32


@pytest.mark.parametrize("name", ["method", "tolerance"])
def test_no_variable_may_be_named_after_an_xarray_keyword(arrays, name):
    # cube.sel(method="gradcam") would be xarray's interpolation keyword, not a selection
    with pytest.raises(CubeError, match=f"{name!r} is reserved.*sel"):
        make_cube(**arrays, clip_start=[0, 8], clip_stats={name: ["gradcam", "occlusion"]})


def test_open_cube_refuses_a_file_with_a_method_dimension(tmp_path, cube):
    renamed = cube.rename({"explainer": "method"})
    path = tmp_path / "renamed.nc"
    renamed.to_netcdf(path, engine="netcdf4")
    with pytest.raises(CubeError, match="renamed.nc"):
        open_cube(path)
    lookalike = cube.assign(method=("clip", np.array(["a", "b", "c"])))
    lookalike.to_netcdf(path, engine="netcdf4")
    with pytest.raises(CubeError, match=r"named \['method'\].*sel"):
        open_cube(path)


def _renamed_region(cube):
    names = cube["region"].values.tolist()
    names[1] = names[0]
    return cube.assign_coords(region=names)


# Each breaks one thing of a valid cube; the error must name the variable at fault.
BROKEN_CUBES = {
    "missing attribution": (lambda c: c.drop_vars("attribution"), "'attribution'"),
    "attribution on the wrong dims": (lambda c: c.assign(attribution=c.attribution.transpose("time", "explainer",
                                                                                              "region")),
                                      r"'attribution' has dims \('time', 'explainer', 'region'\)"),
    "attribution as text": (lambda c: c.assign(attribution=c.attribution.astype(str)),
                            "'attribution' must hold floating-point numbers"),
    "no explainer": (lambda c: c.isel(explainer=[]), "'explainer' is empty"),
    "a region twice": (_renamed_region, r"'region' names are not unique: \['right_eye'\]"),
    "a frame twice": (lambda c: c.assign_coords(time=np.zeros(c.sizes["time"], int)), "'time' must be strictly"),
    "frames backwards": (lambda c: c.assign_coords(time=c.time.values[::-1]), "'time' must be strictly"),
    "face_found on regions": (lambda c: c.assign(face_found=("region", np.ones(c.sizes["region"], bool))),
                              r"'face_found' has dims \('region',\), expected \('time',\)"),
    "region_area on frames only": (lambda c: c.assign(region_area=c.region_area.sum("region")),
                                   "'region_area' has dims"),
    "missing seconds": (lambda c: c.drop_vars("seconds"), r"missing \['seconds'\]"),
}


def test_check_cube_passes_every_cube_make_cube_builds(cube, arrays):
    check_cube(cube)
    check_cube(make_cube(**arrays))
    check_cube(example_cube(explainers=["gradcam"], n_frames=1))


@pytest.mark.parametrize("broken", BROKEN_CUBES)
def test_check_cube_names_the_variable_that_breaks_the_schema(cube, broken):
    breaking, message = BROKEN_CUBES[broken]
    with pytest.raises(CubeError, match=f"my.nc .*{message}"):
        check_cube(breaking(cube), "my.nc")


def test_open_cube_checks_the_cube_it_reads(tmp_path, cube):
    path = tmp_path / "no_seconds.nc"
    cube.drop_vars("seconds").to_netcdf(path, engine="netcdf4")
    with pytest.raises(CubeError, match=r"no_seconds.nc is not a complete attribution cube: missing \['seconds'\]"):
        open_cube(path)


# --- derived views --------------------------------------------------------------------


def test_share_is_attribution_over_total_absolute_attribution(cube):
    share = cube.xai.share()
    assert share.dims == ("explainer", "time", "region")
    np.testing.assert_allclose(abs(share).sum(("time", "region")).values, 1.0, rtol=1e-12)
    attribution = cube["attribution"].values.astype(np.float64)
    expected = attribution / np.abs(attribution).sum(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(share.values, expected, rtol=1e-12)
    per_frame = cube.xai.share("region")
    np.testing.assert_allclose(abs(per_frame).sum("region").values, 1.0, rtol=1e-12)
    assert "share" not in cube.data_vars  # a view, not a stored copy


def test_share_of_an_all_zero_explainer_is_zero_not_nan(arrays):
    arrays["attribution"][1] = 0.0
    arrays["attribution"][0, 4] = 0.0  # one silent frame
    cube = make_cube(**arrays)
    share = cube.xai.share()
    assert not share.isnull().any()
    assert (share.sel(explainer="integrated_gradients") == 0).all()
    per_frame = cube.xai.share("region")
    assert not per_frame.isnull().any()
    assert (per_frame.sel(explainer="gradcam").isel(time=4) == 0).all()
    with pytest.raises(CubeError, match="cannot share over"):
        cube.xai.share("pixel")


def test_density_is_attribution_per_pixel_with_nan_without_pixels(cube):
    density = cube.xai.density()
    assert density.dims == ("explainer", "time", "region")
    attribution = cube["attribution"].values.astype(np.float64)
    area = cube["region_area"].values
    face = area > 0
    np.testing.assert_allclose(density.values[:, face], (attribution / np.where(face, area, 1))[:, face])
    assert density.isnull().values[:, ~face].all()
    # frames without a face have pixels only in background
    no_face = density.isel(time=NO_FACE)
    assert no_face.drop_sel(region="background").isnull().all()
    assert not no_face.sel(region="background").isnull().any()


def _hand_top(cube, k, by, dim):
    """top() recomputed with plain numpy loops."""
    attribution = cube["attribution"].values.astype(np.float64)  # (E, T, R)
    area = cube["region_area"].values.astype(np.float64)  # (T, R)
    axis = 1 if dim == "region" else 2  # the axis summed away
    labels = cube[dim].values.tolist()
    rows = []
    for e, explainer in enumerate(EXPLAINERS):
        summed = attribution[e].sum(axis=axis - 1)
        if by == "density":
            pixels = area.sum(axis=axis - 1)
            values = [s / p if p > 0 else np.nan for s, p in zip(summed, pixels)]
        elif by == "share":
            values = summed / np.abs(attribution[e]).sum()
        else:
            values = summed
        ranked = sorted((v, i) for i, v in enumerate(values) if not np.isnan(v))
        ranked = sorted(ranked, key=lambda pair: -pair[0])[:k]
        rows += [(explainer, labels[i], v, rank) for rank, (v, i) in enumerate(ranked, start=1)]
    return rows


@pytest.mark.parametrize("by", ["attribution", "density", "share"])
@pytest.mark.parametrize("dim", ["region", "time"])
def test_top_ranks_regions_and_frames_like_a_hand_computation(cube, by, dim):
    table = cube.xai.top(k=4, by=by, dim=dim)
    assert list(table.columns) == ["explainer", dim, "value", "rank"]
    assert len(table) == 4 * len(EXPLAINERS)
    expected = _hand_top(cube, 4, by, dim)
    assert table[["explainer", dim, "rank"]].values.tolist() == [[e, label, r] for e, label, _, r in expected]
    np.testing.assert_allclose(table["value"].values, [v for *_, v, _ in expected], rtol=1e-9)
    assert table["rank"].dtype == np.int64
    if dim == "time":
        assert table["time"].dtype == np.int64


def test_top_finds_a_planted_region_and_skips_empty_frames_by_density(arrays):
    arrays["attribution"][:, :, PARTITION_REGIONS.index("nose")] += 50.0
    cube = make_cube(**arrays)
    top = cube.xai.top(k=1)
    assert top["region"].tolist() == ["nose"] * 3 and top["rank"].tolist() == [1] * 3
    frames = cube.xai.top(k=N_FRAMES, by="density", dim="time")
    # every frame has pixels (background fills a frame without a face)
    assert len(frames) == N_FRAMES * len(EXPLAINERS)
    every = cube.xai.top(k=100, by="attribution")
    assert len(every) == len(PARTITION_REGIONS) * len(EXPLAINERS)
    with pytest.raises(CubeError, match="'region' or 'time'"):
        cube.xai.top(dim="explainer")
    with pytest.raises(CubeError, match="ranks by"):
        cube.xai.top(by="magnitude")
    with pytest.raises(CubeError, match="positive integer"):
        cube.xai.top(k=0)


def test_to_dataframe_is_one_tidy_row_per_explainer_frame_and_region(cube):
    table = cube.xai.to_dataframe()
    E, T, R = len(EXPLAINERS), N_FRAMES, len(PARTITION_REGIONS)
    assert len(table) == E * T * R
    assert list(table.columns) == ["explainer", "time", "seconds", "region", "attribution",
                                   "region_area", "density", "face_found"]
    assert table["time"].dtype == np.int64 and table["region_area"].dtype == np.int64
    assert table["face_found"].dtype == bool and table["attribution"].dtype == np.float32
    row = table[(table.explainer == "occlusion") & (table.time == FIRST_FRAME + 7) & (table.region == "mouth")]
    assert len(row) == 1
    cell = cube.sel(explainer="occlusion", time=FIRST_FRAME + 7, region="mouth")
    assert row["attribution"].item() == cell["attribution"].item()
    assert row["region_area"].item() == cell["region_area"].item()
    assert row["seconds"].item() == pytest.approx((FIRST_FRAME + 7) / FPS)
    assert row["density"].item() == pytest.approx(cell["attribution"].item() / cell["region_area"].item())
    assert not table[table.time == FIRST_FRAME + NO_FACE[0]]["face_found"].any()
    assert table["density"].isna().sum() == E * len(NO_FACE) * (R - 1)
    # the same numbers as xarray's own flattening, in the same order
    flat = cube["attribution"].to_dataframe().reset_index()
    np.testing.assert_array_equal(table["attribution"].values, flat["attribution"].values)
    assert table["region"].tolist() == flat["region"].tolist()


def test_views_work_on_a_selection_of_the_cube(cube):
    one = cube.sel(explainer="gradcam")
    assert one.xai.explainers == ("gradcam",)
    assert len(one.xai.to_dataframe()) == N_FRAMES * len(PARTITION_REGIONS)
    assert one.xai.top(k=2)["explainer"].tolist() == ["gradcam", "gradcam"]
    np.testing.assert_allclose(abs(one.xai.share()).sum().item(), 1.0)
    window = cube.isel(time=slice(0, 8))
    assert window.xai.top(k=1, dim="time")["time"].between(FIRST_FRAME, FIRST_FRAME + 7).all()


@pytest.mark.parametrize("value", VALUES)
def test_each_value_is_a_float64_view_of_the_cube(cube, value):
    view = value_view(cube, value)
    assert view.dims == ("explainer", "time", "region") and view.dtype == np.float64
    expected = {"attribution": cube.attribution.astype(np.float64), "density": cube.xai.density(),
                "share": cube.xai.share(("time", "region"))}[value]
    xr.testing.assert_identical(view, expected)
    assert set(VALUE_LABELS) == set(VALUES)


def test_an_unknown_value_names_the_values_there_are(cube):
    with pytest.raises(CubeError, match=r"value must be one of \['attribution', 'density', 'share'\], got 'mean'"):
        value_view(cube, "mean")


def test_values_are_signed_only_beyond_float_noise():
    assert is_signed(np.array([-0.5, 1.0]))
    assert not is_signed(np.array([-1e-9, 0.0, 1.0]))  # rounding noise of a map of magnitudes
    assert is_signed(np.array([-1e-5, 1.0]))
    assert not is_signed(np.array([np.nan, np.inf, 2.0]))
    assert not is_signed(np.array([]))
    assert is_signed(np.array([-1e-20, 0.0]))  # the tolerance is relative: a map of tiny negatives is signed


def test_the_accessor_refuses_a_dataset_that_is_not_a_cube():
    with pytest.raises(CubeError, match="not an attribution cube"):
        xr.Dataset({"x": ("t", [1, 2])}).xai.share()


# --- files ----------------------------------------------------------------------------


def _assert_same_cube(read: xr.Dataset, written: xr.Dataset) -> None:
    xr.testing.assert_identical(read, written)
    # assert_identical compares values, not dtypes
    for name, variable in written.variables.items():
        assert read[name].dtype == variable.dtype, name
    assert {n: type(v) for n, v in read.attrs.items()} == {n: type(v) for n, v in written.attrs.items()}


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_a_cube_round_trips_exactly_through_netcdf_and_zarr(tmp_path, cube, suffix):
    path = tmp_path / f"cube{suffix}"
    written = cube.xai.to_netcdf(path) if suffix == ".nc" else cube.xai.to_zarr(path)
    assert written == path and path.exists()
    read = open_cube(path)
    _assert_same_cube(read, cube)
    assert read["face_found"].values[NO_FACE].tolist() == [False, False]
    assert read["integrated_gradients_converged"].values.tolist() == [False, True, True]
    assert read.xai.params() == cube.xai.params()
    assert not read.attribution.encoding  # fully in memory, no tie to the file
    # writing again over the same path replaces it
    again = read.xai.to_netcdf(path) if suffix == ".nc" else read.xai.to_zarr(path)
    _assert_same_cube(open_cube(again), cube)


def test_writing_and_reading_raise_no_warnings(tmp_path, cube):
    # Zarr format 3 would warn that fixed-width unicode (the names) has no specification
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_cube(cube.xai.to_zarr(tmp_path / "cube.zarr"))
        open_cube(cube.xai.to_netcdf(tmp_path / "cube.nc"))
    assert json.loads((tmp_path / "cube.zarr" / ".zmetadata").read_text())["zarr_consolidated_format"] == 1


def test_names_stored_as_object_strings_by_another_tool_read_back_as_unicode(tmp_path, cube):
    path = tmp_path / "elsewhere.zarr"
    cube.assign_coords(explainer=cube.explainer.astype(object), region=cube.region.astype(object)).to_zarr(
        path, zarr_format=2)
    read = open_cube(path)
    assert read.explainer.dtype.kind == "U" and read.region.dtype.kind == "U"
    _assert_same_cube(read, cube)


def test_a_cube_read_from_netcdf_can_be_written_to_zarr_and_back(tmp_path, cube):
    from_netcdf = open_cube(cube.xai.to_netcdf(tmp_path / "cube.nc"))
    _assert_same_cube(open_cube(from_netcdf.xai.to_zarr(tmp_path / "cube.zarr")), cube)


def test_a_minimal_cube_round_trips_too(tmp_path, arrays):
    cube = make_cube(**arrays)
    _assert_same_cube(open_cube(cube.xai.to_netcdf(tmp_path / "minimal.nc")), cube)
    _assert_same_cube(open_cube(cube.xai.to_zarr(tmp_path / "minimal.zarr")), cube)


def test_written_cubes_open_in_plain_xarray_without_expresso_xai(tmp_path, cube):
    nc = cube.xai.to_netcdf(tmp_path / "cube.nc")
    zarr = cube.xai.to_zarr(tmp_path / "cube.zarr")
    script = f"""
import json, sys
import xarray as xr
for cube in (xr.open_dataset({str(nc)!r}), xr.open_zarr({str(zarr)!r})):
    assert cube.attribution.dims == ("explainer", "time", "region"), cube.attribution.dims
    assert str(cube.attribution.dtype) == "float32"
    assert str(cube.face_found.dtype) == "bool"
    assert cube.explainer.values.tolist() == {EXPLAINERS!r}
    assert float(cube.attribution.sel(explainer="gradcam", region="mouth").sum()) == {
        float(cube.attribution.sel(explainer="gradcam", region="mouth").sum())!r}
    assert json.loads(cube.attrs["methods"])["gradcam"]["layer"] == "layer4"
assert "expresso_xai" not in sys.modules
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_writing_refuses_attrs_that_netcdf_cannot_store(tmp_path, cube):
    cube.attrs["extra"] = {"nested": 1}
    with pytest.raises(CubeError, match="'extra'.*json.dumps"):
        cube.xai.to_netcdf(tmp_path / "cube.nc")
    del cube.attrs["extra"]
    cube["attribution"].attrs["flag"] = True
    with pytest.raises(CubeError, match="'flag' of variable 'attribution'"):
        cube.xai.to_zarr(tmp_path / "cube.zarr")


def test_open_cube_names_the_file_it_cannot_use(tmp_path):
    with pytest.raises(CubeError, match="missing.nc.*does not exist"):
        open_cube(tmp_path / "missing.nc")
    with pytest.raises(CubeError, match="missing.zarr"):
        open_cube(tmp_path / "missing.zarr")
    garbage = tmp_path / "garbage.nc"
    garbage.write_text("not a netCDF file")
    with pytest.raises(CubeError, match="garbage.nc"):
        open_cube(garbage)
    other = tmp_path / "other.nc"
    xr.Dataset({"x": ("t", np.arange(3))}).to_netcdf(other, engine="netcdf4")
    with pytest.raises(CubeError, match="other.nc is not an attribution cube"):
        open_cube(other)
    wrong_dims = tmp_path / "wrong.zarr"
    xr.Dataset({"attribution": (("time", "region"), np.zeros((2, 3)))}).to_zarr(wrong_dims, zarr_format=2)
    with pytest.raises(CubeError, match=r"wrong.zarr.*dims \('time', 'region'\)"):
        open_cube(wrong_dims)
    empty_folder = tmp_path / "folder"
    empty_folder.mkdir()
    with pytest.raises(CubeError, match="folder"):
        open_cube(empty_folder)


def test_open_cube_refuses_a_cube_from_a_newer_library(tmp_path, cube):
    path = cube.xai.to_netcdf(tmp_path / "cube.nc")
    future = open_cube(path).assign_attrs(cube_version=CUBE_VERSION + 1)
    future.to_netcdf(tmp_path / "future.nc", engine="netcdf4")
    with pytest.raises(CubeError, match="version 2 cube"):
        open_cube(tmp_path / "future.nc")


def test_agreement_is_spearman_over_the_chosen_cells():
    from scipy.stats import spearmanr

    cube = example_cube(explainers=["gradcam", "saliency", "occlusion"], n_frames=20)
    values = cube.attribution.values
    face = cube.face_found.values
    rho = cube.xai.agreement()
    assert rho.dims == ("explainer", "other")
    expected = spearmanr(values[0][face].ravel(), values[2][face].ravel())[0]
    assert float(rho.sel(explainer="gradcam", other="occlusion")) == pytest.approx(expected, abs=1e-12)
    with_no_face = cube.xai.agreement(faces_only=False)
    assert float(with_no_face[0, 2]) == pytest.approx(spearmanr(values[0].ravel(), values[2].ravel())[0], abs=1e-12)
    per_frame = cube.xai.agreement(over="region", absolute=True)
    assert per_frame.dims == ("time", "explainer", "other")
    assert float(per_frame[5, 1, 2]) == pytest.approx(spearmanr(abs(values[1, 5]), abs(values[2, 5]))[0], abs=1e-12)
    assert np.isnan(per_frame[3]).all()  # no face in frame 3
    per_region = cube.xai.agreement(over="time")
    assert float(per_region[4, 0, 1]) == pytest.approx(spearmanr(values[0, face, 4], values[1, face, 4])[0],
                                                      abs=1e-12)
    constant = cube.copy(deep=True)
    constant["attribution"][1] = 1.0
    assert np.isnan(constant.xai.agreement()[1]).all()
    with pytest.raises(CubeError, match="ranks over 'time' and/or 'region'"):
        cube.xai.agreement(over="explainer")


def test_overlay_geometry_is_checked():
    """region_label and crop_matrix (what ex.explain(keep_pixels=True) adds) are
    refused with the reason when they do not fit the cube."""
    base = dict(explainers=["gradcam"], time=np.arange(4), seconds=np.arange(4) / 25,
                regions=["mouth", "background"], region_area=np.full((4, 2), 32), face_found=np.ones(4, bool),
                prediction=np.zeros(4), pixels=np.zeros((1, 4, 8, 8)))
    labels = np.zeros((4, 8, 8), np.uint8)
    crop = np.tile(np.eye(2, 3), (4, 1, 1))
    cube = make_cube(np.zeros((1, 4, 2)), region_label=labels, crop_matrix=crop, **base)
    assert cube.region_label.attrs["encoding"] == "index" and cube.region_label.attrs["regions"] == "mouth,background"
    assert cube.crop_matrix.dims == ("time", "affine_row", "affine_col")
    with pytest.raises(CubeError, match=r"region_label has shape \(3, 8, 8\), expected \(time=4, y, x\)"):
        make_cube(np.zeros((1, 4, 2)), region_label=labels[:3], **base)
    with pytest.raises(CubeError, match=r"region_label is \(8, 4\) pixels but pixels is \(8, 8\)"):
        make_cube(np.zeros((1, 4, 2)), region_label=labels[:, :, :4], **base)
    with pytest.raises(CubeError, match="region_label has index 2 but there are only 2 regions"):
        make_cube(np.zeros((1, 4, 2)), region_label=labels + 2, **base)
    with pytest.raises(CubeError, match="uint8 region indices or uint16 bit flags, got int64"):
        make_cube(np.zeros((1, 4, 2)), region_label=labels.astype(np.int64), **base)
    with pytest.raises(CubeError, match=r"crop_matrix has shape \(4, 3, 3\), expected \(4, 2, 3\)"):
        make_cube(np.zeros((1, 4, 2)), crop_matrix=np.zeros((4, 3, 3)), **base)
    crop[1, 0, 2] = np.nan
    with pytest.raises(CubeError, match="crop_matrix has NaN or infinite values"):
        make_cube(np.zeros((1, 4, 2)), crop_matrix=crop, **base)
