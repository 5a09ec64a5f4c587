"""The model zoo: torchvision's video models (random weights, nothing downloaded) run
through the explanation engine end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import expresso_xai as ex
from expresso_xai.errors import ModelError


@pytest.fixture(scope="module")
def video_and_faces():
    video = ex.load_video(ex.samples.sample_path("participant_mid"), max_frames=16)
    return video, ex.track_faces(video, progress=False)


CONVOLUTIONAL = [
    pytest.param("r3d_18", id="r3d_18"),
    pytest.param("mc3_18", id="mc3_18"),
    pytest.param("r2plus1d_18", id="r2plus1d_18", marks=pytest.mark.slow),
    pytest.param("s3d", id="s3d", marks=pytest.mark.slow),
]
TRANSFORMERS = [
    pytest.param("mvit_v2_s", id="mvit_v2_s", marks=pytest.mark.slow),
    pytest.param("swin3d_t", id="swin3d_t", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name", CONVOLUTIONAL)
def test_convolutional_zoo_models_run_gradcam_and_saliency(name, video_and_faces):
    video, faces = video_and_faces
    torch.manual_seed(0)
    model = ex.models.load(name)
    cube = ex.explain(model, video, faces=faces, methods=["gradcam", "saliency"], stride=16, progress=False)
    assert cube.attribution.shape == (2, 16, 12)
    assert np.isfinite(cube.attribution.values).all()
    assert float(np.abs(cube.attribution.sel(explainer="saliency")).sum()) > 0
    assert cube.attrs["gradcam_layer"] == ex.models.zoo.ZOO[name].gradcam_layer
    assert cube.attrs["model_name"] == name


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_transformers_refuse_gradcam_clearly_and_run_the_rest(name, video_and_faces):
    video, faces = video_and_faces
    torch.manual_seed(0)
    model = ex.models.load(name)
    with pytest.raises(ModelError, match="no convolutional block.*saliency"):
        ex.explain(model, video, faces=faces, methods=["gradcam"], stride=16, progress=False)
    cube = ex.explain(model, video, faces=faces, methods=["saliency"], stride=16, progress=False)
    assert np.isfinite(cube.attribution.values).all()
    assert float(np.abs(cube.attribution).sum()) > 0


def test_local_weights_load_and_mismatches_are_listed(tmp_path):
    torch.manual_seed(1)
    source = ex.models.load("mc3_18")
    path = tmp_path / "mc3.pt"
    torch.save(source.module.state_dict(), path)
    loaded = ex.models.load("mc3_18", weights=path)
    assert loaded.weights_hash() == source.weights_hash()
    with pytest.raises(ModelError, match="do not fit r3d_18; first mismatches"):
        ex.models.load("r3d_18", weights=path)
    with pytest.raises(ModelError, match="not found"):
        ex.models.load("r3d_18", weights=tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a weights file"):
        ex.models.load("r3d_18", weights=tmp_path / "junk.pt")


def test_the_head_has_the_requested_outputs():
    model = ex.models.load("r3d_18", num_outputs=4)
    assert model.output == "logits"
    out = model(model.probe_input())
    assert tuple(out.shape) == (1, 4)


@pytest.mark.parametrize("kind", ["videomae", "timesformer"])
def test_hugging_face_video_transformers_explain_offline(kind, video_and_faces):
    transformers = pytest.importorskip("transformers")
    video, faces = video_and_faces
    torch.manual_seed(0)
    common = dict(image_size=64, patch_size=16, num_frames=16, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=2, intermediate_size=64, num_labels=1)
    if kind == "videomae":
        net = transformers.VideoMAEForVideoClassification(transformers.VideoMAEConfig(tubelet_size=2, **common))
    else:
        net = transformers.TimesformerForVideoClassification(transformers.TimesformerConfig(**common))
    model = ex.models.from_transformers(net)
    assert model.layout == "NTCHW" and model.input_size == (64, 64) and model.clip_length == 16
    with pytest.raises(ModelError, match="no convolutional block"):
        ex.explain(model, video, faces=faces, methods=["gradcam"], stride=16, progress=False)
    cube = ex.explain(model, video, faces=faces, methods=["saliency", "integrated_gradients", "occlusion"],
                      stride=16, progress=False)
    assert np.isfinite(cube.attribution.values).all()
    assert bool(cube.integrated_gradients_converged.all())


def test_a_wrong_layout_or_too_small_input_fails_at_wrap_with_advice():
    net = torch.nn.Sequential(torch.nn.Conv3d(3, 4, (1, 9, 9)), torch.nn.AdaptiveAvgPool3d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 1))
    with pytest.raises(ModelError, match="rejects NTCHW input.*it accepts NCTHW"):
        ex.models.wrap(net, layout="NTCHW", input_size=(32, 32))
    with pytest.raises(ModelError, match=r"cannot take 112x112 frames.*smallest square input .* is 224x224"):
        ex.models.load("s3d", input_size=(112, 112))


def test_an_untrained_zoo_model_is_the_same_on_every_load_and_says_it_is_untrained():
    import warnings

    from expresso_xai.errors import UntrainedModelWarning
    from expresso_xai.models import zoo

    zoo._WARNED.discard(("r3d_18", 5))
    with pytest.warns(UntrainedModelWarning, match=r"r3d_18 has random weights \(seed 5\)"):
        first = ex.models.load("r3d_18", seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedModelWarning)  # once per model and seed
        again = ex.models.load("r3d_18", seed=5)
    assert first.weights_hash() == again.weights_hash()
    assert ex.models.load("r3d_18", seed=6).weights_hash() != first.weights_hash()
    assert first.weights_source == "random, seed 5 (untrained)"
    with pytest.raises(ex.errors.ModelError, match="seed"):
        ex.models.load("r3d_18", seed=-1)
