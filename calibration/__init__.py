"""Calibration and evaluation features: the front end, speech-like defaults, the user's own data."""

from .frontend import FbankConfig, fbank
from .loaders import DataError, load_features, require_clips
from .shipped import LabeledClips, calibration_clips, keyword_eval_set
from .synthetic import synthetic_features

__all__ = [
    "DataError",
    "FbankConfig",
    "LabeledClips",
    "calibration_clips",
    "fbank",
    "keyword_eval_set",
    "load_features",
    "require_clips",
    "synthetic_features",
]
