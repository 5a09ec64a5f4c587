"""Cohort runs without a cluster: the manifest's checks, the store's layout and atomic
writes, resuming, refusing other settings, failures reported per participant, and the
dataset ``ex.cohort.open`` builds. (Runs on Dask: tests/test_cohort_dask.py.)"""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest
import xarray as xr

import expresso_xai as ex
from expresso_xai.cohort import CohortStore, read_manifest
from expresso_xai.cohort.dataset import binned_attribution
from expresso_xai.errors import CohortError
from expresso_xai.files import OutputError

METHODS = ["gradcam", "saliency"]


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    """Three synthetic participants of 1.2 s (30 frames, 3 clips) with their OpenFace CSVs."""
    folder = tmp_path_factory.mktemp("cohort")
    ex.samples.make_cohort(folder, n_participants=3, seconds=1.2, seed=4, progress=False)
    return folder


@pytest.fixture(scope="module")
def reference(cohort_dir, tmp_path_factory):
    """A whole sequential run, computed once."""
    store = tmp_path_factory.mktemp("ref") / "cohort.zarr"
    done = ex.cohort.run(cohort_dir / "manifest.csv", "demo", methods=METHODS, store=store, client="sequential",
                         progress=False)
    return store, done


def run(manifest, store, **options):
    return ex.cohort.run(manifest, "demo", methods=options.pop("methods", METHODS), store=store,
                         client="sequential", progress=False, **options)


def copy_manifest(cohort_dir, folder, edit=None, extra_rows=()):
    """The cohort's manifest in ``folder`` with absolute paths, optionally edited."""
    lines = (cohort_dir / "manifest.csv").read_text().splitlines()
    header, rows = lines[0].split(","), [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]
    for row in rows:
        for key in ("video", "openface"):
            row[key] = str(cohort_dir / row[key])
        if edit:
            edit(row)
    rows += [dict(zip(header, [""] * len(header))) | extra for extra in extra_rows]
    path = folder / "manifest.csv"
    path.write_text("\n".join([",".join(header)] + [",".join(row[k] for k in header) for row in rows]) + "\n")
    return path


# --- the manifest ---------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("participant,video\np1,a.mp4\n", "no score column"),
    ("participant,video,score\n", "no participants"),
    ("participant,video,score\np1,a.mp4,\n", "row 2: the score column is empty"),
    ("participant,video,score\np1,a.mp4,nan\n", "row 2: score 'nan' is not a finite number"),
    ("participant,video,score\np1,a.mp4,3\np1,b.mp4,4\n", "row 3: participant 'p1' is also on row 2"),
    ("participant,video,score\n../up,a.mp4,3\n", "cannot name a folder"),
    ("participant,video,score\n.hidden,a.mp4,3\n", "cannot name a folder"),
])
def test_a_bad_manifest_is_refused_naming_the_file_and_row(tmp_path, text, message):
    path = tmp_path / "manifest.csv"
    path.write_text(text)
    with pytest.raises(CohortError, match=message) as error:
        read_manifest(path)
    assert str(path) in str(error.value)


def test_a_missing_manifest_is_refused(tmp_path):
    with pytest.raises(CohortError, match="does not exist"):
        ex.cohort.run(tmp_path / "none.csv", "demo", store=tmp_path / "c.zarr", client="sequential")


def test_manifest_paths_resolve_against_its_folder(cohort_dir):
    entries = read_manifest(cohort_dir / "manifest.csv")
    assert [e.participant for e in entries] == ["p000", "p001", "p002"]
    assert all(e.video == cohort_dir / f"{e.participant}.mp4" and e.video.exists() for e in entries)
    assert all(e.openface == cohort_dir / f"{e.participant}.openface.csv" for e in entries)


# --- the store and the dataset ---------------------------------------------------------


def test_each_participant_is_its_cube_as_explain_computes_it(reference, cohort_dir):
    store, done = reference
    assert done.counts() == {"done": 3, "present": 0, "failed": 0}
    entry = read_manifest(cohort_dir / "manifest.csv")[1]
    video = ex.load_video(entry.video)
    faces, _ = ex.faces.openface.read_openface_for(entry.openface, video)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the run's torch_threads
    try:
        alone = ex.explain(ex.models.load("demo"), video, faces=faces, methods=METHODS,
                           batch_size=done.settings["batch_size"], progress=False)
    finally:
        torch.set_num_threads(threads)
    cube = ex.cohort.participant_cube(store, entry.participant)
    np.testing.assert_array_equal(cube.attribution.values, alone.attribution.values)
    np.testing.assert_array_equal(cube.clip_prediction.values, alone.clip_prediction.values)
    assert cube.au_intensity.attrs["au_source"] == "openface"
    assert float(cube.au_intensity.sel(au="AU45").max()) > 0  # the synthetic CSV's eye closures


