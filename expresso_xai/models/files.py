"""Reading a saved model as data, so that loading a file never runs code from it.

A ``torch.export.save`` archive (``.pt2``) is a zip of JSON (the program: ATen operators
and their arguments) and raw tensor bytes. It may also hold pickles (sample inputs,
weights or constants torch could not store raw, custom objects), Python guard code,
sympy expressions and compiled AOTInductor libraries, and ``torch.export.load`` unpickles,
``exec``-s, ``eval``-s or loads all of them. This module reads the archive itself instead:
weights come from their raw bytes, the graph runs node by node with ATen operators looked
up by name (:class:`ExportedModule`), and anything else is refused before it is read.
TorchScript files and full pickles cannot be read that way and are refused with advice.
"""

from __future__ import annotations

import io
import json
import math
import operator
import re
import sys
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple

import torch

from ..errors import ModelError

#: What ``torch.export.save`` writes, relative to the archive's root folder; nothing else is read.
_MEMBERS = re.compile(r"archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
                      r"|models/model\.json|data/sample_inputs/model\.pt|extra/[^/]+"
                      r"|data/weights/(model_weights_config\.json|weight_\d+)"
                      r"|data/constants/(model_constants_config\.json|tensor_\d+)")
_OPERATOR = re.compile(r"torch\.ops\.(aten|prims)\.(?!__)(\w+)\.(?!__)(\w+)")
_SCHEMA_MAJOR = 8  # the torch.export schema this reader was written for (torch 2.14)
#: Plain functions an exported graph calls on sizes (dynamic shapes), by their serialised names.
_SIZE_FUNCTIONS = {f"{function.__module__}.{function.__name__}": function for function in (
    operator.add, operator.sub, operator.mul, operator.floordiv, operator.truediv, operator.mod, operator.pow,
    operator.neg, operator.pos, operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge,
    operator.and_, operator.or_, math.trunc, torch.sym_int, torch.sym_float, torch.sym_max, torch.sym_min,
    torch.sym_not, torch.sym_ite, torch.sym_sqrt)}  # named as torch's serialiser names them
_NO_FILE_ACCESS = {"from_file"}  # the one ATen operator that opens a file the program names
_SCALARS = {"as_int": int, "as_float": (int, float), "as_bool": bool, "as_string": str}
_LISTS = {"as_ints": "as_int", "as_floats": "as_float", "as_bools": "as_bool", "as_strings": "as_string"}
_SYMBOLIC = {"as_sym_int": "as_int", "as_sym_float": "as_float", "as_sym_bool": "as_bool"}
REFUSED = ("expresso-xai loads only a torch.export program saved with torch.export.save (.pt2) "
           "whose weights are raw tensors and whose operators are ATen operators, which cannot run code")


class _Ref(NamedTuple):
    """A value the graph computes (or takes as input), by its name in the program."""

    name: str


#: Where a program names a device: exported on one device, it runs on the one its input is on.
_INPUT_DEVICE = _Ref(None)


class _Node(NamedTuple):
    function: object
    args: list
    kwargs: dict
    outputs: object  # a name, None, or a (nested) list of them, shaped like the result


def _refuse(path, why: str) -> ModelError:
    return ModelError(f"{path}: not loaded: {why}; {REFUSED}")


