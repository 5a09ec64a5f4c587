"""Synthetic face videos with known events, and a small cohort with a planted score.

Every frame is the public-domain NASA portrait of astronaut Eileen Collins shipped with
scikit-image (``skimage.data.astronaut()``), animated by piecewise-affine warps of its
68 landmarks: blinks and long eye closures, brow raise and furrow, mouth opening and
smile, head motion and lighting changes. A ground-truth JSON says which event happens in
which region at which frames, with what intensity, frame by frame.

In a cohort each participant has a score on a 0–63 scale (like BDI-II) that is a
function of eye-closure behaviour alone: the fraction of time the eyes are held closed
in long closures (score = 63 × fraction / 0.45, capped). Blinks, mouth, smile and brow
events are distractors drawn independently of the score. A model trained on the cohort
can only do well by looking at the eyes, which is what the explanation tests check.

The modules: ``spec`` (what a sample is), ``events`` (when things happen, and the ground
truth), ``face`` (drawing one frame), ``animate`` (:func:`render`), ``files`` (writing
samples, the shipped samples, cohorts).

Example:
    >>> import expresso_xai as ex
    >>> sample = ex.samples.render(ex.samples.SampleSpec(seed=3, seconds=1, score=40))
    >>> sample.frames.shape, sample.truth["fps"]
    ((25, 192, 192, 3), 25.0)
"""

from __future__ import annotations

from .animate import render
from .face import base_face
from .files import (
    EVENT_ACTION_UNITS,
    OPENFACE_AUS_C,
    OPENFACE_AUS_R,
    SCORE_EVENTS,
    SHIPPED,
    load_truth,
    make_cohort,
    sample_path,
    samples_dir,
    truth_mask,
    write_openface_csv,
    write_sample,
    write_video,
)
from .spec import (
    EVENT_REGIONS,
    FACE_PROVENANCE,
    GENERATOR_VERSION,
    MAX_CLOSED_FRACTION,
    SCORE_MAX,
    Sample,
    SampleSpec,
    SampleSpecError,
)

__all__ = [
    "EVENT_ACTION_UNITS", "EVENT_REGIONS", "FACE_PROVENANCE", "GENERATOR_VERSION", "MAX_CLOSED_FRACTION",
    "OPENFACE_AUS_C", "OPENFACE_AUS_R", "SCORE_EVENTS", "SCORE_MAX", "SHIPPED", "Sample", "SampleSpec",
    "SampleSpecError", "base_face", "load_truth", "make_cohort", "render", "sample_path", "samples_dir",
    "truth_mask", "write_openface_csv", "write_sample", "write_video",
]
