"""Fine-tuning a video model to rate a score from face clips, as the reference study did,
and its participant-level ("clustered") evaluation.

The study fine-tuned action-recognition backbones with one linear output, MSE loss, SGD
with cosine annealing and warm restarts, label noise and gradual unfreezing, on 16-frame
clips, and reported MAE and RMSE of the mean prediction per participant, by BDI-II band
and by error group. :func:`finetune` does that for any :class:`VideoModel` on a manifest
CSV (``video, participant, score, split``), with checkpoints it resumes from, and offers
the participant-level loss the library recommends (``loss="participant"``). The
prediction, loss and metrics it shares with ``scripts/train_demo.py`` live in
:mod:`expresso_xai.models.clustered`.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import numbers
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import ExpressoError, ModelError
from .checkpoint import FinetuneResult, FinetuneRun, read_checkpoint
from .clustered import BDI_BANDS, participant_loss, participant_metrics, predict, tiled_positions, video_clips

log = logging.getLogger(__name__)

__all__ = [
    "BDI_BANDS", "ClipSet", "FinetuneResult", "LOSSES", "ManifestError", "ManifestRow", "ParticipantVideo",
    "crop_videos", "finetune", "participant_metrics", "predict", "prepare_clips", "read_manifest", "result_to_json",
]

#: The losses :func:`finetune` offers: one per clip (the reference study's) or one per participant.
LOSSES = ("clip", "participant")


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
class ParticipantVideo:
    """One participant's video cropped to a model's input: ``frames (T, H, W, 3)`` uint8."""

    participant: str
    score: float
    split: str
    frames: np.ndarray


def crop_videos(rows: list[ManifestRow], input_size: tuple[int, int], progress: bool = True) -> list[ParticipantVideo]:
    """Track the face in each row's video and crop every frame to ``input_size`` exactly as
    the explanation engine does (``FaceCrop.from_track(faces, size=input_size)``).

    Example:
        >>> import tempfile, expresso_xai as ex
        >>> from expresso_xai.models.training import crop_videos, read_manifest
        >>> manifest = ex.samples.make_cohort(tempfile.mkdtemp(), n_participants=2, seconds=1, progress=False)
        >>> [(v.participant, v.frames.shape) for v in crop_videos(read_manifest(manifest), (64, 64), progress=False)]
        [('p000', (25, 64, 64, 3)), ('p001', (25, 64, 64, 3))]
    """
    from tqdm.auto import tqdm

    from .. import FaceCrop
    from ..faces import track_faces
    from ..video import load_video

    videos = []
    for row in tqdm(rows, desc="track + crop", unit="video", disable=not progress, leave=False):
        video = load_video(row.video)
        faces = track_faces(video, progress=False)
        missing = int((~faces.face_found).sum())
        if missing:
            log.warning("%s: no face in %d of %d frames (their crops reuse the nearest face)",
                        row.participant, missing, len(faces))
        crop = FaceCrop.from_track(faces, size=input_size)
        videos.append(ParticipantVideo(row.participant, row.score, row.split, crop.apply(video)))
    return videos


@dataclass
class ClipSet:
    """Cropped clips ready for a model: ``frames (N, L, H, W, 3)`` uint8, ``scores (N,)``,
    ``participants (N,)``."""

    frames: np.ndarray
    scores: np.ndarray
    participants: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)

    @classmethod
    def from_videos(cls, videos: list[ParticipantVideo], clip_length: int, stride: int) -> "ClipSet":
        """The clips every ``stride`` frames of each video, with its score and participant.

        Example:
            >>> import numpy as np
            >>> from expresso_xai.models.training import ClipSet, ParticipantVideo
            >>> video = ParticipantVideo("p0", 12.0, "train", np.zeros((40, 8, 8, 3), np.uint8))
            >>> clips = ClipSet.from_videos([video], clip_length=16, stride=8)
            >>> clips.frames.shape, clips.participants.tolist()
            ((4, 16, 8, 8, 3), ['p0', 'p0', 'p0', 'p0'])
        """
        frames, scores, participants = [], [], []
        for video in videos:
            clips = video_clips(video.frames, clip_length, stride)
            frames += clips
            scores += [video.score] * len(clips)
            participants += [video.participant] * len(clips)
        return cls(np.stack(frames), np.asarray(scores, np.float32), np.asarray(participants))

    def participant_groups(self) -> list[np.ndarray]:
        """The indices of each participant's clips, in video order, participants in the
        order they first appear.

        Example:
            >>> import numpy as np
            >>> from expresso_xai.models.training import ClipSet
            >>> clips = ClipSet(np.zeros((3, 1)), np.zeros(3), np.array(["b", "a", "b"]))
            >>> [group.tolist() for group in clips.participant_groups()]
            [[0, 2], [1]]
        """
        return [np.flatnonzero(self.participants == name) for name in dict.fromkeys(self.participants.tolist())]


def prepare_clips(rows: list[ManifestRow], model, stride: int = 8, progress: bool = True) -> ClipSet:
    """Track, crop (as the explanation engine does) and cut every video into the model's clips.

    Example:
        >>> import tempfile, expresso_xai as ex
        >>> from expresso_xai.models.training import prepare_clips, read_manifest
        >>> manifest = ex.samples.make_cohort(tempfile.mkdtemp(), n_participants=1, seconds=1, progress=False)
        >>> clips = prepare_clips(read_manifest(manifest), ex.models.load("demo"), progress=False)
        >>> clips.frames.shape  # 25 frames: clips start at 0, 8 and 9 (the last one ends on the last frame)
        (3, 16, 64, 64, 3)
    """
    return ClipSet.from_videos(crop_videos(rows, model.input_size, progress), model.clip_length, stride)


def _blocks(module):
    """Top-level children with parameters, input side first (the unfreezing units)."""
    return [child for child in module.children() if any(True for _ in child.parameters())]


def _set_trainable(module, n_unfrozen: int) -> None:
    blocks = _blocks(module)
    for i, block in enumerate(blocks):
        trainable = i >= len(blocks) - n_unfrozen
        for parameter in block.parameters():
            parameter.requires_grad_(trainable)


def _read_splits(manifest: str | Path) -> dict[str, list[ManifestRow]]:
    rows = read_manifest(manifest)
    splits = {name: [r for r in rows if r.split == name] for name in ("train", "val", "test")}
    if not splits["train"] or not splits["val"]:
        raise ManifestError(f"{manifest}: needs 'train' and 'val' rows (has {sorted({r.split for r in rows})})")
    return splits


def _clustered_metrics(model, clips: ClipSet) -> dict:
    return participant_metrics(clips.participants, clips.scores, predict(model, clips.frames))


def _epoch_batches(train: ClipSet, groups: list[np.ndarray], per_group: int | None, batch_size: int,
                   label_noise: float, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch's ``(clips, scores)``: ``batch_size`` groups at a time in a random order,
    all clips of each group (``per_group=None``) or ``per_group`` of them spread over it,
    and each group's score plus Gaussian label noise of ``label_noise`` points."""
    order = rng.permutation(len(groups))
    for start in range(0, len(order), batch_size):
        chosen = [groups[i] for i in order[start : start + batch_size]]
        if per_group is not None:
            chosen = [group[tiled_positions(len(group), per_group, rng)] for group in chosen]
        noise = rng.normal(0, label_noise, len(chosen)).astype(np.float32)
        yield train.frames[np.concatenate(chosen)], train.scores[[group[0] for group in chosen]] + noise


