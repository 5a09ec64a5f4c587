"""What a synthetic sample is: the spec that says what one video shows, the rendered
sample, and the constants of the planted score and of the face's provenance."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ExpressoError

FACE_PROVENANCE = (
    "skimage.data.astronaut(): portrait of astronaut Eileen Collins, NASA photograph "
    "(public domain, https://commons.wikimedia.org/wiki/File:Eileen_Collins.jpg), as "
    "shipped in scikit-image's data directory."
)
#: Closed-eye fraction of time that maps to the top of the score scale.
MAX_CLOSED_FRACTION = 0.45
SCORE_MAX = 63.0
GENERATOR_VERSION = 1

#: Events and the regions they move.
EVENT_REGIONS = {
    "blink": ["right_eye", "left_eye"],
    "long_closure": ["right_eye", "left_eye"],
    "brow_raise": ["right_brow", "left_brow", "forehead"],
    "brow_furrow": ["right_brow", "left_brow"],
    "mouth_open": ["mouth", "jaw"],
    "smile": ["mouth", "right_cheek", "left_cheek"],
    "lighting": ["global"],
}


class SampleSpecError(ExpressoError, ValueError):
    """A :class:`SampleSpec` asks for a video that cannot be made (e.g. no frames)."""


@dataclass
class SampleSpec:
    """What one synthetic video shows.

    Attributes:
        seed: seeds every random choice (same spec, same pixels).
        seconds, fps, size: duration, frame rate and square frame side in pixels.
        score: 0–63 severity; sets the time spent in long eye closures. ``None``: no long
            closures.
        blink_rate, mouth_rate, smile_rate, raise_rate, furrow_rate: distractor events
            per minute, independent of the score.
        head_motion: amplitude scale of the smooth head motion (0 disables it).
        lighting_change: add one lighting change (``None``: decided by the seed).
        face_scale: size of the face relative to the default framing.
        name: participant or sample name written in the ground truth.

    Example:
        >>> from expresso_xai.samples import SampleSpec
        >>> SampleSpec(seed=3, seconds=2, score=40).fps
        25.0
    """

    seed: int = 0
    seconds: float = 10.0
    fps: float = 25.0
    size: int = 192
    score: float | None = None
    blink_rate: float = 15.0
    mouth_rate: float = 10.0
    smile_rate: float = 4.0
    raise_rate: float = 5.0
    furrow_rate: float = 3.0
    head_motion: float = 1.0
    lighting_change: bool | None = None
    face_scale: float = 1.0
    noise: float = 2.0
    name: str = "sample"
    canvas: tuple[int, int] | None = None  # (height, width) to place the face in a larger frame


@dataclass
class Sample:
    """A rendered sample: frames ``(T, H, W, 3)`` uint8 RGB, true landmarks and truth."""

    frames: np.ndarray
    landmarks: np.ndarray
    truth: dict = field(default_factory=dict)

    def to_video(self):
        """The frames as a :class:`~expresso_xai.Video` at the sample's frame rate.

        Example:
            >>> import expresso_xai as ex
            >>> ex.samples.render(ex.samples.SampleSpec(seconds=0.2)).to_video().fps
            25.0
        """
        from ..video import Video

        return Video(self.frames, float(self.truth["fps"]), source=self.truth.get("name"))
