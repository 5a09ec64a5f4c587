"""The demo model: it loads with its card, rates participants it never saw better than
guessing the mean, and its explanations find the signal planted in the eyes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

import expresso_xai as ex
from expresso_xai import samples
from expresso_xai.errors import ModelError
from expresso_xai.models import demo

#: Held-out participants: seeds the training cohort does not use, scores spread over the
#: scale, videos longer than the cohort's (so the mean over clips must carry over). The
#: realised score is read back from the ground truth.
HELD_OUT_SCORES = (0, 13, 25, 38, 50, 63)
HELD_OUT_SEEDS = tuple(9000 + i for i in range(len(HELD_OUT_SCORES)))
HELD_OUT_SECONDS = 4
EYES = ("right_eye", "left_eye")
BROWS = ("right_brow", "left_brow")
E2E_METHODS = ("gradcam", "integrated_gradients", "occlusion")


@pytest.fixture(scope="module")
def model():
    return ex.models.load("demo")


@pytest.fixture(scope="module")
def card():
    return demo.model_card()


@pytest.fixture(scope="module")
def held_out(card):
    """``[(truth, video, faces)]`` for freshly rendered participants."""
    data = card["data"]
    cohort_seeds = {data["cohort_seed"] * 100_003 + i for i in range(data["participants"])}  # as make_cohort
    assert not cohort_seeds & set(HELD_OUT_SEEDS)
    out = []
    for seed, score in zip(HELD_OUT_SEEDS, HELD_OUT_SCORES):
        sample = samples.render(samples.SampleSpec(seed=seed, seconds=HELD_OUT_SECONDS, score=score,
                                                   name=f"held_out_{seed}"))
        video = sample.to_video()
        out.append((sample.truth, video, ex.track_faces(video, progress=False)))
    return out


def participant_prediction(model, video, faces, stride: int = 4) -> float:
    """Mean of the model's clip predictions over a video, cropped as the engine crops."""
    frames = ex.FaceCrop.from_track(faces, size=model.input_size).apply(video)
    starts = range(0, len(frames) - model.clip_length + 1, stride)
    clips = np.stack([frames[s : s + model.clip_length] for s in starts])
    with torch.no_grad():
        return float(model(model.preprocess(clips))[:, 0].mean())


# --- loading ----------------------------------------------------------------------------


def test_demo_model_loads_with_its_input_geometry(model):
    assert isinstance(model, ex.models.VideoModel)
    assert model.input_size == (64, 64) and model.clip_length == 16 and model.layout == "NCTHW"
    assert model.output == "regression" and model.gradcam_layer_name == "block2"
    assert tuple(model(model.probe_input()).shape) == (1, 1)


def test_card_describes_the_shipped_weights(card):
    weights = demo.WEIGHTS.read_bytes()
    assert card["weights"]["sha256"] == hashlib.sha256(weights).hexdigest()
    assert len(weights) <= 5 * 2**20
    state = torch.load(demo.WEIGHTS, map_location="cpu", weights_only=True)
    assert set(state) == set(demo.build_demo_net().state_dict())
    assert card["input"]["size"] == [64, 64] and card["input"]["clip_length"] == 16
    test = card["metrics"]["test"]
    assert test["mae"] < 0.5 * test["baseline_mae"]


def test_weights_of_the_wrong_shape_raise_listing_the_keys(tmp_path):
    state = demo.build_demo_net().state_dict()
    state["head.weight"] = torch.zeros(1, 64)
    state["extra.bias"] = torch.zeros(3)
    path = tmp_path / "wrong.pt"
    torch.save(state, path)
    with pytest.raises(ModelError, match=r"wrong\.pt: weights do not fit the demo architecture") as raised:
        ex.models.load("demo", weights=path)
    assert "unexpected ['extra.bias']" in str(raised.value)
    assert "head.weight (1, 64) != (1, 32)" in str(raised.value)


def test_missing_weights_say_how_to_train(tmp_path):
    with pytest.raises(ModelError, match=r"missing\.pt.*not found.*scripts/train_demo\.py"):
        ex.models.load("demo", weights=tmp_path / "missing.pt")


# --- it rates held-out participants -------------------------------------------------------


def test_demo_model_beats_the_mean_on_held_out_participants(model, card, held_out):
    scores = np.array([truth["score"] for truth, _, _ in held_out])
    predictions = np.array([participant_prediction(model, video, faces) for _, video, faces in held_out])
    mae = np.abs(predictions - scores).mean()
    baseline_mae = np.abs(card["data"]["train_score_mean"] - scores).mean()
    assert mae < 0.5 * baseline_mae, (predictions.round(1), scores)
    assert np.corrcoef(predictions, scores)[0, 1] > 0.9


# --- end to end: the explanation finds the planted signal ---------------------------------


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a positive value outranks a negative one (ties count half)."""
    greater = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return float(greater + 0.5 * ties)


def long_closure_frames(truth: dict) -> np.ndarray:
    """Frames inside a long closure (the only events the score counts) with the eyes closed."""
    inside = np.zeros(truth["n_frames"], bool)
    for event in truth["events"]:
        if event["type"] == "long_closure":
            inside[event["start"] : event["end"]] = True
    return inside & (np.asarray(truth["eye_closed"]) == 1)


@pytest.mark.slow
def test_explaining_the_demo_model_finds_the_eyes_and_the_closures(model, held_out):
    truth, video, faces = held_out[HELD_OUT_SCORES.index(63)]
    cube = ex.explain(model, video, faces=faces, methods=list(E2E_METHODS), progress=False)

    # Where: attribution per pixel of each region over the frames with a face.
    face = cube.sel(time=cube.face_found.values)
    assert face.sizes["time"] > 0.9 * cube.sizes["time"]
    attribution = face.attribution.drop_sel(region="background")
    density = attribution.sum("time") / face.region_area.drop_sel(region="background").sum("time")
    for method in ("integrated_gradients", "occlusion"):  # pixel-exact methods: the eyes, and nothing else
        ranked = density.sel(explainer=method).to_series().sort_values(ascending=False)
        assert set(ranked.index[:2]) == set(EYES), (method, ranked.round(4).to_dict())
        assert ranked[list(EYES)].min() > 2 * ranked.drop(list(EYES)).max(), (method, ranked.round(4).to_dict())
        # the brows' share is not positive evidence of their own (see the Grad-CAM check below)
        assert ranked[list(BROWS)].max() < 0.25 * ranked[list(EYES)].min(), (method, ranked.round(4).to_dict())
    # Grad-CAM reads block2, a 16x16 map: one cell is 4x4 input pixels, and the brow band
    # lies within a cell of the eye, so heat from a closing eye spills onto its brow (IG and
    # occlusion, which resolve pixels, give that brow no positive attribution). So: an eye or
    # a brow comes first, and both eyes beat every region farther from them.
    ranked = density.sel(explainer="gradcam").to_series().sort_values(ascending=False)
    assert ranked.index[0] in EYES + BROWS, ranked.round(4).to_dict()
    assert ranked[list(EYES)].min() > ranked.drop(list(EYES + BROWS)).max(), ranked.round(4).to_dict()

    # When: frames inside long eye closures carry more attribution than all other frames.
    closed = long_closure_frames(truth)
    assert 20 <= closed.sum() <= len(closed) - 20
    per_frame = cube.attribution.sum("region")  # the whole input, background included
    for method in E2E_METHODS:
        frame_total = per_frame.sel(explainer=method).values
        assert frame_total[closed].mean() > 1.5 * frame_total[~closed].mean(), method
        assert auc(frame_total[closed], frame_total[~closed]) > 0.9, method
