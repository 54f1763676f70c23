"""Resize (dl_module_resize.hpp, dl_base_resize.cpp): int8 only (ESP-DL's int16 kernel is empty), on the
(H,) W axes of an NHWC tensor, scales or sizes from the file.

nearest: in = min((int)(out * (1/scale)), in_size - 1), the value rescaled by a rounding shift;
linear: ESP-DL's linear_coeffs (half-pixel or align_corners, clamped at the edges), rows then columns in
float32, quantized with tool::round.
"""

from __future__ import annotations

import numpy as np

from .core import Context, op, saturate, scale


def _scales(ctx: Context, x) -> tuple[list[int], list[np.float32]]:
    spatial = x.shape[2:-1]  # [runs, 1, (H,) W, C]
    if ctx.has_input(3) and np.asarray(ctx.param(3)).size:
        sizes = [int(v) for v in np.asarray(ctx.param(3)).reshape(-1)[2:]]
        factors = [np.float32(np.float32(o) / np.float32(i)) for o, i in zip(sizes, spatial)]
    else:
        ctx.require(ctx.has_input(2), "neither scales nor sizes in the file")
        factors = [np.float32(f) for f in np.asarray(ctx.param(2), np.float32).reshape(-1)[2:]]
        sizes = [int(i * f) for i, f in zip(spatial, factors)]
    return sizes, factors


def _coefficients(out_size: int, in_size: int, scale_inv: np.float32, align: bool):
    """linear_coeffs for every output position: (index, ratio_0, ratio_1)."""
    out = np.arange(out_size, dtype=np.float32)
    fx = (out * scale_inv if align else (out + np.float32(0.5)) * scale_inv - np.float32(0.5)).astype(np.float32)
    index = np.floor(fx).astype(np.int64)
    fx = (fx - index).astype(np.float32)
    fx = np.where(index < 0, np.float32(0), fx)
    index = np.maximum(index, 0)
    high = index >= in_size - 1
    index = np.where(high, in_size - 2, index)
    fx = np.where(high, np.float32(1), fx).astype(np.float32)
    return index, (np.float32(1) - fx).astype(np.float32), fx


@op("Resize", bits=(8,), note="int8 nearest (floor of out/scale) and linear (half-pixel or align_corners) on the "
                              "spatial axes")
def resize(ctx: Context, inputs):
    x = inputs[0]
    ctx.require(x.ndim in (4, 5) and x.shape[1] == 1, "ESP-DL resizes [1, (H,) W, C] tensors")
    sizes, factors = _scales(ctx, x)
    ctx.require(len(sizes) == x.ndim - 3 and all(f > 0 for f in factors), f"sizes {sizes}, scales {factors} for "
                                                                         f"{x.ndim - 3} spatial axes")
    ctx.require_size([1, *sizes, x.shape[-1]], "the resized output")
    mode = ctx.attributes.get("mode", "nearest")
    align = ctx.attributes.get("coordinate_transformation_mode") == "align_corners"
    if all(f == 1 for f in factors):
        return [saturate(ctx.rounding.shift(x, ctx.out_exp() - ctx.in_exp()), ctx.out_dtype())]
    if mode == "nearest":
        out = x
        for k, (size, factor) in enumerate(zip(sizes, factors)):
            inv = np.float32(np.float32(1) / factor)
            index = np.minimum((np.arange(size, dtype=np.float32) * inv).astype(np.int64), x.shape[2 + k] - 1)
            out = np.take(out, index, axis=2 + k)
        return [saturate(ctx.rounding.shift(out, ctx.out_exp() - ctx.in_exp()), ctx.out_dtype())]
    ctx.require(mode == "linear", f"mode {mode!r} (ESP-DL: nearest, linear)")
    values = x.astype(np.float32) * scale(ctx.in_exp())
    for k in reversed(range(len(sizes))):  # along W first, then H, as resize_linear_c1 does
        size, factor = sizes[k], factors[k]
        in_size = x.shape[2 + k]
        if align:
            factor = np.float32(np.float32(size - 1) / np.float32(in_size - 1))
        index, r0, r1 = _coefficients(size, in_size, np.float32(np.float32(1) / factor), align)
        shape = [1] * values.ndim
        shape[2 + k] = size
        lo, hi = np.take(values, index, axis=2 + k), np.take(values, index + 1, axis=2 + k)
        values = (lo * r0.reshape(shape) + hi * r1.reshape(shape)).astype(np.float32)
    return [saturate(ctx.rounding.round(values * scale(-ctx.out_exp())), ctx.out_dtype())]
