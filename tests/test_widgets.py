"""The Explorer widget at the Python level: its state, what it sends to the browser, and
the standalone HTML. The browser itself is tested in test_browser.py."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import zlib

import numpy as np
import pytest
import traitlets

import expresso_xai as ex
from expresso_xai.cube.views import VALUE_LABELS, VALUES, is_signed, value_view
from expresso_xai.errors import CubeError, VideoReadError
from expresso_xai.testing import example_cube, tiny_model
from expresso_xai.widgets import payload
from expresso_xai.widgets.explorer import FRONTEND


def _inflate(text: str, dtype=np.uint8) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=dtype)


@pytest.fixture(scope="module")
def small_net():
    return tiny_model(input_size=(64, 64), widths=(4,), name="small")


@pytest.fixture(scope="module")
def explained(small_net, short_video, short_faces):
    """A real cube with pixel maps, region labels and the crop, from 48 frames."""
    cube = ex.explain(small_net, short_video, faces=short_faces, methods=["gradcam", "saliency", "occlusion"],
                      keep_pixels=True, progress=False)
    return cube


# --- state ---------------------------------------------------------------------------


def test_initial_state_and_selection():
    cube = example_cube(explainers=["gradcam", "saliency"], pixels=True)
    explorer = ex.widgets.Explorer(cube)
    assert (explorer.frame, explorer.method, explorer.region) == (0, "gradcam", "")
    assert explorer.has_overlays and not explorer.has_video
    explorer.select(frame=7, region="mouth")
    assert (explorer.frame, explorer.region, explorer.method) == (7, "mouth", "gradcam")
    explorer.method = "saliency"
    explorer.seek(9)
    assert (explorer.frame, explorer.method) == (9, "saliency")
    current = explorer.current()  # attribution per pixel, the default (as in figures)
    expected = cube.attribution.sel(explainer="saliency", time=9).values
    density = expected / cube.region_area.sel(time=9).values
    np.testing.assert_allclose(current.values, density, rtol=1e-6)
    assert current.index.tolist() == cube.region.values.tolist()
    explorer.value = "attribution"
    np.testing.assert_allclose(explorer.current().values, expected, rtol=1e-6)


def test_state_changes_are_observable():
    explorer = ex.widgets.Explorer(example_cube())
    seen = []
    explorer.observe(lambda change: seen.append((change["name"], change["new"])), names=["frame", "region", "method"])
    explorer.select(frame=4, region="nose", method="integrated_gradients")
    assert set(seen) == {("frame", 4), ("region", "nose"), ("method", "integrated_gradients")}


def test_time_coordinates_are_video_frame_numbers():
    cube = example_cube(n_frames=10).assign_coords(time=np.arange(100, 110))
    explorer = ex.widgets.Explorer(cube)
    assert explorer.frame == 100
    explorer.seek(105)
    assert explorer.frame == 105
    with pytest.raises(traitlets.TraitError, match=r"frame 3 is not in the cube; it has frames 100..109"):
        explorer.seek(3)


@pytest.mark.parametrize("name, value, message", [
    ("method", "lime", r"method 'lime' is not in the cube; it has \['gradcam', 'integrated_gradients'\]"),
    ("region", "ear", r"region 'ear' is not in the cube"),
    ("value", "mean", r"value must be one of"),
    ("colour", "rainbow", r"colour must be one of"),
    ("opacity", 1.5, r"opacity must be between 0 and 1"),
    ("speed", 0.0, r"speed must be a positive number"),
])
def test_invalid_state_is_refused_with_a_reason(name, value, message):
    explorer = ex.widgets.Explorer(example_cube())
    before = getattr(explorer, name)
    with pytest.raises(traitlets.TraitError, match=message):
        setattr(explorer, name, value)
    assert getattr(explorer, name) == before


def test_bad_inputs():
    with pytest.raises(CubeError, match="needs an attribution cube"):
        ex.widgets.Explorer(np.zeros(3))
    with pytest.raises(CubeError, match="no 'attribution' variable"):
        ex.widgets.Explorer(example_cube().drop_vars("attribution"))
    with pytest.raises(CubeError, match=r"method 'lime' is not in the cube"):
        ex.widgets.Explorer(example_cube(), method="lime")


# --- what is sent to the browser -----------------------------------------------------


def test_without_pixels_it_says_how_to_get_overlays():
    explorer = ex.widgets.Explorer(example_cube())
    assert not explorer.has_overlays
    assert explorer._data["overlay"] is None
    assert any("keep_pixels=True" in m for m in explorer.messages)
    # the heatmap data are still there, rows = regions, columns = frames
    heat = explorer._data["heat"]["gradcam"]["attribution"]
    assert np.asarray(heat, float).shape == (12, 16)


def test_heat_values_match_the_cube_views():
    cube = example_cube(explainers=["gradcam", "saliency"])
    data = ex.widgets.Explorer(cube)._data
    heat = {name: {value: np.asarray(rows, float) for value, rows in values.items()}
            for name, values in data["heat"].items()}
    np.testing.assert_allclose(heat["saliency"]["attribution"],
                               cube.attribution.sel(explainer="saliency").transpose("region", "time"), rtol=1e-6)
    np.testing.assert_allclose(heat["gradcam"]["share"],
                               cube.xai.share().sel(explainer="gradcam").transpose("region", "time"), rtol=1e-6)
    np.testing.assert_allclose(heat["gradcam"]["density"],
                               cube.xai.density().sel(explainer="gradcam").transpose("region", "time"), rtol=1e-6)
    for value in VALUES:  # one home for the views: the cube's
        expected = value_view(cube, value).sel(explainer="gradcam").transpose("region", "time")
        np.testing.assert_allclose(heat["gradcam"][value], expected, rtol=1e-6)
    # JSON has no NaN: cells without pixels (no-face frame) become null
    json.dumps(data, allow_nan=False)
    density = data["heat"]["gradcam"]["density"]
    assert any(v is None for row in density for v in row)


def test_overlay_codes_decode_to_the_pixel_maps(explained):
    data = ex.widgets.Explorer(explained)._data
    T, h, w = data["overlay"]["shape"]
    assert (T, h, w) == (48, 64, 64)
    for name in ("gradcam", "saliency", "occlusion"):
        pixels = explained.pixels.sel(explainer=name).values
        codes = _inflate(data["overlay"]["data"][name]).reshape(T, h, w).astype(np.float64)
        scale = data["overlay"]["scale"][name]
        signed = data["signed"][name]
        decoded = payload.decode(codes, signed) * scale
        expected = np.clip(pixels, -scale if signed else 0, scale)
        step = scale / (127 if signed else 255)
        assert np.abs(decoded - expected).max() <= 0.51 * step + 1e-9, name
        assert np.mean(np.abs(pixels) > scale) <= 0.006  # the 99.5th percentile scale clips few pixels
    assert payload.quantise(np.zeros(3), True, 1.0).tolist() == [128] * 3  # zero: transparent
    assert payload.decode(np.array([128, 1, 255]), True).tolist() == [0.0, -1.0, 1.0]
    assert data["signed"]["saliency"] is False  # |gradient|: a magnitude
    assert data["signed"]["gradcam"] is False  # ReLU Grad-CAM
    assert data["signed"]["occlusion"] is True


def test_region_labels_travel_with_the_overlay(explained):
    data = ex.widgets.Explorer(explained)._data
    labels = _inflate(data["labels"]["data"]).reshape(48, 64, 64)
    assert data["labels"]["encoding"] == "index"
    np.testing.assert_array_equal(labels, explained.region_label.values)
    # the labels are the ones the engine pooled with: region sizes agree with region_area
    counts = np.stack([(labels == r).sum(axis=(1, 2)) for r in range(12)], axis=1)
    np.testing.assert_array_equal(counts, explained.region_area.values)


def test_outlines_follow_a_subset_or_reordering_of_regions(explained):
    """region_label keeps the indices of the regions it was made with; after
    cube.sel(region=...) the Explorer renumbers them, so outlines stay on their regions."""
    names = explained.region.values.tolist()
    subset = explained.sel(region=[names[5], names[1], names[0], "background"])
    data = ex.widgets.Explorer(subset)._data
    labels = _inflate(data["labels"]["data"]).reshape(48, 64, 64)
    for r in range(4):
        np.testing.assert_array_equal((labels == r).sum(axis=(1, 2)), subset.region_area.values[:, r])
    assert set(np.unique(labels)) <= {0, 1, 2, 3, 255}


def test_current_values_match_the_heatmap_for_every_value():
    cube = example_cube(pixels=True)
    explorer = ex.widgets.Explorer(cube)
    explorer.select(frame=5)
    for value in ("attribution", "density", "share"):
        explorer.value = value
        heat = np.asarray(explorer._data["heat"]["gradcam"][value], float)[:, 5]
        np.testing.assert_allclose(explorer.current().values, heat, rtol=1e-6)
    np.testing.assert_allclose(explorer.current().values,
                               cube.xai.share().sel(explainer="gradcam", time=5).values, rtol=1e-6)


def test_constructor_state_and_numpy_values():
    explorer = ex.widgets.Explorer(example_cube(), frame=7, region="mouth", opacity=np.float32(0.25))
    assert (explorer.frame, explorer.region, explorer.opacity) == (7, "mouth", 0.25)
    explorer.speed = np.float64(2)
    assert explorer.speed == 2.0
    with pytest.raises(traitlets.TraitError, match="speed must be a positive number"):
        explorer.speed = float("inf")


def test_frames_are_cropped_like_the_model_saw_them(explained, short_video, small_net):
    """The player's frames, shrunk to the model's size, are the model's input frames:
    overlays drawn at the model's pixels land on the right part of the face."""
    import cv2

    images, cropped = payload.video_frames(short_video, explained)
    assert cropped and images.shape == (48, 256, 256, 3)
    crop = ex.FaceCrop(explained.crop_matrix.values, small_net.input_size, (192, 192))
    seen = crop.apply(short_video).astype(np.float64)
    shrunk = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in images]).astype(np.float64)
    assert np.abs(shrunk - seen).mean() < 3.0  # grey levels, out of 255
    shifted = np.roll(shrunk, 2, axis=2)  # two model pixels off would be clearly worse
    assert np.abs(shifted - seen).mean() > 2 * np.abs(shrunk - seen).mean()
    explorer = ex.widgets.Explorer(explained, short_video)
    assert explorer.has_video and len(explorer._data["frames"]["jpeg"]) == 48
    assert not explorer.messages


