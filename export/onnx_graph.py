"""Model -> ONNX, the plan of what the graph needs to stream, and its external-state streaming twin.

The streaming rules are read from the exported graph itself: the kernel, dilation, stride and
padding of every time-mixing node give its StreamingCache; every LSTM/GRU gives a pair of state
output -> state input to copy back between chunks. The time axis of every tensor is tracked
through transposes and squeezes, so any causal model built from the known layers exports, and a
node that cannot stream exactly is refused with its name. The model's own rules
(models.streaming_rules) are checked against these, so the two can never drift apart.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper, shape_inference
from onnxsim import simplify

from ..models import receptive_window
from .errors import UnstreamableModel

OPSET = 18
INPUT_NAME = "x"
OUTPUT_NAME = "y"
TIME_AXIS = 2  # [batch, channels, frames]
STATE_IN, STATE_OUT = "_in", "_out"  # h0 -> h0_in / h0_out

# Ops that act on each frame alone; anything else must be a known time op or is refused.
FRAMEWISE_OPS = {
    "Relu", "Sigmoid", "Tanh", "Clip", "LeakyRelu", "PRelu", "HardSigmoid", "HardSwish", "Elu", "Selu",
    "Add", "Sub", "Mul", "Div", "BatchNormalization", "Identity", "Neg", "Abs", "Exp", "Sqrt", "Softsign",
}
CHANNEL_AXIS_OPS = {"Softmax", "LogSoftmax"}
RECURRENT_OPS = {"LSTM": ("initial_h", "initial_c"), "GRU": ("initial_h",)}
_RECURRENT_STATE_INPUTS = {"LSTM": (5, 6), "GRU": (5,)}  # ONNX input slots of initial_h (and initial_c)


@dataclass(frozen=True)
class CacheSite:
    """One StreamingCache: `window - 1` frames of `variable` kept for the node `consumer`."""

    variable: str
    consumer: str
    window: int
    stride: int
    channels: int
    input_stride: int  # frames of the model input per frame of `variable`

    @property
    def cache_frames(self) -> int:
        return self.window - 1


@dataclass(frozen=True)
class StreamingPlan:
    sites: tuple[CacheSite, ...]
    total_stride: int  # model input frames per output frame
    pooling_rewrites: tuple[str, ...] = ()  # AveragePool nodes exported as depthwise Conv
    state_pairs: tuple[tuple[str, str], ...] = ()  # (state output, state input) copied back after every chunk
    cell_states: tuple[str, ...] = ()  # LSTM cell-state outputs (ESP-DL keeps them int16)

    @property
    def recurrent(self) -> bool:
        return bool(self.state_pairs)

    @property
    def state_inputs(self) -> tuple[str, ...]:
        return tuple(i for _, i in self.state_pairs)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (OUTPUT_NAME, *(o for o, _ in self.state_pairs))

    def check_chunk(self, chunk: int, frames: int) -> None:
        if chunk < 1:
            raise UnstreamableModel(f"chunk must be at least 1 frame, got {chunk}")
        if chunk % self.total_stride:
            raise UnstreamableModel(
                f"chunk of {chunk} frames is not a multiple of the model's total time stride {self.total_stride}"
            )
        if frames % chunk:
            raise UnstreamableModel(f"offline length of {frames} frames is not a whole number of {chunk}-frame chunks")


class _FlatStates(torch.nn.Module):
    """A recurrent model as ONNX sees it: x and each recurrent state in, y and each next state out.

    Recurrent models expose recurrent_state_names(), get_init_states() and encode(x, states).
    Their conv caches are not graph inputs: the exporter streams those with StreamingCache nodes.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.names = model.recurrent_state_names()

    def forward(self, x, *states):
        y, new_states = self.model.encode(x, dict(zip(self.names, states)))
        return (y, *(new_states[name] for name in self.names))


def onnx_interface(model: torch.nn.Module, n_mels: int, frames: int):
    """(module to export, example inputs by name, output names): x [+ <state>_in] -> y [+ <state>_out]."""
    if not hasattr(model, "recurrent_state_names"):
        return model, {INPUT_NAME: torch.zeros(1, n_mels, frames)}, [OUTPUT_NAME]
    names = model.recurrent_state_names()
    zeros = model.get_init_states(1)
    example = {INPUT_NAME: torch.zeros(1, n_mels, frames), **{name + STATE_IN: zeros[name] for name in names}}
    return _FlatStates(model).eval(), example, [OUTPUT_NAME, *(name + STATE_OUT for name in names)]


