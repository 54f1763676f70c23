"""The user's model in; ONNX with named inputs and outputs, and the user's layer names, out.

A model comes as a torch module (the Python API), `path/to/file.py:factory`, `package.module:callable`
or an `.onnx` file exported elsewhere. Whatever the source, the graph handed to the planner has
- one input `x` [1, n_mels, frames]: a model that takes [B, T, F] (or a 2-D [B, 1, F, T] / [B, 1, T, F])
  gets the matching transpose/unsqueeze in front (`input_layout`);
- its outputs named `y`, `y1`, `y2`, ... in the model's order;
- every LSTM/GRU with its state as graph inputs and outputs, `h{k}_in` -> `h{k}_out` (and `c{k}` for an
  LSTM's cell), k counting recurrent layers in graph order: ESP-DL zeroes a recurrent state on every run
  unless it is a graph input. A model with the hand-written interface (`recurrent_state_names`,
  `get_init_states`, `encode`) keeps its own names;
- `layers`: every node mapped to the user's layer, its PyTorch module path (or, for an ONNX file, the
  node's name there), so no refusal ever names a node that onnxsim or the exporter made up.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper, version_converter
from onnxsim import simplify

from ..models import WeightsError, load_weights
from .errors import ExportError

OPSET = 18
INPUT_NAME = "x"
OUTPUT_NAME = "y"
TIME_AXIS = 2  # of x: [batch, n_mels, frames]
STATE_IN, STATE_OUT = "_in", "_out"  # h0 -> h0_in / h0_out
RECURRENT_STATES = {"LSTM": ((5, 1, "h"), (6, 2, "c")), "GRU": ((5, 1, "h"),)}  # (input slot, output slot, kind)
TOP_LEVEL = "(forward)"  # the layer of an op written in the model's own forward()

# How the model reads x [1, n_mels, frames]: the permutation (and unsqueeze) that gives it its own layout.
INPUT_LAYOUTS = {
    "BFT": ((0, 1, 2), None),  # [batch, n_mels, frames], as nn.Conv1d reads it
    "BTF": ((0, 2, 1), None),  # [batch, frames, n_mels], as batch_first LSTMs and nn.Linear read it
    "B1FT": ((0, 1, 2), 1),  # [batch, 1, n_mels, frames]: a Conv2d model with time on the width
    "B1TF": ((0, 2, 1), 1),  # [batch, 1, frames, n_mels]: a Conv2d model with time on the height
}


@dataclass
class Intake:
    """The model as ONNX, ready to plan; and how to run the original for the PyTorch-vs-ONNX check."""

    onnx: onnx.ModelProto
    layers: dict[str, str]  # node name -> the user's layer
    source: str
    module: torch.nn.Module | None = None  # what was exported (None for an ONNX file)
    state_inputs: tuple[str, ...] = ()  # given to `module` after x (the hand-written interface only)
    notes: list[str] = field(default_factory=list)  # what the tool did to the model, for the report

    @property
    def n_mels(self) -> int:
        return self.onnx.graph.input[0].type.tensor_type.shape.dim[1].dim_value

    def zero_states(self) -> dict[str, torch.Tensor]:
        """Every graph input but x, zero: where every stream starts."""
        return {i.name: torch.zeros([d.dim_value for d in i.type.tensor_type.shape.dim])
                for i in self.onnx.graph.input[1:]}

    @torch.no_grad()
    def run_torch(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        """The original PyTorch model's outputs by graph output name (None for an ONNX file)."""
        states = self.zero_states()
        out = self.module(x, *(states[n] for n in self.state_inputs))
        out = out if isinstance(out, (tuple, list)) else (out,)
        names = [o.name for o in self.onnx.graph.output]
        return {name: value.numpy() for name, value in zip(names, _flat_tensors(out))}


