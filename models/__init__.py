"""PyTorch models that stream, each with its streaming rules derived from its causal layers."""

from .layers import CacheRule, CausalAvgPool1d, CausalConv1d, CausalTimeLayer, receptive_window
from .streaming import causal_layers, stream_in_chunks, streaming, streaming_rules, total_stride
from .lstm import EncoderConfig, StreamingEncoder
from .tcn import CausalTCN, TCNConfig

MODEL_NAMES = ("tcn", "lstm", "gru")


def clip_decision(frame_logits, threshold: float = 0.5):
    """Class of each 1 s clip from [clips, classes, frames] per-frame logits of a detection model whose classes
    are keywords, then `unknown`, then `silence` (the shipped models): the keyword whose posterior peaks highest,
    if that peak reaches `threshold`; else `unknown` if its posterior reaches it somewhere; else `silence`.

    A function of the frame logits alone, taking each class's peak over time: the decision after a stream's last
    chunk is exactly the offline one."""
    import numpy as np

    logits = np.asarray(frame_logits, dtype=np.float64)
    posteriors = np.exp(logits - logits.max(axis=1, keepdims=True))
    peaks = (posteriors / posteriors.sum(axis=1, keepdims=True)).max(axis=-1)  # [clips, classes]
    unknown, silence = peaks.shape[1] - 2, peaks.shape[1] - 1
    keyword = peaks[:, :unknown].argmax(axis=1)
    background = np.where(peaks[:, unknown] >= threshold, unknown, silence)
    return np.where(peaks[:, :unknown].max(axis=1) >= threshold, keyword, background)


class WeightsError(ValueError):
    """A weights file that cannot be read or does not fit the model; the message names the file and why."""


def load_weights(model, path) -> None:
    """Load a .safetensors file, or a state dict saved by torch.save (read with weights_only=True: no pickled code),
    into `model`."""
    from pathlib import Path

    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        text = str(e).strip()
        if text.startswith("Weights only load failed"):  # torch's refusal: many lines with terminal escapes
            reason = "torch.load with weights_only=True refused it: not a torch.save'd dict of tensors"
        else:
            reason = f"{type(e).__name__}: {text.splitlines()[0] if text else 'no message'}"
        raise WeightsError(f"{path}: not a readable state dict ({reason})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: holds no state dict of tensors")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise WeightsError(f"{path} does not fit the model: {first}") from e


def weights_path(name: str):
    from pathlib import Path

    return Path(__file__).resolve().parent / "weights" / f"{name}.safetensors"


def build_model(name: str, seed: int = 0, trained: bool = True):
    """A shipped model by name: its trained weights (models/weights/) if `trained` (FileNotFoundError if they
    are missing: never a silent random model), else a random initialisation from `seed`."""
    import torch

    builders = {
        "tcn": lambda: CausalTCN(TCNConfig()),
        "lstm": lambda: StreamingEncoder(EncoderConfig(d_model=96, ff_dim=192, rnn="lstm")),
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


def _weights_metadata(name: str) -> dict:
    if not weights_path(name).is_file():
        return {}
    from safetensors import safe_open

    with safe_open(str(weights_path(name)), "pt") as f:
        return f.metadata() or {}


def training_summary(name: str) -> dict | None:
    """What models/train.py recorded in the shipped weights (data, loss, time), or None."""
    import json

    return json.loads(_weights_metadata(name).get("training", "null"))


def detector_settings(name: str) -> dict | None:
    """The keyword detector chosen for the shipped model (export.detector.DetectorConfig as a dict), or None."""
    import json

    return json.loads(_weights_metadata(name).get("detector", "null"))


def record_detector(name: str, settings: dict) -> None:
    """Store the detector chosen for a shipped model beside its weights (same tensors, metadata updated)."""
    import json

    from safetensors.torch import load_file, save_file

    path = weights_path(name)
    metadata = {**_weights_metadata(name), "detector": json.dumps(settings)}
    save_file(load_file(str(path)), str(path), metadata=metadata)


__all__ = [
    "MODEL_NAMES",
    "WeightsError",
    "build_model",
    "clip_decision",
    "detector_settings",
    "load_weights",
    "record_detector",
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
