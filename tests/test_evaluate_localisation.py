"""Localisation metrics (pointing game, relevance mass, relevance rank), off-face relevance
and the ground truths they are scored against: sample JSONs and OpenFace action units.

The cubes are made with make_cube over the shipped participant_high's 250 frames, with
attributions whose scores are known in closed form."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.cube import make_cube
from expresso_xai.errors import EvaluationError
from expresso_xai.evaluate.truth import AU_REGIONS, au_truth, blank_truth
from expresso_xai.regions import BOX_REGIONS, PARTITION_REGIONS

REGIONS = list(PARTITION_REGIONS)
EYES = ["right_eye", "left_eye"]
SMILE = ["mouth", "right_cheek", "left_cheek"]
LOCALISATION = ["pointing_game", "relevance_mass", "relevance_rank"]
N_FRAMES, FPS = 250, 25.0
NO_FACE = [70, 120, 190]  # inside a long closure, a smile and a long closure of participant_high


def areas(rng, n_frames=N_FRAMES, regions=REGIONS, no_face=NO_FACE):
    """Pixels per region: 80-600 on the face, the rest of a 112x112 input background;
    frames in ``no_face`` all background, and the right eye without pixels in frame 75."""
    area = rng.integers(80, 600, size=(n_frames, len(regions)))
    background = regions.index("background")
    area[no_face] = 0
    if "right_eye" in regions and n_frames > 75:
        area[75, regions.index("right_eye")] = 0
    area[:, background] = 112 * 112 - area.sum(axis=1) + area[:, background]
    return area


def cube_of(attribution, area, explainers=None, regions=REGIONS, no_face=NO_FACE, scheme="partition"):
    attribution = np.asarray(attribution, dtype=np.float64)
    n_frames = attribution.shape[1]
    face_found = np.ones(n_frames, bool)
    face_found[no_face] = False
    explainers = explainers or [f"explainer_{i}" for i in range(len(attribution))]
    return make_cube(attribution, explainers=explainers, time=np.arange(n_frames), seconds=np.arange(n_frames) / FPS,
                     regions=regions, region_area=area, face_found=face_found, prediction=0.0, target="regression",
                     attrs={"region_scheme": scheme, "video_n_frames": n_frames, "video_fps": FPS})


def scores(cube, truth=None, metrics=LOCALISATION, **kwargs):
    return ex.evaluate(None, None, cube, metrics=metrics, truth=truth, progress=False, **kwargs)


def score_of(ev, metric):
    """The score of a one-explainer evaluation."""
    return float(ev.score.sel(metric=metric).squeeze())


@pytest.fixture(scope="module")
def planted():
    """participant_high's long closures (eyes) and smiles (mouth, cheeks) as the truth of
    a 250-frame cube; three frames without a face, one eye without pixels in frame 75."""
    rng = np.random.default_rng(7)
    area = areas(rng)
    template = cube_of(np.zeros((1, N_FRAMES, len(REGIONS))), area)
    truth = ex.samples.truth_mask("participant_high", template, events=["long_closure", "smile"])
    evaluated = template.face_found.values[:, None] & (area > 0)
    return area, truth, truth.values & evaluated, evaluated


# --- the three localisation scores ------------------------------------------------------


def test_the_exact_explainer_scores_one_and_the_shifted_one_zero(planted):
    area, truth, _, _ = planted
    mask = truth.values.astype(np.float64)
    exact = 2.5 * mask * area
    shifted = 2.5 * mask.any(axis=1, keepdims=True) * (1 - mask) * area  # the same frames, every other region
    ev = scores(cube_of([exact, shifted], area, ["exact", "shifted"]), truth)
    np.testing.assert_allclose(ev.score.sel(explainer="exact").values, 1.0)
    np.testing.assert_allclose(ev.score.sel(explainer="shifted").values, 0.0)


def test_a_region_does_not_win_by_its_size(planted):
    """Truth × 1 on the face, and a larger sum spread over the background: by density
    the true regions are on top in every frame, by raw attribution the background."""
    area, truth, true, _ = planted
    attribution = truth.values * 1.0
    attribution[:, REGIONS.index("background")] = 5.0
    ev = scores(cube_of([attribution], area), truth)
    assert score_of(ev, "pointing_game") == pytest.approx(1.0)
    assert score_of(ev, "relevance_rank") == pytest.approx(1.0)
    face_frames = np.ones(N_FRAMES, bool)
    face_frames[NO_FACE] = False
    expected_mass = true.sum() / (true.sum() + 5.0 * face_frames.sum())
    assert score_of(ev, "relevance_mass") == pytest.approx(expected_mass, rel=1e-6)


def test_information_free_attributions_score_the_chance_level(planted):
    """200 explainers with i.i.d. random positive values on the evaluated units: for the
    densities, the pointing game of a frame is a uniform pick among its regions with
    pixels and the top-k a uniform draw of k units; for the attributions, each unit holds
    the same expected share of the mass. The mean scores are those chances."""
    area, truth, true, evaluated = planted
    rng = np.random.default_rng(11)
    n = 200
    density = np.where(evaluated, rng.uniform(0.1, 1.0, size=(n, *area.shape)), 0.0)
    attribution = np.where(evaluated, rng.uniform(0.1, 1.0, size=(n, *area.shape)), 0.0)
    ev = scores(cube_of(np.concatenate([density * area, attribution]), area), truth)
    frames = true.any(axis=1)
    expected = {"pointing_game": np.mean(true[frames].sum(axis=1) / evaluated[frames].sum(axis=1)),
                "relevance_rank": true.sum() / evaluated.sum(), "relevance_mass": true.sum() / evaluated.sum()}
    params = json.loads(ev.attrs["evaluation"])
    for metric, chance in expected.items():
        family = slice(n, 2 * n) if metric == "relevance_mass" else slice(0, n)
        values = ev.score.sel(metric=metric).values[family]
        error = values.std() / np.sqrt(n)
        assert error < 0.01
        assert abs(values.mean() - chance) < 4 * error, (metric, values.mean(), chance)
        assert params[metric]["chance"] == pytest.approx(chance)
    assert 0.1 < expected["pointing_game"] < 0.5 and expected["relevance_rank"] < 0.2


def one_frame_cube(values, regions=REGIONS, scheme="partition"):
    """Frames whose face regions have 100 pixels each, attribution = density × area."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    area = np.full(values.shape, 100)
    area[:, regions.index("background")] = 10_000
    return cube_of((values * area)[None], area, ["saliency"], regions=regions, no_face=[], scheme=scheme)


