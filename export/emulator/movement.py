"""Modules that move integers without computing on them (dl_module_{transpose,reshape,flatten,squeeze,unsqueeze,
identity,concat,split,slice,gather,pad,depth_to_space,space_to_depth,insert_zeros,reverse_sequence}.hpp).

ESP-DL copies the bytes: none of them rescales (an output whose exponent differs from its input's is read at
the wrong scale on the chip; core.exponent_mismatches finds those). Shape parameters come from the file
(ESP-DL reads them when the model loads). Where ESP-DL's index arithmetic departs from ONNX (DepthToSpace DCR,
SpaceToDepth, Split's num_outputs) the emulator follows ESP-DL.
"""

from __future__ import annotations

import numpy as np

from .core import Context, op
ALL_BITS = (8, 16, 32)


def movement(op_type: str, note: str, bits=ALL_BITS):
    """Register a data-movement module: ESP-DL copies its integers, whatever the exponents say."""

    def register(run):
        return op(op_type, bits=bits, note=note, raw_integers="all")(run)

    return register


def _axis(axis: int, rank: int) -> int:
    """A file axis (possibly negative) as an axis of the [runs, *shape] array."""
    return (axis % rank) + 1


@movement("Transpose", "any permutation")
def transpose(ctx: Context, inputs):
    x = inputs[0]
    perm = ctx.attributes.get("perm") or list(range(x.ndim - 2, -1, -1))
    return [np.ascontiguousarray(np.transpose(x, [0] + [p % (x.ndim - 1) + 1 for p in perm]))]


@movement("Reshape", "shape from the file (0 copies a dimension unless allowzero, one -1 inferred)")
def reshape(ctx: Context, inputs):
    x = inputs[0]
    shape = ctx.ints(1)
    allowzero = int(ctx.attributes.get("allowzero", 0))
    shape = [x.shape[i + 1] if (d == 0 and not allowzero) else d for i, d in enumerate(shape)]
    return [x.reshape(x.shape[0], *shape)]


@movement("Flatten", "to [prod(dims before axis), prod(rest)]")
def flatten(ctx: Context, inputs):
    x = inputs[0]
    axis = int(ctx.attributes.get("axis", 1))
    axis = axis if axis >= 0 else x.ndim - 1 + axis
    return [x.reshape(x.shape[0], int(np.prod(x.shape[1 : axis + 1])), -1)]


@movement("Squeeze", "the listed size-1 axes, or all of them")
def squeeze(ctx: Context, inputs):
    x = inputs[0]
    rank = x.ndim - 1
    axes = {a % rank for a in ctx.ints(1)} if ctx.has_input(1) else set(range(rank))
    keep = [d for i, d in enumerate(x.shape[1:]) if d != 1 or i not in axes]
    return [x.reshape(x.shape[0], *keep)]


@movement("Unsqueeze", "size-1 axes at the listed positions")
def unsqueeze(ctx: Context, inputs):
    x = inputs[0]
    axes = ctx.ints(1)
    rank = x.ndim - 1 + len(axes)
    axes = {a % rank for a in axes}
    dims, source = [], iter(x.shape[1:])
    for i in range(rank):
        dims.append(1 if i in axes else next(source))
    return [x.reshape(x.shape[0], *dims)]


@movement("Identity", "a copy")
def identity(ctx: Context, inputs):
    return [inputs[0].copy()]


@movement("Concat", "along any axis, the integers copied as they are")
def concat(ctx: Context, inputs):
    rank = inputs[0].ndim - 1
    runs = max(x.shape[0] for x in inputs)
    parts = [np.broadcast_to(x, (runs,) + x.shape[1:]) for x in inputs]  # parameters have one run
    return [np.concatenate(parts, axis=_axis(int(ctx.attributes["axis"]), rank))]


