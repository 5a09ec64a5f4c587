"""Participant-level ("clustered") prediction, loss and metrics: one implementation for the
library's :func:`~expresso_xai.models.training.finetune` and ``scripts/train_demo.py``.

A video model rates 16-frame clips, but the label (a BDI-II score, the synthetic cohort's
score) belongs to the participant. The reference study averaged a participant's clip
predictions and reported MAE and RMSE of those means; this module does that, and gives the
participant-level loss that trains on the same mean (see :func:`participant_loss` for why
it is the loss the library recommends).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: BDI-II severity bands (inclusive score ranges).
BDI_BANDS = {"minimal": (0, 13), "mild": (14, 19), "moderate": (20, 28), "severe": (29, 63)}


def video_clips(frames: np.ndarray, clip_length: int, stride: int) -> list[np.ndarray]:
    """The ``(L, H, W, 3)`` clips that :func:`expresso_xai.iter_clips` slides over a cropped
    video ``(T, H, W, 3)``: every ``stride`` frames, the last one ending on the last frame.

    Example:
        >>> import numpy as np
        >>> from expresso_xai.models.clustered import video_clips
        >>> [int(clip[0, 0, 0, 0]) for clip in video_clips(np.arange(40, dtype=np.uint8)[:, None, None, None]
        ...                                                  * np.ones((1, 2, 2, 3), np.uint8), 16, 10)]
        [0, 10, 20, 24]
    """
    from ..clips import iter_clips
    from ..video import Video

    return [clip.frames for clip in iter_clips(Video.from_array(frames), clip_length, stride)]


def tiled_positions(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` integer positions in ``[0, n)`` spread evenly from one random offset, so
    that together they sample the whole range (clip starts in a video, or clips of a
    participant), not a random corner of it.

    Example:
        >>> import numpy as np
        >>> from expresso_xai.models.clustered import tiled_positions
        >>> tiled_positions(30, 3, np.random.default_rng(0)).tolist()
        [6, 16, 26]
    """
    span = n / count
    return (rng.uniform(0, span) + np.arange(count) * span).astype(int)


def predict(model, clips: np.ndarray | Sequence[np.ndarray], batch_size: int = 8) -> np.ndarray:
    """The model's first output (float32) for each uint8 clip, in eval mode without
    gradients; ``clips`` is an ``(N, L, H, W, 3)`` array or a sequence of ``(L, H, W, 3)``.

    Example:
        >>> import numpy as np
        >>> from expresso_xai.models.clustered import predict
        >>> from expresso_xai.models.demo import build_demo_net, wrap_demo_net
        >>> predict(wrap_demo_net(build_demo_net()), np.zeros((3, 16, 64, 64, 3), np.uint8)).shape
        (3,)
    """
    import torch

    model.module.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(clips), batch_size):
            batch = np.stack(clips[start : start + batch_size])
            outputs.append(model(model.preprocess(batch))[:, 0].numpy())
    return np.concatenate(outputs)


def predict_participants(model, videos: Sequence[np.ndarray], stride: int = 8, batch_size: int = 32) -> np.ndarray:
    """Participant-level predictions: for each cropped video ``(T, H, W, 3)``, the mean
    of the model's outputs over clips every ``stride`` frames (:func:`video_clips`).

    Example:
        >>> import numpy as np
        >>> from expresso_xai.models.clustered import predict_participants
        >>> from expresso_xai.models.demo import build_demo_net, wrap_demo_net
        >>> videos = [np.zeros((40, 64, 64, 3), np.uint8), np.full((20, 64, 64, 3), 255, np.uint8)]
        >>> predict_participants(wrap_demo_net(build_demo_net()), videos).shape
        (2,)
    """
    return np.asarray([float(predict(model, video_clips(frames, model.clip_length, stride), batch_size).mean())
                       for frames in videos])


def participant_loss(model, clips: np.ndarray, targets, score_scale: float):
    """Participant-level loss: MSE between each participant's mean clip output divided by
    ``score_scale`` and its target ``targets (P,)`` (a float tensor of score / score_scale).

    ``clips (P * k, L, H, W, 3)`` uint8 hold ``k`` clips of each participant in turn
    (``k = 1``: the reference study's per-clip loss). The library recommends ``k > 1``
    with the clips spread over the video (:func:`tiled_positions`) whenever the label is a
    property of the whole video that not every clip shows, as a severity score is: with
    one loss per clip carrying the participant's score, the optimum is to recognise *who*
    is in a clip, and any difference between one participant's clips (e.g. eyes closed in
    some, open in others, which is what the synthetic cohort's score is made of) is
    penalised. ``scripts/train_demo.py`` measured it: trained per clip, the demo model's
    clip outputs correlated 0.3-0.5 with closed-eye time; trained on the mean of 3 clips
    per participant, about 0.9.

    Example:
        >>> import numpy as np, torch
        >>> from expresso_xai.models.clustered import participant_loss
        >>> from expresso_xai.models.demo import build_demo_net, wrap_demo_net
        >>> clips = np.zeros((2 * 3, 16, 64, 64, 3), np.uint8)  # 2 participants, 3 clips each
        >>> loss = participant_loss(wrap_demo_net(build_demo_net()), clips, torch.tensor([0.2, 0.8]), 63.0)
        >>> tuple(loss.shape), loss.requires_grad
        ((), True)
    """
    import torch

    outputs = model(model.preprocess(clips))[:, 0] / score_scale
    return torch.nn.functional.mse_loss(outputs.view(len(targets), -1).mean(dim=1), targets)


def _pearson(predictions: np.ndarray, truth: np.ndarray) -> float | None:
    """Correlation of predictions and scores; ``None`` where it is undefined (fewer than two
    participants, or a constant series such as the predict-the-mean baseline)."""
    if len(truth) < 2 or np.ptp(predictions) == 0 or np.ptp(truth) == 0:
        return None
    return float(np.corrcoef(predictions, truth)[0, 1])


def participant_metrics(participants, scores, predictions, correct_within: float = 5.0) -> dict:
    """Participant-level ("clustered") metrics: the mean prediction per participant
    against their score. MAE, RMSE, Pearson's r, MAE per BDI-II band, and how many
    participants were estimated within ``correct_within`` points, over or under.

    ``predictions`` are per clip (``participants`` names each clip's participant) or
    already one per participant (e.g. from :func:`predict_participants`).

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
        "pearson_r": _pearson(mean, truth),
        "bands": bands,
        "groups": {"correct": int((np.abs(error) <= correct_within).sum()),
                   "over": int((error > correct_within).sum()),
                   "under": int((error < -correct_within).sum())},
        "per_participant": {p: {"score": float(t), "prediction": float(m)} for p, t, m in zip(names, truth, mean)},
    }
