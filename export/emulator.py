"""Run the exact bytes of a .espdl file on the host, with ESP-DL's integer semantics.

The file is executed as ESP-DL executes it: in its own layout ([1, frames, channels]), every
tensor an integer with a power-of-two exponent, shapes derived from the input shapes, nodes in
the file's order. The semantics follow ESP-DL's C++ (espressif/esp-dl, read, not copied):

- rounding: ESP32-P4 rounds half to even, ESP32-S3 half up (tool::round, shift_and_round);
- Conv: integer accumulation, the bias added in the accumulator, one rounding shift to the output
  exponent (per output channel when the weights carry per-channel exponents, as the P4 kernels
  do), the fused ReLU, saturation;
- Add: a saturating integer add; it requires one exponent for both inputs and the output;
- activations stored as lookup tables at int8; Relu computed directly at int16 (ESP-DL ignores its table);
- RequantizeLinear: a rounding shift between exponents;
- StreamingCache: zero-initialised, output = cache ++ input on the frame axis, keeps the last
  window-1 frames across runs, cleared by reset();
- LSTM and GRU: int16 gate pre-activations from float-scaled dot products, gates from sigmoid and
  tanh lookup tables over [-6.3, 6.3] and [-3.5, 3.5] at the gate exponent, the cell and hidden
  updates in float32, rounded as the target rounds.
Anything else is refused with the node named (EmulatorError), never guessed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ExportError
from .onnx_graph import INPUT_NAME
from .ppq import EspdlFile, EspdlNode, EspdlTensor, read_espdl

TARGETS = ("esp32s3", "esp32p4")
INT_RANGES = {3: (-128, 127), 5: (-32768, 32767)}  # ONNX type codes of int8, int16
NP_TYPES = {3: np.int8, 5: np.int16}


class EmulatorError(ExportError):
    """The file uses something the emulator does not execute, or breaks an ESP-DL rule; names the node."""


# ---------------------------------------------------------------- rounding as the chips round
@dataclass(frozen=True)
class Rounding:
    half_even: bool

    def round(self, values) -> np.ndarray:
        """tool::round of float values: half to even (P4) or floor(x + 0.5) in float32 (S3)."""
        v = np.asarray(values, dtype=np.float32)
        if self.half_even:
            return np.rint(v).astype(np.int64)
        return np.floor((v.astype(np.float64) + 0.5).astype(np.float32)).astype(np.int64)

    def shift(self, values: np.ndarray, shift) -> np.ndarray:
        """tool::shift_and_round on integers; a negative shift multiplies. `shift` may be per channel."""
        v = np.asarray(values, dtype=np.int64)
        shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), v.shape)
        right = np.maximum(shift, 0)
        left = np.maximum(-shift, 0)
        half = np.where(right > 0, np.left_shift(np.int64(1), np.maximum(right - 1, 0)), 0)
        if self.half_even:
            floor = np.right_shift(v, right)
            remainder = v - np.left_shift(floor, right)
            up = (remainder > half) | ((remainder == half) & (right > 0) & ((floor & 1) == 1))
            shifted = floor + up
        else:
            shifted = np.right_shift(v + half, right)
        return np.where(right > 0, shifted, np.left_shift(v, left))


def saturate(values: np.ndarray, dtype: int) -> np.ndarray:
    low, high = INT_RANGES[dtype]
    return np.clip(values, low, high).astype(NP_TYPES[dtype])


def wrap_int16(values: np.ndarray) -> np.ndarray:
    """C's implicit int -> int16_t conversion: modulo 2**16."""
    return np.asarray(values, dtype=np.int64).astype(np.int16)