def take_model(model, n_mels: int, frames: int, input_layout: str | None = None, weights=None) -> Intake:
    """The intake stage: a torch module, `file.py:factory` / `package.module:callable` (with `weights`), or an
    .onnx path, as ONNX ready to plan. n_mels: the features per frame (an ONNX file's own when it fixes them)."""
    if isinstance(model, Intake):
        return model
    if isinstance(model, torch.nn.Module):
        return from_torch(model, n_mels, frames, input_layout or "BFT")
    if str(model).endswith(".onnx"):
        return from_onnx(model, frames, n_mels, input_layout)
    return from_torch(load_model(str(model), weights), n_mels, frames, input_layout or "BFT")


# ---------------------------------------------------------------- loading the user's module
def load_model(spec: str, weights: str | Path | None = None) -> torch.nn.Module:
    """`path/to/file.py:factory` or `package.module:callable` -> the module it returns, with `weights`."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise ExportError(f"--model {spec!r}: give path/to/file.py:factory or package.module:callable")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ExportError(f"{path}: no such file")
        module_name = f"_espdl_user_{abs(hash(str(path.resolve())))}"
        loader = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader)
        sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
        try:
            loader.loader.exec_module(module)
        except Exception as e:
            raise ExportError(f"{path} failed to import: {type(e).__name__}: {e}") from e
    else:
        try:
            module = importlib.import_module(where)
        except Exception as e:
            raise ExportError(f"cannot import {where!r}: {type(e).__name__}: {e}") from e
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ExportError(f"{where} has no callable {name!r}")
    try:
        model = factory()
    except Exception as e:
        raise ExportError(f"{spec}() failed: {type(e).__name__}: {e}") from e
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"{spec}() returned a {type(model).__name__}, not a torch.nn.Module")
    if weights is not None:
        try:
            load_weights(model, weights)
        except WeightsError as e:
            raise ExportError(str(e)) from None
    return model.eval()


# ---------------------------------------------------------------- PyTorch -> ONNX
class _FlatStates(torch.nn.Module):
    """A model with the hand-written state interface as ONNX sees it: x and each state in, y and each next state out."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.names = model.recurrent_state_names()

    def forward(self, x, *states):
        y, new_states = self.model.encode(x, dict(zip(self.names, states)))
        return (y, *(new_states[name] for name in self.names))


class _InputLayout(torch.nn.Module):
    """x [1, n_mels, frames] in the layout the model reads."""

    def __init__(self, model: torch.nn.Module, layout: str):
        super().__init__()
        self.model = model
        self.perm, self.unsqueeze = INPUT_LAYOUTS[layout]

    def forward(self, x):
        x = x.permute(*self.perm)
        return self.model(x if self.unsqueeze is None else x.unsqueeze(self.unsqueeze))


def _flat_tensors(values) -> list[torch.Tensor]:
    flat = []
    for v in values:
        flat += _flat_tensors(v) if isinstance(v, (tuple, list)) else [v]
    return flat


def _check_layout(layout: str) -> None:
    if layout not in INPUT_LAYOUTS:
        raise ExportError(f"input layout {layout!r} is not known: choose one of {', '.join(INPUT_LAYOUTS)}")


