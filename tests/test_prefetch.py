"""Clips decoded, cropped and preprocessed in a background thread while the model runs
(``ex.explain(..., prefetch=N)``): the same cube bit for bit, the same typed errors, no
thread left behind, a progress bar of finished clips and the model's waiting time."""

from __future__ import annotations

import threading
import time
import warnings

import cv2
import numpy as np
import pytest
import xarray as xr

import expresso_xai as ex
from expresso_xai.errors import FaceTrackError, MethodError, TruncatedVideoWarning, VideoReadError
from expresso_xai.explain import engine, prefetch
from expresso_xai.explain.prefetch import Prefetcher
from expresso_xai.testing import tiny_model

TIMING_ATTRS = ("created", "prefetch", "decode_wait_fraction")


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    """A 2 s synthetic face video on disk (50 frames: 6 clips at stride 8), its face track,
    the same frames as an MJPG AVI (readable when cut short) and the AVI cut at 60%."""
    folder = tmp_path_factory.mktemp("prefetch")
    sample = ex.samples.render(ex.samples.SampleSpec(seed=5, seconds=2, name="face"))
    path = ex.samples.write_sample(sample, folder)["video"]
    avi = folder / "face.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 25, sample.frames.shape[2:0:-1])
    for frame in sample.frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    cut = folder / "cut.avi"
    cut.write_bytes(avi.read_bytes()[: int(avi.stat().st_size * 0.6)])
    return {"path": path, "faces": ex.track_faces(path, progress=False), "avi": avi, "cut": cut}


def run(streamed, **options):
    options = {"methods": ["gradcam", "saliency"], "batch_size": 4, "progress": False, **options}
    if "integrated_gradients" in options["methods"]:
        options["integrated_gradients"] = {"n_steps": 2}
    video, faces = options.pop("video", streamed["path"]), options.pop("faces", streamed["faces"])
    return ex.explain(tiny_model(), video, faces=faces, **options)


def assert_same_cube(first: xr.Dataset, second: xr.Dataset) -> None:
    """Every variable, coordinate and attr equal bit for bit, timing attrs aside."""
    first, second = first.copy(), second.copy()
    for cube in (first, second):
        for name in TIMING_ATTRS:
            cube.attrs.pop(name, None)
    assert first.identical(second), "the cubes differ"
    for name in first.variables:
        np.testing.assert_array_equal(first[name].values, second[name].values, err_msg=name)


@pytest.fixture
def threads_of(monkeypatch):
    """The names of the threads that cropped the run's clips and preprocessed them."""
    threads = {"cropped": [], "preprocessed": []}

    def recording(function, key):
        def recorded(*args, **kwargs):
            threads[key].append(threading.current_thread().name)
            return function(*args, **kwargs)
        return recorded

    monkeypatch.setattr(prefetch, "cropped", recording(prefetch.cropped, "cropped"))
    monkeypatch.setattr(ex.models.VideoModel, "preprocess",
                        recording(ex.models.VideoModel.preprocess, "preprocessed"))
    return threads


@pytest.mark.parametrize("loop", [{}, {"clips_per_batch": 2}], ids=["clip_by_clip", "batched"])
def test_a_streamed_video_gives_the_same_cube_with_the_background_decoder(streamed, loop, threads_of):
    main = threading.main_thread().name
    loop = {"methods": ["gradcam", "saliency", "integrated_gradients"], "keep_pixels": True, **loop}
    alone = run(streamed, prefetch=0, **loop)
    assert set(threads_of["cropped"]) == {main}
    threads_of["cropped"].clear()
    ahead = run(streamed, prefetch=3, **loop)
    assert set(threads_of["cropped"]) == {"expresso-xai-prefetch"}, "the clips must be cropped in the background"
    assert len(threads_of["cropped"]) == ahead.sizes["clip"] == 6
    assert set(threads_of["preprocessed"]) == {main}, "torch work stays in the model's thread"
    assert_same_cube(alone, ahead)
    assert (alone.attrs["prefetch"], ahead.attrs["prefetch"]) == (0, 3)
    assert alone.attrs["video_hash"] == ahead.attrs["video_hash"]  # hashed as decoded, in the thread


def test_a_video_in_memory_gives_the_same_cube_with_the_background_decoder(streamed):
    video, faces = ex.load_video(streamed["path"], max_frames=24), streamed["faces"][:24]
    assert_same_cube(run(streamed, video=video, faces=faces, prefetch=0), run(streamed, video=video, faces=faces))


