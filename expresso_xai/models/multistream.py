"""The reference study's multi-stream input: one backbone per facial region crop.

The study fed 3-D CNNs separate videos of the face and of padded region boxes (eyes and
mouth padded by 25%), each resized to 112×112, and fused their features. Here the
region crops are cut *inside* the model from the face crop it receives, with a
differentiable resampling (``grid_sample``) on boxes computed from each clip's
landmarks. So every attribution method sees one input — the face crop — and the
attribution of each stream flows back onto exactly the face-crop pixels that stream
saw, where the engine pools it into regions like any other model: the cube has the same
shape whichever representation was used.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..errors import ModelError
from .adapter import KINETICS_MEAN, KINETICS_STD, VideoModel

#: Landmark groups of the study's streams (subject's left/right).
STREAM_POINTS = {
    "right_eye": range(36, 42), "left_eye": range(42, 48), "mouth": range(48, 68),
    "right_brow": range(17, 22), "left_brow": range(22, 27), "nose": range(27, 35),
}
PADDED = ("right_eye", "left_eye", "mouth")


def stream_boxes(landmarks: np.ndarray, streams: Sequence[str], size: tuple[int, int], pad: float = 0.25) -> np.ndarray:
    """``(T, S, 4)`` square boxes ``(x0, y0, x1, y1)`` in model-input pixels, one per
    frame and stream: the whole frame for ``"face"``, else the landmark group's bounding
    box (eyes and mouth padded by ``pad`` of their size on every side) grown to a square
    around its centre. Frames without landmarks reuse the nearest frame's boxes."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    height, width = size
    boxes = np.full((len(landmarks), len(streams), 4), np.nan)
    for s, stream in enumerate(streams):
        if stream == "face":
            boxes[:, s] = (0, 0, width - 1, height - 1)
            continue
        if stream not in STREAM_POINTS:
            raise ModelError(f"unknown stream {stream!r}; streams: face, {', '.join(STREAM_POINTS)}")
        points = landmarks[:, list(STREAM_POINTS[stream])]
        low, high = points.min(axis=1), points.max(axis=1)
        if stream in PADDED:
            extent = high - low
            low, high = low - pad * extent, high + pad * extent
        centre = 0.5 * (low + high)
        half = 0.5 * (high - low).max(axis=1, keepdims=True)
        boxes[:, s] = np.concatenate([centre - half, centre + half], axis=1)
    valid = ~np.isnan(boxes).any(axis=(1, 2))
    if not valid.any():
        for s, stream in enumerate(streams):  # no face in the clip: a central box
            boxes[:, s] = (0, 0, width - 1, height - 1) if stream == "face" else \
                (0.3 * width, 0.3 * height, 0.7 * width, 0.7 * height)
        return boxes
    index = np.arange(len(boxes))
    nearest = np.array([index[valid][np.argmin(np.abs(index[valid] - t))] for t in index])
    return boxes[nearest]