def _train_epoch(model, batches, optimiser, scheduler, score_scale: float, bar) -> list[float]:
    """Optimiser steps over one epoch's batches; the loss of each (stops at the first
    loss that is not finite, the last one in the list)."""
    import torch

    losses = []
    for clips, scores in batches:
        loss = participant_loss(model, clips, torch.from_numpy(scores) / score_scale, score_scale)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            break
        bar.update()
        bar.set_postfix(loss=f"{np.mean(losses):.4f}")
    bar.close()
    return losses


def _check_options(**options) -> None:
    """Refuse the numeric options of :func:`finetune` that would train nothing or give NaN
    weights, naming the option (checked before any video is read)."""
    for name in ("epochs", "batch_size", "clip_stride", "restart_epochs", "unfreeze_every", "clips_per_participant"):
        _check_number(name, options[name], low=1, whole=True)
    _check_number("seed", options["seed"], low=0, whole=True)
    _check_number("lr", options["lr"], low=0, above=True)
    for name in ("momentum", "weight_decay", "label_noise"):
        _check_number(name, options[name], low=0)
    if options["score_scale"] is not None:
        _check_number("score_scale", options["score_scale"], low=0, above=True)


def _check_number(name: str, value, low: float, whole: bool = False, above: bool = False) -> None:
    kind = numbers.Integral if whole else numbers.Real
    fits = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    if not (fits and (value > low if above else value >= low)):
        what = "a whole number" if whole else "a finite number"
        raise ModelError(f"{name} must be {what} {'>' if above else '>='} {low}, not {value!r}")


