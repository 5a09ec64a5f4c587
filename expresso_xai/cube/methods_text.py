"""The paragraph a paper's methods section needs about a cube, written from its attrs:
what was explained (model, video, frames, clips, target), with which methods and
parameters, and how the regions were defined. ``cube.xai.methods_text()`` forwards here.

Only the cube's own attrs and coordinates are read, so the text describes the numbers
in the cube and nothing else; what the cube does not record is left out rather than
guessed. The same cube always gives the same text.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

#: How each registered method is named in prose, and the paper to cite for it.
METHOD_NAMES = {
    "gradcam": ("Grad-CAM", "Selvaraju et al., 2017"),
    "guided_gradcam": ("Guided Grad-CAM", "Selvaraju et al., 2017"),
    "saliency": ("gradient saliency", "Simonyan et al., 2014"),
    "input_x_gradient": ("input × gradient", "Shrikumar et al., 2016"),
    "integrated_gradients": ("integrated gradients", "Sundararajan et al., 2017"),
    "smoothgrad": ("SmoothGrad", "Smilkov et al., 2017"),
    "deeplift": ("DeepLIFT", "Shrikumar et al., 2017"),
    "occlusion": ("occlusion", "Zeiler & Fergus, 2014"),
    "shapley": ("Shapley value sampling", "Castro et al., 2009"),
}

SCHEMES = {
    "partition": ("every pixel of the model input belongs to exactly one region, so the region sums add up to "
                  "the attribution of the whole input"),
    "boxes": ("the reference study's axis-aligned bounding boxes of the landmark groups, the eyes and the mouth "
              "padded by 25% of their size; boxes overlap, so region sums do not add up to the total"),
}

#: Parameters that only act when a method's flag is on: left out of the text when it is
#: off, where a reader would take them for settings that shaped the numbers.
ONLY_WITH_FLAG = {"occlusion": ("adaptive", ("threshold", "budget"))}

HASH_CHARACTERS = 12  # enough to tell weights or videos apart in print; the cube keeps the whole hash


def _decoded(value):
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _value(value) -> str:
    """A parameter value as a reader would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return str(value)


def _method(name: str, params: dict, attrs: dict) -> str:
    """``"Grad-CAM (Selvaraju et al., 2017; layer = block2)"``: the parameters as run,
    the layer Grad-CAM resolved instead of its unset option, unset (None) ones left out."""
    label, reference = METHOD_NAMES.get(name, (name, None))
    if "layer" in params and params["layer"] is None and attrs.get("gradcam_layer"):
        params = {**params, "layer": attrs["gradcam_layer"]}
    flag, dependent = ONLY_WITH_FLAG.get(name, (None, ()))
    if flag in params and not params[flag]:
        params = {key: value for key, value in params.items() if key not in dependent}
    settings = "; ".join(f"{key} = {_value(value)}" for key, value in params.items() if value is not None)
    return f"{label} ({reference}{'; ' if settings and reference else ''}{settings})" if reference or settings \
        else label


def _model(attrs: dict) -> str:
    name = attrs.get("model_name") or "an unnamed model"
    parts = [f"weights hash {str(attrs['model_hash'])[:HASH_CHARACTERS]}"] if attrs.get("model_hash") else []
    size = attrs.get("model_input_size")
    if size:
        parts.append(f"input {size[1]}×{size[0]} pixels" + (f", layout {attrs['model_layout']}"
                                                             if attrs.get("model_layout") else ""))
    target = attrs.get("target")
    what = ("the regression output" if target in (None, "regression") else
            "the predicted class" if target == "predicted" else f"the output for class {target}")
    return f"We explained {what} of the model {name}" + (f" ({', '.join(parts)})" if parts else "") + "."