def _open_zip(path: Path) -> tuple[zipfile.ZipFile, str, list[str]]:
    """The archive (read once, into memory), its root folder and its member names below it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file ({exc.strerror or exc})") from exc
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        raise ModelError(f"{path}: not a saved model: not a zip archive, or cut short ({exc}); "
                         "give a .pt2 file written by torch.export.save") from exc
    roots = {name.split("/", 1)[0] for name in names}
    if len(roots) != 1 or any("/" not in name for name in names):
        raise _refuse(path, "its members are not all in one folder, as torch's archives are")
    root = roots.pop()
    return archive, root, [name[len(root) + 1:] for name in names]


def _check_kind(path: Path, names: list[str]) -> None:
    """Refuse, with advice, any archive other than a torch.export program."""
    if "archive_format" in names:
        return
    if "constants.pkl" in names or any(name.startswith("code/") for name in names):
        raise ModelError(
            f"{path}: a TorchScript model, not loaded: torch.jit.load unpickles the file and can run code "
            "from it (torch's own warning: only load TorchScript you trust). Re-save the model with "
            "torch.export.save (.pt2), or, if you trust this file, load it yourself and wrap it: "
            "ex.models.wrap(torch.jit.load(path))")
    if "data.pkl" in names:
        raise ModelError(
            f"{path}: a torch.save file (a state dict or a pickled module), not a saved model; pass it as "
            "weights= with an architecture (ex.models.load('r3d_18', weights=path)), or load it into your "
            "network with net.load_state_dict(torch.load(path, weights_only=True)) and ex.models.wrap(net)")
    raise ModelError(f"{path}: a zip archive, but not a saved model; give a .pt2 file written by torch.export.save")


def _read_members(path: Path, archive: zipfile.ZipFile, root: str, names: list[str]) -> dict[str, bytes]:
    """Every member of a torch.export archive, after checking that each one is one torch writes."""
    unknown = [name for name in names if not _MEMBERS.fullmatch(name)]
    if unknown:
        raise _refuse(path, f"it holds {unknown[0]!r}, which is not part of a program saved by torch.export.save "
                            "(AOTInductor libraries, pickled objects and other extras can run code)")
    if len(set(names)) != len(names):
        raise _refuse(path, "it holds a member twice")
    if any(info.compress_type != zipfile.ZIP_STORED for info in archive.infolist()):
        raise _refuse(path, "it holds compressed members; torch.export.save stores them uncompressed")
    try:
        members = {name: archive.read(f"{root}/{name}") for name in names}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        raise ModelError(f"{path}: a damaged .pt2 archive ({exc}); save the model again") from exc
    expected = {"archive_format": b"pt2", "archive_version": b"0", "byteorder": sys.byteorder.encode()}
    for name, value in expected.items():
        if members.get(name, b"").strip() != value:
            raise _refuse(path, f"its {name} is {members.get(name, b'missing')!r}, not {value!r}")
    return members


def _json(path: Path, members: dict[str, bytes], name: str) -> dict:
    if name not in members:
        raise ModelError(f"{path}: a .pt2 archive without {name}; save the model again with torch.export.save")
    try:
        value = json.loads(members[name])
    except (ValueError, RecursionError) as exc:
        raise ModelError(f"{path}: a damaged .pt2 archive: {name} is not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ModelError(f"{path}: a damaged .pt2 archive: {name} is not a JSON object")
    return value


def _check_sample_inputs(path: Path, members: dict[str, bytes]) -> None:
    """Sample inputs are never used; a tampered file is still refused rather than ignored."""
    raw = members.get("data/sample_inputs/model.pt", b"")
    if not raw:
        return
    try:
        with warnings.catch_warnings():
            # torch's note on the pickle protocol says nothing the refusal below does not
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure of the restricted unpickler means "not plain tensors"
        detail = str(exc).split("WeightsUnpickler error:")[-1].strip().splitlines()
        reason = f"{type(exc).__name__}: {detail[0]}" if detail else type(exc).__name__
        raise _refuse(path, "its sample inputs (data/sample_inputs/model.pt) are not plain tensors: "
                            f"torch.load(weights_only=True) refuses them ({reason})") from exc


def _tensor_meta(path: Path, name: str, meta) -> tuple[torch.dtype, list[int], list[int], int]:
    from torch._export.serde import serialize as serde

    try:
        sizes, strides = ([size["as_int"] for size in meta[key]] for key in ("sizes", "strides"))
        offset = meta["storage_offset"]["as_int"]
        dtype = serde._SERIALIZE_TO_TORCH_DTYPE[meta["dtype"]]
        if not all(isinstance(v, int) for v in [*sizes, *strides, offset]):
            raise TypeError("sizes, strides and offset must be integers")
    except (KeyError, TypeError, ValueError) as exc:
        raise _refuse(path, f"the tensor {name!r} has no usable shape, strides and dtype ({exc!r})") from exc
    return dtype, sizes, strides, offset


def _payloads(path: Path, members: dict[str, bytes], folder: str, kind: str) -> dict[str, torch.Tensor]:
    """The tensors a weights or constants config describes, built from their raw bytes."""
    config = _json(path, members, f"data/{folder}/model_{folder}_config.json").get("config", {})
    storages: dict[str, torch.Tensor] = {}  # tensors saved as views of one payload keep sharing it
    tensors: dict[str, torch.Tensor] = {}
    for fqn, entry in config.items() if isinstance(config, dict) else ():
        if not isinstance(entry, dict) or entry.get("use_pickle"):
            raise _refuse(path, f"it stores {fqn!r} as a pickle, which could run code when unpickled")
        file = entry.get("path_name")
        if not (isinstance(file, str) and re.fullmatch(rf"{kind}_\d+", file) and f"data/{folder}/{file}" in members):
            raise _refuse(path, f"{fqn!r} is stored as {file!r}, which is not a raw tensor in the archive")
        dtype, sizes, strides, offset = _tensor_meta(path, fqn, entry.get("tensor_meta"))
        raw = members[f"data/{folder}/{file}"]
        try:
            if not raw and math.prod(sizes) == 0:  # torch saves a tensor without elements as an empty record
                tensors[fqn] = torch.zeros(sizes, dtype=dtype)
                continue
            if file not in storages:
                storages[file] = torch.frombuffer(bytearray(raw), dtype=dtype)
            tensors[fqn] = torch.as_strided(storages[file], sizes, strides, offset)
        except (RuntimeError, ValueError) as exc:
            raise _refuse(path, f"the bytes of {fqn!r} do not make its tensor ({str(exc).splitlines()[0]})") from exc
    return tensors


def _function(path: Path, target) -> object:
    """The ATen operator (or size arithmetic) a node names; anything else is refused."""
    if isinstance(target, str) and target in _SIZE_FUNCTIONS:
        return _SIZE_FUNCTIONS[target]
    match = _OPERATOR.fullmatch(target) if isinstance(target, str) else None
    if match is None or match.group(2) in _NO_FILE_ACCESS:
        raise _refuse(path, f"its graph calls {target!r}, which is not an ATen operator this loader runs "
                            "(higher-order and custom operators are not loaded)")
    namespace, name, overload = match.groups()
    try:
        function = getattr(getattr(getattr(torch.ops, namespace), name), overload)
    except (AttributeError, RuntimeError) as exc:
        raise _refuse(path, f"its graph calls {target!r}, which this torch does not have") from exc
    if not isinstance(function, torch._ops.OpOverload):
        raise _refuse(path, f"its graph calls {target!r}, which is not an operator")
    return function


def _argument(path: Path, arg, defined: set[str]):
    """One serialised argument as a Python value, with :class:`_Ref` where the graph supplies it."""
    def ref(value) -> _Ref:
        name = value.get("name", value.get("as_name")) if isinstance(value, dict) else None
        if name not in defined:
            raise _refuse(path, f"its graph uses {name!r} before computing it")
        return _Ref(name)

    def symbolic(value, plain: str):
        if isinstance(value, dict) and plain in value and isinstance(value[plain], _SCALARS[plain]):
            return value[plain]
        return ref(value)

    def optional(value):
        return None if isinstance(value, dict) and "as_none" in value else ref(value.get("as_tensor"))

    (kind, value), = arg.items() if isinstance(arg, dict) and len(arg) == 1 else [(None, None)]
    if kind in _SCALARS and isinstance(value, _SCALARS[kind]):
        return value
    if kind in _LISTS and isinstance(value, list) and all(isinstance(v, _SCALARS[_LISTS[kind]]) for v in value):
        return value
    decoders = {
        "as_none": lambda v: None, "as_tensor": ref, "as_tensors": lambda v: [ref(t) for t in v],
        "as_optional_tensor": optional, "as_optional_tensors": lambda v: [optional(t) for t in v],
        **{k: (lambda v, p=p: symbolic(v, p)) for k, p in _SYMBOLIC.items()},
        **{f"{k}s": (lambda v, p=p: [symbolic(x, p) for x in v]) for k, p in _SYMBOLIC.items()},
        "as_scalar_type": lambda v: _enum(path, "_SERIALIZE_TO_TORCH_DTYPE", v),
        "as_memory_format": lambda v: _enum(path, "_SERIALIZE_TO_TORCH_MEMORY_FORMAT", v),
        "as_layout": lambda v: _enum(path, "_SERIALIZE_TO_TORCH_LAYOUT", v),
        "as_device": _device,
    }
    try:
        return decoders[kind](value)
    except (KeyError, TypeError, AttributeError, ValueError, RuntimeError) as exc:
        raise _refuse(path, f"its graph passes an argument this loader does not run: {str(arg)[:80]}") from exc


def _device(value) -> _Ref:
    torch.device(value["type"], value.get("index"))  # a device torch knows, or a refusal
    return _INPUT_DEVICE


def _enum(path: Path, table: str, value):
    from torch._export.serde import serialize as serde

    return getattr(serde, table)[value]


def _output_names(path: Path, outputs) -> object:
    """Where a node's results go: a name, None, or a list shaped like the returned tuple."""
    def one(output):
        if not isinstance(output, dict) or len(output) != 1:
            raise _refuse(path, f"its graph has an output this loader does not read: {str(output)[:80]}")
        (kind, value), = output.items()
        if kind == "as_tensors":
            return [one({"as_tensor": item}) for item in value]
        if kind == "as_tensor" or kind in _SYMBOLIC:
            name = value.get("name", value.get("as_name")) if isinstance(value, dict) else None
            if not isinstance(name, str):
                raise _refuse(path, f"its graph has an unnamed output: {str(output)[:80]}")
            return name
        return None

    if not isinstance(outputs, list):
        raise _refuse(path, "its graph has a node without an output list")
    if not outputs:
        return None
    return one(outputs[0]) if len(outputs) == 1 else [one(output) for output in outputs]


