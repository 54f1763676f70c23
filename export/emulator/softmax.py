"""Softmax and LogSoftmax (dl_module_softmax.hpp, dl_module_log_softmax.hpp): both write float32.

int8: exp from ESP-DL's 256-entry table, tool::gen_lut_8bit(table, in_exponent, expf), with no max
subtracted; the sum accumulated element by element in float32. int16 and float: dequantize, subtract the
maximum, expf, sum in order, divide (LogSoftmax: x - max - logf(sum); at int8 x*scale - logf(sum)).
"""

from __future__ import annotations

import numpy as np

from .core import Context, op, scale
from .reduce import exp_table


def _along(ctx: Context, x):
    """The softmax axis moved last: (array, axis in the [runs, *shape] array)."""
    axis = int(ctx.attributes.get("axis", -1))
    axis = (axis % (x.ndim - 1)) + 1
    return np.moveaxis(x, axis, -1), axis


def _sum(values):
    total = np.zeros(values.shape[:-1], np.float32)
    for k in range(values.shape[-1]):
        total = (total + values[..., k]).astype(np.float32)
    return total[..., None]


def _check(ctx: Context) -> None:
    ctx.require(ctx.dtype(ctx.node.outputs[0]) == 1, "ESP-DL's softmax writes float32; the output is not float32")


def _dequantized(ctx: Context, v):
    return v.astype(np.float32) if ctx.bits == 32 else (v.astype(np.float32) * scale(ctx.in_exp())).astype(np.float32)


@op("Softmax", bits=(8, 16, 32), note="float32 output; int8 from ESP-DL's expf table, else expf(x - max)", check=_check)
def softmax(ctx: Context, inputs):
    v, axis = _along(ctx, inputs[0])
    if ctx.bits == 8:
        terms = exp_table(ctx.in_exp())[v.astype(np.int64) + 128]
    else:
        x = _dequantized(ctx, v)
        terms = np.exp((x - x.max(axis=-1, keepdims=True)).astype(np.float32)).astype(np.float32)
    return [np.moveaxis((terms / _sum(terms)).astype(np.float32), -1, axis)]


@op("LogSoftmax", bits=(8, 16, 32), note="float32 output; int8 from ESP-DL's expf table, else x - max - logf(sum)",
    check=_check)
def log_softmax(ctx: Context, inputs):
    v, axis = _along(ctx, inputs[0])
    if ctx.bits == 8:
        log_sum = np.log(_sum(exp_table(ctx.in_exp())[v.astype(np.int64) + 128])).astype(np.float32)
        out = (scale(ctx.in_exp()) * v.astype(np.float32) - log_sum).astype(np.float32)
    else:
        x = _dequantized(ctx, v)
        top = x.max(axis=-1, keepdims=True)
        log_sum = np.log(_sum(np.exp((x - top).astype(np.float32)).astype(np.float32))).astype(np.float32)
        out = ((x - top).astype(np.float32) - log_sum).astype(np.float32)
    return [np.moveaxis(out, -1, axis)]