def from_torch(model: torch.nn.Module, n_mels: int, frames: int, input_layout: str = "BFT") -> Intake:
    """Export a PyTorch model with TorchScript at opset 18, simplified, states exposed, layers named."""
    _check_layout(input_layout)
    model = model.eval()
    x = torch.zeros(1, n_mels, frames)
    if hasattr(model, "recurrent_state_names"):
        module, state_names = _FlatStates(model).eval(), tuple(model.recurrent_state_names())
        zeros = model.get_init_states(1)
        example = {INPUT_NAME: x, **{name + STATE_IN: zeros[name] for name in state_names}}
        output_names = [OUTPUT_NAME, *(name + STATE_OUT for name in state_names)]
        wrapped = True
    else:
        module = model if input_layout == "BFT" else _InputLayout(model, input_layout).eval()
        example, wrapped = {INPUT_NAME: x}, module is not model
        output_names = [OUTPUT_NAME]
    try:
        with torch.no_grad():
            out = module(*example.values())
    except Exception as e:
        raise ExportError(
            f"the model cannot run on x of shape {list(x.shape)} read as {input_layout}: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''} (give --n-mels / --input-layout for what it takes)"
        ) from e
    if isinstance(out, dict) or not all(isinstance(t, torch.Tensor) for t in _flat_tensors(out if isinstance(out, (tuple, list)) else (out,))):
        raise ExportError("the model must return a tensor or a tuple of tensors")
    if len(output_names) == 1:
        count = len(_flat_tensors(out)) if isinstance(out, (tuple, list)) else 1
        output_names = [OUTPUT_NAME, *(f"{OUTPUT_NAME}{i}" for i in range(1, count))]
    raw = _torchscript(module, example, output_names)
    paths = [name for name, _ in module.named_modules() if name]
    prefix = "model." if wrapped else ""
    original = {n.name: _module_path(n.name, paths, prefix) for n in raw.graph.node}
    simplified = _simplify(raw)
    layers = _carry_layers(raw, simplified, original)
    proto, notes = expose_recurrent_states(simplified, layers)
    return Intake(proto, layers, f"PyTorch {type(model).__name__}", module,
                  tuple(example)[1:], notes)


def _torchscript(module: torch.nn.Module, example: dict[str, torch.Tensor], output_names: list[str]) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter warns that it cannot fold the Slice of F.pad's shape arithmetic; onnxsim folds it
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        # the TorchScript exporter is chosen on purpose: it keeps module paths in node names
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        # nn.LSTM/GRU check their input sizes in Python while traced; shapes are fixed at export anyway
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # states become graph inputs, which is what this warning about RNN batch sizes asks for
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        try:
            with _silenced_stderr():  # on failure torch's C++ side dumps its whole IR graph there
                torch.onnx.export(module.eval(), tuple(example.values()), buffer, opset_version=OPSET,
                                  input_names=list(example), output_names=output_names, do_constant_folding=True,
                                  dynamo=False)
        except Exception as e:
            raise ExportError(f"torch.onnx.export failed: {type(e).__name__}: {str(e).splitlines()[0]}") from e
    return onnx.load_from_string(buffer.getvalue())


@contextlib.contextmanager
def _silenced_stderr():
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _module_path(node_name: str, paths: list[str], prefix: str) -> str:
    """The module path of a TorchScript node name such as '/blocks/blocks.0/conv/Conv'.

    Each part is the unqualified name of a module whose forward ran (numeric atoms kept with the
    name before them), so the path is rebuilt by descending into the shortest matching descendant.
    """
    current = ""
    for part in node_name.strip("/").split("/")[:-1]:
        below = [p for p in paths if (not current or p.startswith(current + ".")) and (p == part or p.endswith("." + part))]
        if below:
            current = min(below, key=lambda p: p.count("."))
    current = current.removeprefix(prefix) if prefix else current
    return current if current and current + "." != prefix else TOP_LEVEL


def _simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    try:
        simplified, ok = simplify(proto)
    except Exception as e:
        raise ExportError(f"onnxsim could not simplify the model: {type(e).__name__}: {str(e).splitlines()[0]}") from e
    if not ok:
        raise ExportError("onnxsim could not verify the simplified graph of the model")
    return simplified