def test_video_from_a_path_and_a_video_that_does_not_fit(explained, short_video, tmp_path):
    cube = example_cube(n_frames=16)
    path = ex.samples.sample_path("participant_low")
    explorer = ex.widgets.Explorer(cube, path)  # no crop: full frames, no overlay
    assert explorer.has_video and explorer._data["frames"]["cropped"] is False
    assert explorer._data["frames"]["size"] == [256, 256]
    too_short = short_video[:10]
    with pytest.raises(VideoReadError, match=r"covers frames 50..97: pass the video the cube was made from"):
        ex.widgets.Explorer(explained, too_short)
    import cv2

    resized = ex.Video.from_array(np.stack([cv2.resize(f, (96, 96)) for f in short_video.frames]), fps=25.0)
    resized.start = short_video.start
    with pytest.raises(VideoReadError, match=r"is 96x96 but the cube was made from a 192x192 video"):
        ex.widgets.Explorer(explained, resized)
    small_file = ex.samples.write_video(np.concatenate([np.zeros((50, 96, 96, 3), np.uint8), resized.frames]),
                                        tmp_path / "small.mp4", 25.0)
    with pytest.raises(VideoReadError, match=r"small\.mp4 is 96x96 but the cube was made from a 192x192 video"):
        ex.widgets.Explorer(explained, small_file)