@movement("Split", "sizes from the file; without them ESP-DL cuts pieces of num_outputs each")
def split(ctx: Context, inputs):
    x = inputs[0]
    rank = x.ndim - 1
    axis = _axis(int(ctx.attributes.get("axis", 0)), rank)
    length = x.shape[axis]
    if ctx.has_input(1):
        sizes = ctx.ints(1)
    else:
        piece = int(ctx.attributes.get("num_outputs", -1))
        ctx.require(piece > 0, "neither split sizes nor num_outputs")
        count = (length + piece - 1) // piece
        sizes = [piece] * (count - 1) + [length - (count - 1) * piece]
    ctx.require(sum(sizes) == length and len(sizes) == len(ctx.node.outputs),
                f"pieces {sizes} for {length} values and {len(ctx.node.outputs)} outputs")
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


def _int32(value: int) -> int:
    return int(min(max(value, -(2**31)), 2**31 - 1))  # tool::truncate of an int64 parameter


@movement("Slice", "starts/ends/axes/steps from the file, negative steps included")
def slice_(ctx: Context, inputs):
    x = inputs[0]
    rank = x.ndim - 1
    starts, ends = [_int32(v) for v in ctx.ints(1)], [_int32(v) for v in ctx.ints(2)]
    axes = ctx.ints(3) if ctx.has_input(3) else list(range(len(starts)))
    steps = ctx.ints(4) if ctx.has_input(4) else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis + rank if axis < 0 else axis
        size = x.shape[axis + 1]
        if step < 0:  # ESP-DL flips the axis and slices forward
            x = np.flip(x, axis + 1)
            start, end, step = -start - 1, -end - 1, -step
        end = min(end, size)
        lo = start + size if start < 0 else start % (size + 1)
        hi = end + size if end < 0 else end % (size + 1)
        ctx.require(0 <= lo < hi, f"an empty slice [{lo}:{hi}] of axis {axis} (ESP-DL asserts start < end)")
        index[axis + 1] = slice(lo, hi, step)
    return [np.ascontiguousarray(x[tuple(index)])]


@movement("Gather", "indices from the file (int32/int64, not negative)")
def gather(ctx: Context, inputs):
    x = inputs[0]
    indices = np.asarray(ctx.param(1))
    axis = _axis(int(ctx.attributes.get("axis", 0)), x.ndim - 1)
    ctx.require(indices.size == 0 or (indices.min() >= 0 and indices.max() < x.shape[axis]),
                f"indices outside 0..{x.shape[axis] - 1}: ESP-DL reads them unchecked")
    ctx.require_size(x.shape[1:axis] + indices.shape + x.shape[axis + 1 :], "the gathered output")
    return [np.take(x, indices.astype(np.int64), axis=axis)]


@movement("Pad", "constant (the file's value), edge or reflect; pads in ONNX order, not negative")
def pad(ctx: Context, inputs):
    x = inputs[0]
    rank = x.ndim - 1
    pads = ctx.ints(1)
    ctx.require(not ctx.has_input(3), "ESP-DL ignores Pad's axes input; pads must cover every axis")
    ctx.require(len(pads) == 2 * rank and min(pads) >= 0, f"pads {pads} for {rank} axes (ESP-DL pads, never crops)")
    ctx.require_size([n + before + after for n, before, after in zip(x.shape[1:], pads[:rank], pads[rank:])],
                     "the padded output")
    widths = [(0, 0)] + list(zip(pads[:rank], pads[rank:]))
    mode = ctx.attributes.get("mode", "constant")
    if mode == "constant":
        value = np.asarray(ctx.param(2)).reshape(-1)[0] if ctx.has_input(2) else 0
        return [np.pad(x, widths, constant_values=value)]
    ctx.require(mode in ("edge", "reflect"), f"mode {mode!r} (ESP-DL: constant, edge, reflect)")
    return [np.pad(x, widths, mode=mode)]


