"""A model file is data, never code: a ``.pt2`` archive rigged to run a command when it is
loaded is refused before anything in it runs (through the API and the CLI), a genuine
``torch.export.save`` archive loads and explains exactly like the module it was saved
from, and broken or foreign files give one clear error."""

from __future__ import annotations

import json
import pathlib
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import torch

import expresso_xai as ex
from expresso_xai.cli import main
from expresso_xai.errors import ModelError
from expresso_xai.testing import tiny_cnn

SHAPE = (1, 3, 16, 64, 64)
VIDEO = ex.samples.sample_path("participant_low")


class Touch:
    """Unpickling this creates ``marker``: a harmless stand-in for any command."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def export(path: pathlib.Path, net=None, dynamic_batch: bool = False) -> pathlib.Path:
    net = (net or tiny_cnn(widths=(4,))).eval()
    dynamic = {"input": {0: torch.export.Dim("batch", min=1, max=64)}} if dynamic_batch else None
    example = torch.zeros((2 if dynamic_batch else 1, *SHAPE[1:]))  # a batch of 1 would be specialised
    torch.export.save(torch.export.export(net, (example,), dynamic_shapes=dynamic), path)
    return path


def rewrite(source: pathlib.Path, target: pathlib.Path, edit) -> pathlib.Path:
    """Copy an archive, letting ``edit`` change its ``{member name: bytes}`` on the way."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    edit(members)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def member(members: dict, suffix: str) -> str:
    return next(name for name in members if name.endswith(suffix))


def edit_json(members: dict, suffix: str, change) -> None:
    name = member(members, suffix)
    content = json.loads(members[name])
    change(content)
    members[name] = json.dumps(content).encode()


@pytest.fixture(scope="module")
def genuine(tmp_path_factory) -> pathlib.Path:
    return export(tmp_path_factory.mktemp("genuine") / "tiny.pt2")


@pytest.fixture
def marker(tmp_path) -> pathlib.Path:
    return tmp_path / "code-ran"


# --- archives rigged to run code ------------------------------------------------------------


def pickled_sample_inputs(marker):
    def edit(members):
        members[member(members, "data/sample_inputs/model.pt")] = pickle.dumps(Touch(marker))
    return edit


def pickled_weight(marker):
    """torch.export.load reads a weight marked ``use_pickle`` with ``torch.load(weights_only=False)``."""
    def edit(members):
        def mark(config):
            config["config"]["4.bias"]["use_pickle"] = True
        edit_json(members, "data/weights/model_weights_config.json", mark)
        file = json.loads(members[member(members, "model_weights_config.json")])["config"]["4.bias"]["path_name"]
        members[member(members, f"data/weights/{file}")] = pickle.dumps(Touch(marker))
    return edit


def extra_member(relative: str):
    """A member torch.export.load would unpickle (constants) or load as native code (AOTInductor)."""
    def rigged(marker):
        def edit(members):
            root = next(iter(members)).split("/")[0]
            members[f"{root}/{relative}"] = pickle.dumps(Touch(marker))
            if relative.startswith("data/constants/"):
                def add(config):
                    config["config"]["planted"] = {"path_name": relative.split("/")[-1], "is_param": False,
                                                   "use_pickle": True, "tensor_meta": None}
                edit_json(members, "model_constants_config.json", add)
        return edit
    return rigged


RIGGED = {
    "pickled sample inputs": (pickled_sample_inputs, r"sample inputs .* not plain tensors"),
    "weight stored as a pickle": (pickled_weight, r"stores '4\.bias' as a pickle"),
    "opaque constant": (extra_member("data/constants/opaque_obj_0"), "opaque_obj_0"),
    "custom object": (extra_member("data/constants/custom_obj_0"), "custom_obj_0"),
    "AOTInductor library": (extra_member("data/aotinductor/model/model.so"), "aotinductor"),
    "legacy pickled weights": (extra_member("data/weights/model.pt"), r"data/weights/model\.pt"),
}


@pytest.mark.parametrize("attack", list(RIGGED))
def test_an_archive_rigged_to_run_code_is_refused_before_anything_runs(genuine, tmp_path, marker, attack):
    rig, reason = RIGGED[attack]
    path = rewrite(genuine, tmp_path / "rigged.pt2", rig(marker))
    with pytest.raises(ModelError, match=rf"rigged\.pt2: not loaded: .*{reason}") as refused:
        ex.models.load(str(path))
    assert "\n" not in str(refused.value) and "torch.export.save" in str(refused.value)
    assert not marker.exists()


