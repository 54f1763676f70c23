"""Conv, Gemm and MatMul: ESP-DL runs all three through its conv2d kernels (dl_module_conv/gemm/matmul.hpp,
dl_base_conv2d.cpp, dl_base_depthwise_conv2d.cpp, dl_base.hpp's ConvOpArgs).

- Weights are read in the packed layout the SIMD kernels load: output channels in blocks of 16 (int8) or 8
  (int16), each block [H, W, C, 16]; the channels past the last whole block follow as [N, H, W, C] rows
  (depthwise: [C, H, W, N]). The file's layout annotation must name that layout (esp-ppq writes
  "(N/16)HWC16", older versions "N16HWC16"); any other layout is refused, never unpacked as this one.
- The accumulator is exact integer arithmetic; the bias is added in it as stored (ESP32-S3 int8 keeps only
  its low 20 bits: TensorBase::reset_bias_layout packs the block-aligned channels, and every depthwise
  channel, into the 20-bit QACC lanes); then one rounding shift to the output exponent (mac_shift = out - in
  - weight), the fused ReLU, saturation.
- Per-channel weight exponents: only the ESP32-P4 kernels apply them (ConvOpArgs leaves the per-channel
  factors NULL on every other chip), so the emulator refuses them for ESP32-S3.
- Groups: 1 (conv2d) or depthwise (one filter per input channel); ESP-DL has no other grouped convolution.
"""

from __future__ import annotations

import numpy as np

from ..espdl_file import EspdlTensor
from .core import Context, EmulatorError, op, saturate

ACTIVATIONS = ("Linear", "Relu")
EXACT_FLOAT_SUM = 2.0**52  # float64 sums of integer products are exact below this
EXACT_FLOAT32_SUM = 2.0**24  # and float32 sums below this


# ---------------------------------------------------------------- the packed weight layout
def _layout_names(align: int, rank: int, aligned: bool) -> set[str]:
    spatial = "HWC" if rank == 4 else "WC"
    tail = "" if aligned else "_UNALIGNED"
    return {f"(N/{align}){spatial}{align}{tail}", f"N{align}{spatial}{align}{tail}"}


def unpack_weight(t: EspdlTensor, bits: int, depthwise: bool) -> np.ndarray:
    """[N, H, W, C] (C = 1 for depthwise) integer weights from the packed bytes of a Conv/Gemm filter.

    The dims say [H, W, C, N] ([W, C, N] for 1-D), depthwise [H, W, N, C]. The annotation must name the
    layout ESP-DL reads at this width; anything else raises EmulatorError naming the layout found.
    """
    rank = len(t.dims)
    if rank not in (3, 4):
        raise EmulatorError(f"weight '{t.name}' has {rank} dimensions; ESP-DL's conv kernels read 3 or 4")
    dims = [1] * (4 - rank) + list(t.dims)  # 1-D as H = 1
    h, w = dims[0], dims[1]
    n, c = (dims[2], dims[3]) if depthwise else (dims[3], dims[2])
    align = 16 if bits == 8 else 8
    expected = _layout_names(align, rank, n % align == 0)
    if t.layout not in expected:
        raise EmulatorError(
            f"weight '{t.name}' is stored in layout {t.layout or 'without a layout annotation'!r}; ESP-DL's int{bits} "
            f"kernels read {sorted(expected)[0]}: it is refused rather than unpacked as that")
    flat = np.asarray(t.values).reshape(-1)
    blocks = n // align
    head = flat[: blocks * align * h * w * c].reshape(blocks, h, w, c, align).transpose(0, 4, 1, 2, 3)
    rows = [head.reshape(blocks * align, h, w, c)]
    rest = flat[blocks * align * h * w * c :]
    if n % align:
        tail = n - blocks * align
        rows.append(rest.reshape(c, h, w, tail).transpose(3, 1, 2, 0) if depthwise else rest.reshape(tail, h, w, c))
    return np.concatenate(rows)