def test_a_stretch_of_a_cube_with_the_whole_video(explained, short_video, monkeypatch):
    """Long videos are explored a stretch at a time: a time slice of the cube with the
    whole video (or its file) shows the right frames."""
    stretch = explained.isel(time=slice(10, 30))
    whole = ex.widgets.Explorer(explained, short_video)._data["frames"]["jpeg"]
    part = ex.widgets.Explorer(stretch, short_video)._data["frames"]["jpeg"]
    assert part == whole[10:30]
    path = ex.samples.sample_path("participant_high")  # short_video is frames 50..97 of this file
    from_file = ex.widgets.Explorer(stretch, path)._data["frames"]["jpeg"]
    assert from_file == part
    monkeypatch.setattr(payload, "LARGE_PAYLOAD_MB", 0.01)
    with pytest.warns(ex.errors.ExpressoWarning, match=r"explore a stretch at a time"):
        ex.widgets.Explorer(stretch, short_video)


def test_agreement_is_sent_for_several_methods(explained):
    data = ex.widgets.Explorer(explained)._data
    matrix = np.asarray(data["agreement"]["matrix"], float)
    np.testing.assert_allclose(matrix, explained.xai.agreement().values)
    per_frame = np.asarray(data["agreement"]["per_frame"], float)
    assert per_frame.shape == (48,) and np.all(np.abs(per_frame[np.isfinite(per_frame)]) <= 1)
    # a frame without a face has nothing to rank: no agreement, rather than a fake +-1
    no_face = ex.widgets.Explorer(example_cube(explainers=["gradcam", "saliency"]))._data["agreement"]["per_frame"]
    assert no_face[3] is None and all(v is not None for i, v in enumerate(no_face) if i != 3)
    assert ex.widgets.Explorer(example_cube(explainers=["gradcam"]))._data["agreement"] is None


