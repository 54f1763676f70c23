"""StreamingCache (dl_module_streaming_cache.hpp), the one statement of its semantics in the project: the host
simulation of the quantized graph (ppq.py) runs the same function.

ESP-DL keeps window-1 frames' worth of bytes, zeroed at the first run and by Model::reset(). Each run it
writes the output as those cached bytes followed by the input's bytes (output shape: the input's, the frame
axis longer by window-1), then keeps the output's last bytes as the next cache. On a frame axis with only
size-1 axes before it, that is a concatenation along the frame axis and keeping its last window-1 frames.
"""

from __future__ import annotations

import numpy as np

from .core import Context, op


def streaming_cache_step(cache: np.ndarray | None, x: np.ndarray, window: int, frame_axis: int):
    """One StreamingCache run on [runs, *shape] inputs: (output, new cache); `cache` None at the start.
    `frame_axis` counts the file's axes (not the leading runs axis); negative counts from the end."""
    runs, shape = x.shape[0], list(x.shape[1:])
    axis = frame_axis % len(shape)
    out_shape = shape.copy()
    out_shape[axis] += window - 1
    cache_size = int(np.prod(out_shape)) - int(np.prod(shape))
    if cache is None:
        cache = np.zeros((runs, cache_size), dtype=x.dtype)
    flat = np.concatenate([np.broadcast_to(cache, (runs, cache_size)), x.reshape(runs, -1)], axis=1)
    return flat.reshape(runs, *out_shape), flat[:, flat.shape[1] - cache_size :].copy()


@op("StreamingCache", bits=(8, 16, 32), note="ESP-DL's byte copy: cache ++ input on any frame axis, the last "
                                              "window-1 frames kept; zeroed by reset()", raw_integers="all")
def streaming_cache(ctx: Context, inputs):
    x, window, frame_axis = inputs[0], int(ctx.attributes["window_size"]), int(ctx.attributes.get("frame_axis", 1))
    shape = list(x.shape[1:])
    ctx.require(window >= 1 and -len(shape) <= frame_axis < len(shape),
                f"window_size {window}, frame_axis {frame_axis} for a {len(shape)}-axis input")
    shape[frame_axis] += window - 1
    ctx.require_size(shape, "the cache and the input")
    out, ctx.state["cache"] = streaming_cache_step(ctx.state.get("cache"), x, window, frame_axis)
    return [out]
