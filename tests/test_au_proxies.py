"""Action-unit proxies from landmarks: each rises with the facial action it stands for,
does not move with an unrelated one, and does not care where or how large the face is."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr

from expresso_xai.faces import FaceTrack
from expresso_xai.faces.proxies import AU_PROXIES, landmark_action_units
from expresso_xai.samples import SampleSpec, base_face, render

EVENTS = ("eye_closure", "brow_raise", "brow_furrow", "mouth_open", "smile")
OWN_EVENT = {"AU01": "brow_raise", "AU02": "brow_raise", "AU04": "brow_furrow", "AU12": "smile",
             "AU25": "mouth_open", "AU26": "mouth_open", "AU45": "eye_closure"}
# an event that moves none of the proxy's landmarks
UNRELATED_EVENT = {"AU01": "mouth_open", "AU02": "smile", "AU04": "eye_closure", "AU12": "eye_closure",
                   "AU25": "brow_furrow", "AU26": "eye_closure", "AU45": "smile"}


def _track(landmarks, face_found=None, frame_size=(192, 192)) -> FaceTrack:
    n = len(landmarks)
    face_found = np.ones(n, bool) if face_found is None else face_found
    return FaceTrack(landmarks, face_found, np.ones(n), np.zeros((n, 4)), np.ones(n, int), frame_size)


@pytest.fixture(scope="module")
def sample():
    """4 s with every kind of event several times (and head motion), the true landmarks."""
    spec = SampleSpec(seed=1, seconds=4, score=30, blink_rate=45, mouth_rate=45, smile_rate=30, raise_rate=30,
                      furrow_rate=30)
    rendered = render(spec)
    return rendered, {name: np.asarray(rendered.truth["tracks"][name]) for name in EVENTS}


@pytest.fixture(scope="module")
def proxies(sample):
    rendered, _ = sample
    return landmark_action_units(_track(rendered.landmarks, frame_size=rendered.frames.shape[1:3]))


RATES = {"eye_closure": "blink_rate", "brow_raise": "raise_rate", "brow_furrow": "furrow_rate",
         "mouth_open": "mouth_rate", "smile": "smile_rate"}


@pytest.fixture(scope="module")
def one_event_video():
    """``video(event) -> (proxies, track)`` of a 3 s video (with head motion) where only
    ``event`` happens (for ``eye_closure``: blinks and the score's long closures), each
    rendered once."""
    videos = {}

    def video(event: str):
        if event not in videos:
            rates = {rate: 60.0 * (name == event) for name, rate in RATES.items()}
            rendered = render(SampleSpec(seed=1, seconds=3, score=40 if event == "eye_closure" else None, **rates))
            tracks = {name: np.asarray(rendered.truth["tracks"][name]) for name in EVENTS}
            assert np.ptp(tracks[event]) > 0.5 and not any(tracks[name].any() for name in EVENTS if name != event)
            videos[event] = landmark_action_units(_track(rendered.landmarks)), tracks[event]
        return videos[event]

    return video


def _by_level(proxies, au: str, track: np.ndarray) -> tuple[np.ndarray, float]:
    """The proxy's mean at each distinct intensity of the event (in increasing order) and
    its largest spread at one intensity. (Not a rank correlation over frames: the exact
    synthetic landmarks keep a proxy constant, up to float rounding, while the event holds
    still, and ranking that rounding means nothing.)"""
    values = proxies.sel(au=au).values.astype(np.float64)
    levels = np.unique(track)
    means = np.array([values[track == level].mean() for level in levels])
    return means, max(np.ptp(values[track == level]) for level in levels)


@pytest.mark.parametrize("au", ["AU45", "AU12", "AU25", "AU26", "AU04"])
def test_a_proxy_is_an_increasing_function_of_its_own_event(one_event_video, au):
    proxies, track = one_event_video(OWN_EVENT[au])
    means, spread = _by_level(proxies, au, track)
    assert spread < 1e-5 and (np.diff(means) > 10 * spread).all(), (au, spread, np.diff(means).min())


@pytest.mark.xfail(strict=True, reason="samples/face.py _deform moves the brows DOWN for brow_raise "
                   "(-up * 0.13 * iod) and up for brow_furrow; the proxies measure the real brow height")
@pytest.mark.parametrize("au", ["AU01", "AU02"])
def test_brow_raise_proxies_rise_with_the_synthetic_brow_raise(one_event_video, au):
    proxies, track = one_event_video("brow_raise")
    means, _ = _by_level(proxies, au, track)
    assert (np.diff(means) > 0).all()


@pytest.mark.parametrize("au", sorted(AU_PROXIES))
def test_an_unrelated_event_does_not_move_a_proxy(one_event_video, au):
    own = np.ptp(one_event_video(OWN_EVENT[au])[0].sel(au=au).values)
    unrelated = np.ptp(one_event_video(UNRELATED_EVENT[au])[0].sel(au=au).values)
    assert own > 0.01  # in inter-ocular distances (AU45: a fraction of the open eye)
    assert unrelated < 1e-3 * own, (au, unrelated, own)


@pytest.mark.parametrize("au", ["AU45", "AU12", "AU25", "AU26"])
def test_a_proxy_correlates_with_its_event_among_all_the_others(proxies, sample, au):
    _, tracks = sample
    rho = spearmanr(proxies.sel(au=au).values, tracks[OWN_EVENT[au]])[0]
    assert rho > 0.6, (au, rho)


def test_eye_closure_proxy_is_the_closed_fraction_of_the_lids_gap(one_event_video):
    """The synthetic lids close 98% of their gap at closure 1 (0.78 down, 0.20 up), and
    the eye's width does not change, so AU45 = 0.98 * closure when the eyes are open
    most of the time."""
    proxies, closure = one_event_video("eye_closure")
    np.testing.assert_allclose(proxies.sel(au="AU45").values, 0.98 * closure, atol=2e-3)


def _brows_moved(n_frames: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Landmarks of the sample portrait whose brows are raised (frames of the first half)
    or lowered and drawn together (second half), by hand along the face's true up, each
    frame then rotated, scaled and moved at random."""
    face = base_face()[1]
    iod = np.linalg.norm(face[45] - face[36])
    up = (face[27] - face[8]) / np.linalg.norm(face[27] - face[8])
    # towards the nose: the subject's right brow (19-21) to the image's right, the left one back
    inward = np.where(np.arange(19, 25) < 22, 1.0, -1.0)[:, None] * (face[45] - face[36]) / iod
    half = n_frames // 2
    raised = np.r_[rng.uniform(0, 1, half), np.zeros(n_frames - half)]
    lowered = np.r_[np.zeros(half), rng.uniform(0, 1, n_frames - half)]
    frames = np.repeat(face[None], n_frames, axis=0)
    frames[:, 17:27] += raised[:, None, None] * 0.12 * iod * up
    frames[:, 19:25] += lowered[:, None, None] * iod * (-0.05 * up + 0.04 * inward)
    angles, scales = rng.uniform(-0.3, 0.3, n_frames), rng.uniform(0.5, 2.0, n_frames)
    rotations = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)], -1).reshape(-1, 2, 2)
    moved = np.einsum("tij,tpj->tpi", rotations * scales[:, None, None], frames)
    return moved + rng.uniform(-50, 50, (n_frames, 1, 2)), raised, lowered


