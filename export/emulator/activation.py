"""Unary activations and math (dl_module_{relu,leaky_relu,prelu,sigmoid,tanh,swish,hard_sigmoid,hard_swish,elu,
exp,log,sqrt,clip,lut}.hpp, dl_base_lut.cpp, dl_base_prelu.cpp, dl_math.hpp).

At int8, every one of them that the file gives a lookup table (the node's `lut` attribute, 256 entries at the
output exponent) is replaced by ESP-DL's LUT module when the model loads: out = table[x + 128]. Without a
table, and always at int16, each computes its function in float32 as its C++ writes it: dequantize, f,
multiply by 2**-out_exponent, tool::round, saturate. "LUT" and "Gelu" nodes are tables only; at int16 a
table of 65536/step + 1 entries is read at the nearest index (ties half to even on the P4, up on the S3).
The libm functions (expf, logf, sqrtf) are NumPy's float32 ones here.
"""

from __future__ import annotations

import numpy as np

from ..espdl_file import INT16
from .core import Context, op, saturate, scale

FLOAT_BITS = (8, 16, 32)
TABLE_NOTE = "int8: the file's 256-entry table when it has one"


def sigmoid(x: np.ndarray) -> np.ndarray:
    """dl::math::sigmoid: 1.0 / (1.0 + expf(-x)), expf in float32, the rest in double, returned as float."""
    x = np.asarray(x, dtype=np.float32)
    return (1.0 / (1.0 + np.exp(-x).astype(np.float64))).astype(np.float32)


def tanh(x: np.ndarray) -> np.ndarray:
    """dl::math::tanh: 2 * sigmoid(2 * x) - 1, all float32."""
    x = np.asarray(x, dtype=np.float32)
    return (np.float32(2) * sigmoid(np.float32(2) * x) - np.float32(1)).astype(np.float32)


# ---------------------------------------------------------------- lookup tables
def _table(ctx: Context, name: str | None = None):
    name = name if name is not None else ctx.attributes.get("lut")
    if not name:
        return None
    table = ctx.file.initializers.get(name)
    ctx.require(table is not None, f"its lookup table '{name}' is not in the file")
    ctx.require(table.exponent == ctx.out_exp(), f"lookup table exponent {table.exponent} differs from the output's "
                                                 f"{ctx.out_exp()} (ESP-DL asserts they are equal)")
    return table


def _lut_int8(table, x):
    return np.asarray(table.values).reshape(-1)[x.astype(np.int64) + 128].astype(np.int8)


def _lut_int16(ctx: Context, table, x):
    values = np.asarray(table.values).reshape(-1)
    step = 65536 // (values.size - 1) if values.size > 1 else 0
    ctx.require(values.size in (65536, 65537) or (step > 1 and step & (step - 1) == 0 and 65536 % (values.size - 1) == 0),
                f"an int16 table of {values.size} entries: ESP-DL needs 65536/step + 1 with step a power of two")
    unsigned = x.astype(np.int64) + 32768
    if values.size == 65536 or step == 1:
        return values[unsigned].astype(np.int16)
    shift = step.bit_length() - 1
    index, remainder, half = unsigned >> shift, unsigned & (step - 1), step >> 1
    if ctx.rounding.half_even:
        index = index + ((remainder > half) | ((remainder == half) & ((index & 1) == 1)))
    else:
        index = index + (remainder >= half)
    return values[index].astype(np.int16)


def _check_table(ctx: Context) -> None:
    if ctx.bits == 8 or ctx.node.op_type in ("LUT", "Gelu"):
        _table(ctx)


def activation(op_type: str, f, note: str, bits=FLOAT_BITS, tables: bool = True) -> None:
    """Register `f(ctx, x_float32) -> float32` as the module ESP-DL computes per element (or from a table)."""

    def run(ctx: Context, inputs):
        x = inputs[0]
        if ctx.bits == 32:
            return [np.asarray(f(ctx, x.astype(np.float32)), np.float32)]
        table = _table(ctx) if tables and ctx.bits == 8 else None
        if table is not None:
            return [_lut_int8(table, x)]
        value = np.asarray(f(ctx, x.astype(np.float32) * scale(ctx.in_exp())), np.float32)
        return [saturate(ctx.rounding.round(value * scale(-ctx.out_exp())), ctx.out_dtype())]

    op(op_type, bits=bits, note=(TABLE_NOTE + "; " + note) if tables else note,
       check=_check_table if tables else None)(run)


def _alpha(ctx: Context, default: float) -> np.float32:
    return np.float32(ctx.attributes.get("alpha", default))


activation("Sigmoid", lambda ctx, x: sigmoid(x), "else 1/(1+expf(-x)) in float")
activation("Tanh", lambda ctx, x: tanh(x), "else 2*sigmoid(2x)-1 in float")
activation("Swish", lambda ctx, x: (sigmoid(x) * x).astype(np.float32), "else x*sigmoid(x) in float")
activation("Exp", lambda ctx, x: np.exp(x), "else expf")
activation("Log", lambda ctx, x: np.log(x), "else logf")
activation("Sqrt", lambda ctx, x: np.sqrt(x), "else sqrtf")
activation("Elu", lambda ctx, x: np.where(x >= 0, x, (_alpha(ctx, 1.0) * (np.exp(x) - np.float32(1))).astype(np.float32)),
           "else alpha*(expf(x)-1) below 0")
