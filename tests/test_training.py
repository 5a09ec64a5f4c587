"""Fine-tuning as the reference study did, and its participant-level metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import expresso_xai as ex
from expresso_xai.models import training
from expresso_xai.models.demo import build_demo_net, wrap_demo_net


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
def test_finetune_trains_evaluates_and_resumes_exactly(tmp_path, cohort, clips):
    def run(epochs, checkpoint=None, fresh=True):
        torch.manual_seed(0)
        model = wrap_demo_net(build_demo_net())
        return model, training.finetune(model, cohort, epochs=epochs, batch_size=4, lr=0.01, seed=1,
                                        unfreeze_every=1, label_noise=1.0, checkpoint=checkpoint,
                                        progress=False, clips=clips)

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