def test_open_bins_relative_time_and_carries_the_participant_variables(reference):
    store, _ = reference
    cohort = ex.cohort.open(store, time_bins=5)
    assert cohort.attribution.dims == ("participant", "explainer", "time_bin", "region")
    assert cohort.attribution.chunks is not None  # lazy: dask-backed
    for name in cohort.participant.values:
        cube = ex.cohort.participant_cube(cohort, name)
        expected = binned_attribution(cube.attribution.values, 5)
        np.testing.assert_allclose(cohort.attribution.sel(participant=name).values, expected, rtol=1e-12)
        # the bins are means of frames, so the frame-weighted mean over bins is the video's mean
        counts = np.bincount(np.arange(30) * 5 // 30)
        np.testing.assert_allclose((expected * counts[None, :, None]).sum(1) / 30,
                                   cube.attribution.values.astype(np.float64).mean(1), rtol=1e-9)
        row = cohort.sel(participant=name)
        assert float(row.prediction) == pytest.approx(float(cube.clip_prediction.mean()), rel=1e-6)
        assert float(row.error) == pytest.approx(float(row.prediction - row.score))
        assert row.band.item() == ex.cohort.assign_bands([float(row.score)])[0]
        assert float(row.face_fraction) == 1.0
    scores = json.loads((store / "p000" / "finished.json").read_text())["score"]
    assert float(cohort.score.sel(participant="p000")) == scores


def test_binning_handles_videos_shorter_than_the_bins():
    values = np.arange(3, dtype=np.float32).reshape(1, 3, 1)
    binned = binned_attribution(values, 5)[0, :, 0]
    assert np.isnan(binned).sum() == 2 and np.nansum(binned) == 3


# --- resuming, and refusing to mix settings --------------------------------------------


def test_a_second_run_computes_nothing_and_a_new_participant_only_itself(reference, cohort_dir, tmp_path,
                                                                          monkeypatch):
    store, done = reference
    copy = tmp_path / "cohort.zarr"
    shutil.copytree(store, copy)
    shutil.rmtree(copy / "p002")  # as if the run had stopped before it
    # "auto" batching was timed once and recorded; resuming takes the store's, whatever
    # the timing would say now (it varies with the machine's load)
    assert done.settings["batch_size"] in (1, 2, 4, 8, 16)
    other = 16 if done.settings["batch_size"] != 16 else 8
    monkeypatch.setattr(sys.modules["expresso_xai.explain.engine"], "fastest_batch", lambda model, x: other)
    with pytest.raises(CohortError, match=f"batch_size {done.settings['batch_size']} in the store, {other} now"):
        run(cohort_dir / "manifest.csv", copy, batch_size=other)
    again = run(cohort_dir / "manifest.csv", copy)
    assert dict(zip(again.table.participant, again.table.status)) == {"p000": "present", "p001": "present",
                                                                      "p002": "done"}
    assert CohortStore(copy).differences(store) == []


def test_resuming_with_other_settings_is_refused_naming_each_difference(reference, cohort_dir, tmp_path):
    store, _ = reference
    copy = tmp_path / "cohort.zarr"
    shutil.copytree(store, copy)
    with pytest.raises(CohortError, match=r"methods \['gradcam', 'saliency'\] in the store, \['gradcam'\] now"):
        run(cohort_dir / "manifest.csv", copy, methods=["gradcam"])
    with pytest.raises(CohortError, match="stride"):
        run(cohort_dir / "manifest.csv", copy, stride=4)
    with pytest.raises(CohortError, match="a path is for one video"):  # every participant in one store
        run(cohort_dir / "manifest.csv", tmp_path / "other.zarr", keep_pixels=tmp_path / "maps.zarr")
    with pytest.raises(CohortError, match="clips_per_batch"):  # batched clips differ in the last bits
        run(cohort_dir / "manifest.csv", copy, clips_per_batch=3)
    restarted = run(cohort_dir / "manifest.csv", copy, methods=["gradcam"], resume=False)
    assert restarted.counts()["done"] == 3
    assert list(ex.cohort.open(copy).explainer.values) == ["gradcam"]


def test_a_changed_manifest_row_for_a_finished_participant_is_refused(reference, cohort_dir, tmp_path):
    store, _ = reference
    shutil.copytree(store, tmp_path / "cohort.zarr")
    manifest = copy_manifest(cohort_dir, tmp_path, edit=lambda row: row.update(score="1.5")
                             if row["participant"] == "p001" else None)
    with pytest.raises(CohortError, match="participant p001 .*score"):
        run(manifest, tmp_path / "cohort.zarr")


def test_a_folder_that_is_not_a_cohort_store_is_never_touched(cohort_dir, tmp_path):
    folder = tmp_path / "thesis.zarr"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("years of work")
    with pytest.raises(OutputError, match="not a store written by expresso-xai"):
        run(cohort_dir / "manifest.csv", folder, resume=False)
    assert (folder / "chapter1.tex").read_text() == "years of work"


def test_half_written_participants_are_invisible_and_cleaned_on_the_next_run(reference, cohort_dir, tmp_path):
    store, _ = reference
    copy = tmp_path / "cohort.zarr"
    shutil.copytree(store, copy)
    # what a run killed mid-write leaves: a temporary folder, and a group moved aside
    partial = copy / ".p002.abcd.partial" / "group"
    shutil.copytree(copy / "p002", partial)
    (partial / "finished.json").unlink()
    shutil.rmtree(copy / "p002")
    assert sorted(ex.cohort.open(copy).participant.values) == ["p000", "p001"]
    again = run(cohort_dir / "manifest.csv", copy)
    assert again.counts() == {"done": 1, "present": 2, "failed": 0}
    assert not list(copy.glob(".*.partial"))
    assert CohortStore(copy).differences(store) == []


def test_a_store_held_by_a_live_run_is_refused_and_a_dead_runs_lock_taken_over(reference, cohort_dir, tmp_path):
    store, _ = reference
    copy = tmp_path / "cohort.zarr"
    shutil.copytree(store, copy)
    import socket

    (copy / "run.lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(OutputError, match="another run"):
        run(cohort_dir / "manifest.csv", copy)
    with pytest.raises(OutputError, match="emptying it to start again was refused"):  # a restart deletes nothing
        CohortStore.create(copy, CohortStore(copy).settings, resume=False)
    assert CohortStore(copy).differences(store) == []
    (copy / "run.lock").write_text(json.dumps({"pid": 2 ** 22 + 7, "host": socket.gethostname()}))
    with pytest.warns(ex.errors.ExpressoWarning, match="is gone; taking over"):
        assert run(cohort_dir / "manifest.csv", copy).counts()["present"] == 3
    assert not (copy / "run.lock").exists()


# --- failures are reported, the others finish ------------------------------------------


def test_missing_empty_and_faceless_videos_fail_alone_with_their_reasons(cohort_dir, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    noise = np.random.default_rng(0).integers(0, 255, (20, 96, 96, 3), dtype=np.uint8)
    ex.samples.write_video(noise, tmp_path / "noface.mp4", fps=25)
    (tmp_path / "text.mp4").write_text("not a video")
    extra = [{"participant": "gone", "video": str(tmp_path / "missing.mp4"), "score": "3"},
             {"participant": "empty", "video": str(tmp_path / "empty.mp4"), "score": "4"},
             {"participant": "noface", "video": str(tmp_path / "noface.mp4"), "score": "5"},
             {"participant": "text", "video": str(tmp_path / "text.mp4"), "score": "6"}]
    manifest = copy_manifest(cohort_dir, tmp_path, extra_rows=extra)
    done = run(manifest, tmp_path / "cohort.zarr")
    reasons = dict(zip(done.failed.participant, done.failed.reason))
    assert sorted(reasons) == ["empty", "gone", "noface", "text"]
    assert "missing.mp4: the video does not exist" in reasons["gone"]
    assert "empty.mp4: file is empty (0 bytes)" in reasons["empty"]
    assert "text.mp4: not a video OpenCV can decode" in reasons["text"]
    assert "no face in 20 of 20 frames" in reasons["noface"] and "noface.mp4" in reasons["noface"]
    assert not any(reason.startswith(("RuntimeError", "ValueError", "cv2")) for reason in reasons.values())
    assert done.counts()["done"] == 3
    assert json.loads((tmp_path / "cohort.zarr" / "failures.json").read_text()) == [
        {"participant": p, "reason": reasons[p]} for p in ["gone", "empty", "noface", "text"]]
    assert "4 failed" in repr(done)
    # the failures are tried again on the next run; the finished are not
    again = run(manifest, tmp_path / "cohort.zarr")
    assert again.counts() == {"done": 0, "present": 3, "failed": 4}


def test_unknown_options_are_refused_before_any_work(cohort_dir, tmp_path):
    with pytest.raises(CohortError, match="unknown option"):
        run(cohort_dir / "manifest.csv", tmp_path / "c.zarr", occlusoin={"window": 4})
    with pytest.raises(ex.errors.MethodError, match="window"):
        run(cohort_dir / "manifest.csv", tmp_path / "c.zarr", methods=["occlusion"], occlusion={"window": 0})
    with pytest.raises(CohortError, match="time_bins"):
        ex.cohort.open(tmp_path / "c.zarr", time_bins=0)
    assert not (tmp_path / "c.zarr").exists()


def test_open_refuses_what_is_not_a_cohort_store(tmp_path):
    with pytest.raises(CohortError, match="no cohort store"):
        ex.cohort.open(tmp_path / "none.zarr")
    (tmp_path / "other").mkdir()
    with pytest.raises(CohortError, match="not a cohort store"):
        ex.cohort.open(tmp_path / "other")
    CohortStore.create(tmp_path / "new.zarr", {})
    with pytest.raises(CohortError, match="no participant is finished yet"):
        ex.cohort.open(tmp_path / "new.zarr")
    assert isinstance(xr.open_zarr(tmp_path / "new.zarr", consolidated=False), xr.Dataset)  # plain Zarr


# --- the command line -----------------------------------------------------------------


def test_the_cli_resumes_refuses_other_settings_in_one_line_and_exits_1_on_failures(reference, cohort_dir,
                                                                                     tmp_path, capsys):
    from expresso_xai.cli import main

    store, _ = reference
    copy = tmp_path / "cohort.zarr"
    shutil.copytree(store, copy)
    argv = ["cohort", "run", str(cohort_dir / "manifest.csv"), "--methods", "gradcam,saliency", "--store", str(copy),
            "--sequential", "--quiet"]
    assert main(argv) == 0
    assert "0 explained now, 3 already there, 0 failed" in capsys.readouterr().out
    assert main(argv[:4] + ["gradcam"] + argv[5:]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("expresso-xai: error:") and "\n" not in error and "methods" in error
    assert main(argv[:-2] + ["--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
    batched = tmp_path / "batched.zarr"  # the GPU path's options reach every task
    assert main(argv[:5] + ["--store", str(batched), "--sequential", "--quiet", "--clips-per-batch", "3"]) == 0
    capsys.readouterr()
    assert CohortStore(batched).settings["clips_per_batch"] == 3
    np.testing.assert_allclose(ex.cohort.open(batched).attribution.values, ex.cohort.open(store).attribution.values,
                               rtol=1e-5, atol=1e-9)
    broken = copy_manifest(cohort_dir, tmp_path, extra_rows=[{"participant": "gone", "video": "none.mp4", "score": "1"}])
    assert main(["cohort", "run", str(broken), "--methods", "gradcam,saliency", "--store", str(copy),
                 "--sequential", "--quiet"]) == 1
    assert "failed gone: " in capsys.readouterr().out


@pytest.fixture(scope="module")
def long_cohort(tmp_path_factory):
    """One participant of 2.4 s (60 frames, 7 clips) with its OpenFace CSV, one tracked."""
    folder = tmp_path_factory.mktemp("long")
    ex.samples.make_cohort(folder, n_participants=2, seconds=2.4, seed=7, progress=False)
    lines = (folder / "manifest.csv").read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("openface")
    row = lines[2].split(",")
    row[column] = ""  # the second participant's landmarks are tracked
    (folder / "manifest.csv").write_text("\n".join([lines[0], lines[1], ",".join(row)]) + "\n")
    return folder


def test_a_long_video_in_slices_equals_it_explained_whole_and_resumes_its_finished_slices(long_cohort, tmp_path,
                                                                                        monkeypatch):
    from expresso_xai.cohort import slices

    manifest = long_cohort / "manifest.csv"
    whole = run(manifest, tmp_path / "whole.zarr", batch_size=2)
    assert whole.counts()["done"] == 2
    assert slices.clip_ranges(60, 16, 8, 16) == [(0, 2), (2, 4), (4, None)]
    # a run stopped after the first slice of p000: that slice is saved beside the store
    store = tmp_path / "sliced.zarr"
    settings = dict(whole.settings, slice_frames=16)
    CohortStore.create(store, settings)
    entry = read_manifest(manifest)[0]
    assert slices.prepare(entry, settings, str(store))["status"] == "ready"
    first = slices.explain_slice(entry, "demo", settings, str(store), 0, 2, {"status": "ready"})
    assert first["status"] == "sliced" and (store / ".p000.slices" / "clips_0.npz").exists()
    prepared = []
    engine_module = sys.modules["expresso_xai.explain.engine"]
    original = engine_module._prepare
    monkeypatch.setattr(engine_module, "_prepare", lambda plan, state, *a: prepared.append(state.done)
                        or original(plan, state, *a))
    sliced = run(manifest, store, batch_size=2, slice_frames=16)
    assert sliced.counts()["done"] == 2
    assert sorted(prepared) == sorted([2, 3, 4, 5, 6] + list(range(7)))  # p000's first slice was not computed again
    assert CohortStore(store).differences(tmp_path / "whole.zarr") == []
    assert not list(store.glob(".*.slices"))
    with pytest.raises(CohortError, match="slice_frames"):
        run(manifest, store, batch_size=2, slice_frames=4)


def test_a_model_whose_batch_cannot_be_timed_on_a_probe_runs_with_the_fallback(cohort_dir, tmp_path):
    import torch

    from expresso_xai.cohort.run import FALLBACK_BATCH_SIZE

    def backbone(stream):
        torch.manual_seed(len(stream))
        return torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten()), 4

    # a multi-stream model has no stream boxes before a clip's landmarks: no probe input runs
    model = ex.models.MultiStream(backbone=backbone, input_size=(64, 64), stream_size=(32, 32))
    done = ex.cohort.run(cohort_dir / "manifest.csv", model, methods=["saliency"], store=tmp_path / "ms.zarr",
                         client="sequential", progress=False)
    assert done.counts()["done"] == 3 and done.settings["batch_size"] == FALLBACK_BATCH_SIZE


def test_slices_of_other_files_or_with_pixel_maps_are_not_used(long_cohort, tmp_path):
    from expresso_xai.cohort import slices

    copy = tmp_path / "long"
    shutil.copytree(long_cohort, copy)
    manifest = copy / "manifest.csv"
    store = tmp_path / "sliced.zarr"
    whole = run(manifest, tmp_path / "whole.zarr", batch_size=2)
    settings = dict(whole.settings, slice_frames=16)
    CohortStore.create(store, settings)
    entry = read_manifest(manifest)[0]
    slices.prepare(entry, settings, str(store))
    slices.explain_slice(entry, "demo", settings, str(store), 0, 2, {"status": "ready"})
    # the participant's video is replaced (other frames, same name) before the run resumes
    other = read_manifest(manifest)[1].video
    shutil.copyfile(other, entry.video)
    os.utime(entry.video, ns=(1, 1))
    resumed = run(manifest, store, batch_size=2, slice_frames=16)
    assert resumed.counts()["done"] == 2
    fresh = run(manifest, tmp_path / "fresh.zarr", batch_size=2)  # the new files, whole
    assert CohortStore(store).differences(tmp_path / "fresh.zarr") == []
    assert CohortStore(store).differences(tmp_path / "whole.zarr") != []
    assert fresh.counts()["done"] == 2
    with pytest.raises(CohortError, match="keep_pixels"):
        run(manifest, tmp_path / "pixels.zarr", slice_frames=16, keep_pixels=True)


def test_an_openface_participant_is_streamed_not_read_whole(cohort_dir, tmp_path):
    """The CSV is checked against the frame count the file announces; the video itself is
    left to the run to stream (a 20-minute interview would not fit in memory whole)."""
    import tracemalloc

    from expresso_xai.cohort.task import participant_inputs

    entry = read_manifest(cohort_dir / "manifest.csv")[0]
    whole = ex.load_video(entry.video).frames.nbytes
    tracemalloc.start()
    try:
        video, faces, action_units = participant_inputs(entry, track=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert video == entry.video and len(faces) == action_units.sizes["time"] == 30
    assert peak < whole / 3, (peak, whole)  # about one frame and the CSV, not the 30 frames

    def one_row_short(row):
        if row["participant"] == entry.participant:
            short = tmp_path / "short.csv"
            short.write_text("".join(open(row["openface"]).readlines()[:-1]))
            row["openface"] = str(short)

    done = run(copy_manifest(cohort_dir, tmp_path, edit=one_row_short), tmp_path / "cohort.zarr")
    reasons = dict(zip(done.failed.participant, done.failed.reason))
    assert list(reasons) == [entry.participant]
    assert "short.csv: 29 rows but" in reasons[entry.participant] and "has 30 frames" in reasons[entry.participant]
