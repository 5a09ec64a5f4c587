"""Models: the adapter that turns any video ``torch.nn.Module`` into something the
explanation engine can drive (:func:`wrap`, :class:`VideoModel`), and :func:`load` for
the demo model or a TorchScript file."""

from .adapter import KINETICS_MEAN, KINETICS_STD, VideoModel, wrap
from .zoo import load

__all__ = ["KINETICS_MEAN", "KINETICS_STD", "VideoModel", "load", "wrap"]