def test_cube_with_pixels_round_trips_and_still_explores(explained, tmp_path, short_video):
    path = explained.xai.to_netcdf(tmp_path / "cube.nc")
    opened = ex.open_cube(path)
    assert opened.region_label.dtype == np.uint8 and opened.region_label.attrs["encoding"] == "index"
    np.testing.assert_array_equal(opened.crop_matrix.values, explained.crop_matrix.values)
    a = ex.widgets.Explorer(explained, short_video)._data
    b = ex.widgets.Explorer(opened, short_video)._data
    assert a["overlay"] == b["overlay"] and a["labels"] == b["labels"] and a["frames"] == b["frames"]


def test_boxes_scheme_sends_bit_flags(small_net, short_video, short_faces):
    cube = ex.explain(small_net, short_video[:16], faces=short_faces[:16], methods=["saliency"], regions="boxes",
                      keep_pixels=True, progress=False)
    assert cube.region_label.dtype == np.uint16 and cube.region_label.attrs["encoding"] == "bits"
    data = ex.widgets.Explorer(cube)._data
    labels = _inflate(data["labels"]["data"], np.dtype("<u2")).reshape(16, 64, 64)
    for r in range(len(cube.region)):
        np.testing.assert_array_equal(((labels >> r) & 1).sum(axis=(1, 2)), cube.region_area.values[:, r])


# --- standalone HTML -----------------------------------------------------------------


def test_save_html_is_self_contained(tmp_path):
    cube = example_cube(explainers=["gradcam", "saliency"], pixels=True)
    explorer = ex.widgets.Explorer(cube)
    explorer.select(frame=5, region="mouth", method="saliency")
    path = explorer.save_html(tmp_path / "sub" / "explorer")
    assert path.name == "explorer.html" and path.is_file()
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", text), "nothing may be fetched"
    state = json.loads(re.search(r'<script type="application/json" id="xe-state">(.*?)</script>', text, re.S)
                       .group(1).replace("<\\/", "</"))
    assert (state["frame"], state["method"], state["region"], state["playing"]) == (5, "saliency", "mouth", False)
    assert state["_data"]["regions"] == cube.region.values.tolist()
    assert "Plotly" in text and "function render" in text and "await widget.initialize({ model })" in text
    assert not list(tmp_path.glob("sub/*.partial"))
    assert explorer.save_html(tmp_path / "explorer.v2").name == "explorer.v2.html"
    with pytest.raises(IsADirectoryError, match="give the HTML file's name"):
        explorer.save_html(tmp_path)