def test_brow_proxies_follow_brows_raised_and_lowered_by_hand(rng):
    landmarks, raised, lowered = _brows_moved(40, rng)
    proxies = landmark_action_units(_track(landmarks, frame_size=(400, 400)))
    first, second = slice(0, 20), slice(20, 40)
    for au in ("AU01", "AU02"):
        assert spearmanr(proxies.sel(au=au).values[first], raised[first])[0] > 0.99
    assert spearmanr(proxies.sel(au="AU04").values[first], raised[first])[0] < -0.99
    assert spearmanr(proxies.sel(au="AU04").values[second], lowered[second])[0] > 0.99
    assert spearmanr(proxies.sel(au="AU01").values[second], lowered[second])[0] < -0.99
    for au in ("AU12", "AU25", "AU26", "AU45"):  # nothing else moved
        assert np.ptp(proxies.sel(au=au).values) < 1e-4, au


def test_proxies_do_not_change_when_the_face_is_scaled_moved_or_rotated(sample, proxies):
    rendered, _ = sample
    angle = np.deg2rad(12.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    for transform in (lambda p: 2.5 * p + np.array([40.0, -13.0]), lambda p: 0.4 * p @ rotation.T + 7.0):
        moved = landmark_action_units(_track(transform(rendered.landmarks.astype(np.float64))))
        np.testing.assert_allclose(moved.values, proxies.values, atol=2e-5)


def test_frames_without_a_face_are_nan(sample, proxies):
    rendered, _ = sample
    face_found = np.ones(len(rendered.landmarks), bool)
    face_found[[0, 7, 8, 30]] = False
    partial = landmark_action_units(_track(rendered.landmarks, face_found))
    assert np.isnan(partial.values[~face_found]).all() and np.isfinite(partial.values[face_found]).all()
    np.testing.assert_array_equal(partial.values[face_found][:, :-1], proxies.values[face_found][:, :-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" on a track without any face
        nothing = landmark_action_units(_track(rendered.landmarks[:5], np.zeros(5, bool)))
    assert np.isnan(nothing.values).all()


def test_the_result_names_its_source_and_definitions(proxies, sample):
    rendered, _ = sample
    assert proxies.dims == ("time", "au") and proxies.dtype == np.float32
    np.testing.assert_array_equal(proxies["time"].values, np.arange(len(rendered.landmarks)))
    assert list(proxies["au"].values) == ["AU01", "AU02", "AU04", "AU12", "AU25", "AU26", "AU45"]
    assert proxies.attrs["au_source"] == "landmarks"
    definitions = json.loads(proxies.attrs["definitions"])
    assert set(definitions) == set(proxies["au"].values) and "inter-ocular" in definitions["AU01"]
