"""PyTorch models that stream, each with its streaming rules derived from its causal layers."""

from .layers import CacheRule, CausalAvgPool1d, CausalConv1d, CausalTimeLayer, receptive_window
from .streaming import causal_layers, stream_in_chunks, streaming, streaming_rules, total_stride
from .lstm import EncoderConfig, StreamingEncoder
from .tcn import CausalTCN, TCNConfig

MODEL_NAMES = ("tcn", "lstm", "gru")


def build_model(name: str, seed: int = 0):
    """A shipped model by name, its weights initialised from `seed`."""
    import torch

    builders = {
        "tcn": lambda: CausalTCN(TCNConfig()),
        "lstm": lambda: StreamingEncoder(EncoderConfig(rnn="lstm")),
        "gru": lambda: StreamingEncoder(EncoderConfig(rnn="gru")),
    }
    if name not in builders:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)}")
    torch.manual_seed(seed)
    return builders[name]().eval()

__all__ = [
    "MODEL_NAMES",
    "build_model",
    "CacheRule",
    "CausalAvgPool1d",
    "CausalConv1d",
    "CausalTCN",
    "CausalTimeLayer",
    "EncoderConfig",
    "StreamingEncoder",
    "TCNConfig",
    "causal_layers",
    "receptive_window",
    "stream_in_chunks",
    "streaming",
    "streaming_rules",
    "total_stride",
]
