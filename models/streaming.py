"""Model-level streaming: a model's cache rules and its internal-state streaming face in PyTorch."""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn

from .layers import CacheRule, CausalTimeLayer


def causal_layers(model: nn.Module) -> list[tuple[str, CausalTimeLayer]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, CausalTimeLayer)]


def streaming_rules(model: nn.Module) -> list[CacheRule]:
    """The caches the model needs to stream, in module order, derived from its layers."""
    return [layer.cache_rule(name) for name, layer in causal_layers(model)]


def total_stride(model: nn.Module) -> int:
    """Frames in per frame out along the deepest path: chunks must be a multiple of it."""
    return math.prod(layer.stride for _, layer in causal_layers(model)) or 1


@contextmanager
def streaming(model: nn.Module, batch_size: int = 1, device=None, dtype=torch.float32):
    """Put every causal layer in streaming mode with zeroed caches; offline again on exit."""
    layers = [layer for _, layer in causal_layers(model)]
    for layer in layers:
        layer.start_streaming(batch_size, device=device, dtype=dtype)
    try:
        yield model
    finally:
        for layer in layers:
            layer.stop_streaming()


@torch.no_grad()
def stream_in_chunks(model: nn.Module, x: torch.Tensor, chunk: int) -> list[torch.Tensor]:
    """Run `x` ([batch, features, frames]) through the model chunk by chunk; one output per chunk."""
    if x.shape[-1] % chunk:
        raise ValueError(f"{x.shape[-1]} frames do not split into chunks of {chunk}")
    with streaming(model, x.shape[0], x.device, x.dtype):
        return [model(part) for part in torch.split(x, chunk, dim=-1)]