def _carry_layers(before: onnx.ModelProto, after: onnx.ModelProto, layer_of: dict[str, str]) -> dict[str, str]:
    """The user's layer of every node of the simplified graph.

    onnxsim keeps most node names; a node it made (a Gemm from MatMul+Add, a Reshape beside it) is found
    through the tensors it writes, the parameters it reads, or else its neighbours.
    """
    by_tensor = {o: layer_of[n.name] for n in before.graph.node for o in n.output}
    initializers = {t.name for t in after.graph.initializer}
    known_layers = set(layer_of.values())
    layers: dict[str, str] = {}
    for node in after.graph.node:
        if node.name in layer_of:
            layers[node.name] = layer_of[node.name]
            continue
        found = [by_tensor[o] for o in node.output if o in by_tensor]
        found += [i.rsplit(".", 1)[0] for i in node.input if i in initializers and i.rsplit(".", 1)[0] in known_layers]
        if found:
            layers[node.name] = found[0]
    producers = {o: n for n in after.graph.node for o in n.output}
    for _ in range(len(after.graph.node)):  # neighbours, downstream first
        missing = [n for n in after.graph.node if n.name not in layers]
        if not missing:
            break
        for node in missing:
            consumers = [c.name for c in after.graph.node if set(node.output) & set(c.input) and c.name in layers]
            inputs = [producers[i].name for i in node.input if i in producers and producers[i].name in layers]
            if consumers or inputs:
                layers[node.name] = layers[(consumers or inputs)[0]]
    # a node onnxsim made gets a name from its layer, as the exporter names nodes, so no message shows 'Gemm_1'
    taken = {n.name for n in after.graph.node}
    for node in after.graph.node:
        if node.name not in layer_of:
            layer = layers.get(node.name, TOP_LEVEL)
            base = "/" + ("" if layer == TOP_LEVEL else layer.replace(".", "/") + "/") + node.op_type
            name = next(f"{base}_{k}" if k else base for k in range(len(taken) + 1) if (f"{base}_{k}" if k else base) not in taken)
            taken.add(name)
            layers[name] = layers.pop(node.name, TOP_LEVEL)
            node.name = name
    return {n.name: layers.get(n.name, TOP_LEVEL) for n in after.graph.node}


