"""LSTM and GRU (dl_module_lstm.hpp, dl_module_gru.hpp, dl_base_dotprod.cpp, the tie728/esp32p4 dotprod
kernels, dl_math.hpp's SigmoidLUT/TanhLUT).

Per step, for each gate matrix, base::dotprod gives int16 pre-activations at the gate exponent:
- the SIMD kernels, when the row length is a multiple of 16 (int8) or 8 (int16) and the shift is not
  negative: the exact integer sum, one rounding shift (S3: plus 2**(shift-1), then an arithmetic shift;
  P4: half to even), saturated to int16;
- dotprod_c otherwise: the integer sum converted to float32, times 2**-shift, tool::round, saturated.
Biases are added in int16 arithmetic (C's wrap-around); the gates are read from sigmoid and tanh tables that
ESP-DL builds at the gate exponent over [-6.3, 6.3] and [-3.5, 3.5] (clamped beyond), tanh as
2*sigmoid(2x)-1; the cell and hidden updates are float32, rounded as the chip rounds.

LSTM gate order i, o, f, c; GRU z, r, h with linear_before_reset = 1 (ESP-DL has nothing else).
"reverse" is refused: ESP-DL runs any direction that is not "bidirectional" forwards.
"""

from __future__ import annotations

import numpy as np

from ..espdl_file import INT16
from .activation import sigmoid, tanh
from .core import Context, op, saturate, scale, wrap_int16

SIGMOID_BOUND, TANH_BOUND = 6.3, 3.5

class GateTable:
    """ESP-DL's SigmoidLUT / TanhLUT: the function at every integer of the gate exponent up to the bound
    (one step past it), odd (tanh) or point-symmetric (sigmoid) around zero, clamped beyond."""

    def __init__(self, exponent: int, bound: float, kind: str):
        step = scale(exponent)
        quant_min = int(np.float32(-bound) / step) - 1  # static_cast<int> truncates towards zero
        quant_max = int(np.float32(bound) / step) + 1
        self.q_max = max(quant_max, -quant_min)
        x = (np.arange(self.q_max + 1, dtype=np.float32) * step).astype(np.float32)
        self.table = sigmoid(x) if kind == "sigmoid" else tanh(x)
        self.kind = kind

    def get(self, index) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        value = self.table[np.minimum(np.abs(index), self.q_max)]
        if self.kind == "sigmoid":
            return np.where(index < 0, np.float32(1) - value, value).astype(np.float32)
        return np.where(index < 0, -value, value).astype(np.float32)


def dotprod_simd(bits: int, length: int, shift: int) -> bool:
    """Whether base::dotprod takes the SIMD kernel (exact) rather than dotprod_c (through float32)."""
    return length % (16 if bits == 8 else 8) == 0 and shift >= 0


def mat_vec_dotprod(ctx: Context, matrix: np.ndarray, vectors: np.ndarray, shift: int) -> np.ndarray:
    """base::mat_vec_dotprod for every run: matrix [rows, cols] times vectors [runs, cols] -> int16 [runs, rows]."""
    sums = np.rint(vectors.astype(np.float64) @ matrix.T.astype(np.float64)).astype(np.int64)  # exact: < 2**53
    if dotprod_simd(ctx.bits, matrix.shape[1], shift):
        return saturate(ctx.rounding.shift(sums, shift), INT16).astype(np.int64)
    rescaled = sums.astype(np.float32) * scale(-shift)
    return saturate(ctx.rounding.round(rescaled), INT16).astype(np.int64)


def _check(ctx: Context, gates: int) -> None:
    a = ctx.attributes
    ctx.require(a.get("direction", "forward") in ("forward", "bidirectional"),
                f"direction {a.get('direction')!r}: ESP-DL runs every direction but bidirectional forwards")
    ctx.require("gate_exponent" in a and "hidden_size" in a, "no gate_exponent/hidden_size attribute")
    for i, name in ((1, "W"), (2, "R")):
        ctx.require(ctx.has_input(i) and ctx.node.inputs[i] in ctx.file.initializers, f"{name} must be a parameter")
    if ctx.has_input(5):
        ctx.require(ctx.exponent(ctx.node.inputs[5]) == ctx.out_exp(1), "initial_h and the hidden output differ in "
                                                                         "exponent: ESP-DL copies the integers as they are")