activation("HardSigmoid", lambda ctx, x: np.clip(_alpha(ctx, 0.2) * x + np.float32(ctx.attributes.get("beta", 0.5)), 0, 1),
           "else clamp(alpha*x+beta, 0, 1) in float")
# 0.166667 * x + 0.5 is double arithmetic in the C++ (double literals), rounded to float at the end
activation("HardSwish", lambda ctx, x: (np.clip(0.166667 * x.astype(np.float64) + 0.5, 0, 1) * x).astype(np.float32),
           "else clamp(0.166667x+0.5, 0, 1)*x in double")


@op("LeakyRelu", bits=FLOAT_BITS, note=TABLE_NOTE + "; else x, or x*alpha below 0, in float", check=_check_table)
def leaky_relu(ctx: Context, inputs):
    x = inputs[0]
    alpha = _alpha(ctx, 0.01)
    if ctx.bits == 32:
        return [np.where(x >= 0, x, x * alpha).astype(np.float32)]
    table = _table(ctx) if ctx.bits == 8 else None
    if table is not None:
        return [_lut_int8(table, x)]
    value = x.astype(np.float32) * scale(ctx.in_exp())
    out_scale = scale(-ctx.out_exp())
    scaled = np.where(value >= 0, value * out_scale, (value * out_scale) * alpha).astype(np.float32)
    return [saturate(ctx.rounding.round(scaled), ctx.out_dtype())]


@op("Relu", bits=FLOAT_BITS, note=TABLE_NOTE + "; else max(x, 0), rescaled in float when the exponents differ",
    check=_check_table)
def relu(ctx: Context, inputs):
    x = inputs[0]
    if ctx.bits == 32:
        return [np.where(x >= 0, x, 0).astype(np.float32)]
    table = _table(ctx) if ctx.bits == 8 else None
    if table is not None:
        return [_lut_int8(table, x)]
    if ctx.in_exp() == ctx.out_exp():
        return [np.maximum(x, 0).astype(x.dtype)]
    value = x.astype(np.float32) * scale(ctx.in_exp())
    rounded = ctx.rounding.round(value * scale(-ctx.out_exp()))
    return [saturate(np.where(value >= 0, rounded, 0), ctx.out_dtype())]


@op("LUT", note="the file's table: 256 entries at int8, 65536/step + 1 at int16 (nearest index)", check=_check_table)
def lut(ctx: Context, inputs):
    table = _table(ctx)
    return [_lut_int8(table, inputs[0]) if ctx.bits == 8 else _lut_int16(ctx, table, inputs[0])]


op("Gelu", note="ESP-DL loads it as a LUT: the file's table", check=_check_table)(lut)


@op("Clip", bits=FLOAT_BITS, note=TABLE_NOTE + "; else clamp the integers to min/max, rescale in float",
    check=_check_table)
def clip(ctx: Context, inputs):
    x = inputs[0]
    table = _table(ctx) if ctx.bits == 8 else None
    if table is not None:
        return [_lut_int8(table, x)]
    if len(inputs) < 3 or inputs[1] is None or inputs[2] is None:
        ctx.require(len(inputs) < 2, "ESP-DL's Clip needs both min and max or neither")
        return [x.copy()]  # output->assign(input): the same values
    low, high = np.asarray(inputs[1]).reshape(-1)[0], np.asarray(inputs[2]).reshape(-1)[0]
    clipped = np.clip(x, low, high)
    if ctx.bits == 32:
        return [clipped.astype(np.float32)]
    rescale = scale(ctx.in_exp()) * scale(-ctx.out_exp())
    return [saturate(ctx.rounding.round(clipped.astype(np.float32) * rescale), ctx.out_dtype())]


@op("PRelu", note=TABLE_NOTE + "; else x >= 0 rescaled to the output, x*alpha[c] shifted by out-in-alpha "
                  "(rounded by the SIMD kernels; floored by the int16 C kernel the P4 uses)", check=_check_table)
def prelu(ctx: Context, inputs):
    x = inputs[0]
    table = _table(ctx) if ctx.bits == 8 else None
    if table is not None:
        return [_lut_int8(table, x)]
    alpha_t = ctx.file.tensor(ctx.node.inputs[1])
    alpha = np.asarray(ctx.param(1), dtype=np.int64).reshape(-1)  # [C, 1, 1] or [1]
    xi = x.astype(np.int64)
    negative_shift = ctx.out_exp() - ctx.in_exp() - alpha_t.exponent
    if ctx.target == "esp32p4" and ctx.dtype(ctx.node.outputs[0]) == INT16:  # prelu_11c: no SIMD kernel
        negative = np.right_shift(xi * alpha, negative_shift) if negative_shift >= 0 else xi * alpha << -negative_shift
        return [saturate(np.where(xi < 0, negative, xi), ctx.out_dtype())]
    positive = ctx.rounding.shift(xi, ctx.out_exp() - ctx.in_exp())
    negative = ctx.rounding.shift(xi * alpha, negative_shift)
    return [saturate(np.where(xi < 0, negative, positive), ctx.out_dtype())]
