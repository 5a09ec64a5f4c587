"""Loading models by name or from a file: the demo model, torchvision's video models
(the reference study's backbones among them) with a fresh regression head, or a saved
model. Nothing is downloaded: weights are random or come from a local file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from .adapter import KINETICS_MEAN, KINETICS_STD

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ZooEntry:
    """How to build and drive one torchvision video architecture."""

    builder: str
    input_size: tuple[int, int]
    gradcam_layer: str | None  # None: no convolutional block whose map Grad-CAM can read
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD
    note: str = ""


ZOO: dict[str, ZooEntry] = {
    "r3d_18": ZooEntry("r3d_18", (112, 112), "layer4", note="3-D ResNet-18 (reference study backbone)"),
    "mc3_18": ZooEntry("mc3_18", (112, 112), "layer4", note="mixed convolutions (reference study backbone)"),
    "r2plus1d_18": ZooEntry("r2plus1d_18", (112, 112), "layer4", note="(2+1)-D ResNet-18 (reference study backbone)"),
    "s3d": ZooEntry("s3d", (224, 224), "features", note="separable 3-D Inception"),
    "mvit_v2_s": ZooEntry("mvit_v2_s", (224, 224), None, note="multiscale vision transformer; needs 16 frames"),
    "swin3d_t": ZooEntry("swin3d_t", (224, 224), None, IMAGENET_MEAN, IMAGENET_STD,
                         note="video Swin transformer (channels-last features)"),
}


def _fresh_head(net, name: str, num_outputs: int) -> None:
    import torch

    if name in ("r3d_18", "mc3_18", "r2plus1d_18"):
        net.fc = torch.nn.Linear(net.fc.in_features, num_outputs)
    elif name == "s3d":
        net.classifier[1] = torch.nn.Conv3d(net.classifier[1].in_channels, num_outputs, kernel_size=1)
    elif name == "mvit_v2_s":
        net.head[1] = torch.nn.Linear(net.head[1].in_features, num_outputs)
    elif name == "swin3d_t":
        net.head = torch.nn.Linear(net.head.in_features, num_outputs)


def load_weights(net, path: str | Path, name: str = "model") -> None:
    """Load a local state dict (``torch.load(..., weights_only=True)``) into ``net``,
    listing the first mismatched keys when it does not fit."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise ModelError(f"{path}: not a weights file torch can load safely ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in own
             if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        raise ModelError(f"{path}: weights do not fit {name}; first mismatches: "
                         f"missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]}")
    net.load_state_dict(state)


_WARNED: set = set()


def _seed(seed) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ModelError(f"seed must be a whole number of at least 0, got {seed!r}")
    return seed


def _warn_untrained(name: str, seed: int) -> None:
    """Once per model and seed in a process: explanations of random weights explain nothing learned."""
    import warnings

    from ..errors import UntrainedModelWarning

    if (name, seed) not in _WARNED:
        _WARNED.add((name, seed))
        warnings.warn(f"{name} has random weights (seed {seed}), not trained ones: pass weights= (a local state "
                      "dict) to explain a trained model", UntrainedModelWarning, stacklevel=3)


def load(name: str, weights: str | Path | None = None, num_outputs: int = 1, seed: int = 0, **wrap_options):
    """A model ready to explain.

    Args:
        name: ``"demo"`` (the shipped demo model); a torchvision video architecture
            (``r3d_18``, ``mc3_18``, ``r2plus1d_18``, ``s3d``, ``mvit_v2_s``,
            ``swin3d_t``) with its Kinetics normalisation and a fresh head of
            ``num_outputs`` (random weights unless ``weights`` names a local state
            dict); or the path of a ``torch.export`` program saved with
            ``torch.export.save`` (``.pt2``), whose clip length, input size and layout
            are read from the program; it keeps no layers for Grad-CAM hooks (the
            other methods work).
        weights: a local state-dict file (never downloaded), loaded with
            ``torch.load(weights_only=True)``; also accepted with a ``.pt2`` program.
        seed: seeds the random weights of a zoo architecture (and its fresh head), so two
            loads, in Python or from the CLI, give the same model (same ``weights_hash``);
            without ``weights`` an :class:`~expresso_xai.errors.UntrainedModelWarning` says
            the weights are untrained, once per model and seed.
        **wrap_options: passed to :func:`~expresso_xai.models.wrap` (e.g. ``clip_length``,
            ``output_range=(0, 63)``; for ``"demo"`` only ``output_range``, which
            replaces the range its model card declares).

    Model files we load, and why: loading a model must never run code from the file,
    because model files travel between labs and a pickle runs whatever it names. So we
    read only formats that can be read as data. Weights are state dicts read with
    ``torch.load(weights_only=True)`` (tensors and plain containers only). A ``.pt2``
    archive is not handed to ``torch.export.load``, which unpickles sample inputs and
    pickled weights with ``weights_only=False``, ``eval``-s shape expressions, ``exec``-s
    guard code and loads AOTInductor libraries; ``load_exported``
    reads its JSON program and raw weights itself and runs the graph with ATen operators
    looked up by name, and refuses any archive holding pickled weights or constants,
    custom objects, compiled code, non-tensor sample inputs or other operators.
    TorchScript is refused: ``torch.jit.load`` unpickles and runs the archive's code, and
    torch itself warns to load only TorchScript you trust (if you do, load it yourself and
    pass it to :func:`~expresso_xai.models.wrap`). A refused file raises
    :class:`~expresso_xai.errors.ModelError` naming the file, the reason and the fix.

    Example:
        >>> import expresso_xai as ex
        >>> ex.models.load("r3d_18").describe()
        'r3d_18: layout NCTHW, clips of 16 frames at 112x112, output regression, Grad-CAM layer layer4'
        >>> ex.models.load("no-such-model")
        Traceback (most recent call last):
        ...
        expresso_xai.errors.ModelError: unknown model 'no-such-model': give 'demo', one of ['mc3_18', 'mvit_v2_s', 'r2plus1d_18', 'r3d_18', 's3d', 'swin3d_t'] or the path of a saved model
    """
    from .adapter import wrap
    from .demo import load_demo

    if name == "demo":
        return load_demo(weights, output_range=wrap_options.get("output_range"))
    if name in ZOO:
        import torchvision.models.video as video_models

        import torch

        entry = ZOO[name]
        with torch.random.fork_rng(devices=[]):  # the same random weights on every load, the caller's RNG untouched
            torch.manual_seed(_seed(seed))
            net = getattr(video_models, entry.builder)(weights=None)
            _fresh_head(net, name, int(num_outputs))
        if weights is not None:
            load_weights(net, weights, name)
        else:
            _warn_untrained(name, seed)
        options = dict(input_size=entry.input_size, mean=entry.mean, std=entry.std,
                       output="regression" if num_outputs == 1 else "logits",
                       gradcam_layer=entry.gradcam_layer if entry.gradcam_layer else False, name=name)
        options.update(wrap_options)
        model = wrap(net, **options)
        model.weights_source = str(weights) if weights is not None else f"random, seed {seed} (untrained)"
        return model
    path = Path(name)
    if path.is_file():
        from .files import load_exported

        module = load_exported(path)
        if weights is not None:
            load_weights(module, weights, path.stem)
        options = {**module.input_geometry(), "name": path.stem, **wrap_options}
        return wrap(module, **options)
    raise ModelError(f"unknown model {name!r}: give 'demo', one of {sorted(ZOO)} or the path of a saved model")