class _Recurrence:
    """What LSTM and GRU share: weights per direction, shifts, tables, the initial state."""

    def __init__(self, ctx: Context, inputs, gates: int):
        a = ctx.attributes
        self.hidden, self.gate_exp = int(a["hidden_size"]), int(a["gate_exponent"])
        self.directions = 2 if a.get("direction") == "bidirectional" else 1
        x = inputs[0]  # [runs, seq, 1, in] (layout 0) or [runs, 1, seq, in] (layout 1): the same bytes at batch 1
        batch_axis = 1 if int(a.get("layout", 0)) else 2
        ctx.require(x.ndim == 4 and x.shape[batch_axis] == 1, f"input {list(x.shape[1:])} (layout "
                                                              f"{a.get('layout', 0)}): ESP-DL runs recurrences with batch 1")
        self.x = x.reshape(x.shape[0], -1, x.shape[-1])  # [runs, seq, in]
        self.w = ctx.param(1).reshape(self.directions, gates * self.hidden, -1)
        self.r = ctx.param(2).reshape(self.directions, gates * self.hidden, self.hidden)
        bias = ctx.param(3).reshape(self.directions, 2 * gates * self.hidden) if ctx.has_input(3) else None
        self.bias = None if bias is None else bias.astype(np.int64)
        runs = self.x.shape[0]
        initial = inputs[5] if ctx.has_input(5) else None
        self.initial_h = (np.zeros((runs, self.directions, self.hidden), np.int64) if initial is None
                          else np.broadcast_to(initial, (runs,) + initial.shape[1:]).reshape(runs, self.directions, -1)
                          .astype(np.int64))
        self.h_exp, self.h_dtype = ctx.out_exp(1), ctx.out_dtype(1)
        self.w_shift = self.gate_exp - (ctx.in_exp(0) + ctx.in_exp(1))
        self.r_shift = self.gate_exp - (self.h_exp + ctx.in_exp(2))
        tables = ctx.state.setdefault("tables", {})
        if self.gate_exp not in tables:
            tables[self.gate_exp] = (GateTable(self.gate_exp, SIGMOID_BOUND, "sigmoid"),
                                     GateTable(self.gate_exp, TANH_BOUND, "tanh"))
        self.sigmoid, self.tanh = tables[self.gate_exp]

    def steps(self, direction: int) -> range:
        seq = self.x.shape[1]
        return range(seq) if direction == 0 else range(seq - 1, -1, -1)

    def outputs(self, ys, finals):
        """Y [runs, seq, dirs, 1, hidden] and the final states [runs, dirs, 1, hidden]."""
        dtype = np.int8 if self.h_dtype == 3 else np.int16
        y = np.stack([np.stack(d, axis=1) for d in ys], axis=2)[:, :, :, None].astype(dtype)
        return y, np.stack(finals, axis=1)[:, :, None].astype(dtype)


@op("LSTM", note="forward or bidirectional, batch 1; dotprod SIMD/C branches; gate tables clamped at +-6.3/+-3.5; "
                 "cell int16 at the gate exponent", check=lambda ctx: _check(ctx, 4))