def _defines(names) -> set[str]:
    if isinstance(names, str):
        return {names}
    return set().union(*(_defines(name) for name in names)) if isinstance(names, list) else set()


def _nodes(path: Path, graph: dict, defined: set[str]) -> list[_Node]:
    nodes = []
    for node in graph.get("nodes", []):
        if not isinstance(node, dict) or not isinstance(node.get("inputs"), list):
            raise _refuse(path, "its graph has a node without inputs")
        function = _function(path, node.get("target"))
        args, kwargs = [], {}
        for named in node["inputs"]:
            value = _argument(path, named.get("arg") if isinstance(named, dict) else None, defined)
            if named.get("name") in ("training", "train") and value is True:
                raise _refuse(path, f"it was exported in training mode ({node['target']} uses batch statistics or "
                                    "drops units at random): export it from the model in eval mode, model.eval()")
            if named.get("kind") == 1 or not named.get("name"):
                args.append(value)
            else:
                kwargs[str(named["name"])] = value
        outputs = _output_names(path, node.get("outputs"))
        defined |= _defines(outputs)
        nodes.append(_Node(function, args, kwargs, outputs))
    return nodes


def _name(path: Path, name) -> str:
    if not isinstance(name, str):
        raise _refuse(path, f"its program names a value {name!r}, which is not a string")
    return name


