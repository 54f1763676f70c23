"""Causal time layers that know how they stream.

Every layer here has the faces of a streaming layer (as in google-research's kws_streaming):
- offline: the whole sequence at once, left-padded with zeros so no output looks ahead;
- streaming with internal state: fed chunk by chunk, it keeps the last `window - 1` input frames
  in a zero-initialised cache, exactly what ESP-DL's StreamingCache does on the chip;
- streaming with external state (`step`): the cache goes in and comes out with each chunk.
The exported external-state face (caches as ONNX graph inputs and outputs) is built from the
ONNX graph in `export/`, so it covers any model built from these layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def receptive_window(kernel_size: int, dilation: int = 1) -> int:
    """Frames one output of a (dilated) kernel reads: the StreamingCache window it needs."""
    return dilation * (kernel_size - 1) + 1


@dataclass(frozen=True)
class CacheRule:
    """What one causal layer needs to stream: a cache of `window - 1` frames of its input."""

    layer: str  # module path in the model, e.g. "blocks.0.depthwise"
    window: int
    stride: int
    channels: int


class CausalTimeLayer(nn.Module):
    """Base of the causal layers: zero left padding offline, a frame cache when streaming."""

    def __init__(self, channels: int, window: int, stride: int):
        super().__init__()
        self.channels = channels
        self.window = window
        self.stride = stride
        self._cache: torch.Tensor | None = None  # None: offline mode

    def apply_valid(self, x: torch.Tensor) -> torch.Tensor:
        """The time operation on an input that already holds its `window - 1` history frames."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._cache is None:
            return self.apply_valid(F.pad(x, (self.window - 1, 0)))
        y, self._cache = self.step(x, self._cache)
        return y

    def step(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Streaming with external state: one chunk and the cache before it -> output and the next cache."""
        if x.shape[-1] % self.stride:
            raise ValueError(f"chunk of {x.shape[-1]} frames is not a multiple of the layer stride {self.stride}")
        buffered = torch.cat([cache, x], dim=-1)
        return self.apply_valid(buffered), buffered[..., buffered.shape[-1] - (self.window - 1) :]

    def init_cache(self, batch_size: int, device=None, dtype=torch.float32) -> torch.Tensor:
        return torch.zeros(batch_size, self.channels, self.window - 1, device=device, dtype=dtype)

    def start_streaming(self, batch_size: int, device=None, dtype=torch.float32) -> None:
        self._cache = self.init_cache(batch_size, device, dtype)

    def stop_streaming(self) -> None:
        self._cache = None

    def cache_rule(self, name: str) -> CacheRule:
        return CacheRule(layer=name, window=self.window, stride=self.stride, channels=self.channels)


class CausalConv1d(CausalTimeLayer):
    """Conv1d over time with any kernel, dilation, stride and groups, never looking ahead."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dilation: int = 1,
        stride: int = 1,
        groups: int = 1,
        bias: bool = True,
    ):
        super().__init__(in_channels, receptive_window(kernel_size, dilation), stride)
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride=stride, dilation=dilation, groups=groups, bias=bias
        )

    def apply_valid(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class CausalAvgPool1d(CausalTimeLayer):
    """Average of the current frame and the `kernel_size - 1` frames before it (zeros before the start)."""

    def __init__(self, channels: int, kernel_size: int, stride: int = 1):
        super().__init__(channels, kernel_size, stride)
        self.kernel_size = kernel_size

    def apply_valid(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool1d(x, self.kernel_size, self.stride)