def truth_on(cube, by_frame):
    truth = blank_truth(cube)
    for frame, regions in by_frame.items():
        truth.loc[{"time": frame, "region": regions}] = True
    return truth


def density_row(**values):
    row = np.zeros(len(REGIONS))
    for region, value in values.items():
        row[REGIONS.index(region)] = value
    return row


def test_ties_share_the_point_and_frames_without_positive_density_miss():
    frames = [density_row(right_eye=1.0, mouth=1.0, nose=0.5),  # tie of a true and a false region: 1/2
              np.full(len(REGIONS), -1.0),  # nothing positive: a miss, though an eye is the highest-equal
              density_row(left_eye=2.0, right_eye=2.0, mouth=1.0)]  # both tied regions true: 1
    cube = one_frame_cube(frames)
    ev = scores(cube, truth_on(cube, {0: EYES, 1: EYES, 2: EYES}), metrics=["pointing_game"])
    assert score_of(ev, "pointing_game") == pytest.approx((0.5 + 0 + 1) / 3)
    params = json.loads(ev.attrs["evaluation"])["pointing_game"]
    assert params["frames_without_positive"] == {"saliency": 1} and params["frames"] == 3


def test_relevance_rank_shares_the_last_places_among_ties_and_counts_only_positive_units():
    cube = one_frame_cube([density_row(right_eye=3.0, left_eye=1.0, mouth=1.0, nose=-2.0)])
    truth = truth_on(cube, {0: EYES})  # k = 2: right_eye, then one place for two tied units
    assert float(scores(cube, truth, ["relevance_rank"]).score.squeeze()) == pytest.approx((1 + 0.5) / 2)
    cube = one_frame_cube([density_row(right_eye=3.0, mouth=-1.0)])  # one positive unit for k = 2
    assert float(scores(cube, truth, ["relevance_rank"]).score.squeeze()) == pytest.approx(0.5)


def test_relevance_mass_counts_only_positive_attribution():
    cube = one_frame_cube([density_row(right_eye=3.0, mouth=1.0, nose=-5.0)])
    ev = scores(cube, truth_on(cube, {0: EYES}), ["relevance_mass"])
    assert float(ev.score.squeeze()) == pytest.approx(0.75)
    cube = one_frame_cube([np.full(len(REGIONS), -1.0)])
    assert float(scores(cube, truth_on(cube, {0: EYES}), ["relevance_mass"]).score.squeeze()) == 0.0


