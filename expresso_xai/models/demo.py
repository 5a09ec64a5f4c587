"""The demo model: a small 3-D CNN rating the synthetic cohort's 0–63 score from
16-frame face clips at 64×64, trained by ``scripts/train_demo.py``.

Its weights and model card ship in ``expresso_xai/models/data/`` when trained; without
them :func:`load_demo` says how to make them.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ModelError

DATA = Path(__file__).resolve().parent / "data"
WEIGHTS = DATA / "demo.pt"
CARD = DATA / "demo.json"
INPUT_SIZE = (64, 64)
CLIP_LENGTH = 16
#: Scores are regressed on this scale: the net predicts score / SCORE_SCALE.
SCORE_SCALE = 63.0


def build_demo_net():
    """The demo architecture with random weights (seed it for reproducibility).

    Example:
        >>> import torch
        >>> from expresso_xai.models.demo import build_demo_net
        >>> net = build_demo_net()
        >>> tuple(net(torch.zeros(2, 3, 16, 64, 64)).shape)
        (2, 1)
    """
    import torch
    from torch import nn

    class DemoNet(nn.Module):
        """conv(3→16, 3×5×5, stride 1×2×2) → conv(16→32, 3×3×3, stride 2) →
        conv(32→32, 3×3×3) → mean over time and space → linear(32→1)."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv3d(3, 16, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2)),
                                      nn.BatchNorm3d(16), nn.ReLU())
            self.block1 = nn.Sequential(nn.Conv3d(16, 32, 3, stride=2, padding=1), nn.BatchNorm3d(32), nn.ReLU())
            self.block2 = nn.Sequential(nn.Conv3d(32, 32, 3, padding=1), nn.BatchNorm3d(32), nn.ReLU())
            self.pool = nn.AdaptiveAvgPool3d(1)
            self.head = nn.Linear(32, 1)

        def forward(self, x):
            x = self.block2(self.block1(self.stem(x)))
            return self.head(torch.flatten(self.pool(x), 1)) * SCORE_SCALE

    return DemoNet()


def declared_range() -> tuple[float, float]:
    """The output range the demo model was trained for: its card's ``output.range``, or the
    score scale (0 to :data:`SCORE_SCALE`) when there is no card.

    Example:
        >>> declared_range()
        (0.0, 63.0)
    """
    declared = model_card().get("output", {}).get("range") if CARD.is_file() else None
    return (0.0, SCORE_SCALE) if declared is None else (float(declared[0]), float(declared[1]))


def wrap_demo_net(net, output_range=None):
    """The demo architecture as a :class:`~expresso_xai.models.VideoModel`, declaring the
    range it was trained for (:func:`declared_range`) unless ``output_range`` is given."""
    from .adapter import wrap

    return wrap(net, layout="NCTHW", clip_length=CLIP_LENGTH, input_size=INPUT_SIZE,
                output="regression", gradcam_layer="block2", name="demo",
                output_range=declared_range() if output_range is None else output_range)


def load_demo(weights: str | Path | None = None, output_range=None):
    """The trained demo model as a :class:`~expresso_xai.models.VideoModel`, with the
    output range its card declares (``output_range`` overrides it).

    Raises:
        ModelError: the weights are missing (train them with ``scripts/train_demo.py``) or
        do not fit the architecture (the first mismatched keys are listed).
    """
    from .zoo import load_weights

    path = Path(weights) if weights is not None else WEIGHTS
    if not path.is_file():
        raise ModelError(f"{path}: demo weights not found; train them with "
                         "`python scripts/train_demo.py` (about 10 minutes on 2 CPU cores)")
    net = build_demo_net()
    load_weights(net, path, name="the demo architecture")
    return wrap_demo_net(net, output_range)


def model_card() -> dict:
    """The demo model's card (data, seed, metrics, weights hash), if trained."""
    if not CARD.is_file():
        raise ModelError(f"{CARD}: no model card; train the demo model with `python scripts/train_demo.py`")
    return json.loads(CARD.read_text())
