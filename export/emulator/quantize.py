"""RequantizeLinear, QuantizeLinear, DequantizeLinear: ESP-DL loads all three as its RequantizeLinear module,
`output->assign(input)` (dl_module_requantize_linear.hpp, TensorBase::assign, dl_base_requantize_linear.cpp).

Between integer types: a rounding shift by out - in exponent (the SIMD kernels above 50 values, the float
path below; both exact, both rounding as the chip rounds), saturated to the output type. From float32:
round(x * 2**-out_exp) saturated. To float32: x * 2**in_exp.
"""

from __future__ import annotations

import numpy as np

from ..espdl_file import FLOAT32
from .core import NP_TYPES, Context, op, saturate, scale

NOTE = "between int8, int16 and float32: rounding shift / quantize / dequantize by the exponents"


def _check(ctx: Context) -> None:
    for name in (ctx.node.inputs[0], ctx.node.outputs[0]):
        ctx.require(ctx.dtype(name) in NP_TYPES, f"'{name}' is not int8, int16 or float32")
        ctx.require(not ctx.file.tensor(name).per_channel, f"'{name}' has per-channel exponents")


def requantize(ctx: Context, inputs):
    x = inputs[0]
    source, target = ctx.dtype(ctx.node.inputs[0]), ctx.out_dtype()
    if source == FLOAT32 and target == FLOAT32:
        return [x.astype(np.float32)]
    if target == FLOAT32:
        return [(x.astype(np.float32) * scale(ctx.in_exp())).astype(np.float32)]
    if source == FLOAT32:
        return [saturate(ctx.rounding.round(x.astype(np.float32) * scale(-ctx.out_exp())), target)]
    return [saturate(ctx.rounding.shift(x, ctx.out_exp() - ctx.in_exp()), target)]


for _name in ("RequantizeLinear", "QuantizeLinear", "DequantizeLinear"):
    op(_name, bits=(8, 16, 32), note=NOTE, check=_check)(requantize)