def matrix_weight(t: EspdlTensor, bits: int) -> np.ndarray:
    """The [..., C, N] matrices of a MatMul's parameter: each [C, N] matrix packed like a 1x1 conv filter."""
    *batch, c, n = t.dims
    packed = np.asarray(t.values).reshape(-1, c * n)
    matrices = [unpack_weight(EspdlTensor(t.name, [1, 1, c, n], t.exponent, t.dtype, m, t.exponents, t.layout), bits,
                              False)[:, 0, 0, :].T for m in packed]
    return np.stack(matrices).reshape(*batch, c, n)


def _unpack_runtime(x: np.ndarray, bits: int) -> np.ndarray:
    """A runtime right operand [runs, ..., C, N], whose bytes ESP-DL reads as packed [1, 1, C, N] filters."""
    *lead, c, n = x.shape
    align = 16 if bits == 8 else 8
    layout = sorted(_layout_names(align, 4, n % align == 0))[0]
    matrices = [unpack_weight(EspdlTensor("right operand", [1, 1, c, n], 0, 0, m, [], layout), bits, False)[:, 0, 0, :].T
                for m in x.reshape(-1, c * n)]
    return np.stack(matrices).reshape(*lead, c, n)


# ---------------------------------------------------------------- accumulate, shift, activate
def _magnitude(x: np.ndarray) -> float:
    """The largest |value| x can hold: its type's, without reading it."""
    return float(-np.iinfo(x.dtype).min) if x.dtype.kind == "i" and x.dtype.itemsize <= 2 else float(np.abs(x).max(initial=0))


