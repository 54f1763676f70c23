"""Binary element-wise modules with numpy broadcasting: Add, Sub, Mul, Div, Pow, Mod and the comparisons
(dl_module_{add,sub,mul,div,pow,mod,equal,greater,...}.hpp, dl_base_elemwise.cpp and the dl_base_<op>.cpp kernels).

- Add, Sub and the comparisons work on the integers as they are: ESP-DL never rescales them (inputs and an
  output at different exponents give what the chip gives: see core.exponent_mismatches).
- Mul: the SIMD kernels (innermost merged run >= 16 int8 / 8 int16 values) multiply exactly and round-shift to
  the output exponent; the C kernels they fall back to convert the product to float32 first, which is exact at
  int8 and rounds int16 products above 2**24.
- Div, Pow, Mod: C only, in float32 (int8 Div by a one-element tensor goes through a 256-entry table of the
  same values); powf/fmodf are NumPy's float32 functions here.
"""

from __future__ import annotations

import numpy as np

from ..espdl_file import INT8
from .core import Context, op, saturate, scale

FLOAT_BITS = (8, 16, 32)


def merged_runs(shape0, shape1, out_shape) -> tuple[int, int, int]:
    """(output_d0, input0_d0, input1_d0) of get_elemwise_operation_args: the innermost run lengths after ESP-DL
    merges adjacent axes; they choose between its SIMD and C kernels."""
    dims = len(out_shape)
    a = [1] * (dims - len(shape0)) + list(shape0)
    b = [1] * (dims - len(shape1)) + list(shape1)
    out = list(out_shape)
    merged = dims
    for i in range(dims):
        j = i + 1
        while j < dims:
            if a[i] == b[i] and a[j] == b[j]:
                a[i], b[i], out[i] = a[i] * a[j], b[i] * b[j], out[i] * out[j]
                a[j] = b[j] = out[j] = 1
            elif a[i] == 1 and a[j] == 1:
                b[i], out[i] = b[i] * b[j], out[i] * out[j]
                b[j] = out[j] = 1
            elif b[i] == 1 and b[j] == 1:
                a[i], out[i] = a[i] * a[j], out[i] * out[j]
                a[j] = out[j] = 1
            else:
                break
            j += 1
        if j == dims:
            merged = i + 1
            break
    return out[merged - 1], a[merged - 1], b[merged - 1]


def broadcast_shape(ctx: Context, inputs) -> tuple[int, ...]:
    """The output shape ESP-DL's get_multidirectional_broadcasting_shape gives, or a named refusal."""
    a, b = inputs[0].shape[1:], inputs[1].shape[1:]
    try:
        shape = np.broadcast_shapes(a, b)
    except ValueError:
        ctx.fail(f"inputs of shapes {a} and {b} do not broadcast (when one of them carries window+chunk-1 frames, a "
                 "StreamingCache output is read by an op that is not its time op: a shared cache)")
    ctx.require_size(shape, "the broadcast output")
    return shape


def _runs(ctx: Context, inputs) -> tuple[int, int, int]:
    out_shape = broadcast_shape(ctx, inputs)
    return merged_runs(inputs[0].shape[1:], inputs[1].shape[1:], out_shape)


def _float(ctx: Context, a, b, f):
    return [f(a.astype(np.float32), b.astype(np.float32)).astype(np.float32)]


def _additive(sign: int):
    def run(ctx: Context, inputs):
        a, b = inputs
        broadcast_shape(ctx, inputs)
        if ctx.bits == 32:
            return _float(ctx, a, b, (lambda x, y: x + y) if sign > 0 else (lambda x, y: x - y))
        return [saturate(a.astype(np.int64) + sign * b.astype(np.int64), ctx.out_dtype())]

    return run


op("Add", bits=FLOAT_BITS, note="saturating add of the integers as they are (no rescaling)",
   raw_integers="all")(_additive(1))
op("Sub", bits=FLOAT_BITS, note="saturating subtract of the integers as they are (no rescaling)",
   raw_integers="all")(_additive(-1))


@op("Mul", bits=FLOAT_BITS, note="exact product, one rounding shift (SIMD) or through float32 (C path: int16 "
                                 "runs shorter than 8)")
