"""PyTorch models that stream, each with its streaming rules derived from its causal layers."""

from .layers import CacheRule, CausalAvgPool1d, CausalConv1d, CausalTimeLayer, receptive_window
from .streaming import causal_layers, stream_in_chunks, streaming, streaming_rules, total_stride
from .lstm import EncoderConfig, StreamingEncoder
from .tcn import CausalTCN, TCNConfig

MODEL_NAMES = ("tcn", "lstm", "gru")


def clip_decision(frame_logits):
    """Class of each clip from [clips, classes, frames] per-frame logits: the argmax of their time-average.

    The running average after a stream's last chunk is exactly the offline decision."""
    import numpy as np

    return np.asarray(frame_logits, dtype=np.float64).mean(axis=-1).argmax(axis=-1)


def weights_path(name: str):
    from pathlib import Path

    return Path(__file__).resolve().parent / "weights" / f"{name}.safetensors"


def build_model(name: str, seed: int = 0, trained: bool = True):
    """A shipped model by name: its trained weights (models/weights/) if `trained` (FileNotFoundError if they
    are missing: never a silent random model), else a random initialisation from `seed`."""
    import torch

    builders = {
        "tcn": lambda: CausalTCN(TCNConfig()),
        "lstm": lambda: StreamingEncoder(EncoderConfig(rnn="lstm")),
        "gru": lambda: StreamingEncoder(EncoderConfig(rnn="gru")),
    }
    if name not in builders:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)}")
    torch.manual_seed(seed)
    model = builders[name]()
    if trained:
        from safetensors.torch import load_file

        if not weights_path(name).is_file():
            raise FileNotFoundError(f"{weights_path(name)}: the shipped weights of {name!r} are missing")
        model.load_state_dict(load_file(str(weights_path(name))))
    return model.eval()


def training_summary(name: str) -> dict | None:
    """What models/train.py recorded in the shipped weights (data, accuracy, time), or None."""
    import json

    if not weights_path(name).is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(weights_path(name)), "pt") as f:
        return json.loads(f.metadata().get("training", "null"))

__all__ = [
    "MODEL_NAMES",
    "build_model",
    "clip_decision",
    "training_summary",
    "weights_path",
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
