"""The batch size of perturbation methods: measured once, remembered on disk, skipped
when given; a broken cache file is ignored."""

from __future__ import annotations

import json

import pytest

import expresso_xai as ex
from expresso_xai.explain import batching
from expresso_xai.testing import tiny_model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPRESSO_XAI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(batching, "_BATCH_CACHE", {})  # a new process
    return tmp_path / "cache" / batching.CACHE_FILE


def _counting(model):
    calls = []
    model.module.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    return calls


@pytest.fixture(scope="module")
def clip():
    video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=16)
    return video, ex.track_faces(video, progress=False)


def _occlude(model, clip, **options):
    video, faces = clip
    # window 4: 48 units, enough for the growth on the first clip to settle a size (1+1+2+4+8+16)
    return ex.explain(model, video, faces=faces, methods=["occlusion"], progress=False, occlusion={"window": 4},
                      **options)


def test_measured_once_then_remembered_by_a_new_process_without_a_probe_forward(cache, clip, monkeypatch):
    model = tiny_model(input_size=(64, 64))
    calls = _counting(model)
    first = _occlude(model, clip)
    assert first.attrs["batch_size_source"] == "measured" and cache.exists()
    cold_samples = sum(calls)
    monkeypatch.setattr(batching, "_BATCH_CACHE", {})
    calls.clear()
    again = _occlude(model, clip)
    assert again.attrs["batch_size_source"] == "remembered"
    assert again.attrs["batch_size"] == first.attrs["batch_size"]
    work = len(calls)  # the clip's forward and its perturbation batches, nothing else
    n_features = json.loads(again.attrs["passes"])["occlusion"]
    assert work == 1 + -(-n_features // again.attrs["batch_size"])
    # the cold run measured on its real perturbations: no probe sample either
    assert cold_samples == sum(calls) == n_features + 1
    # batches of other sizes sum convolutions in another order: float32 noise only
    scale = float(abs(first.attribution.values).max())
    assert abs(again.attribution.values - first.attribution.values).max() <= 1e-5 * scale


def test_a_given_batch_size_skips_the_probe_and_the_file(cache, clip):
    model = tiny_model(input_size=(64, 64))
    calls = _counting(model)
    cube = _occlude(model, clip, batch_size=3)
    assert cube.attrs["batch_size_source"] == "given" and cube.attrs["batch_size"] == 3
    assert not cache.exists()
    assert set(calls[1:]) <= {3, json.loads(cube.attrs["passes"])["occlusion"] % 3} and calls[0] == 1


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"KEY": 0}', '{"KEY": "eight"}'])
def test_a_broken_or_odd_cache_file_is_measured_over(cache, content):
    model = tiny_model(input_size=(64, 64))
    x = model.probe_input()
    cache.parent.mkdir(parents=True)
    cache.write_text(content.replace("KEY", batching._disk_key(model, x)))
    size, source = batching.batch_size_for(model, x)
    assert source == "measured"
    assert json.loads(cache.read_text())[batching._disk_key(model, x)] == size


def test_the_key_names_weights_shape_device_and_torch(cache):
    model = tiny_model(input_size=(64, 64))
    key = batching._disk_key(model, model.probe_input())
    assert model.weights_hash() in key and "1x3x16x64x64" in key and "cpu" in key and "torch" in key
    other = tiny_model(input_size=(64, 64), seed=1)
    assert batching._disk_key(other, other.probe_input()) != key


def test_turned_off_with_an_empty_folder_name(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPRESSO_XAI_CACHE", "")
    monkeypatch.setattr(batching, "_BATCH_CACHE", {})
    assert batching.cache_folder() is None
    model = tiny_model(input_size=(64, 64))
    assert batching.batch_size_for(model, model.probe_input())[1] == "measured"