def test_a_truth_only_in_frames_without_a_face_gives_nan_with_a_note(planted):
    area, *_ = planted
    cube = cube_of(np.ones((1, N_FRAMES, len(REGIONS))), area)
    ev = scores(cube, truth_on(cube, {NO_FACE[0]: EYES}))
    assert np.isnan(ev.score.values).all()
    assert "nothing to localise" in json.loads(ev.attrs["evaluation"])["pointing_game"]["note"]


# --- off-face relevance -----------------------------------------------------------------


def on_regions(area, **values):
    attribution = np.zeros(area.shape)
    for region, value in values.items():
        attribution[:, REGIONS.index(region)] = value
    return attribution


def test_off_face_is_the_share_of_magnitude_off_the_face(planted):
    area, *_ = planted
    background = on_regions(area, background=1.0)
    eyes = on_regions(area, right_eye=1.0, left_eye=2.0)
    mixed = on_regions(area, background=-3.0, right_eye=1.0)
    mixed[NO_FACE, REGIONS.index("background")] = 100.0  # frames without a face do not count
    other = on_regions(area, face_other=1.0, mouth=3.0)
    ev = scores(cube_of([background, eyes, mixed, other], area, ["background", "eyes", "mixed", "other"]),
                metrics=["off_face"])
    assert ev.score.sel(metric="off_face").values.tolist() == pytest.approx([1.0, 0.0, 0.75, 0.25])
    assert ev.passed.sel(metric="off_face").values.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert ev.better.sel(metric="off_face").item() == "lower"
    loose = scores(cube_of([mixed], area), metrics=["off_face"], thresholds={"off_face": 0.8})
    assert float(loose.passed.squeeze()) == 1.0


def test_off_face_without_face_other_uses_the_background_and_without_background_is_nan():
    boxes = list(BOX_REGIONS)
    rng = np.random.default_rng(3)
    area = areas(rng, 20, boxes, no_face=[])
    attribution = np.zeros((1, 20, len(boxes)))
    attribution[0, :, boxes.index("background")] = 1.0
    attribution[0, :, boxes.index("mouth")] = 3.0
    ev = scores(cube_of(attribution, area, regions=boxes, no_face=[], scheme="boxes"), metrics=["off_face"])
    assert float(ev.score.squeeze()) == pytest.approx(0.25)
    params = json.loads(ev.attrs["evaluation"])["off_face"]
    assert params["regions"] == ["background"] and "overlap" in params["note"]
    face_only = [r for r in REGIONS if r != "background"]
    cube = cube_of(np.ones((1, 20, len(face_only))), np.full((20, len(face_only)), 10), regions=face_only, no_face=[])
    ev = scores(cube, metrics=["off_face"])
    assert np.isnan(float(ev.score.squeeze())) and np.isnan(float(ev.passed.squeeze()))
    assert "no background" in json.loads(ev.attrs["evaluation"])["off_face"]["note"]


# --- ground truth from a sample's JSON --------------------------------------------------


def blank_cube(first=0, n_frames=N_FRAMES, fps=FPS):
    cube = cube_of(np.zeros((1, n_frames, len(REGIONS))), np.ones((n_frames, len(REGIONS))), no_face=[])
    frames = np.arange(first, first + n_frames)
    cube = cube.assign_coords(time=frames, seconds=("time", frames / fps))
    cube.attrs.update(video_n_frames=n_frames, video_fps=fps)
    return cube


def frames_of(events, kind):
    frames = np.zeros(N_FRAMES, bool)
    for event in events:
        if event["type"] == kind:
            frames[event["start"]:event["end"]] = True
    return frames


def marked(truth, regions):
    """(time,) bool: frames in which exactly ``regions`` are true."""
    wanted = truth.region.isin(regions).values
    return (truth.values == wanted).all(axis=1)


def test_truth_mask_marks_the_eyes_exactly_in_the_long_closures():
    events = ex.samples.load_truth("participant_high")["events"]
    closing = frames_of(events, "long_closure")
    truth = ex.samples.truth_mask("participant_high", blank_cube())
    assert truth.dims == ("time", "region") and truth.dtype == bool and closing.sum() > 50
    assert marked(truth, EYES)[closing].all()
    assert not truth.values[~closing].any()
    assert not frames_of(events, "blink")[closing].any()  # blinks are distractors, left out