def export_onnx(module: torch.nn.Module, example: dict[str, torch.Tensor], output_names: list[str]) -> onnx.ModelProto:
    """TorchScript export at opset 18 with fixed input/output names, simplified, pooling normalised for ESP-DL."""
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter warns that it cannot fold the Slice of F.pad's shape arithmetic; onnxsim folds it
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        # the TorchScript exporter is chosen on purpose: it keeps module paths in node names
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        # nn.LSTM/GRU check their input sizes in Python while traced; shapes are fixed at export anyway
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # states are graph inputs, which is what this warning about RNN batch sizes asks for
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        torch.onnx.export(
            module.eval(),
            tuple(example.values()),
            buffer,
            opset_version=OPSET,
            input_names=list(example),
            output_names=output_names,
            do_constant_folding=True,
            dynamo=False,
        )
    simplified, ok = simplify(onnx.load_from_string(buffer.getvalue()))
    if not ok:
        raise UnstreamableModel("onnxsim could not verify the simplified graph of the model")
    return causal_pools_as_convs(simplified)


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _set_attr(node: onnx.NodeProto, name: str, value) -> None:
    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            break
    node.attribute.append(helper.make_attribute(name, value))


def _channels(model: onnx.ModelProto) -> dict[str, int]:
    inferred = shape_inference.infer_shapes(model)
    infos = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {vi.name: vi.type.tensor_type.shape.dim[1].dim_value for vi in infos if len(vi.type.tensor_type.shape.dim) == 3}


def model_to_onnx(model: torch.nn.Module, n_mels: int, frames: int) -> onnx.ModelProto:
    return export_onnx(*onnx_interface(model, n_mels, frames))


