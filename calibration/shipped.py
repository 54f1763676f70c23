"""The small sets shipped in calibration/data/ (made by kws_data.py): what `export-espdl` uses by default."""

from __future__ import annotations

import lzma
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"  # the shipped calibration and evaluation sets
# The evaluation clips' features are stored as integer multiples of this step (1/32 of a natural-log unit,
# 0.14 dB), LZMA-compressed: the decoded values are the data, exactly, in a file well under 5 MB.
FEATURE_STEP = 1 / 32


@dataclass(frozen=True)
class LabeledClips:
    features: np.ndarray  # float32 [clips, n_mels, frames]
    labels: np.ndarray  # int64 [clips]
    classes: tuple[str, ...]


def pack_features(features: np.ndarray) -> dict:
    steps = np.round(np.asarray(features, np.float64) / FEATURE_STEP).astype("<i2")
    return {"features_lzma": np.frombuffer(lzma.compress(steps.tobytes()), np.uint8),
            "features_shape": np.array(steps.shape, np.int64), "feature_step": np.float64(FEATURE_STEP)}


def unpack_features(data) -> np.ndarray:
    steps = np.frombuffer(lzma.decompress(data["features_lzma"].tobytes()), "<i2").reshape(data["features_shape"])
    return (steps * data["feature_step"]).astype(np.float32)


def calibration_clips() -> np.ndarray:
    """Recorded speech (pocketsphinx's English, fillets-ng's Czech) and synthetic English, mixed in a fixed order."""
    data = np.load(DATA / "calibration.npz")
    features = data["features"].astype(np.float32)
    return features[np.random.default_rng(0).permutation(len(features))]


def keyword_eval_set() -> LabeledClips:
    """1,008 clips of voices never heard in training, 84 per class."""
    data = np.load(DATA / "kws_eval.npz")
    return LabeledClips(unpack_features(data), data["labels"], tuple(str(c) for c in data["classes"]))