def mul(ctx: Context, inputs):
    a, b = inputs
    if ctx.bits == 32:
        return _float(ctx, a, b, np.multiply)
    out_d0, _, _ = _runs(ctx, inputs)
    shift = ctx.out_exp() - ctx.in_exp(0) - ctx.in_exp(1)
    product = a.astype(np.int64) * b.astype(np.int64)
    if out_d0 >= 16 // (ctx.bits // 8):  # SIMD kernels: exact, then the chip's rounding shift
        return [saturate(ctx.rounding.shift(product, shift), ctx.out_dtype())]
    rescale = scale(ctx.in_exp(0)) * scale(ctx.in_exp(1)) * scale(-ctx.out_exp())
    return [saturate(ctx.rounding.round(product.astype(np.float32) * rescale), ctx.out_dtype())]


@op("Div", bits=FLOAT_BITS, note="float32 quotient rounded to the output exponent; x/0 saturates by the sign of x")
def div(ctx: Context, inputs):
    a, b = inputs
    if ctx.bits == 32:
        return _float(ctx, a, b, np.divide)
    dtype = ctx.out_dtype()
    _, a_d0, b_d0 = _runs(ctx, inputs)
    rescale = scale(-ctx.out_exp()) * scale(ctx.in_exp(0)) / scale(ctx.in_exp(1))
    af, bf = a.astype(np.float32), b.astype(np.float32)
    one_by_n = a_d0 == 1 if ctx.bits == 8 else (a_d0 == 1 and b_d0 != 1)  # the kernel each width picks first
    int8_table = ctx.bits == 8 and a_d0 == 1 and a[0].size == 1
    with np.errstate(divide="ignore", invalid="ignore"):
        if one_by_n:
            q = (af * rescale) / bf
        elif b_d0 == 1:
            q = af * (rescale / bf)
        else:
            q = (af * rescale) / bf
    low, high = (-128, 127) if dtype == INT8 else (-32768, 32767)
    out = ctx.rounding.round(np.where(np.isfinite(q), q, 0))
    if int8_table:  # create_div_lut: a zero divisor gives 127 for a positive dividend, else -128
        by_zero = np.where(af * rescale > 0, high, low)
        out = np.where(b == 0, by_zero, np.where(a == 0, 0, out))
    else:
        out = np.where(a == 0, 0, np.where(b == 0, np.where(a > 0, high, low), out))
    return [saturate(np.broadcast_to(out, np.broadcast_shapes(a.shape, b.shape)), dtype)]


def _float_binary(f):
    def run(ctx: Context, inputs):
        a, b = inputs
        if ctx.bits == 32:
            return _float(ctx, a, b, f)
        af = a.astype(np.float32) * scale(ctx.in_exp(0))
        bf = b.astype(np.float32) * scale(ctx.in_exp(1))
        with np.errstate(all="ignore"):
            result = f(af, bf).astype(np.float32) * scale(-ctx.out_exp())
        return [saturate(ctx.rounding.round(np.nan_to_num(result)), ctx.out_dtype())]

    return run


op("Pow", bits=FLOAT_BITS, note="powf of the dequantized values, rounded to the output exponent")(
    _float_binary(lambda x, y: np.power(x, y)))
op("Mod", bits=FLOAT_BITS, note="fmodf of the dequantized values (0 where the divisor is 0)")(
    _float_binary(lambda x, y: np.where(y != 0, np.fmod(x, np.where(y != 0, y, 1)), np.float32(0))))


def _comparison(f):
    def run(ctx: Context, inputs):
        broadcast_shape(ctx, inputs)
        return [f(inputs[0].astype(np.int64), inputs[1].astype(np.int64))]

    return run


for _name, _f in {"Equal": np.equal, "Greater": np.greater, "GreaterOrEqual": np.greater_equal, "Less": np.less,
                  "LessOrEqual": np.less_equal}.items():
    op(_name, note="compares the integers as they are; bool output", raw_integers="inputs")(_comparison(_f))


@op("Neg", bits=FLOAT_BITS, note="negation; the type's minimum becomes its maximum", raw_integers="all")
def neg(ctx: Context, inputs):
    x = inputs[0]
    if ctx.bits == 32:
        return [(-x).astype(np.float32)]
    return [saturate(-x.astype(np.int64), ctx.out_dtype())]


