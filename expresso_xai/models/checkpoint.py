"""The state of a fine-tuning run and its checkpoint file: what
:func:`~expresso_xai.models.training.finetune` saves after every epoch and resumes from.

A checkpoint is a file anyone could have put where the run looks for one, so it is read
with ``torch.load(weights_only=True)`` (tensors and plain containers only; a full
unpickle would run whatever code the file names), and any file that cannot be read as
one, or does not fit the model, is one :class:`~expresso_xai.errors.ModelError` that names
it and says what to do.
"""

from __future__ import annotations

import json
import logging
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError
from ..files import atomic_path

log = logging.getLogger(__name__)

__all__ = ["CHECKPOINT_KEYS", "FinetuneResult", "FinetuneRun", "read_checkpoint"]


@dataclass
class FinetuneResult:
    """History per epoch and the metrics of the best epoch on ``val`` (and ``test``)."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    val: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)
    seconds: float = 0.0


#: What a checkpoint written by :class:`FinetuneRun` holds.
CHECKPOINT_KEYS = ("model", "optimiser", "scheduler", "epoch", "history", "best_epoch", "best_model")

#: What ``torch.load`` and the ``load_state_dict`` methods raise on a file that is not one of
#: our checkpoints (a pickle of other objects, cut short, not a zip, another model's weights).
_UNUSABLE = (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, IndexError, ValueError, TypeError,
             AttributeError, OSError, zipfile.BadZipFile)


def _unusable_checkpoint(path: Path, why: str) -> ModelError:
    return ModelError(f"{path}: not a usable training checkpoint ({why}); delete it to train from the start, "
                      "or give another checkpoint path")


def _why(exc: BaseException) -> str:
    """One short line on why a checkpoint could not be loaded."""
    if isinstance(exc, pickle.UnpicklingError):
        return "it holds Python objects besides weights, which are not loaded because that could run code"
    if isinstance(exc, EOFError):
        return "the file is empty or cut short"
    if isinstance(exc, zipfile.BadZipFile) or "zip archive" in str(exc):
        return "not a zip archive as torch.save writes, or cut short"
    first_sentence = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:120]
    return f"{type(exc).__name__}: {first_sentence}" if first_sentence else type(exc).__name__


def read_checkpoint(path: Path | None) -> dict | None:
    """The state a previous run saved at ``path``; None when there is no file yet.

    Only tensors and plain containers are loaded (``weights_only=True``): a checkpoint is
    a file anyone could have put there, and a full unpickle runs whatever code it names.

    Raises:
        ModelError: the file holds other Python objects, is empty, cut short, not a zip
            archive, or lacks one of :data:`CHECKPOINT_KEYS` (the message names the file
            and says to delete it or give another path).

    Example:
        >>> import tempfile, pathlib
        >>> from expresso_xai.models.checkpoint import read_checkpoint
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> read_checkpoint(folder / "run.pt") is None  # no checkpoint yet: train from the start
        True
        >>> _ = (folder / "run.pt").write_text("epoch,loss")
        >>> read_checkpoint(folder / "run.pt")
        Traceback (most recent call last):
        ...
        expresso_xai.errors.ModelError: ...run.pt: not a usable training checkpoint (...); delete it ...
    """
    import torch

    if path is None or not path.exists():
        return None
    try:
        with warnings.catch_warnings():
            # torch's note on the pickle protocol says nothing the error below does not
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except _UNUSABLE as exc:
        raise _unusable_checkpoint(path, _why(exc)) from None
    missing = [key for key in CHECKPOINT_KEYS if key not in state] if isinstance(state, dict) else CHECKPOINT_KEYS
    if missing:
        raise _unusable_checkpoint(path, f"it has no {', '.join(missing)}")
    return state


class FinetuneRun:
    """A fine-tuning run's result so far, its best weights and its checkpoint file.

    Example:
        >>> import tempfile, pathlib, torch
        >>> from expresso_xai.models.checkpoint import FinetuneRun, read_checkpoint
        >>> def new_run(path):
        ...     net = torch.nn.Linear(2, 1)
        ...     optimiser = torch.optim.SGD(net.parameters(), lr=0.1)
        ...     return FinetuneRun(net, optimiser, torch.optim.lr_scheduler.StepLR(optimiser, 1), path)
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.pt"
        >>> first = new_run(path)
        >>> first.resume(read_checkpoint(path)), first.record(0, 1.5, {"mae": 3.0, "rmse": 4.0})
        (0, None)
        >>> second = new_run(path)
        >>> second.resume(read_checkpoint(path)), second.keep_best().best_epoch
        (1, 0)
        >>> torch.equal(second.net.weight, first.net.weight)
        True
    """

    def __init__(self, net, optimiser, scheduler, checkpoint: str | Path | None):
        self.net, self.optimiser, self.scheduler = net, optimiser, scheduler
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.result = FinetuneResult()
        self.best_state = None

    def resume(self, state: dict | None) -> int:
        """Continue from ``state`` (see :func:`read_checkpoint`), if any; the first epoch
        still to train. A state that does not fit leaves the model's weights as they were."""
        if state is None:
            return 0
        weights = {name: value.detach().clone() for name, value in self.net.state_dict().items()}
        try:
            self.net.load_state_dict(state["best_model"])  # checked now rather than after the last epoch
            self.net.load_state_dict(state["model"])
            self.optimiser.load_state_dict(state["optimiser"])
            self.scheduler.load_state_dict(state["scheduler"])
            history, best_epoch, epoch = json.loads(state["history"]), int(state["best_epoch"]), int(state["epoch"])
            if not all(isinstance(entry, dict) and "val_mae" in entry for entry in history):
                raise ValueError("its history is not one record per epoch")
        except _UNUSABLE as exc:
            self.net.load_state_dict(weights)
            raise _unusable_checkpoint(self.checkpoint, f"it does not fit this model and run: {_why(exc)}") from None
        self.result.history, self.result.best_epoch, self.best_state = history, best_epoch, state["best_model"]
        log.info("resuming %s at epoch %d", self.checkpoint, epoch + 1)
        return epoch + 1

    def record(self, epoch: int, train_loss: float, val: dict) -> None:
        """Add an epoch to the history, keep its weights if its val MAE is the lowest yet,
        and save the checkpoint."""
        import torch

        history = self.result.history
        history.append({"epoch": epoch, "train_loss": train_loss, "val_mae": val["mae"], "val_rmse": val["rmse"],
                        "lr": float(self.scheduler.get_last_lr()[0])})
        if self.result.best_epoch < 0 or val["mae"] <= min(h["val_mae"] for h in history):
            self.result.best_epoch = epoch
            self.best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        if self.checkpoint is not None:
            # written aside and renamed, so an interrupted save leaves the last good checkpoint
            with atomic_path(self.checkpoint) as partial:
                torch.save({"model": self.net.state_dict(), "optimiser": self.optimiser.state_dict(),
                            "scheduler": self.scheduler.state_dict(), "epoch": epoch, "history": json.dumps(history),
                            "best_epoch": self.result.best_epoch, "best_model": self.best_state}, partial)

    def keep_best(self) -> FinetuneResult:
        """Load the best epoch's weights into the model, in eval mode."""
        if self.best_state is None:
            raise ModelError("no epoch was trained (epochs <= the checkpoint's epoch?)")
        self.net.load_state_dict(self.best_state)
        self.net.eval()
        return self.result