def _signature(path: Path, signature: dict, state: dict) -> tuple[list, dict, list]:
    """(graph input name, state name or None for the caller's input) of every input, in
    order; ``{state name: (kind, persistent)}``; and the output arguments."""
    inputs, placed = [], {}
    for spec in signature.get("input_specs", []):
        (kind, value), = spec.items() if isinstance(spec, dict) and len(spec) == 1 else [(None, None)]
        if kind == "user_input" and isinstance(value.get("arg"), dict) and "as_tensor" in value["arg"]:
            inputs.append((_name(path, value["arg"]["as_tensor"].get("name")), None))
            continue
        fqn = {"parameter": "parameter_name", "buffer": "buffer_name",
               "tensor_constant": "tensor_constant_name"}.get(kind)
        fqn = value.get(fqn) if fqn else None
        if fqn not in state:
            raise _refuse(path, f"its program takes an input this loader cannot supply: {str(spec)[:80]}")
        persistent = kind == "parameter" or (kind == "buffer" and value.get("persistent", True))
        inputs.append((_name(path, value["arg"].get("name")), fqn))
        placed.setdefault(fqn, (kind, persistent))
    outputs = []
    for spec in signature.get("output_specs", []):
        if not isinstance(spec, dict) or "user_output" not in spec:
            raise _refuse(path, f"its program also updates its state ({next(iter(spec), '?')}): export it from "
                                "the model in eval mode, model.eval(), so that it only computes its outputs")
        outputs.append(spec["user_output"]["arg"])
    return inputs, placed, outputs


