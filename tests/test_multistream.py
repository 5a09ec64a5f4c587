"""The reference study's multi-stream representation gives a cube of the same shape,
with each stream's attribution landing on the pixels it saw."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import expresso_xai as ex
from expresso_xai.models.multistream import stream_boxes


@pytest.fixture(scope="module")
def video_and_faces():
    video = ex.load_video(ex.samples.sample_path("participant_high"), max_frames=16)
    return video, ex.track_faces(video, progress=False)


def small_backbone(stream):
    torch.manual_seed(len(stream))
    return torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten()), 4


def test_stream_boxes_follow_the_landmarks_with_the_study_padding():
    landmarks = np.zeros((2, 68, 2))
    landmarks[:, 36:42] = [[10, 20], [12, 18], [14, 18], [16, 20], [14, 22], [12, 22]]  # 6 wide, 4 high
    landmarks[1] = np.nan
    boxes = stream_boxes(landmarks, ["face", "right_eye"], (64, 64), pad=0.25)
    assert tuple(boxes[0, 0]) == (0, 0, 63, 63)
    # padded 25% per side: x 8.5..17.5 (9 wide), y 17..23 (6 high), squared to 9 around (13, 20)
    np.testing.assert_allclose(boxes[0, 1], [8.5, 15.5, 17.5, 24.5])
    np.testing.assert_allclose(boxes[1], boxes[0])  # a frame without landmarks borrows its neighbour's


def test_multistream_cube_has_the_single_stream_shape(video_and_faces):
    video, faces = video_and_faces
    model = ex.models.MultiStream(backbone=small_backbone, input_size=(96, 96), stream_size=(32, 32))
    cube = ex.explain(model, video, faces=faces, methods=["saliency", "integrated_gradients", "occlusion"],
                      stride=16, progress=False)
    assert cube.attribution.shape == (3, 16, 12)
    assert np.isfinite(cube.attribution.values).all()
    with pytest.raises(ex.errors.ModelError, match="multi-stream"):
        ex.explain(model, video, faces=faces, methods=["gradcam"], stride=16, progress=False)


def test_a_stream_attribution_lands_on_its_region(video_and_faces):
    video, faces = video_and_faces
    model = ex.models.MultiStream(streams=("face", "left_eye", "mouth"), backbone=small_backbone,
                                  input_size=(96, 96), stream_size=(32, 32))
    with torch.no_grad():  # the head reads only the left-eye stream
        model.module.head.weight.zero_()
        model.module.head.weight[:, 4:8] = 1.0
    cube = ex.explain(model, video, faces=faces, methods=["saliency", "integrated_gradients"], stride=16,
                      progress=False)
    for explainer in ("saliency", "integrated_gradients"):
        magnitude = np.abs(cube.attribution.sel(explainer=explainer)).sum("time")
        shares = magnitude / magnitude.sum()
        assert shares.idxmax().item() == "left_eye", shares.to_series().round(3).to_dict()
        assert float(shares.sel(region="left_eye")) > 0.4
        assert float(shares.sel(region=["right_eye", "mouth", "jaw"]).sum()) < 0.01