def lstm(ctx: Context, inputs):
    rec = _Recurrence(ctx, inputs, 4)
    h_size = rec.hidden
    c_name = ctx.node.outputs[2]
    ctx.require(ctx.dtype(c_name) == INT16 and ctx.exponent(c_name) == rec.gate_exp,
                "the cell state must be int16 at the gate exponent (ESP-DL asserts it)")
    runs = rec.x.shape[0]
    initial_c = inputs[6] if ctx.has_input(6) else None
    c0 = (np.zeros((runs, rec.directions, h_size), np.int64) if initial_c is None
          else np.broadcast_to(initial_c, (runs,) + initial_c.shape[1:]).reshape(runs, rec.directions, -1).astype(np.int64))
    rescale_y, rescale_c = scale(-ctx.out_exp(0)), scale(-ctx.exponent(c_name))
    ys, h_finals, c_finals = [], [], []
    for d in range(rec.directions):
        h, c = rec.initial_h[:, d], wrap_int16(c0[:, d]).astype(np.int64)
        y = [None] * rec.x.shape[1]
        for t in rec.steps(d):
            pre = mat_vec_dotprod(ctx, rec.w[d], rec.x[:, t], rec.w_shift)
            rec_part = mat_vec_dotprod(ctx, rec.r[d], h, rec.r_shift)
            total = pre + rec_part
            if rec.bias is not None:
                total = total + rec.bias[d, : 4 * h_size] + rec.bias[d, 4 * h_size :]
            gates = wrap_int16(total).astype(np.int64)  # C's int16 += wraps a sum that leaves int16
            i_g, o_g, f_g, g_g = (gates[:, k * h_size : (k + 1) * h_size] for k in range(4))
            i_gate, o_gate, f_gate, g_gate = rec.sigmoid.get(i_g), rec.sigmoid.get(o_g), rec.sigmoid.get(f_g), rec.tanh.get(g_g)
            temp = ((f_gate * c.astype(np.float32)).astype(np.float32)
                    + ((i_gate * g_gate).astype(np.float32) * rescale_c).astype(np.float32)).astype(np.float32)
            c = wrap_int16(ctx.rounding.round(temp)).astype(np.int64)
            temp = ((o_gate * rec.tanh.get(c)).astype(np.float32) * rescale_y).astype(np.float32)
            h = saturate(ctx.rounding.round(temp), rec.h_dtype).astype(np.int64)
            y[t] = h
        ys.append(y)
        h_finals.append(h)
        c_finals.append(c)
    y, h_out = rec.outputs(ys, h_finals)
    return [y, h_out, np.stack(c_finals, axis=1)[:, :, None].astype(np.int16)]


def _gru_check(ctx: Context) -> None:
    _check(ctx, 3)
    ctx.require(int(ctx.attributes.get("linear_before_reset", 0)) == 1,
                "ESP-DL's GRU needs linear_before_reset = 1 (PyTorch's)")


@op("GRU", note="forward or bidirectional, batch 1, linear_before_reset = 1; dotprod SIMD/C branches; gate tables "
                "clamped at +-6.3/+-3.5", check=_gru_check)
def gru(ctx: Context, inputs):
    rec = _Recurrence(ctx, inputs, 3)
    h_size = rec.hidden
    rescale = scale(-ctx.out_exp(0))
    ys, finals = [], []
    for d in range(rec.directions):
        h = rec.initial_h[:, d]
        y = [None] * rec.x.shape[1]
        for t in rec.steps(d):
            pre = mat_vec_dotprod(ctx, rec.w[d], rec.x[:, t], rec.w_shift)
            hid = mat_vec_dotprod(ctx, rec.r[d], h, rec.r_shift)
            if rec.bias is not None:
                pre = wrap_int16(pre + rec.bias[d, : 3 * h_size]).astype(np.int64)
                hid = wrap_int16(hid + rec.bias[d, 3 * h_size :]).astype(np.int64)
            z_gate = rec.sigmoid.get(pre[:, :h_size] + hid[:, :h_size])
            r_gate = rec.sigmoid.get(pre[:, h_size : 2 * h_size] + hid[:, h_size : 2 * h_size])
            n_in = (pre[:, 2 * h_size :].astype(np.float32)
                    + (r_gate * hid[:, 2 * h_size :].astype(np.float32)).astype(np.float32)).astype(np.float32)
            n_gate = rec.tanh.get(ctx.rounding.round(n_in))
            temp = (((np.float32(1) - z_gate) * n_gate).astype(np.float32) * rescale).astype(np.float32)
            temp = (temp + (z_gate * h.astype(np.float32)).astype(np.float32)).astype(np.float32)
            h = saturate(ctx.rounding.round(temp), rec.h_dtype).astype(np.int64)
            y[t] = h
        ys.append(y)
        finals.append(h)
    return list(rec.outputs(ys, finals))
