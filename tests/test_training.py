"""Fine-tuning as the reference study did, and its participant-level metrics.

One training story: ``finetune`` and ``scripts/train_demo.py`` (which trained the shipped
demo model) predict, lose and score at participant level with the same library code.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import expresso_xai as ex
from expresso_xai.errors import ModelError
from expresso_xai.models import clustered, training
from expresso_xai.models.demo import build_demo_net, wrap_demo_net

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_demo.py"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort")
    return ex.samples.make_cohort(folder, n_participants=5, seconds=1.2, seed=3, progress=False,
                                  splits=(0.4, 0.4, 0.2))


@pytest.fixture(scope="module")
def clips(cohort):
    model = wrap_demo_net(build_demo_net())
    rows = training.read_manifest(cohort)
    return {name: training.prepare_clips([r for r in rows if r.split == name], model, stride=8, progress=False)
            for name in ("train", "val", "test")}


def test_participant_metrics_cluster_predictions_per_participant():
    metrics = training.participant_metrics(["a", "a", "b", "c"], [10, 10, 30, 50], [8, 16, 20, 52])
    # a: mean 12 (err +2), b: 20 (err -10), c: 52 (err +2)
    assert metrics["mae"] == pytest.approx((2 + 10 + 2) / 3)
    assert metrics["rmse"] == pytest.approx(np.sqrt((4 + 100 + 4) / 3))
    assert metrics["groups"] == {"correct": 2, "over": 0, "under": 1}
    assert metrics["bands"]["minimal"] == {"n": 1, "mae": 2.0}
    assert metrics["bands"]["severe"]["n"] == 2


def test_manifest_errors_name_the_line(tmp_path, cohort):
    text = cohort.read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([text[0], text[1].replace(text[1].split(",")[2], "lots")]) + "\n")
    with pytest.raises(training.ManifestError, match="line 2: score 'lots'"):
        training.read_manifest(bad)
    (tmp_path / "cols.csv").write_text("video,score\nx.mp4,3\n")
    with pytest.raises(training.ManifestError, match="missing columns"):
        training.read_manifest(tmp_path / "cols.csv")
    (tmp_path / "gone.csv").write_text("video,participant,score,split\nnone.mp4,p,3,train\n")
    with pytest.raises(training.ManifestError, match="none.mp4 not found"):
        training.read_manifest(tmp_path / "gone.csv")


def test_gradual_unfreezing_starts_with_the_head():
    net = build_demo_net()
    training._set_trainable(net, 1)
    trainable = {name.split(".")[0] for name, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"head"}
    training._set_trainable(net, 2)
    assert {name.split(".")[0] for name, p in net.named_parameters() if p.requires_grad} == {"head", "block2"}


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["clip", "participant"])
def test_finetune_trains_evaluates_and_resumes_exactly(tmp_path, cohort, clips, loss):
    def run(epochs, checkpoint=None, fresh=True):
        torch.manual_seed(0)
        model = wrap_demo_net(build_demo_net())
        return model, training.finetune(model, cohort, epochs=epochs, batch_size=4, lr=0.01, seed=1,
                                        unfreeze_every=1, label_noise=1.0, checkpoint=checkpoint,
                                        progress=False, clips=clips, loss=loss, clips_per_participant=2)

    straight_model, straight = run(3)
    assert [h["epoch"] for h in straight.history] == [0, 1, 2]
    assert straight.val["n_participants"] == 2 and straight.test["n_participants"] == 1
    assert "mae" in straight.baseline["val"] and straight.baseline["train_mean"] >= 0
    checkpoint = tmp_path / "run.pt"
    run(2, checkpoint)  # stopped after 2 epochs...
    resumed_model, resumed = run(3, checkpoint)  # ...and resumed for the third
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    assert resumed.history == straight.history
    assert resumed_model.weights_hash() == straight_model.weights_hash()


def test_an_unknown_loss_is_refused_before_any_work(tmp_path):
    with pytest.raises(ModelError, match="loss must be one of 'clip', 'participant', not 'video'"):
        training.finetune(wrap_demo_net(build_demo_net()), tmp_path / "no-manifest.csv", loss="video")


def test_participant_batches_take_clips_spread_over_each_participants_video():
    # 3 participants with 6, 9 and 4 clips, in video order; scores 10, 20, 30.
    participants = np.repeat(["a", "b", "c"], [6, 9, 4])
    clip_set = training.ClipSet(np.arange(19)[:, None], np.repeat(np.float32([10, 20, 30]), [6, 9, 4]), participants)
    groups = clip_set.participant_groups()
    batches = list(training._epoch_batches(clip_set, groups, 3, 2, 0.0, np.random.default_rng(0)))
    assert [len(scores) for _, scores in batches] == [2, 1]  # 2 participants per batch, 3 clips each
    seen = {}
    for frames, scores in batches:
        for clips, score in zip(frames[:, 0].reshape(-1, 3), scores):
            name = participants[clips[0]]
            assert set(participants[clips]) == {name} and score == {"a": 10, "b": 20, "c": 30}[name]
            seen[name] = clips
    first, count = {"a": 0, "b": 6, "c": 15}, {"a": 6, "b": 9, "c": 4}
    for name, clips in seen.items():
        position, n = clips - first[name], count[name]
        # in video order, one in each third of the video (floored to a whole clip)
        assert (np.diff(position) > 0).all()
        assert (position >= np.floor(np.arange(3) * n / 3)).all() and (position < np.arange(1, 4) * n / 3).all()


def test_per_clip_batches_are_the_reference_studys():
    clip_set = training.ClipSet(np.arange(5)[:, None], np.float32([1, 2, 3, 4, 5]), np.array(list("aabbc")))
    groups = list(np.arange(5)[:, None])
    batches = list(training._epoch_batches(clip_set, groups, None, 2, 0.0, np.random.default_rng(0)))
    order = np.random.default_rng(0).permutation(5)
    assert [frames[:, 0].tolist() for frames, _ in batches] == [order[:2].tolist(), order[2:4].tolist(), [order[4]]]
    assert np.concatenate([scores for _, scores in batches]).tolist() == (order + 1).tolist()


def test_participant_loss_is_the_squared_error_of_each_participants_mean_clip():
    torch.manual_seed(0)
    model = wrap_demo_net(build_demo_net())
    clips = np.random.default_rng(0).integers(0, 255, (4, 16, 64, 64, 3), dtype=np.uint8)
    # Each participant's second clip is much darker: on two noise clips alike, an untrained
    # net's outputs differed so little that the two losses were equal in float32.
    clips[1::2] //= 8
    targets = torch.tensor([0.25, 0.75])
    with torch.no_grad():
        outputs = model(model.preprocess(clips))[:, 0] / 63.0
        per_participant = clustered.participant_loss(model, clips, targets, 63.0)
        per_clip = clustered.participant_loss(model, clips, targets.repeat_interleave(2), 63.0)
    means = outputs.view(2, 2).mean(dim=1)
    assert float(per_participant) == pytest.approx(float(((means - targets) ** 2).mean()))
    assert float(per_clip) == pytest.approx(float(((outputs - targets.repeat_interleave(2)) ** 2).mean()))
    assert float(per_participant) < float(per_clip)  # the clips' spread around their mean is not penalised


def test_clip_sets_and_participant_predictions_cluster_alike():
    """finetune scores a ClipSet clip by clip; the demo script predicts each cropped
    video; both give each participant the mean of the same clips."""
    rng = np.random.default_rng(1)
    videos = [training.ParticipantVideo(name, score, "val", rng.integers(0, 255, (n, 64, 64, 3), dtype=np.uint8))
              for name, score, n in (("p1", 10.0, 40), ("p2", 50.0, 23))]
    model = wrap_demo_net(build_demo_net())
    clip_set = training.ClipSet.from_videos(videos, model.clip_length, 8)
    clip_predictions = clustered.predict(model, clip_set.frames)
    by_clip = training.participant_metrics(clip_set.participants, clip_set.scores, clip_predictions)
    by_video = clustered.predict_participants(model, [v.frames for v in videos], stride=8)
    means = [by_clip["per_participant"][v.participant]["prediction"] for v in videos]
    assert means == pytest.approx(by_video, abs=1e-5)
    assert training.participant_metrics(["p1", "p2"], [10.0, 50.0], by_video)["mae"] == pytest.approx(by_clip["mae"])


def test_pearson_r_is_none_where_it_is_undefined():
    assert training.participant_metrics(["a", "b"], [10, 30], [20, 20])["pearson_r"] is None
    assert training.participant_metrics(["a"], [10], [12])["pearson_r"] is None
    assert training.participant_metrics(["a", "b", "c"], [10, 20, 30], [11, 19, 33])["pearson_r"] > 0.9


@pytest.mark.slow
def test_the_demo_training_script_runs_on_the_library_and_writes_a_card(tmp_path):
    spec = importlib.util.spec_from_file_location("train_demo", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ["--participants", "6", "--seconds", "1", "--cache", str(tmp_path / "cohort"), "--out", str(tmp_path),
            "--steps", "2", "--eval-every", "1", "--participants-per-step", "2", "--clips-per-participant", "2",
            "--threads", str(torch.get_num_threads())]
    assert script.main(argv) == 0
    card = json.loads((tmp_path / "demo.json").read_text())
    test = card["metrics"]["test"]
    assert set(test) == {"n_participants", "mae", "rmse", "baseline_mae", "baseline_rmse", "pearson_r", "participants"}
    assert card["data"]["splits"] == {"train": 4, "val": 1, "test": 1}
    # the card's test MAE is the library's clustered prediction of the written weights
    rows = [r for r in training.read_manifest(tmp_path / "cohort" / "manifest.csv") if r.split == "test"]
    trained = ex.models.load("demo", weights=tmp_path / "demo.pt")
    predicted = clustered.predict_participants(trained, [v.frames for v in training.crop_videos(rows, (64, 64))], 4)
    assert test["mae"] == pytest.approx(abs(predicted[0] - rows[0].score), abs=1e-3)


# --- options, divergence and checkpoints that must not end in NaN weights or a traceback ---------


@pytest.mark.parametrize("option, value", [
    ("lr", float("nan")), ("lr", 0.0), ("lr", -0.1), ("lr", float("inf")), ("epochs", 0), ("epochs", 2.5),
    ("epochs", True), ("batch_size", 0), ("clip_stride", 0), ("restart_epochs", 0), ("unfreeze_every", 0),
    ("clips_per_participant", 0), ("label_noise", -1.0), ("label_noise", float("nan")), ("momentum", -0.5),
    ("weight_decay", float("inf")), ("score_scale", 0.0), ("score_scale", float("nan")), ("seed", -1),
    ("lr", "fast"),
])
def test_a_bad_number_is_refused_by_name_before_any_work(tmp_path, option, value):
    with pytest.raises(ModelError, match=rf"^{option} must be .*, not {value!r}"):
        training.finetune(wrap_demo_net(build_demo_net()), tmp_path / "no-manifest.csv", **{option: value})


class Planted:
    """Unpickling this would create the marker file: a checkpoint must never be unpickled fully."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def write_planted_torch(path: Path, marker: Path) -> None:
    torch.save({"model": Planted(marker), "epoch": 0}, path)


