"""Synthetic samples: a researcher generates face videos whose events are known.

The story: render a short clip of the animated astronaut portrait, read its ground truth,
check that the planted eye closures really show in the pixels and in what our own
landmarker sees, write the clip to disk as a video, a truth JSON and an OpenFace CSV,
build a small cohort whose score is planted in the eyes, and find the shipped samples
again (regenerated when missing). Each test checks a property that would be false if
the generator lied: same seed, same pixels; the score follows the stated rule; a closed
eye loses its dark iris and its eye aspect ratio; tracked landmarks sit on the true ones.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.samples import (
    EVENT_REGIONS,
    MAX_CLOSED_FRACTION,
    SCORE_MAX,
    SHIPPED,
    SampleSpec,
    make_cohort,
    render,
    sample_path,
    write_sample,
)

REPO_SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"

#: The clip most tests look at: 3 s of long eye closures (score at the top of the scale).
#: Blinks are switched off so that every closed frame belongs to a long closure.
CLOSING_SPEC = SampleSpec(seed=3, seconds=3, score=63, blink_rate=0, name="closing")

EXPRESSION_TRACKS = {"long_closure": "eye_closure", "blink": "eye_closure", "brow_raise": "brow_raise",
                     "brow_furrow": "brow_furrow", "mouth_open": "mouth_open", "smile": "smile"}
DISTRACTORS = {"blink", "mouth_open", "smile", "brow_raise", "brow_furrow", "lighting"}
#: Distractor rates far above the defaults, so that even a 2 s clip holds every kind.
BUSY = dict(blink_rate=120, mouth_rate=120, smile_rate=60, raise_rate=90, furrow_rate=90, lighting_change=True)


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> ex.samples.Sample:
    return render(CLOSING_SPEC)


@pytest.fixture(scope="module")
def eye_state(sample) -> dict[str, np.ndarray]:
    """Frames where the true eye closure is about 0 (open) and about 1 (closed)."""
    closure = np.asarray(sample.truth["tracks"]["eye_closure"])
    state = {"open": closure < 0.05, "closed": closure > 0.9}
    assert state["open"].sum() >= 10 and state["closed"].sum() >= 10, state
    return state


@pytest.fixture(scope="module")
def tracked(sample) -> ex.FaceTrack:
    return ex.track_faces(sample.to_video(), progress=False)


@pytest.fixture(scope="module")
def written(sample, tmp_path_factory) -> dict[str, Path]:
    return write_sample(sample, tmp_path_factory.mktemp("written"))


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    """``sample_path`` with ``EXPRESSO_XAI_SAMPLES`` pointing at an empty directory:
    the shipped sample must be rendered again there (once per module: a 10 s render)."""
    folder = tmp_path_factory.mktemp("regenerated_samples")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXPRESSO_XAI_SAMPLES", str(folder))
        return sample_path("participant_low")


def eye_box(frame: np.ndarray, landmarks: np.ndarray, first: int) -> np.ndarray:
    """Gray pixels of a small box over one eye (``first``: 36 subject's right, 42 left).

    The box is built from the eye corners only, which do not move when the lids close,
    so the same patch of face is compared in open and closed frames."""
    corner_a, corner_b = landmarks[first], landmarks[first + 3]
    centre = (corner_a + corner_b) / 2
    width = float(np.linalg.norm(corner_b - corner_a))
    x0, x1 = int(round(centre[0] - 0.3 * width)), int(round(centre[0] + 0.3 * width))
    y0, y1 = int(round(centre[1] - 0.2 * width)), int(round(centre[1] + 0.1 * width))
    return frame[y0 : y1 + 1, x0 : x1 + 1].astype(np.float64).mean(axis=-1)


def long_closure_frames(truth: dict) -> np.ndarray:
    frames = np.zeros(truth["n_frames"], bool)
    for event in truth["events"]:
        if event["type"] == "long_closure":
            frames[event["start"] : event["end"]] = True
    return frames


# --- rendering ----------------------------------------------------------------------------


def test_same_spec_renders_the_same_video_and_another_seed_does_not():
    spec = SampleSpec(seed=7, seconds=1, score=40, name="twice")
    first, second = render(spec), render(spec)
    other = render(SampleSpec(seed=8, seconds=1, score=40, name="twice"))

    assert first.frames.shape == (25, 192, 192, 3) and first.frames.dtype == np.uint8
    np.testing.assert_array_equal(first.frames, second.frames)
    np.testing.assert_array_equal(first.landmarks, second.landmarks)
    assert first.truth == second.truth
    assert other.frames.shape == first.frames.shape
    changed = np.abs(first.frames.astype(int) - other.frames.astype(int)).mean()
    assert changed > 2.0, f"seed 8 renders nearly the same pixels as seed 7 (mean |diff| {changed:.2f})"


def test_truth_json_describes_every_frame_and_event(sample, written):
    truth = json.loads(written["truth"].read_text())
    n = truth["n_frames"]

    assert truth == json.loads(json.dumps(sample.truth))
    assert truth["fps"] == 25.0 and n == 75 == len(sample.frames)
    assert truth["frame_size"] == [192, 192] == list(sample.frames.shape[1:3])
    assert truth["name"] == "closing" and truth["spec"]["seed"] == 3

    tracks = {name: np.asarray(values) for name, values in truth["tracks"].items()}
    assert set(tracks) == {"eye_closure", "brow_raise", "brow_furrow", "mouth_open", "smile", "lighting"}
    for name, values in tracks.items():
        assert values.shape == (n,), name
        assert values.min() >= 0 and values.max() <= 1, name
    assert tracks["lighting"].min() > 0

    assert truth["events"], "a 3 s clip with score 63 must hold long closures"
    explained = {name: np.zeros(n, bool) for name in tracks}
    for event in truth["events"]:
        assert set(event) == {"type", "start", "end", "intensity", "regions"}, event
        assert event["regions"] == EVENT_REGIONS[event["type"]]
        assert 0 <= event["start"] < event["end"] <= n and 0 < event["intensity"] <= 1, event
        span = slice(event["start"], event["end"])
        if event["type"] == "lighting":  # the light dips by the event's intensity
            assert tracks["lighting"][span].min() == pytest.approx(1 - event["intensity"], abs=2e-3)
            explained["lighting"][span] = True
        else:  # the expression track peaks at the event's intensity inside the event
            track = EXPRESSION_TRACKS[event["type"]]
            assert tracks[track][span].max() == pytest.approx(event["intensity"], abs=2e-3), event
            explained[track][span] = True
    for name, values in tracks.items():  # nothing moves outside an event
        rest = 1.0 if name == "lighting" else 0.0
        np.testing.assert_array_equal(values[~explained[name]], rest, err_msg=name)

    eye_closed = np.asarray(truth["eye_closed"])
    assert eye_closed.shape == (n,) and set(np.unique(eye_closed)) <= {0, 1}
    np.testing.assert_array_equal(eye_closed.astype(bool), tracks["eye_closure"] >= 0.5)


# --- the planted score ----------------------------------------------------------------------


def test_score_is_planted_in_long_closures_by_the_stated_rule():
    closed_frames = []
    for requested in (0, 15, 30, 45, 63):
        truth = render(SampleSpec(seed=1, seconds=2, score=requested)).truth
        closed = np.asarray(truth["eye_closed"], bool) & long_closure_frames(truth)
        fraction = closed.mean()
        assert truth["closed_fraction"] == pytest.approx(fraction, abs=1e-4), requested
        rule = min(SCORE_MAX, SCORE_MAX * fraction / MAX_CLOSED_FRACTION)
        assert truth["score"] == pytest.approx(rule, abs=0.01), (requested, truth["score"], rule)
        closed_frames.append(int(closed.sum()))
    assert closed_frames[0] == 0
    assert all(a < b for a, b in zip(closed_frames, closed_frames[1:])), (
        f"long-closure frames for scores 0, 15, 30, 45, 63: {closed_frames}; should grow with the score"
    )
    assert truth["score"] == SCORE_MAX


@pytest.mark.parametrize("seconds", [0.4, 1.0])
def test_events_stay_inside_even_a_very_short_clip(seconds):
    """A clip shorter than the shortest long closure (0.5 s) still keeps every event
    inside its frames (``end <= n_frames``), so ``truth`` never points past the video."""
    truth = render(SampleSpec(seed=0, seconds=seconds, score=63, size=64)).truth
    n = truth["n_frames"]
    outside = [event for event in truth["events"] if not 0 <= event["start"] < event["end"] <= n]
    assert not outside, f"{n}-frame clip has events past its end: {outside}"


def test_a_spec_without_frames_is_refused_with_a_typed_error():
    with pytest.raises(ex.samples.SampleSpecError, match="at least one frame; 0.01 s at 25.0 fps"):
        render(SampleSpec(seconds=0.01))
    assert issubclass(ex.samples.SampleSpecError, ValueError)  # what callers caught before it had a type
    assert issubclass(ex.samples.SampleSpecError, ex.errors.ExpressoError)


def test_no_score_means_no_long_closures():
    truth = render(SampleSpec(seed=4, seconds=2, score=None, **BUSY)).truth
    assert truth["score"] is None and truth["closed_fraction"] == 0
    assert not any(event["type"] == "long_closure" for event in truth["events"])


@pytest.mark.parametrize("score", [None, 0, 63])
def test_distractor_events_happen_whatever_the_score(score):
    truth = render(SampleSpec(seed=5, seconds=2, score=score, **BUSY)).truth
    kinds = {event["type"] for event in truth["events"]}
    assert DISTRACTORS <= kinds, f"score {score}: missing distractors {DISTRACTORS - kinds}"


# --- eye closure is visible -----------------------------------------------------------------


def test_closed_eyes_lose_their_dark_iris_in_the_pixels(sample, eye_state):
    for first, eye in ((36, "right"), (42, "left")):
        boxes = [eye_box(frame, marks, first) for frame, marks in zip(sample.frames, sample.landmarks)]
        darkest = np.array([np.percentile(box, 10) for box in boxes])  # iris and pupil when open
        contrast = np.array([box.std() for box in boxes])
        dark_open, dark_closed = darkest[eye_state["open"]].mean(), darkest[eye_state["closed"]].mean()
        contrast_open, contrast_closed = contrast[eye_state["open"]].mean(), contrast[eye_state["closed"]].mean()
        numbers = (f"{eye} eye box: 10th percentile open {dark_open:.1f} closed {dark_closed:.1f}, "
                   f"std open {contrast_open:.1f} closed {contrast_closed:.1f}")
        assert dark_closed > dark_open + 8, numbers
        assert contrast_closed < 0.8 * contrast_open, numbers


def test_our_landmarker_sees_the_eyes_close(tracked, eye_state):
    assert tracked.face_found.mean() >= 0.95, f"face found in {tracked.face_found.mean():.0%} of frames"
    for eye in ("right", "left"):
        ratio = tracked.eye_aspect_ratio(eye)
        opened = np.nanmean(ratio[eye_state["open"]])
        closed = np.nanmean(ratio[eye_state["closed"]])
        numbers = f"{eye} eye aspect ratio: open {opened:.3f}, closed {closed:.3f}"
        assert opened > 0.25, numbers  # measured about 0.34
        assert closed < 0.7 * opened and opened - closed > 0.1, numbers  # measured about 0.17


def test_tracked_landmarks_sit_on_the_true_landmarks(sample, tracked):
    inter_ocular = ex.faces.inter_ocular_distance(sample.landmarks)
    error = np.linalg.norm(tracked.landmarks - sample.landmarks, axis=-1).mean(axis=-1) / inter_ocular
    numbers = f"landmark error / inter-ocular distance: mean {np.nanmean(error):.4f}, worst frame {np.nanmax(error):.4f}"
    assert np.nanmean(error) < 0.025, numbers  # measured 0.0145
    assert np.nanmax(error) < 0.04, numbers  # measured 0.018


# --- writing to disk --------------------------------------------------------------------------


def test_written_sample_reloads_as_video_and_openface_csv(sample, written):
    assert {path.suffix for path in written.values()} == {".mp4", ".json", ".csv"}
    assert written["openface"].name == "closing.openface.csv"
    assert all(path.exists() and path.stat().st_size > 0 for path in written.values())

    video = ex.load_video(written["video"])
    assert video.n_frames == sample.truth["n_frames"] and video.fps == sample.truth["fps"]
    assert (video.height, video.width) == tuple(sample.truth["frame_size"])
    # lossy codec: close to the rendered pixels, not equal
    assert np.abs(video.frames.astype(int) - sample.frames.astype(int)).mean() < 6

    faces, action_units = ex.read_openface(written["openface"])
    assert faces.face_found.all()
    np.testing.assert_allclose(faces.landmarks, sample.landmarks, atol=0.05 + 1e-4)
    closure = np.asarray(sample.truth["tracks"]["eye_closure"])
    np.testing.assert_allclose(action_units.sel(au="AU45").values, 5 * closure, atol=0.006)


# --- a cohort ----------------------------------------------------------------------------------


def read_manifest(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_cohort_has_spread_scores_and_resumes_without_rewriting(tmp_path):
    cohort = tmp_path / "cohort"
    manifest = make_cohort(cohort, n_participants=4, seconds=1, progress=False)
    assert manifest == cohort / "manifest.csv"
    assert manifest.read_text().splitlines()[0] == "video,participant,score,split,openface"
    rows = read_manifest(manifest)
    assert len(rows) == 4 and len({row["participant"] for row in rows}) == 4
    assert {row["split"] for row in rows} <= {"train", "val", "test"}
    for row in rows:
        assert (cohort / row["video"]).is_file(), row
        truth = json.loads((cohort / f"{row['participant']}.json").read_text())
        assert float(row["score"]) == truth["score"]
    scores = sorted(float(row["score"]) for row in rows)
    assert scores[0] == 0 and scores[-1] >= 50, f"scores {scores} do not span the 0-63 scale"
    assert all(0 <= s <= SCORE_MAX for s in scores) and len(set(scores)) >= 3, scores

    written_files = sorted(p for p in cohort.iterdir() if p.name != "manifest.csv")
    assert len(written_files) == 4 * 3
    stamps = {p: p.stat().st_mtime_ns for p in written_files}
    first_manifest = manifest.read_text()

    again = make_cohort(cohort, n_participants=4, seconds=1, progress=False)
    assert again.read_text() == first_manifest
    assert {p: p.stat().st_mtime_ns for p in written_files} == stamps, "resuming rewrote participants"


# --- shipped samples -------------------------------------------------------------------------


def test_unknown_sample_name_says_which_names_exist():
    with pytest.raises(KeyError) as caught:
        sample_path("participant_unknown")
    message = str(caught.value)
    assert "participant_unknown" in message
    assert all(name in message for name in SHIPPED), message


def test_missing_sample_is_regenerated_where_the_environment_points(regenerated):
    assert regenerated.name == "participant_low.mp4" and regenerated.is_file()
    assert {p.name for p in regenerated.parent.iterdir()} == {
        "participant_low.mp4", "participant_low.json", "participant_low.openface.csv"}
    video = ex.load_video(regenerated)
    assert video.n_frames == 250 and video.fps == 25.0


def test_shipped_truth_files_are_reproducible(regenerated):
    """What ``render(SHIPPED[name])`` gives today is what ``data_samples/`` holds."""
    for name, spec in SHIPPED.items():
        shipped = json.loads((REPO_SAMPLES / f"{name}.json").read_text())
        if name == "participant_low":  # rendered from SHIPPED by sample_path already
            today = json.loads(regenerated.with_suffix(".json").read_text())
        else:
            today = json.loads(json.dumps(render(spec).truth))
        assert today == shipped, f"{name}: data_samples/{name}.json no longer matches render(SHIPPED[{name!r}])"


def test_shipped_samples_are_small():
    files = [p for p in REPO_SAMPLES.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {f"{name}{suffix}" for name in SHIPPED
                                       for suffix in (".mp4", ".json", ".openface.csv")}
    total = sum(p.stat().st_size for p in files)
    assert total <= 10 * 1024 * 1024, f"data_samples/ holds {total / 1e6:.1f} MB"
