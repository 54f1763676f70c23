"""What streams: one rule per ONNX op type, the cache plan they make, the refusals, and `check`.

The planner walks the graph in order, tracking for every tensor its time axis (None: none, like a
recurrent state) and how many input frames make one of its frames. Each node is judged by the rule of
its op type (`RULES`): it streams as is (per frame), needs a StreamingCache of N frames (a causal conv
or pool), carries state (LSTM/GRU), or is refused with the reason and a fix. A few rules rewrite the
node into what ESP-DL streams best (a Chomp1d's cut folded into its conv, a BatchNorm or a per-channel
scale and shift as a depthwise 1x1 conv, a causal average pool as the depthwise conv it equals, a
Reshape's frame count as -1), and say so. Adding an op is adding a rule.

What ESP-DL can run at all is its module registry (esp-dl dl_module_creator.hpp at 12c0616, below);
what streams exactly is decided here; the refusals name the user's layer, never a made-up node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from .errors import UnstreamableModel
from .intake import INPUT_NAME, TIME_AXIS, TOP_LEVEL

# The op types ESP-DL's ModuleCreator registers (esp-dl master 12c0616, dl_module_creator.hpp).
ESPDL_MODULES = frozenset({
    "Conv", "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Resize", "GlobalAveragePool", "AveragePool", "Concat",
    "Sigmoid", "Tanh", "Relu", "LeakyRelu", "HardSigmoid", "HardSwish", "Gelu", "LUT", "Gemm", "QuantizeLinear",
    "DequantizeLinear", "RequantizeLinear", "PRelu", "Clip", "Flatten", "Reshape", "Transpose", "Exp", "Log", "Sqrt",
    "Squeeze", "Unsqueeze", "Softmax", "LogSoftmax", "MaxPool", "Slice", "Pad", "MatMul", "Neg", "SpaceToDepth",
    "Split", "Gather", "Elu", "Greater", "GreaterOrEqual", "Equal", "Less", "LessOrEqual", "ReverseSequence",
    "ScatterND", "Identity", "Swish", "ReduceMin", "ReduceMax", "ReduceSum", "ReduceProd", "ReduceMean",
    "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp", "GRU", "LSTM", "DepthToSpace", "StreamingCache",
    "InsertZeros", "LayerNormalization", "LpNormalization", "RMSNormalization",
})

STREAMS, CACHE, STATE, REFUSED = "streams", "cache", "state", "refused"
_RANK = {STREAMS: 0, CACHE: 1, STATE: 2, REFUSED: 3}


@dataclass(frozen=True)
class Verdict:
    kind: str  # STREAMS, CACHE, STATE or REFUSED
    rule: str  # the rule that decided, as `check` prints it
    detail: str = ""  # why; for a refusal, what cannot stream or what ESP-DL cannot run
    fix: str = ""
    frames: int = 0  # cached frames

    @property
    def text(self) -> str:
        return {STREAMS: "streams as is", CACHE: f"needs a cache of {self.frames} frame{'s' * (self.frames != 1)}", STATE: "carries state",
                REFUSED: "unsupported"}[self.kind]


@dataclass(frozen=True)
class NodeVerdict:
    node: str
    op: str
    layer: str
    verdict: Verdict

    @property
    def sentence(self) -> str:
        """A refusal as one line: the user's layer, the reason, the fix."""
        where = "the model's forward" if self.layer == TOP_LEVEL else f"layer '{self.layer}'"
        return f"{where} ({self.op}) cannot stream: {self.verdict.detail}" + (f"; fix: {self.verdict.fix}" if self.verdict.fix else "")


@dataclass(frozen=True)
class CacheSite:
    """One StreamingCache: `window - 1` frames of `variable` kept for the node `consumer`."""

    variable: str
    consumer: str
    window: int
    stride: int
    channels: int
    input_stride: int  # frames of the model input per frame of `variable`
    time_axis: int = TIME_AXIS  # of `variable`, in the ONNX graph
    frame_axis: int = 1  # of `variable` in ESP-DL's layout ([N, W, C] or [N, H, W, C])
    dims: tuple[int, ...] = ()  # offline shape of `variable`; () means [1, channels, frames]

    @property
    def cache_frames(self) -> int:
        return self.window - 1

    @property
    def shape(self) -> list[int]:
        """The offline shape of `variable` (its frame count -1 when the site does not say)."""
        return list(self.dims) if self.dims else [1, self.channels, -1]

    @property
    def cache_shape(self) -> list[int]:
        shape = self.shape
        shape[self.time_axis] = self.cache_frames
        return shape


@dataclass(frozen=True)
class FrameOutput:
    name: str
    time_axis: int
    stride: int  # model input frames per frame of this output


@dataclass(frozen=True)
class StreamingPlan:
    sites: tuple[CacheSite, ...]
    total_stride: int  # a chunk must be a multiple of it
    pooling_rewrites: tuple[str, ...] = ()  # AveragePool nodes exported as depthwise Conv
    state_pairs: tuple[tuple[str, str], ...] = ()  # (state output, state input) copied back after every chunk
    cell_states: tuple[str, ...] = ()  # LSTM cell-state outputs (ESP-DL keeps them int16)
    frame_outputs: tuple[FrameOutput, ...] = ()
    time_pads: tuple[tuple[str, int], ...] = ()  # every time-mixing node and the spatial index of its time axis
    verdicts: tuple[NodeVerdict, ...] = ()
    graph: onnx.ModelProto | None = field(default=None, compare=False, repr=False)  # the graph to quantize

    @property
    def recurrent(self) -> bool:
        return bool(self.state_pairs)

    @property
    def state_inputs(self) -> tuple[str, ...]:
        return tuple(i for _, i in self.state_pairs)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (*(o.name for o in self.frame_outputs), *(o for o, _ in self.state_pairs))

    @property
    def refusals(self) -> list[NodeVerdict]:
        return [v for v in self.verdicts if v.verdict.kind == REFUSED]

    def require_streamable(self) -> "StreamingPlan":
        """The plan, or UnstreamableModel with the first refusal in the words `check` prints."""
        refusals = self.refusals
        if refusals:
            more = f" (and {len(refusals) - 1} more: run export-espdl check)" if len(refusals) > 1 else ""
            raise UnstreamableModel(refusals[0].sentence + more)
        return self

    def check_chunk(self, chunk: int, frames: int) -> None:
        if chunk < 1:
            raise UnstreamableModel(f"chunk must be at least 1 frame, got {chunk}")
        if chunk % self.total_stride:
            raise UnstreamableModel(
                f"chunk of {chunk} frames is not a multiple of the model's total time stride {self.total_stride}"
            )
        if frames % chunk:
            raise UnstreamableModel(f"offline length of {frames} frames is not a whole number of {chunk}-frame chunks")


