"""What tests, benchmarks and docstring examples share: tiny models, example cubes and the
helpers that drive a real browser.

Nothing here is needed to explain a model; it is public so that users can write tests
of their own pipelines with the same small pieces (a model that runs in milliseconds on
a CPU, a cube made without any model).
"""

from __future__ import annotations

import numpy as np

# --- tiny models ----------------------------------------------------------------------


def tiny_cnn(widths=(4,), outputs: int = 1, seed: int = 0, strides=None):
    """A small 3-D CNN taking ``(N, 3, T, H, W)``: 3×3×3 convolutions of ``widths``
    channels (each followed by ReLU, with ``strides`` per convolution, default 1), global
    average pooling and a linear head of ``outputs`` outputs; weights seeded by ``seed``.

    Example:
        >>> import torch
        >>> net = tiny_cnn(widths=(8, 8), strides=(1, 2))
        >>> net(torch.zeros(2, 3, 16, 64, 64)).shape
        torch.Size([2, 1])
    """
    import torch

    torch.manual_seed(seed)
    strides = strides or (1,) * len(widths)
    layers, channels = [], 3
    for width, stride in zip(widths, strides):
        layers += [torch.nn.Conv3d(channels, width, 3, padding=1, stride=stride), torch.nn.ReLU()]
        channels = width
    layers += [torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(channels, outputs)]
    return torch.nn.Sequential(*layers)


def tiny_model(input_size=(64, 64), widths=(4,), outputs: int = 1, seed: int = 0, strides=None,
               name: str = "tiny"):
    """:func:`tiny_cnn` wrapped as a :class:`~expresso_xai.models.VideoModel` taking
    16-frame clips of ``input_size``.

    Example:
        >>> model = tiny_model(input_size=(64, 64))
        >>> model.name, model.input_size, model.clip_length
        ('tiny', (64, 64), 16)
    """
    from .models import wrap

    net = tiny_cnn(widths=widths, outputs=outputs, seed=seed, strides=strides)
    return wrap(net, input_size=tuple(input_size), name=name)


def white_box(mask: np.ndarray):
    """A white-box model that reads only the pixels under ``mask``
    ``(T, H, W)``: a fixed mask, then a 1×3×3 convolution with positive weights and no
    bias and a head summing its channels, so nothing outside the mask can matter.

    Example:
        >>> import torch
        >>> mask = np.zeros((16, 64, 64), bool); mask[4:8, 10:20, 10:20] = True
        >>> net = white_box(mask)
        >>> x = torch.rand(1, 3, 16, 64, 64)
        >>> y = x.clone(); y[..., ~torch.from_numpy(mask)] = 0
        >>> bool(torch.allclose(net(x), net(y)))
        True
    """
    import torch

    class WhiteBox(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mask", torch.from_numpy(mask.astype(np.float32))[None, None])
            self.conv = torch.nn.Conv3d(3, 4, (1, 3, 3), padding=(0, 1, 1), bias=False)
            self.relu = torch.nn.ReLU()
            self.head = torch.nn.Linear(4, 1, bias=False)
            generator = torch.Generator().manual_seed(0)
            with torch.no_grad():
                self.conv.weight.copy_(torch.rand(self.conv.weight.shape, generator=generator) / 9)
                self.head.weight.fill_(1.0)

        def forward(self, x):
            features = self.relu(self.conv(x * self.mask + 3.0 * self.mask))
            return self.head(features.sum(dim=(2, 3, 4)) / 100.0)

    return WhiteBox()


# --- example cubes --------------------------------------------------------------------


# --- browser --------------------------------------------------------------------------