class ExportedModule(torch.nn.Module):
    """A program read from a ``.pt2`` archive by :func:`load_exported`, run node by node.

    Its parameters and buffers keep their names from the exported module (the same
    ``state_dict()`` keys, so weights hashes and fine-tuning work as usual). There are no
    layers to hook, so Grad-CAM has nothing to read; the other methods work.
    """

    def __init__(self, nodes: list[_Node], inputs: list, outputs: list, input_shapes: dict, name: str):
        super().__init__()
        self._nodes, self._inputs, self._outputs = nodes, inputs, outputs
        self.input_shapes = input_shapes  # graph input name -> sizes, None where a size is dynamic
        self.source = name

    def input_geometry(self) -> dict:
        """``layout``, ``clip_length`` and ``input_size`` of a video model's one input, as the
        program fixes them (``{}`` when it fixes none)."""
        shapes = list(self.input_shapes.values())
        shape = shapes[0] if len(shapes) == 1 else ()
        if len(shape) != 5 or not all(isinstance(side, int) for side in shape[1:]):
            return {}
        layout = "NCTHW" if shape[1] == 3 else "NTCHW" if shape[2] == 3 else None
        time = shape[2] if layout == "NCTHW" else shape[1]
        return dict(layout=layout, clip_length=time, input_size=tuple(shape[3:])) if layout else {}

    def forward(self, *inputs):
        state = dict(self.named_parameters(remove_duplicate=False))
        state.update(self.named_buffers(remove_duplicate=False))
        if len(inputs) != len(self.input_shapes):
            raise ModelError(f"{self.source} takes {len(self.input_shapes)} input(s), got {len(inputs)}")
        given = iter(inputs)
        first = inputs[0] if inputs else None
        values = {None: first.device if isinstance(first, torch.Tensor) else torch.device("cpu")}  # _INPUT_DEVICE
        for name, fqn in self._inputs:
            values[name] = state[fqn] if fqn is not None else self._checked(name, next(given))
        for node in self._nodes:
            result = node.function(*_resolve(node.args, values), **_resolve(node.kwargs, values))
            _bind(node.outputs, result, values)
        outputs = _resolve(self._outputs, values)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _checked(self, name: str, tensor):
        shape = self.input_shapes.get(name)
        fits = isinstance(tensor, torch.Tensor) and tensor.ndim == len(shape) and all(
            want is None or want == got for want, got in zip(shape, tensor.shape))
        if not fits:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            wanted = tuple("any" if side is None else side for side in shape)
            raise ModelError(f"{self.source} was exported for inputs of shape {wanted} and got {got}; export it "
                             "again with dynamic_shapes= naming the sizes that vary (e.g. the batch)")
        return tensor


def _resolve(value, values: dict):
    if isinstance(value, _Ref):
        return values[value.name]
    if isinstance(value, list):
        return [_resolve(item, values) for item in value]
    if isinstance(value, dict):
        return {key: _resolve(item, values) for key, item in value.items()}
    return value