# ---------------------------------------------------------------- parameters as the exporter packed them
def unpack_conv_weight(t: EspdlTensor, group: int) -> np.ndarray:
    """The [out, in/group, kernel...] weight of a Conv, from esp-ppq's packed layout.

    esp-ppq lays a 1-D filter out as NWC, then interleaves output channels in blocks of 16 (int8) or
    8 (int16): (N/16)WC16. Output channels past the last whole block follow as plain NWC rows
    (depthwise: as CWN). The dims say (W, C, N), depthwise (W, N, C); 2-D filters add H before W.
    """
    layout = t.layout
    flat = np.asarray(t.values).reshape(-1)
    if layout in ("", "UNK", "NCHW", "NCW"):
        raise EmulatorError(f"weight '{t.name}' has no packed conv layout ({layout or 'none'})")
    align = 16 if layout.startswith("(N/16)") else 8
    spatial_rank = 2 if "HWC" in layout else 1
    dims = list(t.dims)
    if group == 1:
        n, c = dims[-1], dims[-2]
    else:
        n, c = dims[-2], dims[-1]
    spatial = dims[:spatial_rank]
    per_row = int(np.prod(spatial)) * c
    aligned = n // align * align
    blocks = flat[: aligned * per_row].reshape(n // align, *spatial, c, align)
    order = (0, spatial_rank + 2, *range(1, spatial_rank + 2))  # -> (blocks, align, spatial..., c)
    rows = [blocks.transpose(order).reshape(aligned, *spatial, c)]
    if n > aligned:
        rest = flat[aligned * per_row :]
        if group == 1:
            rows.append(rest.reshape(n - aligned, *spatial, c))
        else:  # depthwise remainder is stored channel-major (CWN)
            rest = rest.reshape(c, *spatial, n - aligned)
            rows.append(rest.transpose(spatial_rank + 1, *range(1, spatial_rank + 1), 0))
    nwc = np.concatenate(rows, axis=0)
    return np.moveaxis(nwc, -1, 1)  # N(H)WC -> NC(H)W


# ---------------------------------------------------------------- the recurrent lookup tables
class _GateTable:
    """ESP-DL's SigmoidLUT / TanhLUT: float values at every integer of the gate exponent, odd or
    point-symmetric around zero, clamped beyond the boundary."""

    def __init__(self, exponent: int, bound: float, kind: str):
        scale = np.float32(2.0**exponent)
        q_min = int(np.float32(-bound) / scale) - 1
        q_max = int(np.float32(bound) / scale) + 1
        self.q_max = max(q_max, -q_min)
        x = (np.arange(self.q_max + 1, dtype=np.float32) * scale).astype(np.float32)
        if kind == "sigmoid":
            self.table = _sigmoid(x)
        else:
            self.table = (np.float32(2) * _sigmoid((np.float32(2) * x).astype(np.float32)) - np.float32(1)).astype(np.float32)
        self.kind = kind

    def get(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        magnitude = np.minimum(np.abs(index), self.q_max)
        value = self.table[magnitude]
        negative = index < 0
        if self.kind == "sigmoid":
            return np.where(negative, np.float32(1) - value, value).astype(np.float32)
        return np.where(negative, -value, value).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # 1.0 / (1.0 + expf(-x)) in C: expf in float, the rest in double, stored as float
    return (1.0 / (1.0 + np.exp(-x).astype(np.float64))).astype(np.float32)


# ---------------------------------------------------------------- the emulator
class Emulator:
    """Executes one .espdl file; keeps StreamingCache state between runs until reset()."""

    def __init__(self, espdl: EspdlFile | str | Path, target: str):
        if target not in TARGETS:
            raise EmulatorError(f"target {target!r} is not emulated: choose one of {', '.join(TARGETS)}")
        self.file = espdl if isinstance(espdl, EspdlFile) else read_espdl(Path(espdl))
        self.target = target
        self.rounding = Rounding(half_even=(target == "esp32p4"))
        self.caches: dict[str, np.ndarray] = {}
        self._tables: dict[tuple[int, str], _GateTable] = {}
        for node in self.file.nodes:
            if node.op_type not in _OPS:
                raise EmulatorError(f"{node.op_type} node '{node.name}' is not supported by the emulator")

    def reset(self) -> None:
        """What Model::reset() does: every StreamingCache back to zeros."""
        self.caches.clear()

    # the file's tensors
    def exponent(self, name: str) -> int:
        if name in self.file.initializers:
            return self.file.initializers[name].exponent
        return self.file.tensor(name).exponent

    def dtype(self, name: str) -> int:
        if name in self.file.initializers:
            return self.file.initializers[name].dtype
        return self.file.tensor(name).dtype

    def run(self, inputs: dict[str, np.ndarray], keep_all: bool = False) -> dict[str, np.ndarray]:
        """One run. `inputs` are integers in the file's layout; returns the graph outputs
        (every tensor when keep_all, to find where two runs diverge)."""
        values: dict[str, np.ndarray] = {}
        for name, tensor in self.file.inputs.items():
            if name not in inputs:
                raise EmulatorError(f"no value for graph input '{name}'")
            values[name] = np.asarray(inputs[name], dtype=NP_TYPES.get(tensor.dtype, np.int8))
        for name, t in self.file.initializers.items():
            values[name] = t.values
        for node in self.file.nodes:
            try:
                outputs = _OPS[node.op_type](self, node, [values[i] if i else None for i in node.inputs])
            except EmulatorError:
                raise
            except Exception as e:  # a shape or value the op cannot take: name the node
                raise EmulatorError(f"{node.op_type} node '{node.name}' failed: {type(e).__name__}: {e}") from e
            for name, value in zip(node.outputs, outputs):
                if name:
                    values[name] = value
        wanted = values if keep_all else {name: values[name] for name in self.file.outputs}
        return {name: value for name, value in wanted.items() if name not in self.file.initializers}

    def zeros(self, name: str) -> np.ndarray:
        """Zero integers for the graph input `name` (a recurrent state at the start of a stream)."""
        t = self.file.inputs[name]
        return np.zeros(t.dims, NP_TYPES[t.dtype])

    def state_pairs(self) -> list[tuple[str, str]]:
        """(state output, state input) to copy back after each run: from the file's `state_pairs` metadata,
        else by name, every 'X_out' output with an 'X_in' input."""
        if "state_pairs" in self.file.metadata:
            return [tuple(pair) for pair in json.loads(self.file.metadata["state_pairs"])]
        return [(o, o[: -len("_out")] + "_in") for o in self.file.outputs
                if o.endswith("_out") and o[: -len("_out")] + "_in" in self.file.inputs]

    def stream(self, chunks: list[np.ndarray], keep_all: bool = False) -> list[dict[str, np.ndarray]]:
        """Run chunk after chunk from a reset: state inputs start at zero, each state output goes back in."""
        self.reset()
        pairs = self.state_pairs()
        states = {i: self.zeros(i) for _, i in pairs}
        results = []
        for chunk in chunks:
            out = self.run({INPUT_NAME: chunk, **states}, keep_all=keep_all)
            results.append(out)
            states = {i: out[o] for o, i in pairs}
        return results

    def table(self, exponent: int, kind: str) -> _GateTable:
        key = (exponent, kind)
        if key not in self._tables:
            self._tables[key] = _GateTable(exponent, 6.3 if kind == "sigmoid" else 3.5, kind)
        return self._tables[key]


def _require(condition: bool, node: EspdlNode, message: str) -> None:
    if not condition:
        raise EmulatorError(f"{node.op_type} node '{node.name}': {message}")


# ---------------------------------------------------------------- operators
def _conv(emu: Emulator, node: EspdlNode, inputs):
    x, w_packed, bias = (inputs + [None])[:3]
    a = node.attributes
    group = int(a.get("group", 1))
    weight_t = emu.file.initializers[node.inputs[1]]
    weight = unpack_conv_weight(weight_t, group).astype(np.int64)  # [N, C/group, K...]
    spatial = weight.ndim - 2
    strides = a.get("strides", [1] * spatial)
    dilations = a.get("dilations", [1] * spatial)
    pads = a.get("pads", [0] * 2 * spatial)
    x = np.asarray(x, dtype=np.int64)  # [1, (H,) W, C]
    if spatial == 1:
        x = x[:, None]  # treat 1-D as H = 1
        weight = weight[:, :, None]
        strides, dilations = [1, strides[0]], [1, dilations[0]]
        pads = [0, pads[0], 0, pads[1]]  # (top, left, bottom, right)
    else:
        pads = [pads[0], pads[1], pads[2], pads[3]]
    x = np.pad(x, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3]), (0, 0)))
    n_out, c_per_group, kh, kw = weight.shape
    out_h = (x.shape[1] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    out_w = (x.shape[2] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    acc = np.zeros((1, out_h, out_w, n_out), dtype=np.int64)
    out_per_group = n_out // group
    for i in range(kh):
        for j in range(kw):
            rows = x[:, i * dilations[0] : i * dilations[0] + strides[0] * (out_h - 1) + 1 : strides[0],
                     j * dilations[1] : j * dilations[1] + strides[1] * (out_w - 1) + 1 : strides[1], :]
            for g in range(group):
                part = rows[..., g * c_per_group : (g + 1) * c_per_group]
                w = weight[g * out_per_group : (g + 1) * out_per_group, :, i, j]
                acc[..., g * out_per_group : (g + 1) * out_per_group] += part @ w.T
    if bias is not None:
        acc += np.asarray(bias, dtype=np.int64).reshape(-1)
    in_exp, out_exp = emu.exponent(node.inputs[0]), emu.exponent(node.outputs[0])
    w_exps = np.asarray(weight_t.exponents or [weight_t.exponent], dtype=np.int64)
    _require(len(w_exps) in (1, n_out), node, f"{len(w_exps)} weight exponents for {n_out} output channels")
    shifted = emu.rounding.shift(acc, out_exp - in_exp - w_exps)
    activation = a.get("activation", "Linear")
    if activation == "Relu":
        shifted = np.maximum(shifted, 0)
    else:
        _require(activation in ("Linear", None), node, f"fused activation {activation} is not emulated")
    out = saturate(shifted, emu.dtype(node.outputs[0]))
    return [out[:, 0] if spatial == 1 else out]


def _add(emu: Emulator, node: EspdlNode, inputs):
    a, b = np.asarray(inputs[0]), np.asarray(inputs[1])
    if a.ndim == b.ndim and not all(x == y or 1 in (x, y) for x, y in zip(a.shape, b.shape)):
        raise EmulatorError(
            f"Add node '{node.name}' adds tensors of shapes {a.shape} and {b.shape}: one of them carries more frames, "
            f"as a StreamingCache output (window+chunk-1 frames) read by an op that is not its time op does: a shared cache"
        )
    exps = {emu.exponent(node.inputs[0]), emu.exponent(node.inputs[1]), emu.exponent(node.outputs[0])}
    _require(len(exps) == 1, node, f"ESP-DL adds integers as they are, but the exponents differ: {sorted(exps)}")
    total = np.asarray(inputs[0], dtype=np.int64) + np.asarray(inputs[1], dtype=np.int64)
    return [saturate(total, emu.dtype(node.outputs[0]))]


def _int8_table(direct):
    """An activation ESP-DL runs from the file's lookup table at int8; `direct` says what it does otherwise."""

    def op(emu: Emulator, node: EspdlNode, inputs):
        x = np.asarray(inputs[0])
        table_name = node.attributes.get("lut")
        if x.dtype != np.int8 or not table_name:
            return [direct(emu, node, x)]
        table = emu.file.initializers[table_name]
        _require(table.exponent == emu.exponent(node.outputs[0]), node, "lookup table and output exponents differ")
        return [np.asarray(table.values).reshape(-1)[x.astype(np.int64) + 128].astype(np.int8)]

    return op


def _relu_direct(emu: Emulator, node: EspdlNode, x: np.ndarray) -> np.ndarray:
    """Relu without a table (int16 always: ESP-DL ignores the table there): rescaled when the exponents differ."""
    in_exp, out_exp = emu.exponent(node.inputs[0]), emu.exponent(node.outputs[0])
    if in_exp == out_exp:
        return np.maximum(x, 0).astype(x.dtype)
    scaled = (x.astype(np.float32) * np.float32(2.0**in_exp)).astype(np.float32) * np.float32(2.0**-out_exp)
    return saturate(np.where(scaled >= 0, emu.rounding.round(scaled), 0), emu.dtype(node.outputs[0]))


def _table_only(emu: Emulator, node: EspdlNode, x: np.ndarray) -> np.ndarray:
    raise EmulatorError(f"{node.op_type} node '{node.name}': only the int8 lookup-table form is emulated")


def _requantize(emu: Emulator, node: EspdlNode, inputs):
    shift = emu.exponent(node.outputs[0]) - emu.exponent(node.inputs[0])
    return [saturate(emu.rounding.shift(inputs[0], shift), emu.dtype(node.outputs[0]))]


def _same_exponent(emu: Emulator, node: EspdlNode) -> None:
    _require(emu.exponent(node.inputs[0]) == emu.exponent(node.outputs[0]), node,
             "a data-movement op cannot change the exponent")


def _transpose(emu, node, inputs):
    _same_exponent(emu, node)
    return [np.ascontiguousarray(np.transpose(inputs[0], node.attributes["perm"]))]


def _axes(node: EspdlNode, inputs, rank: int) -> list[int]:
    axes = inputs[1] if len(inputs) > 1 and inputs[1] is not None else node.attributes.get("axes")
    return [int(a) % rank for a in np.asarray(axes).reshape(-1)]


def _squeeze(emu, node, inputs):
    _same_exponent(emu, node)
    x = inputs[0]
    return [np.squeeze(x, axis=tuple(_axes(node, inputs, x.ndim)))]


def _unsqueeze(emu, node, inputs):
    _same_exponent(emu, node)
    x = inputs[0]
    axes = sorted(_axes(node, inputs, x.ndim + len(np.asarray(inputs[1]).reshape(-1)) if len(inputs) > 1 else x.ndim + 1))
    for a in axes:
        x = np.expand_dims(x, a)
    return [x]


def _reshape(emu, node, inputs):
    _same_exponent(emu, node)
    return [np.reshape(inputs[0], [int(d) for d in np.asarray(inputs[1]).reshape(-1)])]


def _flatten(emu, node, inputs):
    _same_exponent(emu, node)
    x = inputs[0]
    axis = int(node.attributes.get("axis", 1)) % max(x.ndim, 1)
    return [x.reshape(int(np.prod(x.shape[:axis])), -1)]


def _concat(emu, node, inputs):
    exps = {emu.exponent(i) for i in node.inputs} | {emu.exponent(node.outputs[0])}
    _require(len(exps) == 1, node, f"inputs and output must share one exponent, got {sorted(exps)}")
    return [np.concatenate(inputs, axis=int(node.attributes["axis"]))]


def _streaming_cache(emu, node, inputs):
    _same_exponent(emu, node)
    x = inputs[0]
    axis, keep = int(node.attributes["frame_axis"]), int(node.attributes["window_size"]) - 1
    cache = emu.caches.get(node.name)
    if cache is None:
        shape = list(x.shape)
        shape[axis] = keep
        cache = np.zeros(shape, dtype=x.dtype)
    out = np.concatenate([cache, x], axis=axis)
    emu.caches[node.name] = np.take(out, range(out.shape[axis] - keep, out.shape[axis]), axis=axis)
    return [out]


def _dotprod(emu: Emulator, matrix: np.ndarray, vector: np.ndarray, shift: int) -> np.ndarray:
    """base::dotprod: integer sums, scaled by 2**-shift in float32, rounded, saturated to int16."""
    sums = matrix.astype(np.int64) @ vector.astype(np.int64)
    scaled = sums.astype(np.float32) * np.float32(2.0 ** -shift)
    return saturate(emu.rounding.round(scaled), 5)


def _recurrent_common(emu: Emulator, node: EspdlNode, inputs, gates: int):
    a = node.attributes
    _require(a.get("direction", "forward") == "forward", node, "only forward recurrences are emulated")
    _require(int(a.get("layout", 0)) == 0, node, "only layout 0 ([seq, batch, input]) is emulated")
    hidden = int(a["hidden_size"])
    gate_exp = int(a["gate_exponent"])
    x = np.asarray(inputs[0])
    _require(x.shape[1] == 1, node, "ESP-DL runs recurrences with batch 1")
    w = np.asarray(inputs[1]).reshape(gates * hidden, -1)
    r = np.asarray(inputs[2]).reshape(gates * hidden, hidden)
    bias = np.asarray(inputs[3]).reshape(-1).astype(np.int64) if len(inputs) > 3 and inputs[3] is not None else None
    h_name = node.outputs[1]
    h_exp, h_dtype = emu.exponent(h_name), emu.dtype(h_name)
    initial_h = inputs[5] if len(inputs) > 5 and inputs[5] is not None else None
    if initial_h is not None:
        _require(emu.exponent(node.inputs[5]) == h_exp, node,
                 "initial_h and the hidden output differ in exponent: ESP-DL copies the integers as they are")
    h = np.zeros(hidden, np.int64) if initial_h is None else np.asarray(initial_h).reshape(-1).astype(np.int64)
    w_shift = gate_exp - (emu.exponent(node.inputs[0]) + emu.exponent(node.inputs[1]))
    r_shift = gate_exp - (h_exp + emu.exponent(node.inputs[2]))
    return x, w, r, bias, h, h_exp, h_dtype, gate_exp, w_shift, r_shift, hidden


def _lstm(emu: Emulator, node: EspdlNode, inputs):
    x, w, r, bias, h, h_exp, h_dtype, gate_exp, w_shift, r_shift, hidden = _recurrent_common(emu, node, inputs, 4)
    c_name = node.outputs[2]
    _require(emu.dtype(c_name) == 5 and emu.exponent(c_name) == gate_exp, node,
             "the cell state must be int16 at the gate exponent (ESP-DL asserts it)")
    initial_c = inputs[6] if len(inputs) > 6 and inputs[6] is not None else None
    c = np.zeros(hidden, np.int16) if initial_c is None else np.asarray(initial_c).reshape(-1).astype(np.int16)
    sigmoid, tanh = emu.table(gate_exp, "sigmoid"), emu.table(gate_exp, "tanh")
    rescale_y = np.float32(2.0 ** -emu.exponent(node.outputs[0]))
    rescale_c = np.float32(2.0 ** -emu.exponent(c_name))
    ys = []
    for t in range(x.shape[0]):
        pre = _dotprod(emu, w, x[t, 0], w_shift).astype(np.int64)
        rec = _dotprod(emu, r, h, r_shift).astype(np.int64)
        if bias is not None:
            gates_in = wrap_int16(pre + bias[: 4 * hidden] + rec + bias[4 * hidden :])
        else:
            gates_in = wrap_int16(pre + rec)
        i_g, o_g, f_g, g_g = (gates_in[k * hidden : (k + 1) * hidden] for k in range(4))  # ONNX order i, o, f, c
        i_gate, o_gate, f_gate, g_gate = sigmoid.get(i_g), sigmoid.get(o_g), sigmoid.get(f_g), tanh.get(g_g)
        temp = (f_gate * c.astype(np.float32)).astype(np.float32) + ((i_gate * g_gate).astype(np.float32) * rescale_c)
        c = wrap_int16(emu.rounding.round(temp.astype(np.float32)))
        temp = ((o_gate * tanh.get(c)).astype(np.float32) * rescale_y).astype(np.float32)
        h = saturate(emu.rounding.round(temp), h_dtype).astype(np.int64)
        ys.append(h)
    dtype = NP_TYPES[h_dtype]
    y = np.stack(ys).reshape(x.shape[0], 1, 1, hidden).astype(dtype)
    return [y, h.reshape(1, 1, hidden).astype(dtype), c.reshape(1, 1, hidden)]


def _gru(emu: Emulator, node: EspdlNode, inputs):
    _require(int(node.attributes.get("linear_before_reset", 0)) == 1, node,
             "ESP-DL's GRU needs linear_before_reset=1 (PyTorch's)")
    x, w, r, bias, h, h_exp, h_dtype, gate_exp, w_shift, r_shift, hidden = _recurrent_common(emu, node, inputs, 3)
    sigmoid, tanh = emu.table(gate_exp, "sigmoid"), emu.table(gate_exp, "tanh")
    rescale = np.float32(2.0 ** -emu.exponent(node.outputs[0]))
    ys = []
    for t in range(x.shape[0]):
        pre = _dotprod(emu, w, x[t, 0], w_shift).astype(np.int64)
        rec = _dotprod(emu, r, h, r_shift).astype(np.int64)
        if bias is not None:
            pre = wrap_int16(pre + bias[: 3 * hidden]).astype(np.int64)
            rec = wrap_int16(rec + bias[3 * hidden :]).astype(np.int64)
        z_gate = sigmoid.get(pre[:hidden] + rec[:hidden])
        r_gate = sigmoid.get(pre[hidden : 2 * hidden] + rec[hidden : 2 * hidden])
        n_in = pre[2 * hidden :].astype(np.float32) + (r_gate * rec[2 * hidden :].astype(np.float32)).astype(np.float32)
        n_gate = tanh.get(emu.rounding.round(n_in.astype(np.float32)))
        temp = (((np.float32(1) - z_gate) * n_gate).astype(np.float32) * rescale).astype(np.float32)
        temp = (temp + (z_gate * h.astype(np.float32)).astype(np.float32)).astype(np.float32)
        h = saturate(emu.rounding.round(temp), h_dtype).astype(np.int64)
        ys.append(h)
    dtype = NP_TYPES[h_dtype]
    y = np.stack(ys).reshape(x.shape[0], 1, 1, hidden).astype(dtype)
    return [y, h.reshape(1, 1, hidden).astype(dtype)]


_OPS = {
    "Conv": _conv,
    "Add": _add,
    "Relu": _int8_table(_relu_direct),
    "Sigmoid": _int8_table(_table_only),
    "Tanh": _int8_table(_table_only),
    "Swish": _int8_table(_table_only),
    "RequantizeLinear": _requantize,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Concat": _concat,
    "StreamingCache": _streaming_cache,
    "LSTM": _lstm,
    "GRU": _gru,
}