@pytest.mark.parametrize("attack", ["pickled sample inputs", "weight stored as a pickle"])
def test_the_cli_refuses_a_rigged_archive_without_running_it(genuine, tmp_path, marker, capsys, attack):
    path = rewrite(genuine, tmp_path / "rigged.pt2", RIGGED[attack][0](marker))
    for argv in (["explain", str(VIDEO), "--model", str(path), "--methods", "saliency", "--max-frames", "16",
                  "--out", str(tmp_path / "cube.nc")],
                 ["train", str(tmp_path / "manifest.csv"), "--model", str(path), "--out", str(tmp_path / "w.pt")]):
        (tmp_path / "manifest.csv").write_text(f"participant,video,score\np1,{VIDEO},10\n")
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "rigged.pt2: not loaded" in err and "Traceback" not in err
    assert not marker.exists()


def test_code_in_the_programs_text_is_never_evaluated(genuine, tmp_path, marker):
    """torch.export.load ``eval``-s shape expressions (sympy) and ``exec``-s guard code."""
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"

    def edit(members):
        def plant(program):
            program["guards_code"] = [f"{code} is None"]
            sizes = program["graph_module"]["graph"]["tensor_values"]["linear"]["sizes"]
            sizes[0] = {"as_expr": {"expr_str": code, "hint": {"as_int": 1}}}
        edit_json(members, "models/model.json", plant)

    model = ex.models.load(str(rewrite(genuine, tmp_path / "text.pt2", edit)))
    x = torch.randn(SHAPE)
    assert torch.equal(model.module(x), ex.models.load(str(genuine)).module(x))
    assert not marker.exists()


def test_a_graph_calling_anything_but_aten_operators_is_refused(genuine, tmp_path, marker):
    def edit(members):
        def plant(program):
            program["graph_module"]["graph"]["nodes"].insert(0, {
                "target": "torch.os.system", "inputs": [{"name": "", "arg": {"as_string": f"touch {marker}"},
                                                         "kind": 1}], "outputs": [], "metadata": {}})
        edit_json(members, "models/model.json", plant)

    with pytest.raises(ModelError, match="calls 'torch.os.system', which is not an ATen operator"):
        ex.models.load(str(rewrite(genuine, tmp_path / "call.pt2", edit)))
    assert not marker.exists()


# --- genuine archives -------------------------------------------------------------------------


def test_a_genuine_archive_loads_and_explains_like_the_module_it_was_saved_from(genuine):
    net = tiny_cnn(widths=(4,)).eval()
    loaded = ex.models.load(str(genuine), input_size=(64, 64))
    original = ex.models.wrap(tiny_cnn(widths=(4,)), input_size=(64, 64), name="tiny")
    assert loaded.weights_hash() == original.weights_hash()
    assert sorted(loaded.module.state_dict()) == sorted(net.state_dict())
    x = torch.randn(SHAPE)
    assert torch.equal(loaded(x), original(x))

    video = ex.load_video(VIDEO, max_frames=16)
    faces = ex.track_faces(video, progress=False)
    cubes = [ex.explain(model, video, faces=faces, methods=["saliency"], progress=False)
             for model in (loaded, original)]
    assert cubes[0].attribution.shape == (1, 16, 12)
    assert float(np.abs(cubes[0].attribution).sum()) > 0
    np.testing.assert_array_equal(cubes[0].attribution.values, cubes[1].attribution.values)
    np.testing.assert_array_equal(cubes[0].prediction.values, cubes[1].prediction.values)
    assert cubes[0].attrs["model_name"] == "tiny"


def test_the_program_gives_clip_length_input_size_and_layout(genuine):
    model = ex.models.load(str(genuine))
    assert (model.layout, model.clip_length, model.input_size) == ("NCTHW", 16, (64, 64))
    with pytest.raises(ModelError, match="Grad-CAM has nothing to read"):
        model.gradcam_layer_name


