"""The small sets shipped in calibration/data/ (made by kws_data.py): what `export-espdl` uses by default."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class LabeledClips:
    features: np.ndarray  # float32 [clips, n_mels, frames]
    labels: np.ndarray  # int64 [clips]
    classes: tuple[str, ...]


def calibration_clips() -> np.ndarray:
    """Recorded speech (pocketsphinx's English, fillets-ng's Czech) and synthetic English, mixed in a fixed order."""
    data = np.load(DATA / "calibration.npz")
    features = data["features"].astype(np.float32)
    return features[np.random.default_rng(0).permutation(len(features))]


def keyword_eval_set() -> LabeledClips:
    """360 clips of voices never heard in training, 30 per class."""
    data = np.load(DATA / "kws_eval.npz")
    return LabeledClips(data["features"].astype(np.float32), data["labels"], tuple(str(c) for c in data["classes"]))
