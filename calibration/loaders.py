"""Loaders for the user's own calibration data: WAV files, `.npy` feature arrays or one `.npz`.

Everything comes out as float32 [clips, n_mels, frames]. Longer recordings are cut into as many
whole windows of `frames` as they hold; anything that cannot give a clean clip is refused with one
line that says what to fix (DataError), never a traceback.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from .frontend import FbankConfig, fbank


class DataError(ValueError):
    """The user's data cannot be used; the message says why and what to do."""


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float waveform in [-1, 1] and its sample rate (PCM 8/16/24/32-bit; channels averaged)."""
    try:
        with wave.open(str(path), "rb") as f:
            rate, width, channels = f.getframerate(), f.getsampwidth(), f.getnchannels()
            raw = f.readframes(f.getnframes())
    except (wave.Error, EOFError, OSError) as e:
        raise DataError(f"{path}: not a readable PCM WAV file ({e})") from None
    if width == 1:
        pcm = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif width == 2:
        pcm = np.frombuffer(raw, "<i2").astype(np.float32) / 32768
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        pcm = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8).astype(np.float32) / 8388608
    elif width == 4:
        pcm = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648
    else:
        raise DataError(f"{path}: {8 * width}-bit samples are not supported (use 8, 16, 24 or 32-bit PCM)")
    return pcm.reshape(-1, channels).mean(axis=1), rate


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling through the spectrum (whole clip; fine for calibration clips)."""
    if rate == target:
        return x
    n_out = int(round(len(x) * target / rate))
    return np.fft.irfft(np.fft.rfft(x), n=n_out) * (n_out / len(x))


def _windows(features: np.ndarray, frames: int, source: str) -> list[np.ndarray]:
    if features.shape[1] < frames:
        raise DataError(
            f"{source}: {features.shape[1]} frames, shorter than the offline length of {frames} frames "
            f"(use longer clips or a smaller --frames)"
        )
    return [features[:, i : i + frames] for i in range(0, features.shape[1] - frames + 1, frames)]


def _check_features(array: np.ndarray, n_mels: int, source: str) -> np.ndarray:
    if array.ndim != 2 or array.shape[0] != n_mels:
        raise DataError(f"{source}: feature array of shape {array.shape}, expected [{n_mels} mel bins, frames]")
    if not np.isfinite(array).all():
        raise DataError(f"{source}: contains NaN or Inf values")
    return array.astype(np.float32)


def _from_array_file(path: Path, n_mels: int) -> list[tuple[np.ndarray, str]]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable NumPy file ({e})") from None
    arrays = [(loaded[k], f"{path}[{k}]") for k in sorted(loaded.files)] if path.suffix == ".npz" else [(loaded, str(path))]
    clips = []
    for array, source in arrays:
        batch = array if array.ndim == 3 else array[None]
        clips += [(_check_features(clip, n_mels, source), source) for clip in batch]
    return clips


def load_features(path: str | Path, frames: int, config: FbankConfig = FbankConfig()) -> np.ndarray:
    """[clips, n_mels, frames] from a WAV/.npy directory, a .wav, a .npy or a .npz file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    usable = [p for p in files if p.suffix.lower() in {".wav", ".npy", ".npz"}]
    if not usable:
        raise DataError(f"{path}: no .wav, .npy or .npz files found")
    clips: list[tuple[np.ndarray, str]] = []
    for p in usable:
        if p.suffix.lower() == ".wav":
            pcm, rate = read_wav(p)
            if not np.isfinite(pcm).all():
                raise DataError(f"{p}: contains NaN or Inf samples")
            clips.append((fbank(resample(pcm, rate, config.sample_rate), config), str(p)))
        else:
            clips += _from_array_file(p, config.n_mels)
    windows = [w for features, source in clips for w in _windows(features, frames, source)]
    return np.stack(windows).astype(np.float32)


def require_clips(features: np.ndarray, needed: int, source: str) -> np.ndarray:
    if len(features) < needed:
        raise DataError(f"{source}: {len(features)} clips of the offline length, need at least {needed} for calibration")
    return features
