"""A streaming LSTM (or GRU) speech encoder, sized for a microcontroller.

[batch, n_mels, frames] -> causal conv subsampling (time stride 2 or 4) -> N layers of
(LSTM, small feed-forward block, each with a residual connection) -> 1x1 conv head per frame
-> [batch, n_classes, frames / stride].

Its faces:
- training: layer dropout with a warmup schedule (a layer's output is mixed with its input by a
  random alpha; warmup_scale = min(0.1 + warmup, 1.0); alpha 0.1 when the layer is bypassed), and
  a random combination of the outputs of auxiliary layers (one-hot with some probability, else
  softmax weights favouring the last layer);
- offline inference: deterministic, all layers, last layer only, from zero state;
- streaming with explicit state: `forward(chunk, lengths, states)` returns the next states; the
  state holds every LSTM's (hidden, cell) and every front-end conv cache, so a step needs nothing
  else. On ESP-DL the conv caches become StreamingCache nodes and only the recurrent states stay
  graph inputs and outputs (`recurrent_state_names`).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .layers import CausalConv1d

States = dict[str, torch.Tensor]


@dataclass(frozen=True)
class EncoderConfig:
    n_mels: int = 40
    d_model: int = 64
    ff_dim: int = 128
    num_layers: int = 3
    subsampling: int = 4  # time stride of the front end: 2 or 4
    n_classes: int = 12
    rnn: str = "lstm"  # or "gru"
    layer_dropout: float = 0.075  # probability a layer is bypassed in training
    aux_layers: tuple[int, ...] = (0, 1)  # 0-based layers whose outputs may be combined with the last one in training
    aux_one_hot_prob: float = 0.5

    def __post_init__(self):
        if self.subsampling not in (2, 4):
            raise ValueError(f"subsampling must be 2 or 4, got {self.subsampling}")
        if self.rnn not in ("lstm", "gru"):
            raise ValueError(f"rnn must be 'lstm' or 'gru', got {self.rnn!r}")
        if any(not 0 <= i < self.num_layers - 1 for i in self.aux_layers):
            raise ValueError(f"aux_layers {self.aux_layers} must name layers before the last of {self.num_layers}")

    def to_dict(self) -> dict:
        return asdict(self)


class EncoderLayer(nn.Module):
    """LSTM/GRU over time and a 1x1 projection, then a per-frame feed-forward block; both residual.

    [B, C, T] in and out. The projection is there for the chip: ESP-DL moves data through a
    Transpose without rescaling it, so a recurrence's output must reach the residual Add through an
    op that can requantize to the Add's exponent, not through a Transpose alone.
    """

    def __init__(self, d_model: int, ff_dim: int, rnn: str):
        super().__init__()
        self.rnn = (nn.LSTM if rnn == "lstm" else nn.GRU)(d_model, d_model)
        self.proj = nn.Conv1d(d_model, d_model, 1)
        self.ff = nn.Sequential(nn.Conv1d(d_model, ff_dim, 1), nn.ReLU(), nn.Conv1d(ff_dim, d_model, 1))

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        sequence = x.permute(2, 0, 1)  # [T, B, C]: the layout ESP-DL's LSTM takes (layout 0)
        if isinstance(self.rnn, nn.LSTM):
            out, (h, c) = self.rnn(sequence, state)
            new_state = (h, c)
        else:
            out, h = self.rnn(sequence, state[0])
            new_state = (h,)
        x = x + self.proj(out.permute(1, 2, 0))
        return x + self.ff(x), new_state


class StreamingEncoder(nn.Module):
    def __init__(self, config: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.config = c = config
        stages = [CausalConv1d(c.n_mels, c.d_model, 3, stride=2), nn.ReLU()]
        if c.subsampling == 4:
            stages += [CausalConv1d(c.d_model, c.d_model, 3, stride=2), nn.ReLU()]
        self.frontend = nn.Sequential(*stages)
        self.layers = nn.ModuleList(EncoderLayer(c.d_model, c.ff_dim, c.rnn) for _ in range(c.num_layers))
        self.head = nn.Conv1d(c.d_model, c.n_classes, 1)

    # ---------------------------------------------------------------- states
    @property
    def state_kinds(self) -> tuple[str, ...]:
        return ("h", "c") if self.config.rnn == "lstm" else ("h",)

    def recurrent_state_names(self) -> list[str]:
        """Names of the recurrent states, layer by layer: h0, c0, h1, c1, ... (GRU: h0, h1, ...)."""
        return [f"{kind}{i}" for i in range(self.config.num_layers) for kind in self.state_kinds]

    def _convs(self) -> list[CausalConv1d]:
        return [m for m in self.frontend if isinstance(m, CausalConv1d)]

    def get_init_states(self, batch_size: int = 1, device=None) -> States:
        """Zero states: every layer's recurrent state [1, batch, d_model] and every front-end conv cache."""
        d = self.config.d_model
        states = {name: torch.zeros(1, batch_size, d, device=device) for name in self.recurrent_state_names()}
        for i, conv in enumerate(self._convs()):
            states[f"conv{i}"] = conv.init_cache(batch_size, device)
        return states

    def _check_states(self, states: States, batch_size: int) -> None:
        expected = self.get_init_states(batch_size)
        if set(states) != set(expected):
            raise ValueError(f"states must have the keys {sorted(expected)}, got {sorted(states)}")
        for name, zero in expected.items():
            if states[name].shape != zero.shape:
                raise ValueError(f"state {name} has shape {tuple(states[name].shape)}, expected {tuple(zero.shape)}")

    # ---------------------------------------------------------------- forward
    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for conv in self._convs():
            lengths = torch.div(lengths + conv.stride - 1, conv.stride, rounding_mode="floor")
        return lengths

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None, states: States | None = None, warmup: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor, States]:
        """Offline from zero state (states=None), or one streaming step (states given, eval mode only)."""
        batch = x.shape[0]
        if lengths is None:
            lengths = torch.full((batch,), x.shape[-1], dtype=torch.long, device=x.device)
        if states is None:
            states = self.get_init_states(batch, x.device)
            conv_caches = None
        else:
            assert not self.training, "streaming with states is for inference: call model.eval() first"
            self._check_states(states, batch)
            conv_caches = [states[f"conv{i}"] for i in range(len(self._convs()))]
        y, new_states = self.encode(x, {k: states[k] for k in self.recurrent_state_names()}, conv_caches, warmup)
        return y, self.output_lengths(lengths), new_states

    def encode(
        self, x: torch.Tensor, recurrent: States, conv_caches: list[torch.Tensor] | None = None, warmup: float = 1.0
    ) -> tuple[torch.Tensor, States]:
        new_states: States = {}
        h = x
        for stage in self.frontend:
            if isinstance(stage, CausalConv1d) and conv_caches is not None:
                k = len([name for name in new_states if name.startswith("conv")])
                h, new_states[f"conv{k}"] = stage.step(h, conv_caches[k])
            else:
                h = stage(h)
        layer_outputs = []
        for i, layer in enumerate(self.layers):
            state = tuple(recurrent[f"{kind}{i}"] for kind in self.state_kinds)
            out, new_state = layer(h, state)
            if self.training:
                out = self._layer_dropout(h, out, warmup)
            h = out
            layer_outputs.append(h)
            new_states.update({f"{kind}{i}": s for kind, s in zip(self.state_kinds, new_state)})
        if self.training and self.config.aux_layers:
            h = self._combine_aux(layer_outputs)
        ordered = {k: new_states[k] for k in self.recurrent_state_names()}
        ordered.update({k: v for k, v in new_states.items() if k.startswith("conv")})
        return self.head(h), ordered

    # ---------------------------------------------------------------- training-only randomness
    def _layer_dropout(self, x_in: torch.Tensor, x_out: torch.Tensor, warmup: float) -> torch.Tensor:
        """Mix a layer's output with its input: alpha = warmup_scale, or 0.1 when the layer is bypassed."""
        warmup_scale = min(0.1 + warmup, 1.0)
        if random.random() < self.config.layer_dropout:
            alpha = 0.1
        else:
            alpha = warmup_scale
        return alpha * x_out + (1 - alpha) * x_in if alpha != 1.0 else x_out

    def _combine_aux(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """A random combination of the auxiliary layers' outputs and the last layer's."""
        chosen = [outputs[i] for i in self.config.aux_layers] + [outputs[-1]]
        n = len(chosen)
        if random.random() < self.config.aux_one_hot_prob:
            weights = torch.zeros(n)
            weights[random.randrange(n)] = 1.0
        else:
            logits = torch.randn(n)
            logits[-1] += math.log(2 * n)  # favour the last layer
            weights = torch.softmax(logits, dim=0)
        return sum(w * o for w, o in zip(weights.tolist(), chosen))
