"""The Reduce* modules (dl_module_reduce_base.hpp and dl_module_reduce_{mean,sum,max,min,l1,l2,prod,sum_square,
log_sum,log_sum_exp}.hpp).

ESP-DL merges adjacent axes with the same reduce flag and runs one of six loop shapes (reduced/kept:
all; k r; r k; r k r; k r k; k r k r; r k r k); for any other pattern it computes nothing, so the emulator
refuses it. Integer sums are exact (int32 accumulators at int8, int64 at int16); float accumulations run in
the loops' order (the reduced elements in row-major order), one element at a time.
"""

from __future__ import annotations

import numpy as np

from .core import Context, EmulatorError, op, saturate, scale

PATTERNS = {(True,), (False,), (False, True), (True, False), (True, False, True), (False, True, False),
            (False, True, False, True), (True, False, True, False)}


def _reduced_axes(ctx: Context, x) -> list[int]:
    rank = x.ndim - 1
    axes = ctx.ints(1) if ctx.has_input(1) else list(ctx.attributes.get("axes") or [])
    if not axes:
        ctx.require(not int(ctx.attributes.get("noop_with_empty_axes", 0)), "noop_with_empty_axes with no axes")
        axes = list(range(rank))
    flags = [False] * rank
    for a in axes:
        flags[a % rank] = True
    merged = [flags[0]] + [f for prev, f in zip(flags, flags[1:]) if f != prev]
    ctx.require(tuple(merged) in PATTERNS, f"reduced axes {sorted(a % rank for a in axes)} of a {rank}-D tensor: "
                                           "ESP-DL's reduce loops have no case for this pattern")
    return [i + 1 for i, f in enumerate(flags) if f]


def _finish(ctx: Context, x, values, axes):
    """Shape the result as ESP-DL does: keepdims, or drop the reduced axes ([1] when all go)."""
    keep = int(ctx.attributes.get("keepdims", 1))
    shape = [1 if i in axes else d for i, d in enumerate(x.shape)]
    values = np.asarray(values).reshape(shape)
    if not keep:
        kept = [d for i, d in enumerate(shape) if i not in axes and i > 0]
        values = values.reshape(x.shape[0], *(kept or [1]))
    return values


def _flat(x, axes):
    """[runs, kept..., reduced] with the reduced elements last, in row-major order."""
    kept = [i for i in range(x.ndim) if i not in axes]
    moved = np.transpose(x, kept + axes)
    return moved.reshape(*moved.shape[: len(kept)], -1)


def _sequential(values, start, step):
    """acc = step(acc, v) over the last axis, one element at a time (float rounding as the C loops)."""
    acc = start
    for k in range(values.shape[-1]):
        acc = step(acc, values[..., k])
    return acc


def reduction(op_type: str, note: str, bits=(8, 16, 32), raw_integers: str = ""):
    def register(compute):
        def run(ctx: Context, inputs):
            x = inputs[0]
            axes = _reduced_axes(ctx, x)
            return [_finish(ctx, x, compute(ctx, _flat(x, axes)), axes)]

        return op(op_type, bits=bits, note=note, raw_integers=raw_integers)(run)

    return register


def _out(ctx: Context, value):
    return saturate(ctx.rounding.round(np.asarray(value, np.float32)), ctx.out_dtype())


def _float_sum(values):
    return _sequential(values.astype(np.float32), np.float32(0), lambda a, v: (a + v).astype(np.float32))


@reduction("ReduceMean", "integer sum; sum * in_scale / count * out_scale in float32")
def reduce_mean(ctx: Context, v):
    if ctx.bits == 32:
        return (_float_sum(v) / np.float32(v.shape[-1])).astype(np.float32)
    total = v.astype(np.int64).sum(axis=-1).astype(np.float32)
    return _out(ctx, total * scale(ctx.in_exp()) / np.float32(v.shape[-1]) * scale(-ctx.out_exp()))


def _shifted(ctx: Context, total, shift):
    return saturate(ctx.rounding.shift(total, shift), ctx.out_dtype())


@reduction("ReduceSum", "integer sum, one rounding shift to the output exponent")
def reduce_sum(ctx: Context, v):
    if ctx.bits == 32:
        return _float_sum(v)
    return _shifted(ctx, v.astype(np.int64).sum(axis=-1), ctx.out_exp() - ctx.in_exp())


@reduction("ReduceL1", "integer sum of |x|, one rounding shift")
def reduce_l1(ctx: Context, v):
    if ctx.bits == 32:
        return _float_sum(np.abs(v))
    return _shifted(ctx, np.abs(v.astype(np.int64)).sum(axis=-1), ctx.out_exp() - ctx.in_exp())


