"""LayerNormalization and RMSNormalization (dl_module_layer_normalization.hpp, dl_module_rms_normalization.hpp,
dl_base_norm.cpp, dl_base_reduce.cpp's reduce_l2, dl_math.hpp's sqrt_newton).

Both normalise over the axes from `axis` to the end, in float32 with the C++'s operation order: LayerNorm's
integer sum, its mean computed in double, the variance accumulated element by element; RMSNorm's exact
integer sum of squares and 1/sqrtf. RMSNorm's per-element step runs in SIMD kernels on the chips; the
emulator computes it as their C reference does (x * rms * scale[j], rounded).
"""

from __future__ import annotations

import numpy as np

from .core import Context, op, saturate, scale
from .reduce import sqrt_newton


def _split(ctx: Context, x):
    """x as [runs, outer, inner] (inner: the axes from `axis` to the end), epsilon, the input's scale."""
    rank = x.ndim - 1
    axis = int(ctx.attributes.get("axis", -1))
    axis = axis + rank if axis < 0 else axis
    v = x.reshape(x.shape[0], int(np.prod(x.shape[1 : axis + 1])), -1)
    return v, np.float32(ctx.attributes.get("epsilon", 1e-5)), scale(ctx.in_exp())


@op("LayerNormalization", note="float32 in the C++'s order: mean in double, variance element by element, "
                               "1/sqrt_newton; scale/bias integers at their exponents")
def layer_normalization(ctx: Context, inputs):
    x = inputs[0]
    v, eps, s_in = _split(ctx, x)
    inner = v.shape[-1]
    mean = (v.astype(np.int64).sum(axis=-1).astype(np.float64) * 1.0 / inner).astype(np.float32)[..., None]
    variance = np.zeros(v.shape[:-1], np.float32)
    for j in range(inner):
        diff = (v[..., j].astype(np.float32) - mean[..., 0]).astype(np.float32)
        variance = (variance + diff * diff).astype(np.float32)
    mean_scaled = (mean * s_in).astype(np.float32)
    variance = (variance * (s_in * s_in)).astype(np.float32) / np.float32(inner)
    inv_std = (np.float32(1) / sqrt_newton(variance + eps)).astype(np.float32)[..., None]
    normalized = ((v.astype(np.float32) * s_in - mean_scaled) * inv_std).astype(np.float32)
    if ctx.has_input(1):
        gamma = np.asarray(ctx.param(1)).reshape(-1).astype(np.float32) * scale(ctx.in_exp(1))
        normalized = (normalized * gamma).astype(np.float32)
    if ctx.has_input(2):
        beta = np.asarray(ctx.param(2)).reshape(-1).astype(np.float32) * scale(ctx.in_exp(2))
        normalized = (normalized + beta).astype(np.float32)
    out = [saturate(ctx.rounding.round(normalized * scale(-ctx.out_exp())), ctx.out_dtype()).reshape(x.shape)]
    if len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
        out.append(saturate(ctx.rounding.round(mean[..., 0] * scale(-ctx.out_exp(1)) * s_in), ctx.out_dtype(1)))
    if len(ctx.node.outputs) > 2 and ctx.node.outputs[2]:
        out.append(saturate(ctx.rounding.round(inv_std[..., 0] * scale(-ctx.out_exp(2))), ctx.out_dtype(2)))
    return out


@op("RMSNormalization", note="exact integer sum of squares, 1/sqrtf(mean + eps) in float32, x * rms * scale[j] "
                             "(float scale), rounded")
def rms_normalization(ctx: Context, inputs):
    x = inputs[0]
    v, eps, s_in = _split(ctx, x)
    inner = v.shape[-1]
    gamma = np.asarray(ctx.param(1)).reshape(-1)
    ctx.require(gamma.dtype == np.float32, "ESP-DL reads RMSNormalization's scale as float32")
    sum_sq = (v.astype(np.int64) ** 2).sum(axis=-1).astype(np.float32)
    mean_sq = (sum_sq * (s_in * s_in)).astype(np.float32) / np.float32(inner)
    rms = (np.float32(1) / np.sqrt((mean_sq + eps).astype(np.float32))).astype(np.float32)
    rms = (rms * (s_in * scale(-ctx.out_exp()))).astype(np.float32)[..., None]
    result = ((v.astype(np.float32) * rms).astype(np.float32) * gamma).astype(np.float32)
    return [saturate(ctx.rounding.round(result), ctx.out_dtype()).reshape(x.shape)]
