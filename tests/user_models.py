"""A corpus of models written the way users write them, and the verdict each must get.

Every model takes 40 log-mel features per frame; its factory is a module-level function, so any of
them can be given to the CLI as tests/user_models.py:<factory>. `CORPUS` says for each whether the whole
model streams (and with which caches and states) or which layer is refused and why. `export` marks the
models whose full export proves something the plan alone cannot: they must end ALL PASS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

MELS, CLASSES = 40, 12


# ---------------------------------------------------------------- convolutional, 1-D
class PaddedConvs(nn.Module):
    """Plain nn.Conv1d with F.pad on the left, dilated."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(MELS, 32, 3)
        self.conv2 = nn.Conv1d(32, 32, 3, dilation=2)
        self.out = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        x = F.relu(self.conv1(F.pad(x, (2, 0))))
        x = F.relu(self.conv2(F.pad(x, (4, 0))))
        return self.out(x)


class EspTutorialBlock(nn.Module):
    """ESP-DL's streaming tutorial model: SiLU, F.pad + depthwise conv, a sigmoid-gated product, a residual."""

    def __init__(self):
        super().__init__()
        self.prev_conv = nn.Conv1d(MELS, MELS, 1)
        self.expand = nn.Sequential(nn.Conv1d(MELS, 64, 1), nn.SiLU())
        self.depthwise = nn.Sequential(nn.Conv1d(64, 64, 3, groups=64), nn.SiLU())
        self.excite = nn.Sequential(nn.Conv1d(64, 16, 1), nn.SiLU(), nn.Conv1d(16, 64, 1), nn.Sigmoid())
        self.project = nn.Conv1d(64, MELS, 1)

    def forward(self, x):
        x = self.prev_conv(x)
        h = self.depthwise(F.pad(self.expand(x), (2, 0)))
        return self.project(h * self.excite(h)) + x


class Chomp1d(nn.Module):
    def __init__(self, chomp_size):
        super().__init__()
        self.chomp_size = chomp_size

    def forward(self, x):
        return x[:, :, : -self.chomp_size].contiguous()


class TemporalBlock(nn.Module):
    """locuslab's TCN block: symmetric padding, then the right frames cut; weight norm, dropout, a residual."""

    def __init__(self, n_inputs, n_outputs, kernel_size, dilation, dropout=0.2):
        super().__init__()
        padding = (kernel_size - 1) * dilation
        self.conv1 = nn.utils.parametrizations.weight_norm(
            nn.Conv1d(n_inputs, n_outputs, kernel_size, padding=padding, dilation=dilation))
        self.chomp1 = Chomp1d(padding)
        self.conv2 = nn.utils.parametrizations.weight_norm(
            nn.Conv1d(n_outputs, n_outputs, kernel_size, padding=padding, dilation=dilation))
        self.chomp2 = Chomp1d(padding)
        self.net = nn.Sequential(self.conv1, self.chomp1, nn.ReLU(), nn.Dropout(dropout),
                                 self.conv2, self.chomp2, nn.ReLU(), nn.Dropout(dropout))
        self.downsample = nn.Conv1d(n_inputs, n_outputs, 1) if n_inputs != n_outputs else None

    def forward(self, x):
        out = self.net(x)
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class LocuslabTCN(nn.Module):
    def __init__(self):
        super().__init__()
        self.network = nn.Sequential(TemporalBlock(MELS, 24, 3, 1), TemporalBlock(24, 24, 3, 2))
        self.head = nn.Conv1d(24, CLASSES, 1)

    def forward(self, x):
        return self.head(self.network(x))


