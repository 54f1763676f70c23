"""PyTorch models that stream, each with its streaming rules derived from its causal layers."""

from .layers import CacheRule, CausalAvgPool1d, CausalConv1d, CausalTimeLayer, receptive_window
from .streaming import causal_layers, stream_in_chunks, streaming, streaming_rules, total_stride
from .tcn import CausalTCN, TCNConfig

MODEL_NAMES = ("tcn",)


def build_model(name: str, seed: int = 0):
    """A shipped model by name, its weights initialised from `seed`."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)}")
    import torch

    torch.manual_seed(seed)
    return CausalTCN(TCNConfig()).eval()

__all__ = [
    "MODEL_NAMES",
    "build_model",
    "CacheRule",
    "CausalAvgPool1d",
    "CausalConv1d",
    "CausalTCN",
    "CausalTimeLayer",
    "TCNConfig",
    "causal_layers",
    "receptive_window",
    "stream_in_chunks",
    "streaming",
    "streaming_rules",
    "total_stride",
]