# ---------------------------------------------------------------- the walk
@dataclass
class Step:
    """A rule's answer: its verdict, and the time axis and stride of the node's first output."""

    verdict: Verdict
    axis: int | None = None
    stride: int = 1


class Walk:
    """The state a rule reads and extends: time axes, frame rates, shapes, constants, the plan so far."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.graph = model.graph
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        inferred = shape_inference.infer_shapes(model)
        infos = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
        self.shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in infos}
        self.axis: dict[str, int | None] = {i.name: None for i in self.graph.input}
        self.axis[INPUT_NAME] = TIME_AXIS
        self.rate: dict[str, int] = {INPUT_NAME: 1}
        self.sites: list[CacheSite] = []
        self.pairs: list[tuple[str, str]] = []
        self.cells: list[str] = []
        self.pooling: list[str] = []
        self.time_pads: list[tuple[str, int]] = []
        self.after_refusal: set[str] = set()  # outputs of refused nodes (and what they feed)
        self.removed: dict[str, tuple[str, Verdict]] = {}  # nodes a rewrite folded into another: op, what `check` says
        self.in_rate = 1

    def consumers(self, tensor: str) -> list[onnx.NodeProto]:
        return [n for n in self.graph.node if tensor in n.input]

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)

    def add_const(self, name: str, value: np.ndarray) -> str:
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        self.consts[name] = np.asarray(value)
        return name


def attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def set_attr(node: onnx.NodeProto, name: str, value) -> None:
    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            break
    node.attribute.append(helper.make_attribute(name, value))


def _s(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


RULES: dict[str, Callable[[onnx.NodeProto, Walk, int | None], Step]] = {}


def rule(*op_types: str):
    def register(fn):
        for op in op_types:
            RULES[op] = fn
        return fn

    return register


def streams(rule_name: str, axis: int | None, detail: str = "", stride: int = 1) -> Step:
    return Step(Verdict(STREAMS, rule_name, detail), axis, stride)


def refuse(rule_name: str, detail: str, fix: str, axis: int | None = None) -> Step:
    return Step(Verdict(REFUSED, rule_name, detail, fix), axis)


# ---------------------------------------------------------------- time-mixing ops
def _causal_window(kernel: int, dilation: int, stride: int, left: int, right: int) -> tuple[int | None, str, str]:
    """Frames a streaming cache must hold for a conv or pool on frames, or (None, why, fix).

    Offline output j reads input frames [j*stride - left, j*stride - left + window). Fed chunk by chunk
    (a multiple of the stride), with `left` cached frames in front, it reads the same frames and gives
    chunk/stride outputs exactly when window - stride <= left <= window - 1 and left + right <= window - 1.
    """
    window = dilation * (kernel - 1) + 1
    causal = f"pad {window - 1} frame(s) on the left only (F.pad(x, ({window - 1}, 0)) or CausalConv1d)"
    if left > window - 1:
        return None, f"pads {left} frame(s) on the left, more than its {window}-frame window can read", causal
    if left < window - stride and left + right >= window - stride:
        return None, (f"pads {left} frame(s) on the left and {right} on the right: each output reads "
                      f"{window - stride - left} frame(s) after its own, it looks ahead"), \
            f"{causal}, or pad {window - 1} on both sides and cut the last {window - 1} output frames (Chomp1d)"
    if left < window - stride:
        need = f"{window - 1}" if stride == 1 else f"{window - stride} to {window - 1}"
        return None, (f"pads {left} frame(s) on the left, but a window of {window} frames with stride {stride} needs "
                      f"{need}: without them its output is shorter than its input"), causal
    if left + right > window - 1:
        return None, f"pads {right} frame(s) on the right: its last outputs read past the end of the input", causal
    return left, "", ""


def _spatial(node: onnx.NodeProto, w: Walk, axis: int) -> dict:
    """kernel, stride, dilation and pads of a conv or pool along the time axis."""
    a = attrs(node)
    rank = len(w.shapes[node.input[0]])
    nd = rank - 2
    t = axis - 2
    kernel = list(a.get("kernel_shape") or w.const(node.input[1]).shape[2:])
    strides, dilations = list(a.get("strides", [1] * nd)), list(a.get("dilations", [1] * nd))
    pads = list(a.get("pads", [0] * 2 * nd))
    auto_pad = _s(a.get("auto_pad", "NOTSET"))
    if auto_pad.startswith("SAME"):  # what ONNX pads for 'same': the output keeps ceil(length / stride) frames
        length = w.shapes[node.input[0]][axis]
        total = max((-(-length // strides[t]) - 1) * strides[t] + dilations[t] * (kernel[t] - 1) + 1 - length, 0)
        pads[t] = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        pads[t + nd] = total - pads[t]
    return {"t": t, "nd": nd, "kernel": kernel[t], "stride": strides[t], "dilation": dilations[t],
            "left": pads[t], "right": pads[t + nd], "auto_pad": auto_pad}


def _espdl_frame_axis(w: Walk, node: onnx.NodeProto, axis: int) -> tuple[int | None, str]:
    """Where the time axis of a conv's input lies in ESP-DL's channel-last layout, or (None, why).

    ESP-DL's StreamingCache copies the cache and the chunk as two contiguous blocks, so every axis before
    the frame axis must hold one element.
    """
    shape = w.shapes[node.input[0]]
    espdl = [0, *range(2, len(shape)), 1]  # NC(H)W -> N(H)WC
    frame_axis = espdl.index(axis)
    before = [shape[a] for a in espdl[1:frame_axis]]
    if any(size != 1 for size in before):
        return None, (f"time is the width of a 2-D input {shape} whose height is {before[0]}: ESP-DL's StreamingCache "
                      f"copies whole frames, which in its [N, H, W, C] layout are contiguous only when time is the height")
    return frame_axis, ""


def _chomp(node: onnx.NodeProto, w: Walk, axis: int, right: int) -> int:
    """Frames a Chomp1d cuts right after this conv (its sole consumer a Slice of the last frames on time), folded.

    Returns the frames cut; the Slice is removed and the conv writes its output.
    """
    consumers = w.consumers(node.output[0])
    if len(consumers) != 1 or consumers[0].op_type != "Slice" or node.output[0] in {o.name for o in w.graph.output}:
        return 0
    cut = consumers[0]
    inputs = [w.const(i) for i in cut.input[1:]] + [None] * (5 - len(cut.input))
    starts, ends, axes, steps = inputs[0], inputs[1], inputs[2], inputs[3]
    if starts is None or ends is None or (steps is not None and np.any(steps != 1)):
        return 0
    axes = list(range(len(starts))) if axes is None else [int(a) % len(w.shapes[node.output[0]]) for a in axes]
    if axes != [axis] or int(starts[0]) != 0:
        return 0
    length = w.shapes[node.output[0]][axis]
    end = int(ends[0])
    frames = -end if end < 0 else length - end
    if not 0 < frames <= right:
        return 0
    w.removed[cut.name] = ("Slice", Verdict(STREAMS, "Chomp1d", f"its cut of the last {frames} frames is folded into the conv"))
    w.graph.node.remove(cut)
    node.output[0] = cut.output[0]  # the conv writes what the cut wrote
    return frames


@rule("Conv")
def conv(node, w: Walk, axis):
    if axis is None:
        return streams("no time axis", None)
    if axis < 2:
        return refuse("conv over frames", f"convolves a tensor whose frames are on axis {axis} (its "
                      f"{'channels' if axis == 1 else 'batch'}): every output mixes all frames",
                      "give the conv [batch, channels, frames] (transpose first)")
    s = _spatial(node, w, axis)
    rule_name = "causal conv"
    if s["right"] > 0 and s["auto_pad"] == "NOTSET":
        cut = _chomp(node, w, axis, s["right"])
        if cut:
            a = attrs(node)
            pads = list(a["pads"])
            pads[s["t"] + s["nd"]] -= cut
            set_attr(node, "pads", pads)
            s["right"] -= cut
            rule_name = "Chomp1d: symmetric pad, last frames cut"
    left, why, fix = _causal_window(s["kernel"], s["dilation"], s["stride"], s["left"], s["right"])
    if left is None:
        return refuse(rule_name, why, fix, axis)
    if s["auto_pad"] not in ("NOTSET", "VALID"):
        return refuse(rule_name, f"uses auto_pad {s['auto_pad']}", f"pad explicitly: {left} frame(s) on the left", axis)
    frame_axis, why = _espdl_frame_axis(w, node, axis)
    if frame_axis is None:
        return refuse(rule_name, why, "put time on the height axis ([B, C, T, F]) before the 2-D conv", axis)
    w.time_pads.append((node.name, s["t"]))
    window = s["dilation"] * (s["kernel"] - 1) + 1
    if left:
        shape = w.shapes[node.input[0]]
        w.sites.append(CacheSite(node.input[0], node.name, left + 1, s["stride"], shape[1], w.in_rate, axis,
                                 frame_axis, tuple(shape)))
        return Step(Verdict(CACHE, rule_name, f"window {window}, stride {s['stride']}", frames=left), axis, s["stride"])
    if window == 1:
        return streams("per-frame conv", axis, "kernel 1 in time", s["stride"])
    return streams("kernel = stride", axis, f"window {window}, stride {s['stride']}: each chunk holds whole windows",
                   s["stride"])


def _as_depthwise_conv(node: onnx.NodeProto, w: Walk, data: str, scale: np.ndarray, shift: np.ndarray) -> None:
    """Rewrite `node` in place as the depthwise 1x1 Conv computing scale[c] * x + shift[c]."""
    shape = w.shapes[data]
    channels, spatial = shape[1], len(shape) - 2
    weight = w.add_const(f"{node.name}/depthwise.weight", np.broadcast_to(scale, (channels,)).astype(np.float32)
                         .reshape(channels, 1, *[1] * spatial).copy())
    bias = w.add_const(f"{node.name}/depthwise.bias", np.broadcast_to(shift, (channels,)).astype(np.float32).copy())
    node.op_type = "Conv"
    node.input[:] = [data, weight, bias]
    del node.attribute[:]
    node.attribute.extend([helper.make_attribute("kernel_shape", [1] * spatial), helper.make_attribute("group", channels),
                           helper.make_attribute("pads", [0] * 2 * spatial)])


@rule("AveragePool", "MaxPool")
def pool(node, w: Walk, axis):
    if axis is None:
        return streams("no time axis", None)
    if axis < 2:
        return refuse("pool over frames", f"pools a tensor whose frames are on axis {axis}", "pool [batch, channels, frames]")
    a = attrs(node)
    s = _spatial(node, w, axis)
    if a.get("ceil_mode", 0):
        return refuse("pool", "uses ceil_mode: its last window reads past the end", "use ceil_mode=False", axis)
    if s["auto_pad"] not in ("NOTSET", "VALID"):
        return refuse("pool", f"uses auto_pad {s['auto_pad']}", "pad explicitly", axis)
    pads = list(a.get("pads", [0] * 2 * s["nd"]))
    if node.op_type == "MaxPool":
        if s["left"] or s["right"]:
            return refuse("max pool", "pads frames with -inf (ONNX MaxPool), but a StreamingCache starts at zeros: "
                          "the first outputs would differ", "pool without time padding, e.g. kernel = stride", axis)
        left, why, fix = _causal_window(s["kernel"], s["dilation"], s["stride"], 0, 0)
        if left is None:
            return refuse("max pool", why, "use kernel = stride in time, or a causal average pool", axis)
        w.time_pads.append((node.name, s["t"]))
        return streams("kernel = stride" if s["kernel"] > 1 else "per-frame pool", axis,
                       f"window {s['kernel']}, stride {s['stride']}", s["stride"])
    if any(pads) and not a.get("count_include_pad", 0):
        return refuse("average pool", "averages a padded border window over its real frames only (count_include_pad=0), "
                      "which a zero-initialised streaming cache cannot reproduce",
                      "use count_include_pad=True or CausalAvgPool1d", axis)
    # A zero-padded average pool is the depthwise conv with weights 1/kernel: one streaming rule, exact on ESP-DL.
    kernel = list(a["kernel_shape"])
    channels = w.shapes[node.input[0]][1]
    weight = w.add_const(f"{node.name}.weight", np.full((channels, 1, *kernel), 1.0 / math.prod(kernel), np.float32))
    node.op_type = "Conv"
    node.input.append(weight)
    del node.attribute[:]
    node.attribute.extend([helper.make_attribute("kernel_shape", kernel), helper.make_attribute("pads", pads),
                           helper.make_attribute("strides", list(a.get("strides", [1] * len(kernel)))),
                           helper.make_attribute("dilations", list(a.get("dilations", [1] * len(kernel)))),
                           helper.make_attribute("group", channels)])
    node.doc_string = "AveragePool exported as depthwise Conv"
    step = conv(node, w, axis)
    if step.verdict.kind != REFUSED:
        w.pooling.append(node.name)
    return Step(Verdict(step.verdict.kind, "average pool as depthwise conv", step.verdict.detail, step.verdict.fix,
                        step.verdict.frames), step.axis, step.stride)


@rule("Pad")
def pad(node, w: Walk, axis):
    rank = len(w.shapes[node.input[0]])
    pads = w.const(node.input[1]) if len(node.input) > 1 else np.array(attrs(node).get("pads", []))
    axes = w.const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    if pads is None or (len(node.input) > 3 and node.input[3] and axes is None):
        return refuse("padding", "pads by a computed amount", "pad by constants", axis)
    axes = [int(a) % rank for a in (axes if axes is not None else range(rank))]
    per_axis = {a: (int(pads[i]), int(pads[i + len(axes)])) for i, a in enumerate(axes)}
    if axis is None or not any(per_axis.get(axis, (0, 0))):
        return streams("per-frame op", axis, "pads only non-time axes")
    if _fold_pad(node, w, per_axis, rank):
        return streams("F.pad folded into the conv", axis, "its zero padding is the conv's own, which a cache replaces")
    return refuse("padding outside a conv", "pads frames outside a convolution: in a stream only a conv's own "
                  "padding can be replaced by a cache", "pad right before the conv (F.pad then nn.Conv1d) or with "
                  "the conv's own padding, on the left", axis)


def _fold_pad(node: onnx.NodeProto, w: Walk, per_axis: dict[int, tuple[int, int]], rank: int) -> bool:
    """Zero padding read only by convs (or unpadded average pools) becomes their own padding: (F.pad -> conv)
    shared by two convs is what onnxsim leaves unfused."""
    value = w.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    consumers = w.consumers(node.output[0])
    foldable = {"Conv", "AveragePool"}
    if (_s(attrs(node).get("mode", "constant")) != "constant" or (value is not None and np.any(value))
            or any(per_axis.get(a, (0, 0)) != (0, 0) for a in (0, 1)) or not consumers
            or node.output[0] in {o.name for o in w.graph.output}
            or any(c.op_type not in foldable or c.input[0] != node.output[0]
                   or _s(attrs(c).get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID")
                   or (c.op_type == "AveragePool" and any(attrs(c).get("pads", []))) for c in consumers)):
        return False
    spatial = rank - 2
    for consumer in consumers:
        own = list(attrs(consumer).get("pads", [0] * 2 * spatial))
        for a in range(2, rank):
            begin, end = per_axis.get(a, (0, 0))
            own[a - 2] += begin
            own[a - 2 + spatial] += end
        set_attr(consumer, "pads", own)
        if consumer.op_type == "AveragePool":
            set_attr(consumer, "count_include_pad", 1)
        consumer.input[0] = node.input[0]
    w.graph.node.remove(node)
    return True


# ---------------------------------------------------------------- recurrences
@rule("LSTM", "GRU")
def recurrence(node, w: Walk, axis):
    a = attrs(node)
    direction = _s(a.get("direction", "forward"))
    if direction != "forward":
        return refuse("recurrence", f"runs {direction}: it reads the sequence from its end, which a stream has not "
                      f"reached yet", "use a unidirectional layer (bidirectional=False)")
    if axis != 0 or a.get("layout", 0) != 0:
        return refuse("recurrence", f"reads frames on axis {axis} (layout {a.get('layout', 0)}); ESP-DL's recurrence "
                      f"takes [frames, batch, features]", "export with layout 0 (torch's nn.LSTM/nn.GRU do)")
    if len(node.input) > 4 and node.input[4]:
        return refuse("recurrence", "takes sequence lengths, which a stream does not have", "drop sequence_lens")
    graph_inputs = [i.name for i in w.graph.input]
    graph_outputs = {o.name for o in w.graph.output}
    slots = {"LSTM": ((5, 1), (6, 2)), "GRU": ((5, 1),)}[node.op_type]
    pairs = []
    for slot, out_slot in slots:
        initial = node.input[slot] if len(node.input) > slot else ""
        final = node.output[out_slot] if len(node.output) > out_slot else ""
        if initial not in graph_inputs[1:] or final not in graph_outputs:
            origin = "a learned constant" if initial in w.consts else "computed in the graph"
            return refuse("recurrence", f"starts from an initial state {origin}: ESP-DL carries a recurrent state across "
                          f"chunks only as a graph input that starts at zero", "start the state from zeros (pass no h0)")
        pairs.append((final, initial))
        w.axis[final] = None
        w.rate[final] = w.in_rate
    w.pairs += pairs
    if node.op_type == "LSTM":
        w.cells.append(node.output[2])
    names = ", ".join(f"{i} -> {o}" for o, i in pairs)
    return Step(Verdict(STATE, "recurrence", f"state {names}"), 0)


# ---------------------------------------------------------------- layout ops
@rule("Transpose")
def transpose(node, w: Walk, axis):
    return streams("layout", None if axis is None else list(attrs(node)["perm"]).index(axis))


def _axes(node: onnx.NodeProto, w: Walk, rank: int) -> list[int] | None:
    if len(node.input) > 1 and node.input[1]:
        value = w.const(node.input[1])
        return None if value is None else [int(a) % rank for a in value.reshape(-1)]
    a = attrs(node).get("axes")
    return None if a is None else [int(x) % rank for x in a]


@rule("Squeeze")
def squeeze(node, w: Walk, axis):
    shape = w.shapes[node.input[0]]
    axes = _axes(node, w, len(shape))
    axes = [a for a, d in enumerate(shape) if d == 1] if axes is None else axes
    if axis is None:
        return streams("layout", None)
    if axis in axes:
        return refuse("layout", "squeezes the time axis away", "keep frames as an axis")
    return streams("layout", axis - sum(1 for a in axes if a < axis))


@rule("Unsqueeze")
def unsqueeze(node, w: Walk, axis):
    if axis is None:
        return streams("layout", None)
    out_rank = len(w.shapes[node.output[0]])
    out = axis
    for a in sorted(_axes(node, w, out_rank) or []):
        out += a <= out
    return streams("layout", out)


def _reshaped_axis(before: list[int], axis: int, after: list[int]) -> int | None:
    """Where the time axis lands when `before` is reshaped to `after`, if it stays a whole axis of its own."""
    outer = math.prod(before[:axis])
    for b in range(len(after)):
        if math.prod(after[:b]) == outer and after[b] == before[axis]:
            return b
    return None


@rule("Reshape", "Flatten")
def reshape(node, w: Walk, axis):
    if axis is None:
        return streams("layout", None)
    before, after = w.shapes[node.input[0]], w.shapes[node.output[0]]
    out = _reshaped_axis(before, axis, after)
    if out is None:
        return refuse("layout", f"reshapes {before} to {after}, merging the frames with other values: every output then "
                      f"depends on all frames (a flatten or Linear over time)",
                      "keep frames as their own axis, e.g. x.transpose(1, 2).reshape(B, T, -1), and pool over time "
                      "outside the model")
    if node.op_type == "Reshape":  # the frame count must follow the chunk: -1 where the frames are
        target = [int(d) for d in after]
        target[out] = -1
        node.input[1] = w.add_const(f"{node.name}/shape_any_frames", np.array(target, np.int64))
    return streams("reshape keeps frames", out)


@rule("Concat")
def concat(node, w: Walk, axis):
    rank = len(w.shapes[node.output[0]])
    if axis is not None and attrs(node)["axis"] % rank == axis:
        return refuse("join", "joins tensors along time", "concatenate along channels")
    return streams("join on channels", axis)


@rule("Split", "Slice", "Gather")
def select(node, w: Walk, axis):
    rank = len(w.shapes[node.input[0]])
    if node.op_type == "Slice":
        axes = w.const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        starts = w.const(node.input[1])
        chosen = list(range(len(starts))) if axes is None and starts is not None else \
            ([int(a) % rank for a in axes] if axes is not None else None)
    else:
        chosen = [attrs(node).get("axis", 0) % rank]
    if axis is not None and (chosen is None or axis in chosen):
        what = {"Slice": "cuts frames (x[..., a:b])", "Gather": "picks frames by index", "Split": "splits the frames"}
        return refuse("select", f"{what[node.op_type]}: a stream has no fixed start or end",
                      "select channels only; a causal conv's trailing cut (Chomp1d) must follow the conv directly")
    if node.op_type == "Split" and "num_outputs" in attrs(node):
        # ONNX's Split(num_outputs=n) makes n pieces; ESP-DL's Split reads num_outputs as the size of each piece
        # (dl_module_split.hpp), and esp-ppq writes the attribute as it is: the sizes are given explicitly
        n, size = attrs(node)["num_outputs"], w.shapes[node.input[0]][chosen[0]]
        sizes = [-(-size // n)] * (n - 1) + [size - -(-size // n) * (n - 1)]
        node.input[1:] = [w.add_const(f"{node.name}/split", np.array(sizes, np.int64))]
        del node.attribute[[a.name for a in node.attribute].index("num_outputs")]
    for out in node.output[1:]:
        w.axis[out], w.rate[out] = axis, w.in_rate
    return streams("select channels", axis)


# ---------------------------------------------------------------- per-frame ops
ELEMENTWISE = {"Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish", "Gelu", "PRelu", "Clip", "Exp",
               "Log", "Sqrt", "Neg", "Elu", "Swish", "Identity", "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Greater",
               "GreaterOrEqual", "Equal", "Less", "LessOrEqual", "Erf"}
AFFINE = {"Add", "Sub", "Mul", "Div"}


def _varies_over_time(w: Walk, node: onnx.NodeProto, axis: int) -> str | None:
    """A constant operand whose values change along the (right-aligned) time axis, if any."""
    rank = len(w.shapes[node.output[0]])
    for name in node.input:
        value = w.const(name)
        if value is None or value.ndim < rank - axis:
            continue
        if value.shape[value.ndim - (rank - axis)] > 1:
            return f"'{name}' of shape {list(value.shape)}"
    return None


def _per_channel(w: Walk, node: onnx.NodeProto, axis: int) -> tuple[str, np.ndarray, bool] | None:
    """(data input, constant, constant first) when one operand is a per-channel constant of a [B, C, ...] tensor.

    Scalars stay what they are (part of a GELU, a scale ESP-DL's Mul takes as is); a per-channel scale and
    shift (CMVN, a standalone BatchNorm) becomes one depthwise conv, which ESP-DL quantizes per channel.
    """
    data = [i for i in node.input if w.const(i) is None]
    const = [w.const(i) for i in node.input if w.const(i) is not None]
    if len(data) != 1 or len(const) != 1 or axis in (None, 0, 1) or const[0].size < 2:
        return None
    shape = w.shapes[data[0]]
    value = const[0]
    if len(shape) not in (3, 4) or value.ndim > len(shape):
        return None
    padded = value.reshape((1,) * (len(shape) - value.ndim) + value.shape)
    if any(d != 1 for a, d in enumerate(padded.shape) if a != 1) or padded.shape[1] != shape[1]:
        return None
    return data[0], padded.reshape(-1).astype(np.float64), w.const(node.input[0]) is not None


@rule(*ELEMENTWISE)
def elementwise(node, w: Walk, axis):
    if axis is not None:
        varying = _varies_over_time(w, node, axis)
        if varying:
            return refuse("time-varying constant", f"applies a constant that changes from frame to frame ({varying}): a "
                          "stream does not know which frame of the clip it is at",
                          "make the constant the same for every frame (shape [C, 1]), or drop it")
    if node.op_type == "Div" and _fuse_gelu(node, w, axis):
        return streams("GELU", axis, "x/sqrt2 -> Erf -> +1 -> *x -> *0.5 run as ESP-DL's Gelu")
    if node.op_type == "Erf":
        return refuse("per-frame op", "ESP-DL has no Erf module (it runs a whole GELU as Gelu, not a lone Erf)",
                      "use nn.GELU or another activation ESP-DL has")
    affine = _per_channel(w, node, axis) if node.op_type in AFFINE else None
    if affine is not None and not (node.op_type == "Div" and affine[2]):  # c / x is no affine map
        data, value, const_first = affine
        scale, shift = {"Add": (1.0, value), "Mul": (value, 0.0), "Div": (1.0 / value, 0.0),
                        "Sub": ((-1.0, value) if const_first else (1.0, -value))}[node.op_type]
        _as_depthwise_conv(node, w, data, np.asarray(scale), np.asarray(shift))
        return streams("per-channel affine as depthwise conv", axis,
                       f"{node.op_type} by a per-channel constant, run as a 1x1 depthwise conv")
    return streams("per-frame op", axis)


def _fuse_gelu(div: onnx.NodeProto, w: Walk, axis: int | None) -> bool:
    """torch's exact GELU at opset 18 (x/sqrt2 -> Erf -> Add 1 -> Mul x -> Mul 0.5) as one Gelu node.

    ESP-DL runs Gelu (a lookup table) but has no Erf, and esp-ppq 1.3.12 does not fuse the pattern on its
    ESP-DL path, so the file would hold an Erf no chip can load. The node is written in ONNX Runtime's
    com.microsoft domain (opset 18 has no Gelu); esp-ppq reads it by its op type. When onnxsim has folded
    the final * 0.5 into the next conv, the Gelu is followed by a * 2.
    """
    divisor = w.const(div.input[1])
    if divisor is None or divisor.size != 1 or abs(float(divisor.reshape(-1)[0]) - math.sqrt(2)) > 1e-3:
        return False
    chain, x = [div], div.input[0]
    for op_type, constant in (("Erf", None), ("Add", 1.0), ("Mul", None), ("Mul", 0.5)):
        consumers = w.consumers(chain[-1].output[0])
        node = consumers[0] if len(consumers) == 1 and consumers[0].op_type == op_type else None
        other = [i for i in node.input if i != chain[-1].output[0]] if node is not None else []
        value = w.const(other[0]) if other else None
        if constant is not None and (value is None or value.size != 1 or float(value.reshape(-1)[0]) != constant):
            node = None
        if op_type == "Mul" and constant is None and other != [x]:
            node = None
        if node is None:
            if len(chain) < 4:
                return False
            break  # the * 0.5 went elsewhere
        chain.append(node)
    for node in chain[1:]:
        w.removed[node.name] = (node.op_type, Verdict(STREAMS, "GELU", "part of the GELU run as ESP-DL's Gelu"))
        w.graph.node.remove(node)
    div.op_type, div.domain = "Gelu", "com.microsoft"
    div.input[:] = [x]
    div.output[:] = [chain[-1].output[0]]
    if len(chain) == 4:
        doubled = div.output[0]
        div.output[0] = f"{div.name}/gelu"
        two = w.add_const(f"{div.name}/two", np.array(2.0, np.float32))
        w.graph.node.insert(list(w.graph.node).index(div) + 1,
                            helper.make_node("Mul", [div.output[0], two], [doubled], name=f"{div.name}/double"))
        w.axis[doubled], w.rate[doubled] = axis, w.in_rate
    if not any(o.domain == "com.microsoft" for o in w.model.opset_import):
        w.model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return True


@rule("BatchNormalization")
def batch_norm(node, w: Walk, axis):
    if axis == 1:
        return refuse("per-frame op", "normalises with frames as its channels", "apply BatchNorm1d to [B, C, T]")
    scale, bias, mean, var = (w.const(i) for i in node.input[1:5])
    eps = attrs(node).get("epsilon", 1e-5)
    factor = scale / np.sqrt(var + eps)
    _as_depthwise_conv(node, w, node.input[0], factor, bias - mean * factor)
    del node.output[1:]
    return streams("BatchNorm as depthwise conv", axis, "not after a conv (so not folded): a per-channel scale and shift")


def _axis_rule(kind: str):
    def judge(node, w: Walk, axis):
        rank = len(w.shapes[node.input[0]])
        a = attrs(node)
        if node.op_type.startswith("Reduce"):
            axes = _axes(node, w, rank)
            axes = list(range(rank)) if axes is None and not a.get("noop_with_empty_axes", 0) else (axes or [])
            keep = a.get("keepdims", 1)
            if axis is not None and axis in axes:
                return refuse("reduction over time", f"reduces over frames ({node.op_type}): every output depends on all "
                              f"frames", "reduce over channels only; average per-frame scores outside the model")
            out = None if axis is None else (axis if keep else axis - sum(1 for x in axes if x < axis))
            return streams(kind, out)
        if node.op_type in ("LayerNormalization", "RMSNormalization"):
            normalised = list(range(a.get("axis", -1) % rank, rank))
        else:
            normalised = [a.get("axis", -1) % rank]
        if axis is not None and axis in normalised:
            return refuse(kind, f"normalises across frames (axes {normalised})", "normalise over channels only")
        if node.op_type in ("Softmax", "LogSoftmax"):
            return refuse(kind, f"esp-ppq gives every {node.op_type} a float32 output (ESP-DL computes it in float), "
                          "and this tool proves integer outputs", "return the logits and apply the softmax after the "
                          "model (its argmax is the same)", axis)
        return streams(kind, axis)

    return judge


for _op in ("Softmax", "LogSoftmax", "LpNormalization", "LayerNormalization", "RMSNormalization", "ReduceMean",
            "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1", "ReduceL2",
            "ReduceLogSum", "ReduceLogSumExp"):
    RULES[_op] = _axis_rule("over channels")


@rule("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def global_pool(node, w: Walk, axis):
    if axis is not None and axis >= 2:
        return refuse("reduction over time", "pools over all frames: every output depends on the whole clip",
                      "pool over frequency only, and average per-frame scores outside the model")
    return streams("over channels", axis)


@rule("MatMul", "Gemm")
def matmul(node, w: Walk, axis):
    weights = w.const(node.input[1])
    if axis is None:
        return streams("per-frame Linear", None)
    if weights is None or w.const(node.input[0]) is not None:
        return refuse("per-frame Linear", "multiplies two tensors that both change over time (attention over frames)",
                      "stream an attention-free model, or one with a fixed causal window written as convs")
    rank = len(w.shapes[node.input[0]])
    contracted = (0 if attrs(node).get("transA", 0) else 1) if node.op_type == "Gemm" else rank - 1
    if axis == contracted:
        return refuse("per-frame Linear", "applies a Linear across frames (the time axis is its input features): every "
                      "output depends on all frames", "apply nn.Linear to [B, T, C] (transpose first), frame by frame")
    return streams("per-frame Linear", axis)


def _unknown(node, w: Walk, axis):
    if node.op_type not in ESPDL_MODULES:
        return refuse("ESP-DL op set", f"ESP-DL has no {node.op_type} module", "replace it with an op ESP-DL runs")
    return refuse("no rule", f"the planner has no streaming rule for {node.op_type}",
                  "stream it with ops the planner knows, or add a rule to export/plan.py")


# ---------------------------------------------------------------- the plan
def plan_streaming(model: onnx.ModelProto, layers: dict[str, str] | None = None) -> StreamingPlan:
    """Judge every node of (a copy of) `model` by its rule; the plan holds the verdicts and the graph to quantize."""
    graph_model = onnx.ModelProto()
    graph_model.CopyFrom(model)
    w = Walk(graph_model)
    layers = dict(layers or {})
    verdicts: list[NodeVerdict] = []
    if graph_model.graph.input[0].name != INPUT_NAME:
        raise UnstreamableModel(f"the first graph input must be '{INPUT_NAME}', got '{graph_model.graph.input[0].name}'")
    for node in list(graph_model.graph.node):
        if node.name in w.removed:
            continue
        data = [i for i in node.input if i and w.const(i) is None]
        rates = {w.rate[i] for i in data if i in w.rate}
        axes = {w.axis.get(i) for i in data} - {None}
        w.in_rate = max(rates, default=1)
        axis = min(axes) if axes else None
        op = node.op_type
        if len(rates) > 1:
            step = refuse("frame alignment", f"combines tensors at different frame rates {sorted(rates)} (frames of "
                          f"input per frame)", "give both branches the same strides", axis)
        elif len(axes) > 1 and op not in ("MatMul", "Gemm"):  # their rule says what mixing frames there means
            step = refuse("frame alignment", f"combines tensors with frames on different axes {sorted(axes)}",
                          "transpose one of them first", axis)
        else:
            try:
                step = RULES.get(op, _unknown)(node, w, axis)
            except (KeyError, IndexError, ValueError) as e:  # a graph the rule did not foresee: judged, not a traceback
                step = refuse("no rule", f"the planner could not judge it ({type(e).__name__}: {e})",
                              "report it with the model; meanwhile replace the layer", axis)
        if any(i in w.after_refusal for i in node.input):
            w.after_refusal.update(node.output)
        out_axis = step.axis
        if step.verdict.kind == REFUSED and step.axis is None:  # judge the layers after it as if it had streamed
            same_rank = len(w.shapes.get(node.output[0], [])) == len(w.shapes.get(node.input[0], [None]))
            out_axis = axis if same_rank else None
            w.after_refusal.add(node.output[0])
        for out in node.output[:1]:
            w.axis[out], w.rate[out] = out_axis, w.in_rate * step.stride
        verdicts.append(NodeVerdict(node.name, op, layers.get(node.name, node.name), step.verdict))
    verdicts += [NodeVerdict(name, op, layers.get(name, name), v) for name, (op, v) in w.removed.items()]
    verdicts.sort(key=lambda v: _node_order(model, v.node))
    frame_outputs, state_outputs = [], {o for o, _ in w.pairs}
    for o in graph_model.graph.output:
        if o.name in state_outputs:
            continue
        if w.axis.get(o.name) is None and o.name not in w.after_refusal:
            producer = next(n for n in graph_model.graph.node if o.name in n.output)
            verdicts.append(NodeVerdict(producer.name, producer.op_type, layers.get(producer.name, producer.name), Verdict(
                REFUSED, "per-frame output", f"output '{o.name}' has no time axis: it summarises the whole clip",
                "return per-frame outputs [B, C, T] and average them outside the model")))
            continue
        frame_outputs.append(FrameOutput(o.name, w.axis[o.name], w.rate[o.name]))
    unpaired = [i.name for i in graph_model.graph.input[1:] if i.name not in {s for _, s in w.pairs}]
    for name in unpaired:
        verdicts.append(NodeVerdict(name, "input", TOP_LEVEL, Verdict(
            REFUSED, "inputs", f"graph input '{name}' is neither '{INPUT_NAME}' nor a recurrent state",
            "take only the features (and LSTM/GRU states)")))
    del graph_model.graph.value_info[:]
    used = {i for n in graph_model.graph.node for i in n.input}
    for t in [t for t in graph_model.graph.initializer if t.name not in used]:
        graph_model.graph.initializer.remove(t)
    total = math.lcm(*w.rate.values()) if w.rate else 1
    return StreamingPlan(tuple(w.sites), total, tuple(w.pooling), tuple(w.pairs), tuple(w.cells), tuple(frame_outputs),
                         tuple(w.time_pads), tuple(verdicts), graph_model)


def _node_order(model: onnx.ModelProto, name: str) -> int:
    for i, node in enumerate(model.graph.node):
        if node.name == name:
            return i
    return len(model.graph.node)


# ---------------------------------------------------------------- `check`: the plan as a table of the user's layers
@dataclass(frozen=True)
class LayerRow:
    layer: str
    ops: str
    verdict: str
    rule: str
    fix: str


def layer_rows(plan: StreamingPlan) -> list[LayerRow]:
    """One row per layer of the user's model, in graph order: the worst verdict of its nodes decides."""
    grouped: dict[str, list[NodeVerdict]] = {}
    for v in plan.verdicts:
        grouped.setdefault(v.layer, []).append(v)
    rows = []
    for layer, items in grouped.items():
        worst = max(items, key=lambda v: _RANK[v.verdict.kind])
        ops = ", ".join(dict.fromkeys(v.op for v in items))
        if worst.verdict.kind == REFUSED:
            text = f"unsupported: {worst.verdict.detail}"
        elif worst.verdict.kind == CACHE:
            frames = [str(v.verdict.frames) for v in items if v.verdict.kind == CACHE]
            text = f"needs a cache of {' + '.join(frames)} frames" if len(frames) > 1 else worst.verdict.text
        else:
            text = worst.verdict.text
        rules = ", ".join(dict.fromkeys(v.verdict.rule for v in items if _RANK[v.verdict.kind] == _RANK[worst.verdict.kind]))
        rows.append(LayerRow(layer, ops, text, rules, worst.verdict.fix or "-"))
    return rows


def check_table(plan: StreamingPlan) -> str:
    cells = [("layer", "ops", "rule", "verdict")]
    cells += [(r.layer, r.ops, r.rule, r.verdict + ("" if r.fix == "-" else f"; fix: {r.fix}")) for r in layer_rows(plan)]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    return "\n".join("  ".join([*(c[i].ljust(widths[i]) for i in range(3)), c[3]]) for c in cells)


# ---------------------------------------------------------------- the external-state twin, for ONNX Runtime
def with_dynamic_time(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose input frame count is free, to run it on any prefix in ONNX Runtime; output shapes follow."""
    dynamic = onnx.ModelProto()
    dynamic.CopyFrom(model)
    del dynamic.graph.value_info[:]
    dynamic.graph.input[0].type.tensor_type.shape.dim[TIME_AXIS].dim_param = "frames"
    for output in dynamic.graph.output:
        for i, dim in enumerate(output.type.tensor_type.shape.dim):
            dim.Clear()
            dim.dim_param = f"{output.name}_{i}"
    return dynamic


def streaming_twin(plan: StreamingPlan, chunk: int) -> onnx.ModelProto:
    """The external-state streaming model: every cache an explicit input and output.

    For each site: cache_in ++ variable (Concat on frames) feeds the consumer with its time padding
    removed, and the last window-1 frames of that concat leave as cache_out. This is the ESP-DL
    StreamingCache written as plain ONNX, so ONNX Runtime can run it chunk by chunk.
    Recurrent states are graph inputs and outputs already.
    """
    twin = with_dynamic_time(plan.graph)
    graph = twin.graph
    nodes = {n.name: n for n in graph.node}
    time_index = dict(plan.time_pads)
    graph.input[0].type.tensor_type.shape.dim[TIME_AXIS].dim_value = chunk
    new_nodes = []
    for k, site in enumerate(plan.sites):
        cache_in, cache_out, joined = f"cache{k}_in", f"cache{k}_out", f"cache{k}_window"
        graph.input.append(helper.make_tensor_value_info(cache_in, onnx.TensorProto.FLOAT, site.cache_shape))
        graph.output.append(helper.make_tensor_value_info(cache_out, onnx.TensorProto.FLOAT, site.cache_shape))
        consumer = nodes[site.consumer]
        new_nodes.append((consumer.name, helper.make_node("Concat", [cache_in, site.variable], [joined],
                                                          axis=site.time_axis, name=f"{joined}_concat")))
        starts = numpy_helper.from_array(np.array([-site.cache_frames], np.int64), f"cache{k}_starts")
        ends = numpy_helper.from_array(np.array([np.iinfo(np.int64).max], np.int64), f"cache{k}_ends")
        axes = numpy_helper.from_array(np.array([site.time_axis], np.int64), f"cache{k}_axes")
        graph.initializer.extend([starts, ends, axes])
        new_nodes.append((consumer.name, helper.make_node("Slice", [joined, starts.name, ends.name, axes.name], [cache_out],
                                                          name=f"{cache_out}_slice")))
        consumer.input[0] = joined
        set_attr(consumer, "pads", without_time_padding(list(attrs(consumer)["pads"]), time_index[consumer.name]))
    ordered = []
    for node in graph.node:
        ordered += [n for before, n in new_nodes if before == node.name]
        ordered.append(node)
    del graph.node[:]
    graph.node.extend(ordered)
    onnx.checker.check_model(twin)
    return twin


def without_time_padding(pads: list[int], time_index: int) -> list[int]:
    """A conv's pads with the time axis's begin and end set to 0 (the cache replaces them)."""
    pads = list(pads)
    pads[time_index] = pads[time_index + len(pads) // 2] = 0
    return pads


def find_cache_sites(model: onnx.ModelProto, layers: dict[str, str] | None = None) -> StreamingPlan:
    """The plan of `model`, or UnstreamableModel with its first refusal."""
    return plan_streaming(model, layers).require_streamable()
