"""Shared fixtures: the shipped sample videos, loaded and tracked once per session."""

from __future__ import annotations

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai import samples


@pytest.fixture(scope="session")
def high_video() -> ex.Video:
    """participant_high: 250 frames, 192x192, many long eye closures."""
    return ex.load_video(samples.sample_path("participant_high"))


@pytest.fixture(scope="session")
def high_faces(high_video) -> ex.FaceTrack:
    return ex.track_faces(high_video, progress=False)


@pytest.fixture(scope="session")
def short_video(high_video) -> ex.Video:
    """48 frames of participant_high, spanning an open and a closed stretch."""
    return high_video[50:98]


@pytest.fixture(scope="session")
def short_faces(short_video) -> ex.FaceTrack:
    return ex.track_faces(short_video, progress=False)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
