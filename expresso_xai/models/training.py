"""Fine-tuning a video model to rate a score from face clips, as the reference study did,
and its participant-level ("clustered") evaluation.

The study fine-tuned action-recognition backbones with one linear output, MSE loss, SGD
with cosine annealing and warm restarts, label noise and gradual unfreezing, on 16-frame
clips, and reported MAE and RMSE of the mean prediction per participant, by BDI-II band
and by error group. :func:`finetune` does that for any :class:`VideoModel` on a manifest
CSV (``video, participant, score, split``), with checkpoints it resumes from.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ExpressoError, ModelError

log = logging.getLogger(__name__)

#: BDI-II severity bands (inclusive score ranges).
BDI_BANDS = {"minimal": (0, 13), "mild": (14, 19), "moderate": (20, 28), "severe": (29, 63)}


class ManifestError(ExpressoError, ValueError):
    """A training manifest is missing, malformed, or names videos that do not exist."""


@dataclass
class ManifestRow:
    video: Path
    participant: str
    score: float
    split: str


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Rows of a manifest CSV with columns ``video, participant, score, split``; video
    paths are relative to the manifest's folder unless absolute.

    Example:
        >>> import tempfile, expresso_xai as ex
        >>> manifest = ex.samples.make_cohort(tempfile.mkdtemp(), n_participants=2, seconds=1, progress=False)
        >>> [row.split for row in ex.models.training.read_manifest(manifest)]
        ['train', 'test']
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"video", "participant", "score", "split"} - set(reader.fieldnames or [])
        if missing:
            raise ManifestError(f"{path}: missing columns {sorted(missing)}; need video, participant, score, split")
        rows = []
        for line, record in enumerate(reader, start=2):
            try:
                score = float(record["score"])
            except (TypeError, ValueError):
                raise ManifestError(f"{path}: line {line}: score {record['score']!r} is not a number") from None
            if not math.isfinite(score):
                raise ManifestError(f"{path}: line {line}: score is {record['score']}")
            video = Path(record["video"])
            video = video if video.is_absolute() else path.parent / video
            if not video.is_file():
                raise ManifestError(f"{path}: line {line}: video {video} not found")
            rows.append(ManifestRow(video, str(record["participant"]), score, str(record["split"]).strip()))
    if not rows:
        raise ManifestError(f"{path}: no rows")
    return rows


@dataclass
class ClipSet:
    """Cropped clips ready for a model: ``frames (N, L, H, W, 3)`` uint8, ``scores (N,)``,
    ``participants (N,)``."""

    frames: np.ndarray
    scores: np.ndarray
    participants: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def prepare_clips(rows: list[ManifestRow], model, stride: int = 8, progress: bool = True) -> ClipSet:
    """Track, crop (as the explanation engine does) and cut every video into clips."""
    from tqdm.auto import tqdm

    from ..faces import track_faces
    from ..regions import FaceCrop
    from ..video import iter_clips, load_video

    frames, scores, participants = [], [], []
    for row in tqdm(rows, desc="clips", unit="video", disable=not progress, leave=False):
        video = load_video(row.video)
        faces = track_faces(video, progress=False)
        crop = FaceCrop.from_track(faces, size=model.input_size)
        for clip in iter_clips(video, model.clip_length, stride):
            frames.append(crop[clip.indices].apply(clip.frames))
            scores.append(row.score)
            participants.append(row.participant)
    return ClipSet(np.stack(frames), np.asarray(scores, np.float32), np.asarray(participants))


def participant_metrics(participants, scores, predictions, correct_within: float = 5.0) -> dict:
    """Participant-level ("clustered") metrics: the mean prediction per participant
    against their score. MAE, RMSE, MAE per BDI-II band, and how many participants were
    estimated within ``correct_within`` points, over or under.

    Example:
        >>> from expresso_xai.models.training import participant_metrics
        >>> m = participant_metrics(["a", "a", "b"], [10, 10, 30], [12, 14, 20])
        >>> m["mae"], m["groups"]  # a: mean 13 (+3), b: 20 (-10)
        (6.5, {'correct': 1, 'over': 0, 'under': 1})
    """
    participants = np.asarray(participants)
    scores = np.asarray(scores, np.float64)
    predictions = np.asarray(predictions, np.float64)
    names = sorted(set(participants.tolist()))
    truth = np.array([scores[participants == p][0] for p in names])
    mean = np.array([predictions[participants == p].mean() for p in names])
    error = mean - truth
    bands = {}
    for band, (low, high) in BDI_BANDS.items():
        inside = (truth >= low) & (truth <= high + 0.999)
        if inside.any():
            bands[band] = {"n": int(inside.sum()), "mae": float(np.abs(error[inside]).mean())}
    return {
        "n_participants": len(names),
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error ** 2).mean())),
        "bands": bands,
        "groups": {"correct": int((np.abs(error) <= correct_within).sum()),
                   "over": int((error > correct_within).sum()),
                   "under": int((error < -correct_within).sum())},
        "per_participant": {p: {"score": float(t), "prediction": float(m)} for p, t, m in zip(names, truth, mean)},
    }


@dataclass
class FinetuneResult:
    """History per epoch and the metrics of the best epoch on ``val`` (and ``test``)."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    val: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)
    seconds: float = 0.0


def _blocks(module):
    """Top-level children with parameters, input side first (the unfreezing units)."""
    return [child for child in module.children() if any(True for _ in child.parameters())]