def test_a_static_batch_says_how_to_export_and_a_dynamic_one_takes_any(genuine, tmp_path):
    static = ex.models.load(str(genuine))
    with pytest.raises(ModelError, match=r"exported for inputs of shape \(1, 3, 16, 64, 64\) and got "
                                         r"\(2, 3, 16, 64, 64\); .*dynamic_shapes="):
        static(torch.zeros(2, 3, 16, 64, 64))
    dynamic = ex.models.load(str(export(tmp_path / "dynamic.pt2", dynamic_batch=True)))
    x = torch.randn(3, 3, 16, 64, 64)
    assert torch.equal(dynamic(x), ex.models.wrap(tiny_cnn(widths=(4,)), input_size=(64, 64))(x))


def test_batch_norm_in_eval_mode_loads_and_in_training_mode_is_refused(tmp_path):
    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.BatchNorm3d(4), torch.nn.ReLU(),
                                   torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(4, 1))

    reference = net().eval()
    loaded = ex.models.load(str(export(tmp_path / "bn.pt2", reference)))
    x = torch.randn(SHAPE)
    assert torch.equal(loaded(x), reference(x))
    training = net().train()
    torch.export.save(torch.export.export(training, (torch.zeros(SHAPE),)), tmp_path / "train.pt2")
    with pytest.raises(ModelError, match=r"exported in training mode \(torch\.ops\.aten\.batch_norm.*model\.eval\(\)"):
        ex.models.load(str(tmp_path / "train.pt2"))


def test_devices_named_in_the_program_follow_the_input(tmp_path):
    class AddsARange(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = tiny_cnn(widths=(4,))

        def forward(self, x):
            return self.net(x) + torch.arange(1, device=x.device, dtype=x.dtype)

    reference = AddsARange().eval()
    module = ex.models.load(str(export(tmp_path / "device.pt2", reference))).module
    x = torch.randn(SHAPE)
    assert torch.equal(module(x), reference(x))
    assert module.to("meta")(x.to("meta")).device.type == "meta"  # exported on the CPU, run elsewhere


def test_weights_load_into_a_saved_program(genuine, tmp_path):
    other = tiny_cnn(widths=(4,), seed=7)
    torch.save(other.state_dict(), tmp_path / "other.pt")
    model = ex.models.load(str(genuine), weights=tmp_path / "other.pt")
    assert model.weights_hash() == ex.models.wrap(other, input_size=(64, 64)).weights_hash()


# --- broken and foreign files -------------------------------------------------------------------


def cut_short(genuine, path):
    path.write_bytes(genuine.read_bytes()[: genuine.stat().st_size // 2])


def broken_program(genuine, path):
    rewrite(genuine, path, lambda members: members.__setitem__(member(members, "models/model.json"), b"{not json"))


def short_weight(genuine, path):
    rewrite(genuine, path, lambda members: members.__setitem__(member(members, "weights/weight_0"), b"\0" * 8))


BROKEN = {
    "cut short": (cut_short, "not a zip archive, or cut short"),
    "random bytes": (lambda genuine, path: path.write_bytes(np.random.default_rng(0).bytes(4096)),
                     "not a zip archive"),
    "empty": (lambda genuine, path: path.write_bytes(b""), "not a zip archive"),
    "program not JSON": (broken_program, "models/model.json is not JSON"),
    "weight bytes too short": (short_weight, "bytes of '0.weight' do not make its tensor"),
}


@pytest.mark.parametrize("damage", list(BROKEN))
def test_a_broken_file_is_one_clear_error_naming_it(genuine, tmp_path, capsys, damage):
    write, reason = BROKEN[damage]
    path = tmp_path / "broken.pt2"
    write(genuine, path)
    with pytest.raises(ModelError, match=reason) as refused:
        ex.models.load(str(path))
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)
    assert main(["explain", str(VIDEO), "--model", str(path), "--out", str(tmp_path / "c.nc")]) == 2
    err = capsys.readouterr().err
    assert "broken.pt2" in err and "Traceback" not in err


def test_torchscript_and_torch_save_files_are_refused_with_advice(tmp_path, marker):
    scripted = tmp_path / "scripted.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(tiny_cnn()), str(scripted))
    with pytest.raises(ModelError, match=r"scripted\.pt: a TorchScript model, not loaded: .*can run code"
                                         r".*torch\.export\.save.*ex\.models\.wrap\(torch\.jit\.load"):
        ex.models.load(str(scripted))
    torch.save({"model": Touch(marker)}, tmp_path / "pickled.pt")
    with pytest.raises(ModelError, match=r"pickled\.pt: a torch\.save file .*weights="):
        ex.models.load(str(tmp_path / "pickled.pt"))
    assert not marker.exists()
