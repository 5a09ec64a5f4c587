"""Loading models by name or from a file."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError


def load(name: str, weights: str | Path | None = None, **wrap_options):
    """A model ready to explain: ``"demo"`` (the shipped demo model), or the path of a
    saved model wrapped with ``wrap_options``: a ``torch.export`` program (``.pt2``) or a
    TorchScript file. Neither keeps the layers Grad-CAM hooks into, so for those only
    the other methods work; wrap the ``nn.Module`` itself with :func:`wrap` for Grad-CAM.

    Example:
        >>> import expresso_xai as ex
        >>> ex.models.load("no-such-model")
        Traceback (most recent call last):
        ...
        expresso_xai.errors.ModelError: unknown model 'no-such-model': give 'demo' or the path of a TorchScript file
    """
    import torch

    from .adapter import wrap
    from .demo import load_demo

    if name == "demo":
        return load_demo(weights)
    path = Path(name)
    if path.is_file():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still loads
            try:
                module = torch.export.load(str(path)).module() if path.suffix == ".pt2" else \
                    torch.jit.load(str(path), map_location="cpu")
            except (RuntimeError, ValueError, OSError) as exc:
                raise ModelError(f"{path}: not a saved torch.export program (.pt2) or TorchScript model "
                                 f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc
        return wrap(module, name=wrap_options.pop("name", path.stem), **wrap_options)
    raise ModelError(f"unknown model {name!r}: give 'demo' or the path of a TorchScript file")
