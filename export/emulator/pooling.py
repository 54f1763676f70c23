"""AveragePool, GlobalAveragePool, MaxPool (dl_module_{average_pool,global_average_pool,max_pool}.hpp,
dl_base_avg_pool2d.cpp, dl_base_pool2d.hpp).

ESP-DL builds with CONFIG_ACCURATE_INFER, so averages take its C path: the integer sum of the window's real
elements (padding adds nothing), times in_scale * (1/kernel area) * out_scale in float32, tool::round,
saturate. The divisor is always the whole kernel area, whatever count_include_pad says: a border window is
averaged as if zero-padded. MaxPool: the largest real element (padding never wins), no rescaling.
"""

from __future__ import annotations

import numpy as np

from .core import Context, op, saturate, scale


def _geometry(ctx: Context, x):
    """x [runs, 1, (H,) W, C] as [runs, H, W, C], kernel, strides, pads (top, bottom, left, right)."""
    ctx.require(x.shape[1] == 1, f"input batch {x.shape[1]}: ESP-DL pools batch 1")
    one_d = x.ndim == 4
    kernel = list(ctx.attributes["kernel_shape"])
    strides = list(ctx.attributes.get("strides") or [1] * len(kernel))
    pads = list(ctx.attributes.get("pads") or [0] * 2 * len(kernel))
    ctx.require(ctx.attributes.get("dilations") in (None, [1] * len(kernel)), "dilated pooling is not run by ESP-DL")
    if one_d:
        x, kernel, strides, pads = x[:, 0, None], [1] + kernel, [1] + strides, [0, 0, pads[0], pads[1]]
    else:
        x, pads = x[:, 0], [pads[0], pads[2], pads[1], pads[3]]
    _check_geometry(ctx, x, kernel, strides, pads)
    return x, kernel, strides, pads, one_d


def _check_geometry(ctx: Context, x, kernel, strides, pads) -> None:
    """Before padding and taking windows: sizes the file's attributes ask for that no chip could hold."""
    ctx.require(len(kernel) == len(strides) == 2 and len(pads) == 4 and min(kernel + strides) >= 1 and min(pads) >= 0,
                f"kernel {kernel}, strides {strides}, pads {pads}: ESP-DL takes them positive, one per axis")
    padded = [x.shape[1] + pads[0] + pads[1], x.shape[2] + pads[2] + pads[3]]
    ctx.require_size(padded + [x.shape[-1]], "the padded input")
    ctx.require(kernel[0] <= padded[0] and kernel[1] <= padded[1], f"the kernel {kernel} is larger than the input {padded}")
    out = [(padded[0] - kernel[0]) // strides[0] + 1, (padded[1] - kernel[1]) // strides[1] + 1]
    ctx.require_size(out + [kernel[0] * kernel[1], x.shape[-1]], "the pooling windows")  # the kernel: an attribute


def _windows(x, kernel, strides, fill):
    """[runs, out_h, out_w, kh*kw, C] views of the padded input."""
    kh, kw = kernel
    out_h = (x.shape[1] - kh) // strides[0] + 1
    out_w = (x.shape[2] - kw) // strides[1] + 1
    taps = [x[:, i : i + strides[0] * (out_h - 1) + 1 : strides[0], j : j + strides[1] * (out_w - 1) + 1 : strides[1]]
            for i in range(kh) for j in range(kw)]
    return np.stack(taps, axis=3)


def _average(ctx: Context, x, kernel, strides, pads):
    top, bottom, left, right = pads
    padded = np.pad(x.astype(np.int64), ((0, 0), (top, bottom), (left, right), (0, 0)))
    total = _windows(padded, kernel, strides, 0).sum(axis=3)
    if ctx.bits == 32:
        return (total.astype(np.float32) * np.float32(1.0 / (kernel[0] * kernel[1]))).astype(np.float32)
    factor = scale(ctx.in_exp()) * (np.float32(1) / np.float32(kernel[0] * kernel[1])) * scale(-ctx.out_exp())
    return saturate(ctx.rounding.round(total.astype(np.float32) * factor), ctx.out_dtype())


def _restore(out, one_d):
    return out[:, None, 0] if one_d else out[:, None]


@op("AveragePool", bits=(8, 16, 32), note="sum of the real elements / the whole kernel area (count_include_pad is "
                                          "ignored by ESP-DL); no ceil_mode, no dilation")
def average_pool(ctx: Context, inputs):
    ctx.require(int(ctx.attributes.get("ceil_mode", 0)) == 0, "ceil_mode: ESP-DL's output size rounds down")
    x, kernel, strides, pads, one_d = _geometry(ctx, inputs[0])
    return [_restore(_average(ctx, x, kernel, strides, pads), one_d)]


@op("GlobalAveragePool", bits=(8, 16, 32), note="AveragePool over the whole (H,) W")
def global_average_pool(ctx: Context, inputs):
    x = inputs[0]
    ctx.require(x.shape[1] == 1, f"input batch {x.shape[1]}: ESP-DL pools batch 1")
    one_d = x.ndim == 4
    x = x[:, 0, None] if one_d else x[:, 0]
    return [_restore(_average(ctx, x, [x.shape[1], x.shape[2]], [1, 1], [0, 0, 0, 0]), one_d)]


@op("MaxPool", note="the largest real element of each window (no rescaling); no ceil_mode, no dilation",
    raw_integers="all")
def max_pool(ctx: Context, inputs):
    ctx.require(int(ctx.attributes.get("ceil_mode", 0)) == 0, "ceil_mode: ESP-DL's output size rounds down")
    x, kernel, strides, pads, one_d = _geometry(ctx, inputs[0])
    top, bottom, left, right = pads
    lowest = np.iinfo(x.dtype).min
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=lowest)
    return [_restore(_windows(padded, kernel, strides, lowest).max(axis=3), one_d)]