def build_multistream_net(backbones: Mapping[str, object], feature_sizes: Mapping[str, int], num_outputs: int = 1,
                          stream_size: tuple[int, int] = (112, 112)):
    """An ``nn.Module`` taking the face crop ``(N, C, T, H, W)`` and, through
    :meth:`set_boxes`, per-frame stream boxes; each stream is resampled to ``stream_size``
    and run through its backbone (which returns ``(N, F)`` features); a linear head fuses
    the concatenated features."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class MultiStreamNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.streams = list(backbones)
            self.backbones = nn.ModuleDict(dict(backbones))
            self.head = nn.Linear(sum(feature_sizes[s] for s in self.streams), num_outputs)
            self.stream_size = tuple(stream_size)
            self._boxes = None  # (T, S, 4) tensor in input pixels

        def set_boxes(self, boxes) -> None:
            self._boxes = torch.as_tensor(np.asarray(boxes), dtype=torch.float32)

        def crop(self, x, s: int):
            """Resample stream ``s`` from ``x`` (N, C, T, H, W) → (N, C, T, h, w)."""
            n, c, t, h, w = x.shape
            if self._boxes is None or self._boxes.shape[0] != t:
                raise ModelError("the multi-stream model has no boxes for this clip; the engine sets them "
                                 "(model.prepare_clip(landmarks)) before explaining")
            box = self._boxes[:, s].to(x.device)
            u0, u1 = (2 * box[:, 0] + 1) / w - 1, (2 * box[:, 2] + 1) / w - 1
            v0, v1 = (2 * box[:, 1] + 1) / h - 1, (2 * box[:, 3] + 1) / h - 1
            theta = torch.zeros(t, 2, 3, device=x.device, dtype=x.dtype)
            theta[:, 0, 0], theta[:, 0, 2] = (u1 - u0) / 2, (u1 + u0) / 2
            theta[:, 1, 1], theta[:, 1, 2] = (v1 - v0) / 2, (v1 + v0) / 2
            theta = theta.repeat(n, 1, 1)  # frames of every batch item share the clip's boxes
            frames = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
            grid = F.affine_grid(theta, (n * t, c, *self.stream_size), align_corners=False)
            out = F.grid_sample(frames, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            return out.reshape(n, t, c, *self.stream_size).permute(0, 2, 1, 3, 4)

        def forward(self, x):
            features = [self.backbones[name](self.crop(x, s)) for s, name in enumerate(self.streams)]
            return self.head(torch.cat([f.flatten(1) for f in features], dim=1))

    return MultiStreamNet()


class MultiStreamModel(VideoModel):
    """A :class:`VideoModel` whose module is a multi-stream net; the engine calls
    :meth:`prepare_clip` with each clip's landmarks to place the stream boxes."""

    uses_clip_geometry = True

    def __init__(self, module, streams: Sequence[str], pad: float, **options):
        super().__init__(module, gradcam_layer=False, **options)
        self.streams = tuple(streams)
        self.pad = float(pad)

    def prepare_clip(self, landmarks: np.ndarray) -> None:
        self.module.set_boxes(stream_boxes(landmarks, self.streams, self.input_size, self.pad))

    @property
    def gradcam_layer_name(self) -> str:
        raise ModelError(f"{self.name} is multi-stream: each stream's Grad-CAM map lives in its own crop, so "
                         "there is no single map to upsample; use saliency, integrated_gradients or occlusion")


def _torchvision_backbone(name: str):
    import torch
    import torchvision.models.video as video_models

    net = getattr(video_models, name)(weights=None)
    features = net.fc.in_features
    net.fc = torch.nn.Identity()
    return net, features


def MultiStream(streams: Sequence[str] = ("face", "right_eye", "left_eye", "mouth"), backbone="r3d_18",
                num_outputs: int = 1, input_size: tuple[int, int] = (224, 224),
                stream_size: tuple[int, int] = (112, 112), pad: float = 0.25, clip_length: int = 16,
                mean: Sequence[float] = KINETICS_MEAN, std: Sequence[float] = KINETICS_STD,
                name: str = "multistream", output_range: Sequence[float] | None = None) -> MultiStreamModel:
    """The reference study's multi-stream model: one backbone per stream, a fused head.

    Args:
        streams: ``"face"`` and any of ``right_eye, left_eye, mouth, right_brow,
            left_brow, nose``.
        backbone: a torchvision video ResNet name (``r3d_18``, ``mc3_18``,
            ``r2plus1d_18``; random weights, head removed), or a callable
            ``stream -> (module returning (N, F) features, F)``.
        input_size: the face crop the model receives (larger than ``stream_size`` so the
            eye and mouth crops keep detail).
        pad: padding of eyes and mouth boxes, a fraction of their size on every side.
        output_range: the range the explained output was trained for, as in
            :func:`~expresso_xai.models.wrap`.

    Example:
        >>> import torch, expresso_xai as ex
        >>> small = lambda stream: (torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3), torch.nn.AdaptiveAvgPool3d(1),
        ...                                             torch.nn.Flatten()), 4)
        >>> model = ex.models.MultiStream(backbone=small, input_size=(96, 96), stream_size=(32, 32))
        >>> model.streams
        ('face', 'right_eye', 'left_eye', 'mouth')
    """
    backbones, features = {}, {}
    for stream in streams:
        if stream != "face" and stream not in STREAM_POINTS:
            raise ModelError(f"unknown stream {stream!r}; streams: face, {', '.join(STREAM_POINTS)}")
        module, size = backbone(stream) if callable(backbone) else _torchvision_backbone(backbone)
        backbones[stream], features[stream] = module, int(size)
    net = build_multistream_net(backbones, features, num_outputs, stream_size)
    return MultiStreamModel(net, streams, pad, layout="NCTHW", clip_length=clip_length, input_size=input_size,
                            mean=mean, std=std, output="regression" if num_outputs == 1 else "logits", name=name,
                            output_range=output_range)