def _video(cube: xr.Dataset, attrs: dict) -> str:
    source = Path(str(attrs.get("video_source") or "")).name or "a video"
    frames, seconds = cube.sizes.get("time", 0), np.asarray(cube["seconds"].values, np.float64)
    parts = [f"frames {int(cube['time'].values[0])}–{int(cube['time'].values[-1])}, {frames} in all"]
    if attrs.get("video_fps"):
        duration = float(seconds[-1] - seconds[0]) + 1.0 / float(attrs["video_fps"]) if frames else 0.0
        parts.append(f"{float(attrs['video_fps']):g} frames per second, {duration:.2f} s")
    if attrs.get("video_frame_size"):
        height, width = attrs["video_frame_size"]
        parts.append(f"{width}×{height} pixels")
    if attrs.get("video_hash"):
        parts.append(f"content hash {str(attrs['video_hash'])[:HASH_CHARACTERS]}")
    text = f"The video was {source} ({'; '.join(parts)})."
    if "face_found" in cube:
        found = int(np.asarray(cube["face_found"].values, bool).sum())
        text += f" A face was found in {found} of {frames} frames; frames without one count as background."
    return text


def _clips(attrs: dict) -> str:
    if not attrs.get("clip_length"):
        return ""
    text = f"The model saw clips of {attrs['clip_length']} frames"
    text += f" starting every {attrs['stride']} frames" if attrs.get("stride") else ""
    text += "; each frame's attribution is the mean over the clips covering it" \
        if "mean over the clips" in str(attrs.get("aggregation", "")) else ""
    crop = attrs.get("crop")
    if isinstance(crop, dict) and crop:
        settings = ", ".join(f"{key} {_value(value)}" for key, value in crop.items())
        text += f". Each frame was cropped around the face's landmarks ({settings}) to the model's input"
    return text + "."


def _regions(cube: xr.Dataset, attrs: dict) -> str:
    names = [str(name) for name in cube["region"].values]
    scheme = str(attrs.get("region_scheme") or "")
    how = SCHEMES.get(scheme)
    text = (f"Pixel attributions were summed within {len(names)} regions ({', '.join(names)})"
            + (f", defined by the {scheme} scheme: {how}" if how else f" ({scheme or 'scheme not recorded'})") + ".")
    return text + (" Regions follow the iBUG 68-point landmarks; left and right are the subject's (points 36–41 "
                   "are the subject's right eye).")


def _versions(attrs: dict) -> str:
    versions = attrs.get("versions") if isinstance(attrs.get("versions"), dict) else {}
    library = attrs.get("expresso_xai_version") or versions.get("expresso_xai") or "unknown"
    others = ", ".join(f"{label} {versions[key]}" for key, label in
                       (("python", "Python"), ("torch", "PyTorch"), ("captum", "Captum"), ("xarray", "xarray"))
                       if versions.get(key))
    seed = f"; random seed {attrs['seed']}" if attrs.get("seed") not in (None, "") else ""
    return f"The analysis used expresso-xai {library}" + (f" ({others})" if others else "") + seed + "."


def methods_text(cube: xr.Dataset) -> str:
    """The methods-section paragraph for ``cube``: the model and target, the video and
    its frames, the clips and crop, each method with its parameters and reference, the
    regions and the left/right convention, the library versions. Plain text, one
    paragraph, the same for the same cube.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> cube = example_cube(explainers=["gradcam"], n_frames=4)
        >>> cube = cube.assign_attrs(methods='{"gradcam": {"relu": true, "layer": "block2"}}', video_fps=25.0)
        >>> text = methods_text(cube)
        >>> print(text[:text.index(" Pixel")])  # doctest: +NORMALIZE_WHITESPACE
        We explained the regression output of the model synthetic. The video was synthetic (frames 0–3, 4 in
        all; 25 frames per second, 0.16 s). A face was found in 3 of 4 frames; frames without one count as
        background. Attributions were computed with Grad-CAM (Selvaraju et al., 2017; relu = true; layer =
        block2).
        >>> "left and right are the subject's" in text, text == methods_text(cube)
        (True, True)
    """
    from .views import attribution_of, params

    attribution_of(cube)
    attrs = {key: _decoded(value) for key, value in cube.attrs.items()}
    methods = params(cube)
    names = [str(name) for name in np.atleast_1d(cube["explainer"].values)]
    described = [_method(name, methods.get(name, {}), attrs) for name in names]
    listed = described[0] if len(described) == 1 else ", ".join(described[:-1]) + " and " + described[-1]
    sentences = [_model(attrs), _video(cube, attrs), _clips(attrs), f"Attributions were computed with {listed}.",
                 _regions(cube, attrs), _versions(attrs)]
    return " ".join(sentence for sentence in sentences if sentence)


__all__ = ["METHOD_NAMES", "methods_text"]