def _set_trainable(module, n_unfrozen: int) -> None:
    blocks = _blocks(module)
    for i, block in enumerate(blocks):
        trainable = i >= len(blocks) - n_unfrozen
        for parameter in block.parameters():
            parameter.requires_grad_(trainable)


def predict(model, frames: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Model outputs (first output) for ``(N, L, H, W, 3)`` uint8 clips."""
    import torch

    model.module.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(frames), batch_size):
            out.append(model(model.preprocess(frames[start : start + batch_size]))[:, 0].double().numpy())
    return np.concatenate(out)


def finetune(model, manifest: str | Path, *, epochs: int = 10, lr: float = 0.01, momentum: float = 0.9,
             weight_decay: float = 1e-4, batch_size: int = 8, clip_stride: int = 8, restart_epochs: int = 5,
             unfreeze_every: int = 2, label_noise: float = 0.0, score_scale: float | None = None, seed: int = 0,
             checkpoint: str | Path | None = None, progress: bool = True, clips: dict | None = None) -> FinetuneResult:
    """Fine-tune ``model`` (a :class:`VideoModel` with one regression output) on a manifest.

    MSE loss on ``score / score_scale`` against ``output / score_scale`` (default scale: the
    largest training score, so the loss is of order one); SGD with momentum
    and cosine annealing with warm restarts every ``restart_epochs``; gradual unfreezing:
    first only the last block with parameters (the head), one more block every
    ``unfreeze_every`` epochs; Gaussian label noise of ``label_noise`` points; clips of the
    model's length every ``clip_stride`` frames. The epoch with the lowest participant-level
    MAE on ``val`` is kept (its weights are loaded into the model at the end). With
    ``checkpoint``, state is saved after every epoch and a new call resumes from it.

    Returns:
        :class:`FinetuneResult` with the history, best epoch, val/test metrics (see
        :func:`participant_metrics`) and the predict-the-training-mean baseline.
    """
    import torch
    from tqdm.auto import tqdm

    rows = read_manifest(manifest)
    splits = {name: [r for r in rows if r.split == name] for name in ("train", "val", "test")}
    if not splits["train"] or not splits["val"]:
        raise ManifestError(f"{manifest}: needs 'train' and 'val' rows (has {sorted({r.split for r in rows})})")
    if clips is None:
        clips = {name: prepare_clips(part, model, clip_stride, progress) for name, part in splits.items() if part}
    torch.manual_seed(seed)
    net = model.module
    optimiser = torch.optim.SGD([p for p in net.parameters()], lr=lr, momentum=momentum, weight_decay=weight_decay)
    train = clips["train"]
    if score_scale is None:
        score_scale = max(1.0, float(np.abs(train.scores).max()))
    steps_per_epoch = max(1, math.ceil(len(train) / batch_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimiser, T_0=restart_epochs * steps_per_epoch)
    result = FinetuneResult()
    start_epoch, best_state = 0, None
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        net.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"]) + 1
        result.history = json.loads(state["history"])
        result.best_epoch = int(state["best_epoch"])
        best_state = state["best_model"]
        log.info("resuming %s at epoch %d", checkpoint, start_epoch)
    started = time.perf_counter()
    for epoch in range(start_epoch, epochs):
        # Seeded per epoch, so a run resumed from a checkpoint continues exactly.
        rng = np.random.default_rng([seed, epoch])
        torch.manual_seed(seed * 1000 + epoch)
        _set_trainable(net, 1 + epoch // max(1, unfreeze_every))
        net.train()
        order = rng.permutation(len(train))
        losses = []
        bar = tqdm(range(0, len(order), batch_size), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress,
                   leave=False)
        for start in bar:
            batch = order[start : start + batch_size]
            target = torch.from_numpy(train.scores[batch] + rng.normal(0, label_noise, len(batch)).astype(np.float32))
            output = model(model.preprocess(train.frames[batch]))[:, 0]
            loss = torch.nn.functional.mse_loss(output / score_scale, target / score_scale)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise ModelError(f"training diverged at epoch {epoch + 1} (loss {value}); lower lr (now {lr})")
            losses.append(value)
            bar.set_postfix(loss=f"{np.mean(losses):.4f}")
        val = participant_metrics(clips["val"].participants, clips["val"].scores,
                                  predict(model, clips["val"].frames))
        result.history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_mae": val["mae"],
                               "val_rmse": val["rmse"], "lr": float(scheduler.get_last_lr()[0])})
        if result.best_epoch < 0 or val["mae"] <= min(h["val_mae"] for h in result.history):
            result.best_epoch = epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if checkpoint is not None:
            Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": net.state_dict(), "optimiser": optimiser.state_dict(),
                        "scheduler": scheduler.state_dict(), "epoch": epoch, "history": json.dumps(result.history),
                        "best_epoch": result.best_epoch, "best_model": best_state}, checkpoint)
    if best_state is None:
        raise ModelError("no epoch was trained (epochs <= the checkpoint's epoch?)")
    net.load_state_dict(best_state)
    net.eval()
    result.seconds = time.perf_counter() - started
    mean_score = float(np.mean([r.score for r in splits["train"]]))
    for name in ("val", "test"):
        if name in clips:
            predictions = predict(model, clips[name].frames)
            setattr(result, name, participant_metrics(clips[name].participants, clips[name].scores, predictions))
            result.baseline[name] = participant_metrics(clips[name].participants, clips[name].scores,
                                                        np.full(len(predictions), mean_score))
    result.baseline["train_mean"] = mean_score
    return result


def result_to_json(result: FinetuneResult) -> str:
    return json.dumps(asdict(result), indent=1)