def _val_metrics_unless_diverged(model, val: ClipSet, epoch: int, losses: list[float], lr: float) -> dict:
    """The epoch's participant-level metrics on ``val``; a run whose loss, weights or
    predictions stopped being finite stops here, before its checkpoint saves them."""
    import torch

    what = f"loss {losses[-1]}" if not math.isfinite(losses[-1]) else None
    if what is None and not all(bool(torch.isfinite(parameter).all()) for parameter in model.module.parameters()):
        what = "weights not finite"
    predictions = predict(model, val.frames) if what is None else None
    if what is None and not np.isfinite(predictions).all():
        what = "val predictions not finite"
    if what is not None:
        raise ModelError(f"training diverged at epoch {epoch + 1} ({what}); lower lr (now {lr:g}) and start again")
    return participant_metrics(val.participants, val.scores, predictions)


def _evaluate(model, clips: dict[str, ClipSet], train_mean: float, result: FinetuneResult) -> None:
    """Participant-level metrics on val and test, next to predicting the training mean."""
    for name in ("val", "test"):
        if name in clips:
            part = clips[name]
            setattr(result, name, _clustered_metrics(model, part))
            result.baseline[name] = participant_metrics(part.participants, part.scores, np.full(len(part), train_mean))
    result.baseline["train_mean"] = train_mean


