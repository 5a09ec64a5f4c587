"""Small helpers shared by method files."""

from __future__ import annotations


def as_module(model):
    """The :class:`VideoModel` as an ``nn.Module`` returning ``(N, K)`` (for Captum
    methods that hook into the module's layers: guided backprop, DeepLift)."""
    import torch

    class _VideoModelModule(torch.nn.Module):
        def __init__(self, video_model):
            super().__init__()
            self.net = video_model.module
            self._video_model = video_model

        def forward(self, x):
            return self._video_model(x)

    return _VideoModelModule(model)
