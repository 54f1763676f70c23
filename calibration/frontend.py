"""Log-mel filterbank features, Kaldi-style, every parameter explicit.

The same computation as Kaldi's `compute-fbank-feats` (and kaldi-native-fbank) with dither 0:
snip-edges framing, DC removal, pre-emphasis, Povey window, power spectrum, triangular mel
bins on the Kaldi mel scale, natural log with a floor. Output layout is [n_mels, frames],
the layout the models take.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class FbankConfig:
    sample_rate: int = 16000
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    n_fft: int = 512
    n_mels: int = 40
    low_hz: float = 20.0
    high_hz: float = 7600.0
    preemphasis: float = 0.97
    window: str = "povey"
    log_floor: float = float(np.finfo(np.float32).eps)
    dither: float = 0.0  # kept 0: features must be deterministic

    @property
    def frame_length(self) -> int:
        return int(self.sample_rate * self.frame_length_ms / 1000)

    @property
    def frame_shift(self) -> int:
        return int(self.sample_rate * self.frame_shift_ms / 1000)

    @property
    def frames_per_second(self) -> float:
        return 1000.0 / self.frame_shift_ms

    def to_dict(self) -> dict:
        return asdict(self)


def _mel(hz):
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_filterbank(config: FbankConfig) -> np.ndarray:
    """[n_mels, n_fft // 2] triangular filters over the FFT bins below Nyquist (Kaldi's layout)."""
    bin_hz = config.sample_rate / config.n_fft
    mel_low, mel_high = _mel(config.low_hz), _mel(config.high_hz)
    delta = (mel_high - mel_low) / (config.n_mels + 1)
    left = mel_low + delta * np.arange(config.n_mels)[:, None]
    center, right = left + delta, left + 2 * delta
    mels = _mel(bin_hz * np.arange(config.n_fft // 2))[None, :]
    up = (mels - left) / (center - left)
    down = (right - mels) / (right - center)
    return np.maximum(0.0, np.minimum(up, down)) * ((mels > left) & (mels < right))


def _window(config: FbankConfig) -> np.ndarray:
    n = np.arange(config.frame_length)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / (config.frame_length - 1))
    if config.window == "povey":
        return hann**0.85
    if config.window == "hann":
        return hann
    raise ValueError(f"unknown window {config.window!r}: use 'povey' or 'hann'")


def fbank(waveform: np.ndarray, config: FbankConfig = FbankConfig()) -> np.ndarray:
    """Log-mel features [n_mels, frames] of a mono waveform (float, any scale) at config.sample_rate."""
    if config.dither:
        raise ValueError("dither must be 0: calibration and test features have to be reproducible")
    x = np.asarray(waveform, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected a mono waveform, got shape {x.shape}")
    if len(x) < config.frame_length:
        return np.zeros((config.n_mels, 0), dtype=np.float32)
    n_frames = 1 + (len(x) - config.frame_length) // config.frame_shift
    idx = np.arange(config.frame_length)[None, :] + config.frame_shift * np.arange(n_frames)[:, None]
    frames = x[idx]
    frames = frames - frames.mean(axis=1, keepdims=True)
    if config.preemphasis:
        frames = np.concatenate(
            [frames[:, :1] * (1 - config.preemphasis), frames[:, 1:] - config.preemphasis * frames[:, :-1]], axis=1
        )
    spectrum = np.abs(np.fft.rfft(frames * _window(config), n=config.n_fft)) ** 2
    energies = spectrum[:, : config.n_fft // 2] @ mel_filterbank(config).T
    return np.log(np.maximum(energies, config.log_floor)).T.astype(np.float32)
