"""Calibration and evaluation features: the front end, speech-like defaults, the user's own data."""

from .frontend import FbankConfig, fbank
from .loaders import DataError, load_features, require_clips
from .synthetic import synthetic_features

__all__ = ["DataError", "FbankConfig", "fbank", "load_features", "require_clips", "synthetic_features"]