def causal_pools_as_convs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Export a zero-padded causal AveragePool as the depthwise Conv it equals.

    ESP-DL's AveragePool divides a border window by the number of real frames in it, while a
    zero-initialised StreamingCache makes the streaming model divide by the kernel size: a padded
    AveragePool on the chip would differ between offline and streaming in its first frames.
    A depthwise Conv with weights 1/k zero-pads the same way everywhere.
    """
    channels = _channels(model)
    graph = model.graph
    for node in graph.node:
        if node.op_type != "AveragePool":
            continue
        a = _attrs(node)
        (k,) = a["kernel_shape"]
        pads = list(a.get("pads", [0, 0]))
        if pads != [k - 1, 0] or not a.get("count_include_pad", 0) or a.get("ceil_mode", 0):
            continue  # not a causal zero-padded pool: left for find_cache_sites to judge
        c = channels[node.input[0]]
        weight = numpy_helper.from_array(np.full((c, 1, k), 1.0 / k, dtype=np.float32), f"{node.name}.weight")
        graph.initializer.append(weight)
        strides = list(a.get("strides", [1]))
        node.op_type = "Conv"
        node.input.append(weight.name)
        del node.attribute[:]
        node.attribute.extend([
            helper.make_attribute("kernel_shape", [k]), helper.make_attribute("pads", pads),
            helper.make_attribute("strides", strides), helper.make_attribute("dilations", [1]),
            helper.make_attribute("group", c),
        ])
        node.doc_string = "causal AveragePool exported as depthwise Conv"
    return model


def _constant_axes(node: onnx.NodeProto, initializers: dict) -> list[int]:
    if len(node.input) > 1 and node.input[1] in initializers:
        return [int(a) for a in numpy_helper.to_array(initializers[node.input[1]]).reshape(-1)]
    return list(_attrs(node).get("axes", []))


def find_cache_sites(model: onnx.ModelProto) -> StreamingPlan:
    """What the graph needs to stream, or UnstreamableModel naming the first node that cannot stream.

    Walks the nodes in order, tracking for every tensor its time axis (None: no time axis, like a
    recurrent state) and how many input frames make one of its frames.
    """
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    channels = _channels(model)
    graph_inputs = [i.name for i in graph.input]
    graph_outputs = {o.name for o in graph.output}
    if graph_inputs[0] != INPUT_NAME:
        raise UnstreamableModel(f"the first graph input must be '{INPUT_NAME}', got '{graph_inputs[0]}'")
    time_axis: dict[str, int | None] = {name: None for name in graph_inputs}
    time_axis[INPUT_NAME] = TIME_AXIS
    input_stride = {INPUT_NAME: 1}
    sites: list[CacheSite] = []
    pairs: list[tuple[str, str]] = []
    cells: list[str] = []
    rewrites = []
    for node in graph.node:
        where = f"{node.op_type} node '{node.name}'"
        data_inputs = [i for i in node.input if i and i not in initializers]
        strides_in = {input_stride[i] for i in data_inputs if i in input_stride}
        if len(strides_in) > 1:
            raise UnstreamableModel(f"{where} combines tensors at different frame rates {sorted(strides_in)}")
        rate = strides_in.pop() if strides_in else 1
        axes_in = {time_axis.get(i) for i in data_inputs} - {None}
        if len(axes_in) > 1:
            raise UnstreamableModel(f"{where} combines tensors with time on different axes {sorted(axes_in)}")
        axis = axes_in.pop() if axes_in else None
        out_rate, out_axis = rate, axis
        if node.op_type == "Conv":
            if axis != TIME_AXIS:
                raise UnstreamableModel(f"{where} convolves a tensor whose time axis is {axis}, not {TIME_AXIS}")
            a = _attrs(node)
            kernel = list(a.get("kernel_shape", initializers[node.input[1]].dims[2:]))
            if len(kernel) != 1:
                raise UnstreamableModel(f"{where} is a {len(kernel)}-D convolution; only 1-D convolutions over time stream")
            window = receptive_window(kernel[0], a.get("dilations", [1])[0])
            stride = a.get("strides", [1])[0]
            pads = list(a.get("pads", [0, 0]))
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise UnstreamableModel(f"{where} uses auto_pad; pad explicitly on the left (CausalConv1d)")
            if pads[1] != 0:
                raise UnstreamableModel(
                    f"{where} pads {pads[1]} frame(s) on the right: it looks ahead and cannot stream (use CausalConv1d)"
                )
            if pads[0] != window - 1:
                raise UnstreamableModel(
                    f"{where} pads {pads[0]} frame(s) on the left, but a causal conv with a {window}-frame window "
                    f"needs {window - 1} (use CausalConv1d)"
                )
            if window > 1:
                sites.append(CacheSite(node.input[0], node.name, window, stride, channels[node.input[0]], rate))
            out_rate = rate * stride
            if node.doc_string.startswith("causal AveragePool"):
                rewrites.append(node.name)
        elif node.op_type in RECURRENT_OPS:
            a = _attrs(node)
            if axis != 0 or a.get("layout", 0) != 0:
                raise UnstreamableModel(f"{where} must read [frames, batch, features] (layout 0); its time axis is {axis}")
            if a.get("direction", b"forward") not in (b"forward", "forward"):
                raise UnstreamableModel(f"{where} is {a['direction']!r}: only a forward recurrence streams")
            for slot, output in zip(_RECURRENT_STATE_INPUTS[node.op_type], node.output[1:]):
                state_in = node.input[slot] if len(node.input) > slot else ""
                if state_in not in graph_inputs[1:] or output not in graph_outputs:
                    raise UnstreamableModel(
                        f"{where} needs its initial states as graph inputs and its final states as graph outputs "
                        f"(without them esp-ppq crashes and ESP-DL zeroes the state on every run)"
                    )
                pairs.append((output, state_in))
            if node.op_type == "LSTM":
                cells.append(node.output[2])
            for output in node.output[1:]:
                time_axis[output] = None
                input_stride[output] = rate
            out_axis = 0
        elif node.op_type == "Transpose":
            perm = list(_attrs(node)["perm"])
            out_axis = None if axis is None else perm.index(axis)
        elif node.op_type in {"Squeeze", "Unsqueeze"}:
            axes = _constant_axes(node, initializers)
            if axis is not None:
                if node.op_type == "Squeeze":
                    if axis in axes:
                        raise UnstreamableModel(f"{where} squeezes the time axis away")
                    out_axis = axis - sum(1 for a in axes if a < axis)
                else:
                    out_axis = axis
                    for a in sorted(axes):
                        out_axis += a <= out_axis
        elif node.op_type in FRAMEWISE_OPS:
            for i in node.input:
                if i in initializers and axis is not None and len(initializers[i].dims) > axis and initializers[i].dims[axis] > 1:
                    raise UnstreamableModel(f"{where} applies a constant that varies over time ('{i}'); it cannot stream")
        elif node.op_type in CHANNEL_AXIS_OPS:
            if _attrs(node).get("axis", -1) % 3 == (axis if axis is not None else -1):
                raise UnstreamableModel(f"{where} normalises across frames; only a channel axis streams")
        elif node.op_type == "Pad":
            raise UnstreamableModel(
                f"{where} pads outside a time layer: streaming replaces padding with a cache only inside a "
                f"causal conv or pool (use CausalConv1d / CausalAvgPool1d)"
            )
        elif node.op_type in {"AveragePool", "MaxPool"}:
            raise UnstreamableModel(
                f"{where} is not a zero-padded causal pool: ESP-DL pools border windows over real frames only, "
                f"which a streaming cache cannot reproduce (use CausalAvgPool1d)"
            )
        else:
            raise UnstreamableModel(
                f"{where} cannot stream: it is not a causal conv, a causal pool, a forward LSTM/GRU or a per-frame op "
                f"(an nn.Linear over time, a reshape or a reduction over frames mixes frames)"
            )
        first = node.output[0]
        time_axis[first] = out_axis
        input_stride[first] = out_rate
    for site in sites:
        readers = [s for s in sites if s.variable == site.variable]
        if len(readers) > 1:
            raise UnstreamableModel(
                f"variable '{site.variable}' feeds {len(readers)} time-mixing nodes "
                f"({', '.join(s.consumer for s in readers)}); esp-ppq keeps one cache per variable, so they would "
                f"share one window: give each its own input"
            )
    if time_axis.get(OUTPUT_NAME) != TIME_AXIS:
        raise UnstreamableModel(f"output '{OUTPUT_NAME}' must be [batch, channels, frames]; its time axis is {time_axis.get(OUTPUT_NAME)}")
    unpaired = set(graph_inputs[1:]) - {i for _, i in pairs}
    if unpaired:
        raise UnstreamableModel(f"graph inputs {sorted(unpaired)} are neither '{INPUT_NAME}' nor a recurrent state")
    return StreamingPlan(tuple(sites), input_stride[OUTPUT_NAME], tuple(rewrites), tuple(pairs), tuple(cells))


def with_dynamic_time(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose input and output frame counts are free, to run it on any prefix in ONNX Runtime."""
    dynamic = onnx.ModelProto()
    dynamic.CopyFrom(model)
    del dynamic.graph.value_info[:]
    for vi in [dynamic.graph.input[0], *(o for o in dynamic.graph.output if o.name == OUTPUT_NAME)]:
        vi.type.tensor_type.shape.dim[TIME_AXIS].dim_param = "frames"
    return dynamic