def _block_permutation(ctx: Context, x, to_space: bool):
    """Gather indices (into the flattened [H, W, C] of one run) for ESP-DL's loops, followed literally."""
    ctx.require(x.ndim == 5 and x.shape[1] == 1, "ESP-DL runs it on [1, H, W, C] tensors")
    b = int(ctx.attributes["blocksize"])
    _, _, h, w, c = x.shape
    hh, ww, cc = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    if to_space:
        ctx.require(c % (b * b) == 0, f"{c} channels do not split into {b}x{b} blocks")
        out_c = c // (b * b)
        if ctx.attributes.get("mode", "DCR") == "CRD":
            oc, oh, ow = cc // (b * b), hh * b + (cc % (b * b)) // b, ww * b + cc % b
        else:  # ESP-DL's DCR loop (it equals ONNX's only when C/b^2 == b)
            oc, oh, ow = cc % b, hh * b + cc // (b * b), ww * b + (cc % (b * b)) // b
        shape = (h * b, w * b, out_c)
    else:
        ctx.require(h % b == 0 and w % b == 0, f"{h}x{w} does not split into {b}x{b} blocks")
        oc, oh, ow = cc * b * b + (hh % b) * b + ww % b, hh // b, ww // b
        shape = (h // b, w // b, c * b * b)
    destination = (oh * shape[1] + ow) * shape[2] + oc
    order = np.empty(h * w * c, dtype=np.int64)
    order[destination.reshape(-1)] = np.arange(h * w * c)
    return x.reshape(x.shape[0], -1)[:, order].reshape(x.shape[0], 1, *shape)


@movement("DepthToSpace", "NHWC; CRD as ONNX, DCR as ESP-DL's loop computes it")
def depth_to_space(ctx: Context, inputs):
    return [_block_permutation(ctx, inputs[0], to_space=True)]


@movement("SpaceToDepth", "NHWC, channel-major blocks as ESP-DL's loop computes them")
def space_to_depth(ctx: Context, inputs):
    return [_block_permutation(ctx, inputs[0], to_space=False)]


@movement("InsertZeros", "stride-1 zeros between spatial elements, output_padding zeros after")
def insert_zeros(ctx: Context, inputs):
    x = inputs[0]
    spatial = x.ndim - 3  # runs, batch, spatial..., channels
    strides = list(ctx.attributes.get("stride") or [1])
    padding = list(ctx.attributes.get("output_padding") or [0])
    strides = strides * spatial if len(strides) == 1 else strides
    padding = padding * spatial if len(padding) == 1 else padding
    ctx.require(len(strides) == len(padding) == spatial and min(strides) >= 1 and min(padding) >= 0,
                f"stride {strides}, output_padding {padding} for {spatial} spatial axes")
    shape = list(x.shape)
    for i in range(spatial):
        n = x.shape[2 + i]
        shape[2 + i] = n + (strides[i] - 1) * (n - 1) + padding[i]
    ctx.require_size(shape[1:], "the output")
    out = np.zeros(shape, dtype=x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(0, (x.shape[2 + i] - 1) * strides[i] + 1, strides[i])
                                           for i in range(spatial))] = x
    return [out]


@movement("ReverseSequence", "the first sequence_lens[b] steps reversed per batch entry")
def reverse_sequence(ctx: Context, inputs):
    x = inputs[0].copy()
    lengths = np.asarray(inputs[1]).astype(np.int64)
    time_axis = int(ctx.attributes.get("time_axis", 0)) + 1
    batch_axis = int(ctx.attributes.get("batch_axis", 1)) + 1
    moved = np.moveaxis(x, (time_axis, batch_axis), (1, 2))  # [runs, time, batch, ...]
    for r in range(moved.shape[0]):
        for b in range(moved.shape[2]):
            n = int(lengths[min(r, lengths.shape[0] - 1)].reshape(-1)[b])
            moved[r, :n, b] = moved[r, :n, b][::-1].copy()
    return [np.ascontiguousarray(np.moveaxis(moved, (1, 2), (time_axis, batch_axis)))]