class DSConv(nn.Module):
    def __init__(self, channels, kernel, dilation):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.depthwise = nn.Conv1d(channels, channels, kernel, dilation=dilation, groups=channels, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.pointwise = nn.Conv1d(channels, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)

    def forward(self, x):
        x = F.relu(self.bn1(self.depthwise(F.pad(x, (self.pad, 0)))))
        return F.relu(self.bn2(self.pointwise(x)))


class DSCNN1d(nn.Module):
    """A depthwise-separable CNN with BatchNorm after every conv (folded), as in kws_streaming's ds_cnn."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(MELS, 32, 1, bias=False), nn.BatchNorm1d(32), nn.ReLU())
        self.blocks = nn.Sequential(DSConv(32, 3, 1), DSConv(32, 3, 2), DSConv(32, 5, 1))
        self.classifier = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        return self.classifier(self.blocks(self.stem(x)))


class KernelEqualsStride(nn.Module):
    """Subsampling with kernel = stride and no padding: every chunk holds whole windows, no cache."""

    def __init__(self):
        super().__init__()
        self.subsample = nn.Conv1d(MELS, 32, 2, stride=2)
        self.conv = nn.Conv1d(32, 32, 3)
        self.head = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        return self.head(F.relu(self.conv(F.pad(F.relu(self.subsample(x)), (2, 0)))))


class StridedSymmetric(nn.Module):
    """nn.Conv1d(kernel 3, stride 2, padding 1): each output reads one frame ahead, but never past its chunk."""

    def __init__(self):
        super().__init__()
        self.subsample = nn.Conv1d(MELS, 32, 3, stride=2, padding=1)
        self.head = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        return self.head(F.relu(self.subsample(x)))


class SamePadding(nn.Module):
    def __init__(self, padding=1):
        super().__init__()
        self.conv = nn.Conv1d(MELS, 32, 3, padding=padding)
        self.head = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        return self.head(F.relu(self.conv(x)))


class RightPadded(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(MELS, CLASSES, 3)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 2)))


class LinearHead(nn.Module):
    """A causal conv, then a per-frame nn.Linear on [B, T, C] (transpose -> Linear -> transpose)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(MELS, 32, 3)
        self.fc = nn.Linear(32, CLASSES)

    def forward(self, x):
        h = F.relu(self.conv(F.pad(x, (2, 0))))
        return self.fc(h.transpose(1, 2)).transpose(1, 2)


class FrameMLP(nn.Module):
    """Reads [B, T, n_mels] (input layout BTF) and answers [B, T, classes]: per-frame Linear layers only."""

    def __init__(self):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(MELS, 64), nn.ReLU(), nn.Linear(64, CLASSES))

    def forward(self, x):
        return self.mlp(x)


class FlattenLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(MELS, 8, 1)
        self.fc = nn.Linear(8 * 96, CLASSES)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


class MeanOverTime(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(MELS, 32, 1)
        self.fc = nn.Linear(32, CLASSES)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).mean(dim=2))


class GlobalPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(MELS, CLASSES, 1)
        self.pool = nn.AdaptiveAvgPool1d(1)

    def forward(self, x):
        return self.pool(self.conv(x))