def _bind(names, result, values: dict) -> None:
    if isinstance(names, str):
        values[names] = result
    elif isinstance(names, list):
        if not isinstance(result, (tuple, list)) or len(result) != len(names):
            raise ModelError(f"an operator returned {type(result).__name__} where the program expects "
                             f"{len(names)} results")
        for name, item in zip(names, result):
            _bind(name, item, values)


def _place(path: Path, module: torch.nn.Module, fqn: str, tensor: torch.Tensor, kind: str, persistent: bool) -> None:
    """Put a tensor at its dotted name, making the (empty) submodules on the way."""
    *parents, leaf = fqn.split(".")
    try:
        for part in parents:
            if part not in module._modules:
                module.add_module(part, torch.nn.Module())
            module = module._modules[part]
        if kind == "parameter":
            module.register_parameter(leaf, torch.nn.Parameter(tensor, requires_grad=tensor.is_floating_point()))
        else:
            module.register_buffer(leaf, tensor, persistent=persistent)
    except (KeyError, TypeError, AttributeError) as exc:
        raise _refuse(path, f"its state names {fqn!r}, which cannot be a module attribute ({exc})") from exc


def _input_shapes(graph: dict, inputs: list) -> dict:
    """The caller's inputs' sizes as exported: an int where fixed, None where dynamic."""
    shapes = {}
    for name, fqn in inputs:
        if fqn is None:
            sizes = [size.get("as_int") for size in graph["tensor_values"][name]["sizes"]]
            shapes[name] = tuple(size if type(size) is int else None for size in sizes)
    return shapes


def load_exported(path: str | Path) -> ExportedModule:
    """A ``torch.export.save`` archive as a module, read without running anything from the file.

    Refused with a :class:`~expresso_xai.errors.ModelError` naming the file and the reason:
    TorchScript, ``torch.save`` pickles, archives with members torch would unpickle or
    execute (pickled weights or constants, custom objects, AOTInductor libraries, sample
    inputs that are not plain tensors), and graphs calling anything but ATen operators.
    Guard code and symbolic-shape expressions are never evaluated; the input's fixed sizes
    are checked instead.

    Example:
        >>> import tempfile, torch
        >>> from expresso_xai.testing import tiny_cnn
        >>> path = Path(tempfile.mkdtemp()) / "tiny.pt2"
        >>> net = tiny_cnn().eval()
        >>> torch.export.save(torch.export.export(net, (torch.zeros(1, 3, 16, 64, 64),)), path)
        >>> module = load_exported(path)
        >>> module.input_geometry()
        {'layout': 'NCTHW', 'clip_length': 16, 'input_size': (64, 64)}
        >>> x = torch.randn(1, 3, 16, 64, 64)
        >>> bool(torch.equal(module(x), net(x)))
        True
    """
    path = Path(path)
    archive, root, names = _open_zip(path)
    _check_kind(path, names)
    members = _read_members(path, archive, root, names)
    _check_sample_inputs(path, members)
    program = _json(path, members, "models/model.json")
    if not isinstance(program.get("schema_version"), dict) or program["schema_version"].get("major") != _SCHEMA_MAJOR:
        raise _refuse(path, f"it was saved with export schema {program.get('schema_version')}; this loader reads "
                            f"schema {_SCHEMA_MAJOR}.x (torch 2.14): export it again with this torch")
    state = {**_payloads(path, members, "weights", "weight"), **_payloads(path, members, "constants", "tensor")}
    try:
        graph, signature = program["graph_module"]["graph"], program["graph_module"]["signature"]
        inputs, placed, outputs = _signature(path, signature, state)
        nodes = _nodes(path, graph, {name for name, _ in inputs})
        defined = {name for name, _ in inputs}.union(*(_defines(node.outputs) for node in nodes))
        outputs = [_argument(path, arg, defined) for arg in outputs]
        shapes = _input_shapes(graph, inputs)
    except ModelError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise _refuse(path, f"its program is not laid out as torch.export writes it ({exc!r})") from exc
    module = ExportedModule(nodes, inputs, outputs, shapes, path.name)
    for fqn, (kind, persistent) in placed.items():
        _place(path, module, fqn, state[fqn], kind, persistent)
    return module
