"""Models: the adapter that turns any video ``torch.nn.Module`` into something the
explanation engine can drive (:func:`wrap`, :class:`VideoModel`)."""

from .adapter import KINETICS_MEAN, KINETICS_STD, VideoModel, wrap

__all__ = ["KINETICS_MEAN", "KINETICS_STD", "VideoModel", "wrap"]