def _products(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Exact integer sums x @ weight.T over the last axis, through BLAS where that is exact: float32 (int32 result)
    below 2**24, float64 (int64) below 2**52."""
    bound = _magnitude(x) * float(np.abs(weight).max(initial=0)) * x.shape[-1]
    if bound < EXACT_FLOAT32_SUM:
        return (x.astype(np.float32) @ weight.T.astype(np.float32)).astype(np.int32)
    if bound < EXACT_FLOAT_SUM:
        return (x.astype(np.float64) @ weight.T.astype(np.float64)).astype(np.int64)
    return x.astype(np.int64) @ weight.T.astype(np.int64)


def _weight_shifts(ctx: Context, weight: EspdlTensor, n_out: int) -> np.ndarray:
    exponents = np.asarray(weight.exponents or [weight.exponent], dtype=np.int64)
    ctx.require(len(exponents) in (1, n_out), f"{len(exponents)} weight exponents for {n_out} output channels")
    return ctx.out_exp() - ctx.in_exp() - exponents


def _bias(ctx: Context, index: int, n_out: int, depthwise: bool) -> np.ndarray | None:
    if not ctx.has_input(index):
        return None
    bias = np.asarray(ctx.param(index), dtype=np.int64).reshape(-1)
    ctx.require(bias.size == n_out, f"{bias.size} bias values for {n_out} output channels")
    if ctx.target == "esp32s3" and ctx.bits == 8:
        # reset_bias_layout: `src & 0xfffff` into 20-bit QACC lanes for whole 16-channel blocks (all channels of a
        # depthwise conv); the channels after them keep 64 bits in ACCX
        lanes = n_out if depthwise else n_out // 16 * 16
        low = bias[:lanes] & 0xFFFFF
        bias = np.concatenate([low - ((low & 0x80000) << 1), bias[lanes:]])
    return bias


def _finish(ctx: Context, acc: np.ndarray, bias, shifts) -> np.ndarray:
    if bias is not None:
        narrow = acc.dtype == np.int32 and np.abs(bias).max(initial=0) < 2**30 - EXACT_FLOAT32_SUM
        acc = acc + (bias.astype(np.int32) if narrow else bias)
    out = ctx.rounding.shift(acc, shifts)
    activation = ctx.attributes.get("activation", "Linear")
    if activation == "Relu":
        out = np.maximum(out, 0)
    return saturate(out, ctx.out_dtype())


def _check_activation(ctx: Context) -> None:
    ctx.require(ctx.attributes.get("activation", "Linear") in ACTIVATIONS,
                f"fused activation {ctx.attributes.get('activation')!r} is not run by ESP-DL's kernels "
                "(Linear and Relu are)")


def _check_weight_exponents(ctx: Context, weight: EspdlTensor) -> None:
    if weight.per_channel and ctx.target != "esp32p4":
        ctx.fail(f"weight '{weight.name}' has per-channel exponents, which ESP-DL applies only on esp32p4 "
                 f"(on {ctx.target} ConvOpArgs leaves the per-channel factors unset)")


# ---------------------------------------------------------------- Conv
def _conv_check(ctx: Context) -> None:
    _check_activation(ctx)
    weight = ctx.file.initializers.get(ctx.node.inputs[1])
    ctx.require(weight is not None, "the filter must be a parameter stored in the file")
    group = int(ctx.attributes.get("group", 1))
    _check_weight_exponents(ctx, weight)
    unpacked = unpack_weight(weight, ctx.bits, group != 1)
    if group != 1:
        ctx.require(unpacked.shape[-1] == 1, f"group {group} with {unpacked.shape[-1]} input channels per group: "
                                             "ESP-DL runs group 1 or depthwise convolutions only")
    ctx.state["weight"] = unpacked


@op("Conv", note="1-D and 2-D, group 1 or depthwise, stride, dilation, zero padding, fused Linear/ReLU, "
                 "bias (20-bit on esp32s3 int8); per-channel exponents on esp32p4 only", check=_conv_check)
def conv(ctx: Context, inputs):
    x = inputs[0]
    weight = ctx.state["weight"]  # [N, KH, KW, C/group]
    group = int(ctx.attributes.get("group", 1))
    spatial = 4 if x.ndim == 5 else 3  # runs + [1, H, W, C] or [1, W, C]
    strides = list(ctx.attributes.get("strides") or [1] * (spatial - 2))
    dilations = list(ctx.attributes.get("dilations") or [1] * (spatial - 2))
    pads = list(ctx.attributes.get("pads") or [0] * 2 * (spatial - 2))
    if spatial == 3:  # 1-D: H = 1
        x = x[:, :, None]
        strides, dilations, pads = [1] + strides, [1] + dilations, [0, pads[0], 0, pads[1]]
    ctx.require(x.shape[1] == 1, f"input batch {x.shape[1]}: ESP-DL's Conv runs batch 1")
    runs, _, height, width, channels = x.shape
    n_out, kh, kw, _ = weight.shape
    if group != 1:
        ctx.require(group == channels and n_out == channels,
                    f"group {group}, {channels} input and {n_out} output channels: not a depthwise convolution")
    else:
        ctx.require(weight.shape[-1] == channels, f"the filter takes {weight.shape[-1]} channels, the input has {channels}")
    top, left, bottom, right = pads  # ONNX order
    ctx.require(min(strides + dilations) >= 1 and min(pads) >= 0,
                f"strides {strides}, dilations {dilations}, pads {pads}: ESP-DL takes them positive")
    padded = [height + top + bottom, width + left + right]
    ctx.require_size(padded + [channels], "the padded input")
    out_h = (padded[0] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    out_w = (padded[1] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    ctx.require(out_h > 0 and out_w > 0, f"the input {height}x{width} is smaller than the dilated kernel")
    ctx.require_size([out_h, out_w, n_out], "the output")  # the taps are as many times larger as the filter holds
    x = np.pad(x[:, 0], ((0, 0), (top, bottom), (left, right), (0, 0)))
    taps = [x[:, i * dilations[0] : i * dilations[0] + strides[0] * (out_h - 1) + 1 : strides[0],
              j * dilations[1] : j * dilations[1] + strides[1] * (out_w - 1) + 1 : strides[1]]
            for i in range(kh) for j in range(kw)]  # each [runs, out_h, out_w, C]
    if group == 1:
        acc = _products(np.concatenate(taps, axis=-1), weight.reshape(n_out, -1))
    else:
        wide = np.int32 if _magnitude(x) * float(np.abs(weight).max(initial=0)) * kh * kw < 2.0**30 else np.int64
        w = weight.reshape(n_out, kh * kw).T.astype(wide)  # [taps, C]
        acc = sum(tap.astype(wide) * w[k] for k, tap in enumerate(taps))
    filt = ctx.file.initializers[ctx.node.inputs[1]]
    out = _finish(ctx, acc, _bias(ctx, 2, n_out, group != 1), _weight_shifts(ctx, filt, n_out))
    return [out[:, None, 0] if spatial == 3 else out[:, None]]


# ---------------------------------------------------------------- Gemm
def _gemm_check(ctx: Context) -> None:
    _check_activation(ctx)
    for flag in ("transA", "transB"):
        ctx.require(int(ctx.attributes.get(flag, 0)) == 0, f"{flag} = {ctx.attributes.get(flag)}: ESP-DL asserts it is 0")
    weight = ctx.file.initializers.get(ctx.node.inputs[1])
    ctx.require(weight is not None and len(weight.dims) == 4 and weight.dims[:2] == [1, 1],
                "the filter must be a [1, 1, C, N] parameter stored in the file")
    _check_weight_exponents(ctx, weight)
    ctx.state["weight"] = unpack_weight(weight, ctx.bits, False)[:, 0, 0, :]  # [N, C]


@op("Gemm", note="x [..., C] times a [C, N] parameter (transA = transB = 0, alpha = beta = 1) plus bias, "
                 "as a 1x1 Conv", check=_gemm_check)
def gemm(ctx: Context, inputs):
    weight = ctx.state["weight"]
    acc = _products(inputs[0], weight)
    filt = ctx.file.initializers[ctx.node.inputs[1]]
    return [_finish(ctx, acc, _bias(ctx, 2, weight.shape[0], False), _weight_shifts(ctx, filt, weight.shape[0]))]


# ---------------------------------------------------------------- MatMul
def _matmul_check(ctx: Context) -> None:
    _check_activation(ctx)
    ctx.require(ctx.attributes.get("input1_layout", "packed") == "packed",
                f"input1_layout {ctx.attributes.get('input1_layout')!r}: ESP-DL (v3.3.9) reads the right operand "
                "in the packed filter layout and has no other")
    weight = ctx.file.initializers.get(ctx.node.inputs[1])
    if weight is not None:
        _check_weight_exponents(ctx, weight)
        ctx.require(len(weight.dims) >= 2, "a 1-D right operand is not packed like a filter")
        ctx.state["weight"] = matrix_weight(weight, ctx.bits)


@op("MatMul", note="numpy-style broadcasting over up to 4 dims; the right operand a packed parameter, or a "
                   "runtime tensor read as packed (input1_layout native_kn refused)", check=_matmul_check)
def matmul(ctx: Context, inputs):
    a = inputs[0]
    b = ctx.state.get("weight")
    b = _unpack_runtime(inputs[1], ctx.bits) if b is None else b[None]  # [runs or 1, ..., C, N]
    vector_a, vector_b = a.ndim == 2, b.ndim == 2  # 1-D operands: a row, a column
    a = a[:, None, :] if vector_a else a
    b = b[..., None] if vector_b else b
    rank = max(a.ndim, b.ndim)  # broadcast the matrix batches, not the runs axis
    a = a.reshape(a.shape[:1] + (1,) * (rank - a.ndim) + a.shape[1:])
    b = b.reshape(b.shape[:1] + (1,) * (rank - b.ndim) + b.shape[1:])
    ctx.require(a.shape[-1] == b.shape[-2], f"a [.., {a.shape[-1]}] operand times a [{b.shape[-2]}, ..] operand")
    ctx.require_size(np.broadcast_shapes(a.shape[1:-2], b.shape[1:-2]) + (a.shape[-2], b.shape[-1]), "the product")
    bound = float(np.abs(a).max(initial=0)) * float(np.abs(b).max(initial=0)) * a.shape[-1]
    ctx.require(bound < EXACT_FLOAT_SUM, "the sums exceed what the emulator computes exactly")
    acc = np.rint(np.matmul(a.astype(np.float64), b.astype(np.float64))).astype(np.int64)
    acc = acc[..., 0, :] if vector_a else acc
    acc = acc[..., 0] if vector_b else acc
    return [_finish(ctx, acc, None, ctx.out_exp() - ctx.in_exp(0) - ctx.in_exp(1))]