def test_frontend_is_plain_local_files():
    js = (FRONTEND / "explorer.js").read_text(encoding="utf-8")
    assert FRONTEND.resolve().name == "widgets" and (FRONTEND / "explorer.css").is_file()
    assert not re.search(r"^\s*import\s", js, re.M), "no imports: no build step, no CDN"
    assert "https://" not in js and "http://" not in js
    assert "export default createWidget;" in js
    assert "_fullLayout" not in js, "only plotly's public API: positions come from the layout we set"


def test_payload_is_described_once_and_the_conventions_come_from_python():
    """The JSDoc typedef in explorer.js lists exactly the keys payload.build makes; value
    names and signs are Python's decisions, sent to the front-end."""
    js = (FRONTEND / "explorer.js").read_text(encoding="utf-8")
    typedef = js[js.index("@typedef {object} Payload"):js.index("@typedef {object} Overlay")]
    described = re.findall(r"@property \{.*?\} (\w+)", typedef)
    data = ex.widgets.Explorer(example_cube(pixels=True))._data
    assert described == list(data)
    assert "Payload" in payload.__doc__ and "widgets/explorer.js" in payload.__doc__
    assert data["values"] == [[value, VALUE_LABELS[value]] for value in VALUES]
    cube = example_cube(pixels=True)
    for name in data["explainers"]:
        assert data["signed"][name] == (is_signed(cube.attribution.sel(explainer=name).values)
                                        or is_signed(cube.pixels.sel(explainer=name).values))
    for word in ("'attribution'", '"density"', '"share"', "encoding ===", "signed ="):
        assert word not in js, f"explorer.js decides {word} itself"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_frontend_module_has_the_anywidget_lifecycle():
    """The default export is a factory (anywidget calls it once per model) whose widget
    has initialize (per model) and render (per view)."""
    script = ("import(process.argv[1]).then((m) => { const w = m.default();"
              " console.log(typeof w.initialize, typeof w.render, typeof m.standaloneModel); })")
    out = subprocess.run(["node", "--input-type=module", "-e", script, (FRONTEND / "explorer.js").resolve().as_uri()],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split() == ["function", "function", "function"]


@pytest.mark.parametrize("name", ["<!--<script>", "</script><script>document.title='pwned'</script>",
                                  "<img src=x onerror=alert(1)>"])
def test_markup_in_names_cannot_break_the_standalone_page(tmp_path, name):
    """Model, region and explainer names end up in the page's JSON: no "<" of theirs may
    reach the HTML parser, or a "<!--<script>" blanks the page and "</script>" ends it."""
    from expresso_xai.testing import example_cube

    cube = example_cube(explainers=["gradcam"]).assign_attrs(model_name=name)
    cube = cube.assign_coords(region=[f"{r}{name}" if r == "mouth" else r for r in cube.region.values])
    html = ex.widgets.Explorer(cube).save_html(tmp_path / "page.html").read_text()
    state = html.split('<script type="application/json" id="xe-state">', 1)[1].split("</script>", 1)[0]
    assert "<" not in state
    assert html.count("<script") == html.count("</script>") == 3
    import json

    assert name in json.dumps(json.loads(state), ensure_ascii=False)  # the names come back intact


# --- the evaluation panel ------------------------------------------------------------


def _evaluation_part(cube, evaluation):
    return ex.widgets.Explorer(cube, evaluation=evaluation)._data["evaluation"]


def test_evaluation_table_sends_every_score_with_its_direction_and_verdict():
    from expresso_xai.testing import example_evaluation

    ev = example_evaluation()
    table = _evaluation_part(example_cube(), ev)["table"]
    assert table["explainers"] == ev.explainer.values.tolist()
    assert [m["name"] for m in table["metrics"]] == ev.metric.values.tolist()
    definitions = json.loads(ev.attrs["metric_definitions"])
    arrows = {"higher": "↑", "lower": "↓", "neither": ""}
    for m, column in enumerate(table["metrics"]):
        assert column["better"] == str(ev.better.values[m]) and column["arrow"] == arrows[column["better"]]
        assert column["group"] == str(ev.group.values[m])
        assert definitions[column["name"]]["definition"] in column["title"]
        for e, name in enumerate(table["explainers"]):
            value = float(ev.score.sel(explainer=name, metric=column["name"]))
            passed = float(ev.passed.sel(explainer=name, metric=column["name"]))
            assert table["score"][e][m] == pytest.approx(value)
            assert table["passed"][e][m] == (None if np.isnan(passed) else bool(passed))


def test_best_method_per_metric_follows_its_direction():
    """The best row is the largest score where higher is better, the smallest where lower
    is, none for a descriptive score; a NaN never wins and ties all count."""
    from expresso_xai.testing import example_evaluation
    from expresso_xai.widgets.evaluation import best_rows

    explainers = ["gradcam", "saliency", "occlusion"]
    ev = example_evaluation(explainers=explainers)
    planted = {"deletion_morf": [0.1, 0.7, 0.4], "mprt_spearman": [0.6, 0.1, 0.3],
               "shuffled_frames": [0.2, 0.9, 0.5], "relevance_mass": [np.nan, 0.2, 0.8], "off_face": [0.3, 0.3, 0.5]}
    for metric, values in planted.items():
        ev["score"].loc[dict(metric=metric)] = values
    table = _evaluation_part(example_cube(explainers=explainers), ev)["table"]
    best = {column["name"]: table["best"][m] for m, column in enumerate(table["metrics"])}
    assert best["deletion_morf"] == [1]   # higher: the largest
    assert best["mprt_spearman"] == [1]   # lower: the smallest, not the largest
    assert best["shuffled_frames"] == []  # neither: no best
    assert best["relevance_mass"] == [2]  # NaN is not a winner
    assert best["off_face"] == [0, 1]     # a tie
    assert best_rows(np.full((2, 1), np.nan), ["higher"]) == [[]]


def test_evaluation_curves_are_the_datasets_with_the_random_band():
    from expresso_xai.testing import example_evaluation

    ev = example_evaluation(steps=4)
    curves = _evaluation_part(example_cube(), ev)["curves"]
    assert [k for k, _ in curves["kinds"]] == ["deletion", "insertion"]
    assert [o for o, _, _ in curves["orders"]] == ["morf", "lerf", "random"]
    assert curves["steps"] == pytest.approx(ev.step.values.tolist())
    for name in ev.explainer.values:
        for kind in ("deletion", "insertion"):
            for order in ("morf", "lerf", "random"):
                expected = ev.curve.sel(explainer=name, kind=kind, order=order).values
                assert curves["values"][name][kind][order] == pytest.approx(expected.tolist())
            for bound in ("lower", "upper"):
                expected = ev.curve_ci.sel(explainer=name, kind=kind, bound=bound).values
                assert curves["ci"][name][kind][bound] == pytest.approx(expected.tolist())
    # a kind that was not run (all NaN) is not offered
    ev["curve"].loc[dict(kind="insertion")] = np.nan
    assert [k for k, _ in _evaluation_part(example_cube(), ev)["curves"]["kinds"]] == ["deletion"]


def test_an_evaluation_without_curves_sends_only_the_table():
    from expresso_xai.testing import example_evaluation

    ev = example_evaluation().drop_vars(["curve", "curve_ci", "randomisation"])
    part = _evaluation_part(example_cube(), ev)
    assert part["curves"] is None and len(part["table"]["metrics"]) == ev.sizes["metric"]
    assert ex.widgets.Explorer(example_cube())._data["evaluation"] is None


def test_rows_follow_the_cube_and_a_cube_may_have_more_methods_than_were_evaluated():
    from expresso_xai.testing import example_evaluation

    ev = example_evaluation(explainers=["saliency", "gradcam"])
    table = _evaluation_part(example_cube(explainers=["gradcam", "occlusion", "saliency"]), ev)["table"]
    assert table["explainers"] == ["gradcam", "saliency"]
    column = [m["name"] for m in table["metrics"]].index("deletion_morf")
    assert table["score"][1][column] == pytest.approx(float(ev.score.sel(explainer="saliency", metric="deletion_morf")))


def test_an_evaluation_of_another_cube_is_refused():
    from expresso_xai.errors import EvaluationError
    from expresso_xai.testing import example_evaluation

    ev = example_evaluation()
    with pytest.raises(EvaluationError, match=r"explainers \['integrated_gradients'\] that the cube does not have"):
        ex.widgets.Explorer(example_cube(explainers=["gradcam"]), evaluation=ev)
    for key in ("model_hash", "video_hash"):
        cube = example_cube().assign_attrs({key: "a" * 64})
        with pytest.raises(EvaluationError, match=f"{key}.*another model or video"):
            ex.widgets.Explorer(cube, evaluation=ev.assign_attrs({key: "b" * 64}))
        ex.widgets.Explorer(cube, evaluation=ev.assign_attrs({key: "a" * 64}))  # the same: accepted
        ex.widgets.Explorer(cube, evaluation=ev.assign_attrs({key: ""}))  # not recorded: cannot tell
    with pytest.raises(EvaluationError, match="not an evaluation dataset"):
        ex.widgets.Explorer(example_cube(), evaluation=example_cube())


def test_an_evaluation_file_can_be_given_by_its_path(tmp_path):
    from expresso_xai.testing import example_evaluation

    ev = example_evaluation()
    path = tmp_path / "eval.nc"
    ev.to_netcdf(path)
    explorer = ex.widgets.Explorer(example_cube(), evaluation=path)
    assert explorer.evaluation.sizes["metric"] == ev.sizes["metric"]
    assert explorer._data["evaluation"] == _evaluation_part(example_cube(), ev)


def test_evaluation_typedefs_list_exactly_what_the_panel_sends():
    from expresso_xai.testing import example_evaluation

    js = (FRONTEND / "explorer.js").read_text(encoding="utf-8")

    def described(name):
        start = js.index(f"@typedef {{object}} {name}")
        end = js.find("@typedef", start + 1)
        return re.findall(r"@property \{.*?\} (\w+)", js[start:end if end > 0 else js.index("*/", start)])

    part = _evaluation_part(example_cube(), example_evaluation())
    assert described("Evaluation") == list(part)
    assert described("ScoreTable") == list(part["table"])
    assert described("MetricColumn") == list(part["table"]["metrics"][0])
    assert described("Curves") == list(part["curves"])
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js, "text from attrs must never become markup"


def test_metric_definitions_with_markup_stay_text_in_the_standalone_page(tmp_path):
    from expresso_xai.testing import example_evaluation

    ev = example_evaluation()
    definitions = json.loads(ev.attrs["metric_definitions"])
    markup = "</script><img src=x onerror=alert(1)><!--<script>"
    definitions["deletion_morf"]["definition"] = markup
    ev = ev.assign_attrs(metric_definitions=json.dumps(definitions))
    html = ex.widgets.Explorer(example_cube(), evaluation=ev).save_html(tmp_path / "page.html").read_text()
    state = html.split('<script type="application/json" id="xe-state">', 1)[1].split("</script>", 1)[0]
    assert "<" not in state and html.count("<script") == html.count("</script>") == 3
    title = json.loads(state)["_data"]["evaluation"]["table"]["metrics"][0]["title"]
    assert markup in title
