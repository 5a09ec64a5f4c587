"""Typed errors and warnings of expresso-xai.

Every error says what was wrong and what to do about it, and names the file involved
when there is one. Catch :class:`ExpressoError` to catch them all.
"""

from __future__ import annotations


class ExpressoError(Exception):
    """Base class of every error raised on purpose by expresso-xai."""


class VideoReadError(ExpressoError, OSError):
    """A video could not be read: missing, empty, not a video, or without frames."""


class VideoLayoutError(ExpressoError, ValueError):
    """An array given as video frames does not have a ``(T, H, W[, C])`` layout."""


class NoFaceError(ExpressoError):
    """A step that needs a face found none."""


class LandmarkerError(ExpressoError):
    """A landmark back end could not be set up (model file missing, bad output shape)."""


class FaceTrackError(ExpressoError, ValueError):
    """A face track that cannot be used: landmarks that are not ``(T, 68, 2)``, or a track
    that does not belong to the video it is used with (another number of frames)."""


class OpenFaceFormatError(ExpressoError, ValueError):
    """An OpenFace 2.0 CSV is missing columns or holds values that are not numbers."""


class RegionError(ExpressoError, ValueError):
    """A region scheme or region map was asked for something it cannot give."""


class ExpressoWarning(UserWarning):
    """Base class of the warnings of expresso-xai."""


class TruncatedVideoWarning(ExpressoWarning):
    """Fewer frames could be decoded than the container's header announces."""


class VideoTimingWarning(ExpressoWarning):
    """The container's timing cannot be trusted (frames of duration 0); the frame rate
    and timestamps are taken from the rest of its timing table instead."""


class UntrainedModelWarning(ExpressoWarning):
    """A model with random (untrained) weights: its explanations explain no learned
    behaviour. The weights come from a seed, so every load gives the same model."""


class NoFaceWarning(ExpressoWarning):
    """Some or all frames of a video have no face."""


class OtherFacesWarning(ExpressoWarning):
    """Faces other than the followed subject are in the video: only the subject is
    tracked, and frames where it is out of view have no face (none is substituted)."""


class ModelError(ExpressoError, ValueError):
    """A model cannot be driven as asked: wrong layout, output shape, target or layer."""


class ModelOutputError(ModelError):
    """A model's output is unusable: wrong shape, or NaN/infinite values."""


class MethodError(ExpressoError, ValueError):
    """An explanation method is unknown or was given options it does not take."""


class CubeError(ExpressoError, ValueError):
    """An attribution cube does not fit the schema, or a file holds no cube (or is missing)."""


class EvaluationError(ExpressoError, ValueError):
    """An evaluation cannot run as asked: the cube, model, video or ground truth do not
    belong together, a metric is unknown, or an evaluation file holds no evaluation."""


class CohortError(ExpressoError, ValueError):
    """A cohort cannot run or be analysed as asked: a manifest with a missing column, a
    bad or duplicated row, a store written with other settings or by something else, or
    an analysis asked of groups or regions the cohort does not have."""


class OutputRangeWarning(ExpressoWarning):
    """A model predicted outside the output range it declares (``VideoModel.output_range``):
    it is used beyond what it was trained for, and its explanations describe that."""


class PrecisionWarning(ExpressoWarning):
    """A reduced-precision run (``autocast="bf16"``) missed a method's tolerance: integrated
    gradients' attributions do not add up to ``f(x) - f(baseline)`` of the float32 model
    within ``tolerance``; the clip is flagged (``converged`` False) and its error stored."""


class ExplorerSizeError(CubeError):
    """A standalone Explorer page would be larger than its size cap (``max_mb``): export a
    time range with ``Explorer.save_html(path, frames=slice(a, b))`` or raise the cap."""