# ---------------------------------------------------------------- an ONNX file
def from_onnx(path: str | Path, frames: int, n_mels: int | None = None, input_layout: str | None = None) -> Intake:
    """An ONNX model exported elsewhere: its data input becomes x [1, n_mels, frames], its outputs y, y1, ...

    The layout is read from the input's rank (3: BFT unless told; 4: B1FT unless told); n_mels and the
    frame count from its dims where they are fixed, else from the arguments.
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as e:
        raise ExportError(f"{path}: not a valid ONNX model ({type(e).__name__}: {str(e).splitlines()[0]})") from e
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=OPSET)
    if opset != OPSET:
        try:
            proto = version_converter.convert_version(proto, OPSET)
        except Exception as e:
            raise ExportError(f"{path}: cannot convert opset {opset} to {OPSET}: {type(e).__name__}: {e}") from e
    graph = proto.graph
    for i, node in enumerate(graph.node):
        node.name = node.name or f"{node.op_type}_{i}"
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    state_inputs = {n.input[slot] for n in graph.node if n.op_type in RECURRENT_STATES
                    for slot, _, _ in RECURRENT_STATES[n.op_type] if len(n.input) > slot}
    data = [i for i in inputs if i.name not in state_inputs]
    if len(data) != 1:
        raise ExportError(f"{path}: the model must take one feature input (and recurrent states), "
                          f"it takes {[i.name for i in data]}")
    x = data[0]
    dims = x.type.tensor_type.shape.dim
    layout = input_layout or {3: "BFT", 4: "B1FT"}.get(len(dims))
    if layout is None:
        raise ExportError(f"{path}: input '{x.name}' has {len(dims)} dimensions; the tool takes [B, F, T], [B, T, F], "
                          f"[B, 1, F, T] or [B, 1, T, F]")
    _check_layout(layout)
    perm, unsqueeze = INPUT_LAYOUTS[layout]
    if len(dims) != 3 + (unsqueeze is not None):
        raise ExportError(f"{path}: input '{x.name}' has {len(dims)} dimensions, but layout {layout} has {len(layout)}")
    model_axes = [a for a in range(len(dims)) if unsqueeze is None or a != unsqueeze]  # the model's B, F/T, T/F axes
    feature_axis, time_axis = model_axes[perm.index(1)], model_axes[perm.index(2)]
    fixed = {a: d.dim_value for a, d in enumerate(dims) if d.HasField("dim_value")}
    if feature_axis in fixed:
        if n_mels is not None and n_mels != fixed[feature_axis]:
            raise ExportError(f"{path}: the model takes {fixed[feature_axis]} features per frame, not --n-mels {n_mels}")
        n_mels = fixed[feature_axis]
    if n_mels is None:
        raise ExportError(f"{path}: the feature count of input '{x.name}' is not fixed: give --n-mels")
    if fixed.get(time_axis, frames) != frames:
        raise ExportError(f"{path}: the model is fixed at {fixed[time_axis]} frames: give --frames {fixed[time_axis]} "
                          f"(or export it with a dynamic time axis)")
    if unsqueeze is not None and fixed.get(unsqueeze, 1) != 1:
        raise ExportError(f"{path}: layout {layout} needs a single channel on axis {unsqueeze}, the model has {fixed[unsqueeze]}")
    shape = [1] * len(dims)
    shape[feature_axis], shape[time_axis] = n_mels, frames
    _set_shape(x, shape)
    for state in inputs:
        if state.name in state_inputs:
            _set_shape(state, [1 if d.HasField("dim_param") or not d.dim_value else d.dim_value
                               for d in state.type.tensor_type.shape.dim])
    del graph.value_info[:]
    for o in graph.output:  # any length: shape inference gives them their shapes at this one
        for k, d in enumerate(o.type.tensor_type.shape.dim):
            d.Clear()
            d.dim_param = f"{o.name}_{k}"
    layers = {n.name: n.name for n in graph.node}
    states = _state_names(graph)  # the file's own state inputs and outputs get the stable names
    frame_outputs = [o.name for o in graph.output if o.name not in states]
    names = {o: (OUTPUT_NAME if k == 0 else f"{OUTPUT_NAME}{k}") for k, o in enumerate(frame_outputs)}
    original_names = {x.name: INPUT_NAME, **names, **states}
    for old, new in original_names.items():
        _rename(graph, old, f"__{new}")
    for old, new in original_names.items():
        _rename(graph, f"__{new}", new)
    if layout != "BFT":
        _adapt_input(graph, shape, perm, unsqueeze, layers)
    simplified = _with_output_shapes(_simplify(proto))
    layers = _carry_layers(proto, simplified, layers)
    proto, notes = expose_recurrent_states(simplified, layers)
    renamed = {old: new for old, new in original_names.items() if old != new}
    if renamed:
        notes.insert(0, "renamed " + ", ".join(f"'{o}' -> '{n}'" for o, n in renamed.items()))
    return Intake(proto, layers, f"ONNX {path.name}", notes=notes)


def _state_names(graph: onnx.GraphProto) -> dict[str, str]:
    """{old: new} for recurrent states an ONNX file passes as graph inputs (and returns as outputs): h{k}_in, h{k}_out."""
    inputs, outputs = {i.name for i in graph.input}, {o.name for o in graph.output}
    names = {}
    for k, node in enumerate(n for n in graph.node if n.op_type in RECURRENT_STATES):
        for slot, out_slot, kind in RECURRENT_STATES[node.op_type]:
            if len(node.input) > slot and node.input[slot] in inputs:
                names[node.input[slot]] = f"{kind}{k}{STATE_IN}"
                if len(node.output) > out_slot and node.output[out_slot] in outputs:
                    names[node.output[out_slot]] = f"{kind}{k}{STATE_OUT}"
    return names


def _with_output_shapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The outputs' shapes at the planned length, as shape inference finds them."""
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    for o in probe.graph.output:
        o.type.tensor_type.ClearField("shape")
    inferred = {o.name: o for o in onnx.shape_inference.infer_shapes(probe).graph.output}
    for o in proto.graph.output:
        if inferred[o.name].type.tensor_type.HasField("shape"):
            o.type.CopyFrom(inferred[o.name].type)
    return proto