@reduction("ReduceSumSquare", "integer sum of x^2, one rounding shift by out - 2*in")
def reduce_sum_square(ctx: Context, v):
    if ctx.bits == 32:
        return _sequential(v.astype(np.float32), np.float32(0), lambda a, x: (a + x * x).astype(np.float32))
    return _shifted(ctx, (v.astype(np.int64) ** 2).sum(axis=-1), ctx.out_exp() - 2 * ctx.in_exp())


NEWTON_STEPS = 1000  # from float32's largest value, the steps halve it to convergence in about 70


def sqrt_newton(x):
    """dl::math::sqrt_newton in float32: Newton steps from x while two steps differ by more than 1e-5 (a NaN
    difference ends the loop, as in C). A negative value never converges: the chip would loop forever, the
    emulator refuses it."""
    x = np.asarray(x, dtype=np.float32)
    result = x.copy()
    active = x != 0
    result[~active] = 0
    for _ in range(NEWTON_STEPS):
        if not active.any():
            return result
        last = result[active]
        step = ((last + x[active] / last) * np.float32(0.5)).astype(np.float32)
        result[active] = step
        done = ~(np.abs(step - last) > np.float32(0.00001))
        index = np.flatnonzero(active)
        active.flat[index[done]] = False
    raise EmulatorError(f"sqrt_newton of {x[active].flat[0]:g} does not converge (ESP-DL's loop would never end)")


@reduction("ReduceL2", "integer sum of x^2, sqrt_newton(sum * in_scale^2) * out_scale in float32")
def reduce_l2(ctx: Context, v):
    if ctx.bits == 32:
        return sqrt_newton(_sequential(v.astype(np.float32), np.float32(0), lambda a, x: (a + x * x).astype(np.float32)))
    total = (v.astype(np.int64) ** 2).sum(axis=-1).astype(np.float32)
    return _out(ctx, sqrt_newton(total * scale(2 * ctx.in_exp())) * scale(-ctx.out_exp()))


def _extreme(f):
    def compute(ctx: Context, v):
        return f(v, axis=-1)

    return compute


reduction("ReduceMax", "the largest integer, as it is", raw_integers="all")(_extreme(np.max))
reduction("ReduceMin", "the smallest integer, as it is", raw_integers="all")(_extreme(np.min))


@reduction("ReduceProd", "product of the dequantized values in float32 (int16: double), rounded")
def reduce_prod(ctx: Context, v):
    if ctx.bits == 32:
        return _sequential(v.astype(np.float32), np.float32(1), lambda a, x: (a * x).astype(np.float32))
    values = v.astype(np.float32) * scale(ctx.in_exp())
    if ctx.bits == 8:  # float accumulator, tool::round(float)
        total = _sequential(values, np.float32(1), lambda a, x: (a * x).astype(np.float32))
        return _out(ctx, total * scale(-ctx.out_exp()))
    total = _sequential(values.astype(np.float64), np.float64(1), lambda a, x: a * x)  # double accumulator
    return saturate(ctx.rounding.round_double(total * float(scale(-ctx.out_exp()))), ctx.out_dtype())


@reduction("ReduceLogSum", "logf(integer sum * in_scale), rounded to the output exponent")
def reduce_log_sum(ctx: Context, v):
    if ctx.bits == 32:
        return np.log(_float_sum(v))
    total = v.astype(np.int64).sum(axis=-1).astype(np.float32) * scale(ctx.in_exp())
    with np.errstate(divide="ignore", invalid="ignore"):
        return _out(ctx, np.log(total) * scale(-ctx.out_exp()))


@reduction("ReduceLogSumExp", "int8: ESP-DL's 256-entry expf table summed in float32; int16: expf per element")
def reduce_log_sum_exp(ctx: Context, v):
    if ctx.bits == 32:
        terms = np.exp(v.astype(np.float32))
    elif ctx.bits == 8:
        terms = exp_table(ctx.in_exp())[v.astype(np.int64) + 128]
    else:
        terms = np.exp(v.astype(np.float32) * scale(ctx.in_exp()))
    total = _float_sum(terms)
    if ctx.bits == 32:
        return np.log(total)
    return _out(ctx, np.log(total) * scale(-ctx.out_exp()))


def exp_table(exponent: int) -> np.ndarray:
    """tool::gen_lut_8bit(table, exponent, expf): table[i] = expf(2**exponent * (i - 128))."""
    return np.exp((scale(exponent) * np.arange(-128, 128, dtype=np.float32)).astype(np.float32)).astype(np.float32)
