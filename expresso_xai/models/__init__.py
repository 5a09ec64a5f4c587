"""Models: the adapter that turns any video ``torch.nn.Module`` into something the
explanation engine can drive (:func:`wrap`, :class:`VideoModel`); :func:`load` for the
demo model, torchvision's video models or a saved model; :func:`from_transformers` for
Hugging Face video transformers."""

from .adapter import KINETICS_MEAN, KINETICS_STD, VideoModel, wrap
from .huggingface import from_transformers
from .multistream import MultiStream, MultiStreamModel
from .zoo import ZOO, load

__all__ = ["KINETICS_MEAN", "KINETICS_STD", "ZOO", "MultiStream", "MultiStreamModel", "VideoModel",
           "from_transformers", "load", "wrap"]