def write_planted_pickle(path: Path, marker: Path) -> None:
    import pickle

    path.write_bytes(pickle.dumps({"model": Planted(marker)}))


@pytest.mark.parametrize("write", [write_planted_torch, write_planted_pickle])
def test_a_checkpoint_holding_code_is_refused_without_running_it(tmp_path, write):
    checkpoint, marker = tmp_path / "run.pt", tmp_path / "pwned"
    write(checkpoint, marker)
    with pytest.raises(ModelError, match="delete it") as excinfo:
        training.finetune(wrap_demo_net(build_demo_net()), tmp_path / "no-manifest.csv", checkpoint=checkpoint)
    assert str(checkpoint) in str(excinfo.value) and "\n" not in str(excinfo.value)
    assert not marker.exists()


def truncated(path: Path) -> None:
    torch.save({"model": {"w": torch.zeros(100)}}, path)
    path.write_bytes(path.read_bytes()[:150])


@pytest.mark.parametrize("write", [
    truncated,
    lambda path: path.write_bytes(b""),
    lambda path: path.write_text("epoch,loss\n0,1.5\n"),
    lambda path: torch.save([1, 2, 3], path),
    lambda path: torch.save({"model": {}, "epoch": 3}, path),
    lambda path: path.mkdir(),
], ids=["truncated", "empty", "text", "a-list", "missing-keys", "a-folder"])
def test_an_unreadable_checkpoint_is_one_error_naming_the_file(tmp_path, write):
    checkpoint = tmp_path / "run.pt"
    write(checkpoint)
    with pytest.raises(ModelError, match="not a usable training checkpoint .*delete it") as excinfo:
        training.finetune(wrap_demo_net(build_demo_net()), tmp_path / "no-manifest.csv", checkpoint=checkpoint)
    assert str(checkpoint) in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_another_models_checkpoint_is_refused_and_leaves_the_model_as_it_was(tmp_path, cohort, clips):
    checkpoint = tmp_path / "other.pt"
    torch.save({"model": {"other.weight": torch.zeros(3)}, "optimiser": {}, "scheduler": {}, "epoch": 0,
                "history": "[]", "best_epoch": 0, "best_model": {}}, checkpoint)
    model = wrap_demo_net(build_demo_net())
    before = model.weights_hash()
    with pytest.raises(ModelError, match="does not fit this model"):
        training.finetune(model, cohort, epochs=1, checkpoint=checkpoint, progress=False, clips=clips)
    assert model.weights_hash() == before


@pytest.mark.parametrize("batch_size", [1, 64], ids=["loss-goes-non-finite", "val-goes-non-finite"])
def test_training_that_diverges_stops_without_saving_non_finite_weights(tmp_path, cohort, clips, batch_size):
    checkpoint = tmp_path / "run.pt"
    model = wrap_demo_net(build_demo_net())
    with pytest.raises(ModelError, match="training diverged at epoch 1.*lower lr"):
        training.finetune(model, cohort, epochs=2, lr=1e38, batch_size=batch_size, checkpoint=checkpoint,
                          progress=False, clips=clips)
    assert not checkpoint.exists()