def streaming_twin(model: onnx.ModelProto, plan: StreamingPlan, chunk: int) -> onnx.ModelProto:
    """The external-state streaming model: every cache an explicit input and output.

    For each site: cache_in ++ variable (Concat on frames) feeds the consumer with its padding
    removed, and the last window-1 frames of that concat leave as cache_out. This is the
    ESP-DL StreamingCache written as plain ONNX, so ONNX Runtime can run it chunk by chunk.
    Recurrent states are graph inputs and outputs already.
    """
    twin = with_dynamic_time(model)
    graph = twin.graph
    nodes = {n.name: n for n in graph.node}
    graph.input[0].type.tensor_type.shape.dim[TIME_AXIS].dim_value = chunk
    new_nodes = []
    for k, site in enumerate(plan.sites):
        cache_in, cache_out, joined = f"cache{k}_in", f"cache{k}_out", f"cache{k}_window"
        graph.input.append(helper.make_tensor_value_info(cache_in, onnx.TensorProto.FLOAT, [1, site.channels, site.cache_frames]))
        graph.output.append(helper.make_tensor_value_info(cache_out, onnx.TensorProto.FLOAT, [1, site.channels, site.cache_frames]))
        consumer = nodes[site.consumer]
        new_nodes.append((consumer.name, helper.make_node("Concat", [cache_in, site.variable], [joined], axis=TIME_AXIS, name=f"{joined}_concat")))
        starts = numpy_helper.from_array(np.array([-site.cache_frames], np.int64), f"cache{k}_starts")
        ends = numpy_helper.from_array(np.array([np.iinfo(np.int64).max], np.int64), f"cache{k}_ends")
        axes = numpy_helper.from_array(np.array([TIME_AXIS], np.int64), f"cache{k}_axes")
        graph.initializer.extend([starts, ends, axes])
        new_nodes.append((consumer.name, helper.make_node("Slice", [joined, starts.name, ends.name, axes.name], [cache_out], name=f"{cache_out}_slice")))
        consumer.input[0] = joined
        _set_attr(consumer, "pads", [0, 0])
    ordered = []
    for node in graph.node:
        ordered += [n for before, n in new_nodes if before == node.name]
        ordered.append(node)
    del graph.node[:]
    graph.node.extend(ordered)
    onnx.checker.check_model(twin)
    return twin
