"""A causal temporal convolutional network for streaming audio features.

[batch, n_mels, frames] -> 1x1 input conv -> blocks of (depthwise dilated causal conv, ReLU,
pointwise conv, residual add, ReLU) -> causal average pooling -> 1x1 conv head per frame
-> [batch, n_classes, frames / stride]. The head is a 1x1 conv, not an nn.Linear over time:
a Linear over flattened time exports with a fixed frame count and cannot be chunked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from .layers import CausalAvgPool1d, CausalConv1d


@dataclass(frozen=True)
class TCNConfig:
    n_mels: int = 40
    channels: int = 96
    kernel_size: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16)
    pool_size: int = 4
    n_classes: int = 12
    input_stride: int = 2  # time subsampling of the input conv (kernel = stride, causal): 20 ms output frames

    def to_dict(self) -> dict:
        return asdict(self)


class TCNBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.depthwise = CausalConv1d(channels, channels, kernel_size, dilation=dilation, groups=channels)
        self.pointwise = nn.Conv1d(channels, channels, 1)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(x + self.pointwise(self.act(self.depthwise(x))))


class CausalTCN(nn.Module):
    def __init__(self, config: TCNConfig = TCNConfig()):
        super().__init__()
        self.config = config
        c = config
        if c.input_stride == 1:
            self.input = nn.Conv1d(c.n_mels, c.channels, 1)
        else:
            self.input = CausalConv1d(c.n_mels, c.channels, c.input_stride, stride=c.input_stride)
        self.blocks = nn.Sequential(*(TCNBlock(c.channels, c.kernel_size, d) for d in c.dilations))
        self.pool = CausalAvgPool1d(c.channels, c.pool_size)
        self.head = nn.Conv1d(c.channels, c.n_classes, 1)

    def forward(self, x):
        return self.head(self.pool(self.blocks(self.input(x))))