def test_truth_mask_marks_other_events_when_asked():
    events = ex.samples.load_truth("participant_high")["events"]
    smiling = frames_of(events, "smile")
    truth = ex.samples.truth_mask("participant_high", blank_cube(), events=["smile"])
    assert smiling.any() and marked(truth, SMILE)[smiling].all() and not truth.values[~smiling].any()
    with pytest.raises(EvaluationError, match="no event type 'yawn'"):
        ex.samples.truth_mask("participant_high", blank_cube(), events=["yawn"])


def test_truth_mask_of_part_of_the_video_keeps_the_cube_frames():
    part = blank_cube(first=50, n_frames=48)  # high_video[50:98]: a long closure from frame 63
    truth = ex.samples.truth_mask("participant_high", part)
    closing = frames_of(ex.samples.load_truth("participant_high")["events"], "long_closure")[50:98]
    assert truth.time.values.tolist() == list(range(50, 98))
    assert marked(truth, EYES)[closing].all() and not truth.values[~closing].any()


@pytest.mark.parametrize("change, words", [({"n_frames": 100}, ["100 frames", "has 250"]),
                                           ({"fps": 30.0}, ["30 fps", "at 25 fps"])])
def test_truth_mask_refuses_the_json_of_another_video(tmp_path, change, words):
    record = ex.samples.load_truth("participant_high")
    path = tmp_path / "other.json"
    path.write_text(json.dumps({**record, **change}))
    with pytest.raises(EvaluationError, match="other.json") as raised:
        ex.samples.truth_mask(path, blank_cube())
    assert all(word in str(raised.value) for word in words)


# --- ground truth from OpenFace action units --------------------------------------------


def csv_column(path, name):
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, skipinitialspace=True))
    return np.array([float(row[name]) for row in rows])


def test_au_truth_marks_the_eyes_where_au45_is_present():
    path = ex.samples.sample_path("participant_high", "openface")
    present = csv_column(path, "AU45_c") == 1
    truth = au_truth(path, blank_cube(), aus=["AU45"])
    assert present.sum() > 50
    assert marked(truth, EYES)[present].all() and not truth.values[~present].any()
    intense = csv_column(path, "AU45_r") >= 3.0
    strong = au_truth(ex.read_openface(path), blank_cube(), aus=[45], threshold=3.0)
    assert 0 < intense.sum() < present.sum() and (strong.any("region").values == intense).all()


def test_au_truth_with_every_unit_is_the_union_of_their_regions():
    path = ex.samples.sample_path("participant_high", "openface")
    truth = au_truth(path, blank_cube())
    expected = np.zeros(truth.shape, bool)
    for au, regions in AU_REGIONS.items():
        present = csv_column(path, f"{au}_c") == 1
        expected[np.ix_(present, truth.region.isin(list(regions)).values)] = True
    assert (truth.values == expected).all()
    assert truth.sel(region=["mouth", "right_cheek"]).any().item()  # the smiles' AU06 and AU12


def test_au_truth_refuses_a_csv_of_another_video_and_unknown_units(tmp_path):
    path = ex.samples.sample_path("participant_high", "openface")
    short = tmp_path / "short.openface.csv"
    short.write_text("".join(path.read_text().splitlines(keepends=True)[:101]))  # header + 100 frames
    with pytest.raises(EvaluationError, match="short.openface.csv is for a video of 100 frames.*has 250"):
        au_truth(short, blank_cube())
    with pytest.raises(EvaluationError, match="AU99"):
        au_truth(path, blank_cube(), aus=["AU99"])


def test_every_au_openface_reports_has_regions_of_the_partition():
    assert set(ex.samples.OPENFACE_AUS_R) <= set(AU_REGIONS)
    assert all(set(regions) <= set(REGIONS) - {"background", "face_other"} for regions in AU_REGIONS.values())


def test_a_ground_truth_file_that_is_missing_or_not_json_is_a_typed_error(tmp_path):
    from expresso_xai.errors import EvaluationError

    with pytest.raises(EvaluationError, match="no such ground-truth file"):
        ex.samples.load_truth(tmp_path / "missing.json")
    (tmp_path / "video.json").write_bytes(b"\x00\x01 not json")
    with pytest.raises(EvaluationError, match="not a sample.s ground-truth JSON file"):
        ex.samples.load_truth(tmp_path / "video.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(EvaluationError, match="not a sample's ground truth"):
        ex.samples.load_truth(tmp_path / "list.json")
