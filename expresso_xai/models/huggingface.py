"""Hugging Face video transformers (VideoMAE, TimeSformer, ...) through the same adapter.

They take ``pixel_values`` as ``(N, T, C, H, W)`` and return a ``ModelOutput`` whose
``.logits`` the adapter reads. They have no convolutional block whose map Grad-CAM can
read, so Grad-CAM refuses clearly; saliency, integrated gradients, occlusion and the
others work. Needs the optional ``transformers`` package (``pip install
expresso-xai[transformers]``); nothing is downloaded: build the model from a config or
load it from a local folder.
"""

from __future__ import annotations

from typing import Sequence

from ..errors import ModelError
from .zoo import IMAGENET_MEAN, IMAGENET_STD


def from_transformers(model, clip_length: int | None = None, input_size: tuple[int, int] | None = None,
                      mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                      name: str | None = None, output_range: Sequence[float] | None = None):
    """Wrap a Hugging Face video classification model (layout ``NTCHW``).

    ``clip_length`` and ``input_size`` default to the model config's ``num_frames`` and
    ``image_size``; normalisation defaults to ImageNet's, as VideoMAE's processor uses.
    ``output_range``: the range the explained output was trained for, as in
    :func:`~expresso_xai.models.wrap`.

    Example:
        >>> import expresso_xai as ex
        >>> from transformers import VideoMAEConfig, VideoMAEForVideoClassification
        >>> config = VideoMAEConfig(image_size=64, num_frames=16, hidden_size=32, num_hidden_layers=1,
        ...                         num_attention_heads=2, intermediate_size=64, num_labels=1)
        >>> ex.models.from_transformers(VideoMAEForVideoClassification(config)).describe()[:60]
        'VideoMAEForVideoClassification: layout NTCHW, clips of 16 fr'
    """
    from .adapter import wrap

    config = getattr(model, "config", None)
    if config is None:
        raise ModelError(f"{type(model).__name__} has no .config; is it a Hugging Face model?")
    frames = clip_length or getattr(config, "num_frames", None)
    size = input_size or getattr(config, "image_size", None)
    if frames is None or size is None:
        raise ModelError(f"cannot tell the clip length and frame size of {type(model).__name__} from its "
                         "config; pass clip_length= and input_size=")
    if isinstance(size, int):
        size = (size, size)
    outputs = int(getattr(config, "num_labels", 1))
    return wrap(model, layout="NTCHW", clip_length=int(frames), input_size=tuple(size), mean=mean, std=std,
                output="regression" if outputs == 1 else "logits", gradcam_layer=False,
                name=name or type(model).__name__, output_range=output_range)