class MaxPoolHalf(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(MELS, 32, 1)
        self.pool = nn.MaxPool1d(2)
        self.head = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        return self.head(self.pool(F.relu(self.conv(x))))


class MaxPoolPadded(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool1d(3, stride=1, padding=1)
        self.head = nn.Conv1d(MELS, CLASSES, 1)

    def forward(self, x):
        return self.head(self.pool(x))


class CausalAvgPool(nn.Module):
    """F.pad on the left, then nn.AvgPool1d: a causal moving average."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(MELS, 32, 1)
        self.smooth = nn.AvgPool1d(4, stride=1)
        self.head = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        return self.head(self.smooth(F.pad(F.relu(self.conv(x)), (3, 0))))


class AvgPoolHalf(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool1d(2)
        self.head = nn.Conv1d(MELS, CLASSES, 1)

    def forward(self, x):
        return self.head(self.pool(x))


class TimeBias(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(MELS, CLASSES, 1)
        self.bias = nn.Parameter(torch.randn(CLASSES, 96) * 0.1)

    def forward(self, x):
        return self.conv(x) + self.bias


class PositionalEncoding(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("pe", torch.sin(torch.arange(500.0)[None, None, :] / (1 + torch.arange(float(MELS))[None, :, None])))
        self.conv = nn.Conv1d(MELS, CLASSES, 1)

    def forward(self, x):
        return self.conv(x + self.pe[:, :, : x.shape[-1]])


class InputBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(MELS)
        self.conv = nn.Conv1d(MELS, 32, 3)
        self.head = nn.Conv1d(32, CLASSES, 1)
        with torch.no_grad():
            self.norm.running_mean.uniform_(-2, 2)
            self.norm.running_var.uniform_(0.5, 2)

    def forward(self, x):
        return self.head(F.relu(self.conv(F.pad(self.norm(x), (2, 0)))))


class CMVN(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.linspace(-3, 3, MELS)[:, None])
        self.register_buffer("std", torch.linspace(0.5, 2, MELS)[:, None])
        self.conv = nn.Conv1d(MELS, 32, 3)
        self.head = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        x = (x - self.mean) / self.std
        return self.head(F.relu(self.conv(F.pad(x, (2, 0)))))


class TwoBranches(nn.Module):
    """Two causal convs of different windows on the same tensor: each needs its own cache."""

    def __init__(self):
        super().__init__()
        self.short = nn.Conv1d(MELS, 32, 3)
        self.long = nn.Conv1d(MELS, 32, 5)
        self.head = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        return self.head(F.relu(self.short(F.pad(x, (2, 0))) + self.long(F.pad(x, (4, 0)))))


class GatedConv(nn.Module):
    """WaveNet-style gated activation: tanh(a(x)) * sigmoid(b(x)), both causal on the same input."""

    def __init__(self):
        super().__init__()
        self.filter = nn.Conv1d(MELS, 32, 3)
        self.gate = nn.Conv1d(MELS, 32, 3)
        self.head = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        x = F.pad(x, (2, 0))
        return self.head(torch.tanh(self.filter(x)) * torch.sigmoid(self.gate(x)))


class GLUConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(MELS, 64, 3)
        self.glu = nn.GLU(dim=1)
        self.head = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        return self.head(self.glu(self.conv(F.pad(x, (2, 0)))))


class VoiceActivity(nn.Module):
    """A voice activity detector: one probability per frame, [B, T] (frames on axis 1 of a 2-D output)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(MELS, 16, 5)
        self.out = nn.Conv1d(16, 1, 1)

    def forward(self, x):
        return torch.sigmoid(self.out(F.relu(self.conv(F.pad(x, (4, 0)))))).squeeze(1)


class Activation(nn.Module):
    def __init__(self, act: nn.Module):
        super().__init__()
        self.conv = nn.Conv1d(MELS, 32, 3)
        self.act = act
        self.head = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        return self.head(self.act(self.conv(F.pad(x, (2, 0)))))


class ChannelNorm(nn.Module):
    """nn.LayerNorm over channels, per frame: transpose, normalise, transpose back."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(MELS, 32, 3)
        self.norm = nn.LayerNorm(32)
        self.head = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        h = self.conv(F.pad(x, (2, 0)))
        return self.head(F.gelu(self.norm(h.transpose(1, 2)).transpose(1, 2)))


class NormOverTime(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(MELS, CLASSES, 1)
        self.norm = nn.LayerNorm(96)

    def forward(self, x):
        return self.norm(self.conv(x))


class SoftmaxHead(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Conv1d(MELS, CLASSES, 1)
        self.dim = dim

    def forward(self, x):
        return torch.softmax(self.conv(x), dim=self.dim)


class LogitsAndEmbedding(nn.Module):
    """Two outputs, both per frame: the logits and the embedding before them."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Conv1d(MELS, 32, 3)
        self.head = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        embedding = F.relu(self.encoder(F.pad(x, (2, 0))))
        return self.head(embedding), embedding


class SelfAttention(nn.Module):
    """Dot-product self-attention over all frames, written out."""

    def __init__(self):
        super().__init__()
        self.query = nn.Linear(MELS, 32)
        self.key = nn.Linear(MELS, 32)
        self.head = nn.Linear(MELS, CLASSES)

    def forward(self, x):
        h = x.transpose(1, 2)
        weights = torch.softmax(self.query(h) @ self.key(h).transpose(1, 2) / 32**0.5, dim=-1)
        return self.head(weights @ h).transpose(1, 2)


class MultiheadAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = nn.MultiheadAttention(MELS, 4, batch_first=True)
        self.head = nn.Linear(MELS, CLASSES)

    def forward(self, x):
        h = x.transpose(1, 2)
        return self.head(self.attention(h, h, h, need_weights=False)[0]).transpose(1, 2)


class ConcatTime(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(MELS, CLASSES, 1)

    def forward(self, x):
        return self.conv(torch.cat([x[:, :, :1], x[:, :, :-1]], dim=2))


class SliceTime(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(MELS, CLASSES, 1)

    def forward(self, x):
        return self.conv(x)[:, :, 8:]


# ---------------------------------------------------------------- recurrent
class PlainLSTM(nn.Module):
    """nn.LSTM the ordinary way: [T, B, C] in, no states passed."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(MELS, 32)
        self.proj = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        out, _ = self.lstm(x.permute(2, 0, 1))
        return self.proj(out.permute(1, 2, 0))


class StackedGRU(nn.Module):
    """nn.GRU(num_layers=2, batch_first=True) reading [B, T, n_mels] (input layout BTF)."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(MELS, 32, num_layers=2, batch_first=True)
        self.proj = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.proj(out.transpose(1, 2))


class GRUFromZeros(nn.Module):
    """A 2-layer nn.GRU given its zero initial state explicitly, as many training scripts do."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(MELS, 16, num_layers=2, batch_first=True)
        self.proj = nn.Conv1d(16, CLASSES, 1)

    def forward(self, x):
        h0 = x.new_zeros(2, x.shape[0], 16)
        return self.proj(self.gru(x.transpose(1, 2), h0)[0].transpose(1, 2))


class ConvLSTMLinear(nn.Module):
    """A strided causal conv front end, a 2-layer LSTM, a per-frame nn.Linear head."""

    def __init__(self):
        super().__init__()
        self.frontend = nn.Conv1d(MELS, 32, 3, stride=2)
        self.lstm = nn.LSTM(32, 32, num_layers=2, batch_first=True)
        self.classifier = nn.Linear(32, CLASSES)

    def forward(self, x):
        h = F.relu(self.frontend(F.pad(x, (2, 0))))
        out, _ = self.lstm(h.transpose(1, 2))
        return self.classifier(out).transpose(1, 2)


class BidirectionalLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(MELS, 16, bidirectional=True, batch_first=True)
        self.proj = nn.Conv1d(32, CLASSES, 1)

    def forward(self, x):
        return self.proj(self.lstm(x.transpose(1, 2))[0].transpose(1, 2))


class LearnedInitialState(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(MELS, 16)
        self.h0 = nn.Parameter(torch.randn(1, 1, 16))
        self.proj = nn.Conv1d(16, CLASSES, 1)

    def forward(self, x):
        return self.proj(self.gru(x.permute(2, 0, 1), self.h0)[0].permute(1, 2, 0))


class LastStateClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(MELS, 16, batch_first=True)
        self.fc = nn.Linear(16, CLASSES)

    def forward(self, x):
        _, h = self.gru(x.transpose(1, 2))
        return self.fc(h[-1])


class HandWrittenStates(nn.Module):
    """The project's own interface: recurrent_state_names / get_init_states / encode, names chosen by the user."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(MELS, 16)
        self.head = nn.Conv1d(16, CLASSES, 1)

    def recurrent_state_names(self):
        return ["memory"]

    def get_init_states(self, batch_size=1, device=None):
        return {"memory": torch.zeros(1, batch_size, 16, device=device)}

    def encode(self, x, states):
        out, h = self.rnn(x.permute(2, 0, 1), states["memory"])
        return self.head(out.permute(1, 2, 0)), {"memory": h}

    def forward(self, x):
        return self.encode(x, self.get_init_states(x.shape[0]))[0]


# ---------------------------------------------------------------- 2-D (spectrogram) models
class DSCNN2d(nn.Module):
    """kws_streaming-style 2-D DS-CNN on [B, 1, T, n_mels] (time is the height): causal in time, 'same' in
    frequency; frequency averaged away at the end, a 1x1 conv per frame."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 16, (3, 3), stride=(1, 2))
        self.bn = nn.BatchNorm2d(16)
        self.depthwise = nn.Conv2d(16, 16, (3, 3), dilation=(2, 1), groups=16)
        self.pointwise = nn.Conv2d(16, 16, 1)
        self.pool = nn.AvgPool2d((1, 20))
        self.head = nn.Conv1d(16, CLASSES, 1)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(F.pad(x, (1, 1, 2, 0)))))
        h = F.relu(self.pointwise(F.relu(self.depthwise(F.pad(h, (1, 1, 4, 0))))))
        return self.head(self.pool(h).squeeze(3))


class CRNN(nn.Module):
    """A Conv2d front end on [B, 1, T, n_mels], frequency folded into channels, a GRU, a Linear head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, (3, 3), stride=(1, 2), padding=(0, 1))
        self.gru = nn.GRU(8 * 20, 32, batch_first=True)
        self.fc = nn.Linear(32, CLASSES)

    def forward(self, x):
        h = F.relu(self.conv(F.pad(x, (0, 0, 2, 0))))  # [B, 8, T, 20]
        h = h.permute(0, 2, 1, 3).reshape(h.shape[0], h.shape[2], -1)
        return self.fc(self.gru(h)[0]).transpose(1, 2)


class TimeOnWidth(nn.Module):
    """Conv2d on [B, 1, n_mels, T]: time is the width and the height is the 40 mel bins."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, (3, 3), padding=(1, 0))
        self.head = nn.Conv2d(8, CLASSES, (MELS, 1))

    def forward(self, x):
        return self.head(F.relu(self.conv(F.pad(x, (2, 0, 0, 0))))).squeeze(2)


class TimeOnWidthFlat(nn.Module):
    """Conv2d with (1, k) kernels on [B, n_mels, 1, T]: time is the width, the height one row."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(MELS, 32, (1, 3))
        self.head = nn.Conv2d(32, CLASSES, 1)

    def forward(self, x):
        return self.head(F.relu(self.conv(F.pad(x.unsqueeze(2), (2, 0, 0, 0))))).squeeze(2)


# ---------------------------------------------------------------- the corpus and its verdicts
@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], nn.Module]
    streams: bool
    layer: str = ""  # refused: the user's layer the refusal names
    reason: str = ""  # refused: words of its reason
    caches: tuple[int, ...] = ()  # streams: the frames of each cache
    states: int = 0  # streams: recurrent state pairs
    layout: str = "BFT"
    export: bool = False  # a full export proves what the plan alone cannot


CORPUS = [
    Case("padded_convs", PaddedConvs, True, caches=(2, 4), export=True),
    Case("esp_tutorial_block", EspTutorialBlock, True, caches=(2,), export=True),
    Case("locuslab_tcn", LocuslabTCN, True, caches=(2, 2, 4, 4), export=True),
    Case("ds_cnn_1d", DSCNN1d, True, caches=(2, 4, 4)),
    Case("kernel_equals_stride", KernelEqualsStride, True, caches=(2,), export=True),
    Case("strided_symmetric_padding", StridedSymmetric, True, caches=(1,), export=True),
    Case("same_padding", SamePadding, False, "conv", "it looks ahead"),
    Case("same_padding_string", lambda: SamePadding("same"), False, "conv", "it looks ahead"),
    Case("valid_conv", lambda: SamePadding(0), False, "conv", "output is shorter than its input"),
    Case("right_padded", RightPadded, False, "conv", "it looks ahead"),
    Case("linear_head", LinearHead, True, caches=(2,), export=True),
    Case("frame_mlp_btf", FrameMLP, True, layout="BTF", export=True),
    Case("flatten_linear", FlattenLinear, False, "(forward)", "merging the frames"),
    Case("mean_over_time", MeanOverTime, False, "(forward)", "reduces over frames"),
    Case("global_pool", GlobalPool, False, "pool", "pools over all frames"),
    Case("max_pool_half", MaxPoolHalf, True, export=True),
    Case("max_pool_padded", MaxPoolPadded, False, "pool", "-inf"),
    Case("causal_avg_pool", CausalAvgPool, True, caches=(3,), export=True),
    Case("avg_pool_half", AvgPoolHalf, True),
    Case("time_bias", TimeBias, False, "(forward)", "changes from frame to frame"),
    Case("positional_encoding", PositionalEncoding, False, "(forward)", "changes from frame to frame"),
    Case("input_batchnorm", InputBatchNorm, True, caches=(2,), export=True),
    Case("cmvn", CMVN, True, caches=(2,), export=True),
    Case("two_branches", TwoBranches, True, caches=(2, 4), export=True),
    Case("gated_conv", GatedConv, True, caches=(2, 2), export=True),
    Case("glu", GLUConv, True, caches=(2,), export=True),
    Case("relu6", lambda: Activation(nn.ReLU6()), True, caches=(2,), export=True),
    Case("leaky_relu", lambda: Activation(nn.LeakyReLU(0.1)), True, caches=(2,), export=True),
    Case("hardswish", lambda: Activation(nn.Hardswish()), True, caches=(2,), export=True),
    Case("prelu", lambda: Activation(nn.PReLU(32)), True, caches=(2,), export=True),
    Case("elu", lambda: Activation(nn.ELU()), True, caches=(2,), export=True),
    Case("silu", lambda: Activation(nn.SiLU()), True, caches=(2,), export=True),
    Case("softplus", lambda: Activation(nn.Softplus()), False, "act", "ESP-DL has no Softplus"),
    Case("layernorm_gelu", ChannelNorm, True, caches=(2,), export=True),
    Case("layernorm_over_time", NormOverTime, False, "norm", "normalises across frames"),
    Case("softmax_over_classes", lambda: SoftmaxHead(1), False, "(forward)", "float32 output"),
    Case("softmax_over_time", lambda: SoftmaxHead(2), False, "(forward)", "normalises across frames"),
    Case("logits_and_embedding", LogitsAndEmbedding, True, caches=(2,), export=True),
    Case("voice_activity", VoiceActivity, True, caches=(4,), export=True),
    Case("self_attention", SelfAttention, False, "(forward)", "both change over time"),
    Case("concat_in_time", ConcatTime, False, "(forward)", "cuts frames"),
    Case("slice_in_time", SliceTime, False, "(forward)", "cuts frames"),
    Case("plain_lstm", PlainLSTM, True, states=2, export=True),
    Case("stacked_gru_btf", StackedGRU, True, states=2, layout="BTF", export=True),
    Case("gru_from_zeros", GRUFromZeros, True, states=2),
    Case("conv_lstm_linear", ConvLSTMLinear, True, caches=(2,), states=4, export=True),
    Case("bidirectional_lstm", BidirectionalLSTM, False, "lstm", "reads the sequence from its end"),
    Case("learned_initial_state", LearnedInitialState, False, "gru", "a learned constant"),
    Case("last_state_classifier", LastStateClassifier, False, "fc", "no time axis"),
    Case("hand_written_states", HandWrittenStates, True, states=1, export=True),
    Case("ds_cnn_2d", DSCNN2d, True, caches=(2, 4), layout="B1TF", export=True),
    Case("crnn", CRNN, True, caches=(2,), states=1, layout="B1TF", export=True),
    Case("conv2d_time_on_width", TimeOnWidth, False, "conv", "time is the width", layout="B1FT"),
    Case("conv2d_time_on_flat_width", TimeOnWidthFlat, True, caches=(2,), export=True),
]