def finetune(model, manifest: str | Path, *, epochs: int = 10, lr: float = 0.01, momentum: float = 0.9,
             weight_decay: float = 1e-4, batch_size: int = 8, clip_stride: int = 8, restart_epochs: int = 5,
             unfreeze_every: int = 2, label_noise: float = 0.0, score_scale: float | None = None, seed: int = 0,
             loss: str = "clip", clips_per_participant: int = 3, checkpoint: str | Path | None = None,
             progress: bool = True, clips: dict | None = None) -> FinetuneResult:
    """Fine-tune ``model`` (a :class:`VideoModel` with one regression output) on a manifest.

    MSE loss on ``score / score_scale`` against ``output / score_scale`` (default scale: the
    largest training score, so the loss is of order one); SGD with momentum
    and cosine annealing with warm restarts every ``restart_epochs``; gradual unfreezing:
    first only the last block with parameters (the head), one more block every
    ``unfreeze_every`` epochs; Gaussian label noise of ``label_noise`` points; clips of the
    model's length every ``clip_stride`` frames. The epoch with the lowest participant-level
    MAE on ``val`` is kept (its weights are loaded into the model at the end). With
    ``checkpoint``, state is saved after every epoch and a new call resumes from it.

    ``loss`` says what one squared error is about:

    - ``"clip"`` (default, the reference study's): each clip's output against its
      participant's score; a batch is ``batch_size`` clips.
    - ``"participant"`` (**recommended**): the mean output of ``clips_per_participant``
      clips spread over a participant's video against its score; a batch is
      ``batch_size`` participants. A score such as BDI-II belongs to the whole video,
      and most clips, even of a high scorer, need not show what it is made of; one loss
      per clip then rewards recognising *who* is in a clip and penalises exactly the
      differences between a participant's clips that carry the score.
      ``scripts/train_demo.py`` trained the demo model this way because the per-clip loss
      failed on the synthetic cohort (clip outputs correlated 0.3-0.5 with the planted
      closed-eye time, against about 0.9 with the participant-level loss); see
      :func:`~expresso_xai.models.clustered.participant_loss`.

    The numeric options are checked before any video is read: ``lr`` finite and > 0;
    ``momentum``, ``weight_decay`` and ``label_noise`` finite and >= 0; ``score_scale``
    (when given) finite and > 0; ``epochs``, ``batch_size``, ``clip_stride``,
    ``restart_epochs``, ``unfreeze_every`` and ``clips_per_participant`` whole numbers
    >= 1; ``seed`` a whole number >= 0. A run whose loss, weights or val MAE stop being
    finite stops at the end of that epoch (or at the first non-finite loss), before its
    checkpoint is written. A checkpoint is loaded with ``torch.load(weights_only=True)``,
    also before any video is read: one that holds other Python objects, is cut short, is
    not a zip archive, lacks a key or does not fit the model is refused (and the model's
    weights are left as they were).

    Returns:
        :class:`FinetuneResult` with the history, best epoch, val/test metrics (see
        :func:`participant_metrics`) and the predict-the-training-mean baseline.

    Raises:
        ModelError: an option is out of range (the message names it), the checkpoint is
            unusable (the message names the file: delete it or give another path), or
            training diverged (lower ``lr``).
        ManifestError: the manifest is missing, malformed or lacks train/val rows.

    Example:
        >>> import tempfile, expresso_xai as ex
        >>> from expresso_xai.models.demo import build_demo_net, wrap_demo_net
        >>> manifest = ex.samples.make_cohort(tempfile.mkdtemp(), n_participants=3, seconds=1, progress=False,
        ...                                   splits=(0.34, 0.33, 0.33))
        >>> result = ex.models.training.finetune(wrap_demo_net(build_demo_net()), manifest, epochs=1,
        ...                                      loss="participant", batch_size=2, progress=False)
        >>> result.best_epoch, result.val["n_participants"], result.test["n_participants"]
        (0, 1, 1)
    """
    import torch
    from tqdm.auto import tqdm

    if loss not in LOSSES:
        raise ModelError(f"loss must be one of {', '.join(map(repr, LOSSES))}, not {loss!r}")
    _check_options(epochs=epochs, lr=lr, momentum=momentum, weight_decay=weight_decay, batch_size=batch_size,
                   clip_stride=clip_stride, restart_epochs=restart_epochs, unfreeze_every=unfreeze_every,
                   label_noise=label_noise, score_scale=score_scale, seed=seed,
                   clips_per_participant=clips_per_participant)
    checkpoint = None if checkpoint is None else Path(checkpoint)
    saved = read_checkpoint(checkpoint)
    splits = _read_splits(manifest)
    if clips is None:
        clips = {name: prepare_clips(part, model, clip_stride, progress) for name, part in splits.items() if part}
    train = clips["train"]
    per_participant = loss == "participant"
    groups = train.participant_groups() if per_participant else list(np.arange(len(train))[:, None])
    if score_scale is None:
        score_scale = max(1.0, float(np.abs(train.scores).max()))
    torch.manual_seed(seed)
    net = model.module
    optimiser = torch.optim.SGD(list(net.parameters()), lr=lr, momentum=momentum, weight_decay=weight_decay)
    steps_per_epoch = max(1, math.ceil(len(groups) / batch_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimiser, T_0=restart_epochs * steps_per_epoch)
    run = FinetuneRun(net, optimiser, scheduler, checkpoint)
    started = time.perf_counter()
    for epoch in range(run.resume(saved), epochs):
        # Seeded per epoch, so a run resumed from a checkpoint continues exactly.
        rng = np.random.default_rng([seed, epoch])
        torch.manual_seed(seed * 1000 + epoch)
        _set_trainable(net, 1 + epoch // max(1, unfreeze_every))
        net.train()
        batches = _epoch_batches(train, groups, clips_per_participant if per_participant else None, batch_size,
                                 label_noise, rng)
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        losses = _train_epoch(model, batches, optimiser, scheduler, score_scale, bar)
        val = _val_metrics_unless_diverged(model, clips["val"], epoch, losses, lr)
        run.record(epoch, float(np.mean(losses)), val)
    result = run.keep_best()
    result.seconds = time.perf_counter() - started
    _evaluate(model, clips, float(np.mean([r.score for r in splits["train"]])), result)
    return result


def result_to_json(result: FinetuneResult) -> str:
    """A :class:`FinetuneResult` as JSON text (what ``expresso-xai train`` writes next to the weights).

    Example:
        >>> from expresso_xai.models.training import FinetuneResult, result_to_json
        >>> result_to_json(FinetuneResult(best_epoch=2)).splitlines()[1:3]
        [' "history": [],', ' "best_epoch": 2,']
    """
    return json.dumps(asdict(result), indent=1)