def test_an_interrupted_prefetching_run_stops_its_thread_and_resumes_to_the_same_cube(
        streamed, tmp_path, fragile_saliency, monkeypatch):
    model = tiny_model()
    fragile = fragile_saliency("fragile_prefetch", model, on_call=3)
    closing = []
    close = Prefetcher.close

    def timed_close(self):
        started = time.perf_counter()
        close(self)
        closing.append(time.perf_counter() - started)

    monkeypatch.setattr(Prefetcher, "close", timed_close)
    options = {"faces": streamed["faces"], "methods": ["fragile_prefetch", "saliency"], "progress": False}
    checkpoint = tmp_path / "run.npz"
    before = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        ex.explain(model, streamed["path"], prefetch=3, checkpoint=checkpoint, checkpoint_every=1e9, **options)
    assert threading.active_count() == before, "the prefetch thread outlived the run"
    assert closing and max(closing) < 2.0, f"stopping the thread took {closing} s"
    assert checkpoint.exists()
    fragile.interrupt = False
    fragile.calls.clear()
    resumed = ex.explain(model, streamed["path"], prefetch=3, checkpoint=checkpoint, **options)
    assert len(fragile.calls) == 4, "the 2 clips saved are not explained again"
    fresh = ex.explain(model, streamed["path"], prefetch=0, **options)
    assert_same_cube(resumed, fresh)
    assert threading.active_count() == before


def _fails_after(clips: int, message: str):
    """``iter_clips`` whose decoding fails after ``clips`` clips."""
    iter_clips = engine.iter_clips

    def failing(*args, **kwargs):
        for number, clip in enumerate(iter_clips(*args, **kwargs)):
            if number == clips:
                raise VideoReadError(message)
            yield clip
    return failing


@pytest.mark.parametrize("prefetch_clips", [0, 2])
def test_errors_in_the_thread_are_the_errors_of_a_run_without_it(streamed, monkeypatch, prefetch_clips):
    before = threading.active_count()
    with pytest.warns(TruncatedVideoWarning, match="cut.avi"), \
            pytest.raises(FaceTrackError, match=r"50 frames but .*cut\.avi has 31"):
        run(streamed, video=streamed["cut"], prefetch=prefetch_clips, methods=["saliency"])
    with pytest.raises(FaceTrackError, match=r"the face track has 30 frames but .*face\.avi has more"):
        ex.explain(tiny_model(), streamed["avi"], faces=streamed["faces"][:30], methods=["saliency"],
                   progress=False, prefetch=prefetch_clips)
    monkeypatch.setattr(engine, "iter_clips", _fails_after(3, f"{streamed['path']}: frame 31 cannot be decoded"))
    with pytest.raises(VideoReadError, match="face.mp4: frame 31"):
        run(streamed, prefetch=prefetch_clips, methods=["saliency"])
    assert threading.active_count() == before


def test_the_progress_bar_counts_finished_clips(streamed, monkeypatch):
    from tqdm import auto

    bars = []

    class Recording(auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.counts, self.shown = [self.n], kwargs.get("desc") == "explain" and not kwargs.get("disable")
            bars.append(self)

        def update(self, n=1):
            super().update(n)
            self.counts.append(self.n)

    monkeypatch.setattr(auto, "tqdm", Recording)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm's own notices about a missing terminal
        run(streamed, prefetch=3, progress=True, methods=["saliency"])
        run(streamed, prefetch=3, progress=True, methods=["saliency"], clips_per_batch=4)
    explained = [bar for bar in bars if bar.shown]
    assert [bar.counts for bar in explained] == [[0, 1, 2, 3, 4, 5, 6], [0, 4, 6]]
    assert [bar.total for bar in explained] == [6, 6]


def test_the_model_waits_for_slow_clips_only_without_prefetch():
    def slow_clips():
        for number in range(6):
            time.sleep(0.05)  # decoding
            yield number

    waited = {}
    for ahead in (0, 3):
        with Prefetcher(slow_clips(), ahead) as clips:
            for _ in clips:
                time.sleep(0.1)  # the model
        waited[ahead] = clips.waited
    assert waited[0] >= 6 * 0.05
    assert waited[3] < 0.05 + 0.1, waited  # only the first clip is waited for


def test_prefetch_is_checked_before_any_work(streamed):
    for value in (-1, 1.5, True, "2"):
        with pytest.raises(MethodError, match="prefetch must be a whole number"):
            run(streamed, prefetch=value)


def test_the_cli_takes_prefetch_and_records_it(streamed, tmp_path):
    from expresso_xai.cli import main

    out = tmp_path / "cube.nc"
    assert main(["explain", str(streamed["path"]), "--methods", "saliency", "--prefetch", "0", "--out", str(out)]) == 0
    cube = ex.open_cube(out)
    assert cube.attrs["prefetch"] == 0 and 0 < cube.attrs["decode_wait_fraction"] < 1
