"""Shared fixtures: the shipped sample videos, loaded and tracked once per session, and\nthe browser of the browser tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai import samples
from expresso_xai.testing import chromium, find_chromium


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


@pytest.fixture
def fragile_saliency():
    """Make a saliency method, registered under ``name``, that is interrupted (Ctrl-C)
    on its ``on_call``-th clip while its ``interrupt`` is True; each call's seed goes to
    its ``calls``. Methods made here are unregistered when the test ends."""
    from expresso_xai.explain import METHODS, Method, MethodResult, register
    from expresso_xai.explain.base import shared_gradients

    made = []

    def make(name: str, model, on_call: int):
        class Fragile(Method):
            shares_gradient = True
            interrupt = True
            calls: list = []

            def attribute(self, ctx):
                Fragile.calls.append(ctx.seed)
                if Fragile.interrupt and len(Fragile.calls) == on_call:
                    raise KeyboardInterrupt
                return MethodResult(pixels=model.to_pixels(shared_gradients(ctx)["input_gradient"].abs())[0])

        Fragile.name = name
        made.append(register(Fragile))
        return Fragile

    yield make
    for method in made:
        METHODS.pop(method.name, None)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, one per test module; the browser tests are
    skipped with a loud reason where it is not installed."""
    if find_chromium() is None:
        pytest.skip("BROWSER TESTS SKIPPED: Debian's chromium is not installed. `make test` installs it with "
                    "apt-get where apt is available; otherwise run `apt-get install -y chromium`.")
    (Path(__file__).resolve().parents[1] / "test-artifacts" / "browser").mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        yield browser