def _set_shape(value_info: onnx.ValueInfoProto, shape: list[int]) -> None:
    dims = value_info.type.tensor_type.shape.dim
    for d, size in zip(dims, shape):
        d.Clear()
        d.dim_value = size


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        node.output[:] = [new if o == old else o for o in node.output]
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        if vi.name == old:
            vi.name = new


def _adapt_input(graph: onnx.GraphProto, model_shape: list[int], perm, unsqueeze, layers: dict[str, str]) -> None:
    """Put x [1, n_mels, frames] in front of a model that reads another layout: a Transpose (and an Unsqueeze)."""
    inner = "x_model_layout"
    _rename(graph, INPUT_NAME, inner)
    nodes, source = [], INPUT_NAME
    if perm != (0, 1, 2):
        out = inner if unsqueeze is None else "x_transposed"
        nodes.append(helper.make_node("Transpose", [source], [out], perm=list(perm), name="input_layout/Transpose"))
        source = out
    if unsqueeze is not None:
        axes = numpy_helper.from_array(np.array([unsqueeze], np.int64), "input_layout_axes")
        graph.initializer.append(axes)
        nodes.append(helper.make_node("Unsqueeze", [source, axes.name], [inner], name="input_layout/Unsqueeze"))
    x = graph.input[[i.name for i in graph.input].index(inner)]
    x.name = INPUT_NAME
    sizes = [model_shape[a] for a in range(len(model_shape)) if a != unsqueeze]
    _set_shape(x, [sizes[p] for p in np.argsort(perm)])
    for node in reversed(nodes):
        graph.node.insert(0, node)
        layers[node.name] = "input layout"
    graph.input.remove(x)
    graph.input.insert(0, x)


# ---------------------------------------------------------------- recurrent states
def expose_recurrent_states(proto: onnx.ModelProto, layers: dict[str, str]) -> tuple[onnx.ModelProto, list[str]]:
    """Make every LSTM/GRU state a graph input/output pair, as ESP-DL needs to carry it across chunks.

    A state the model starts from zero (an empty input, or a zero constant) becomes the input
    `{kind}{k}_in`, and the final state the output `{kind}{k}_out`. A state already given as a
    graph input keeps its name and gets its output. Anything else (a learned initial state, one
    computed in the graph) is left for the planner to refuse with its reason.
    """
    graph = proto.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    graph_inputs = {i.name for i in graph.input}
    graph_outputs = {o.name for o in graph.output}
    notes = []
    recurrent = [n for n in graph.node if n.op_type in RECURRENT_STATES]
    for k, node in enumerate(recurrent):
        hidden = helper.get_attribute_value(next(a for a in node.attribute if a.name == "hidden_size"))
        for slot, out_slot, kind in RECURRENT_STATES[node.op_type]:
            initial = node.input[slot] if len(node.input) > slot else ""
            zero = initial in constants and not constants[initial].any()
            if initial and initial not in graph_inputs and not zero:
                continue
            if not initial or zero:
                while len(node.input) <= slot:
                    node.input.append("")
                name = f"{kind}{k}{STATE_IN}"
                node.input[slot] = name
                graph.input.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1, 1, hidden]))
                graph_inputs.add(name)
                initial = name
            while len(node.output) <= out_slot:
                node.output.append("")
            final = node.output[out_slot]
            if final not in graph_outputs:
                name = initial[: -len(STATE_IN)] + STATE_OUT if initial.endswith(STATE_IN) else f"{kind}{k}{STATE_OUT}"
                if final:
                    _rename(graph, final, name)
                node.output[out_slot] = name
                graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1, 1, hidden]))
                graph_outputs.add(name)
                notes.append(f"{node.op_type} '{layers.get(node.name, node.name)}': state {initial} -> {name} made by the tool")
    used = {i for n in graph.node for i in n.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
    onnx.checker.check_model(proto)
    return proto, notes


def model_to_onnx(model: torch.nn.Module, n_mels: int, frames: int) -> onnx.ModelProto:
    return from_torch(model, n_mels, frames).onnx
