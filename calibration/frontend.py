"""Log-mel filterbank features that ESP-DL's `dl::audio::Fbank` computes the same way on the chip.

ESP-DL's Fbank (esp-dl/audio, aligned with Kaldi's `compute-fbank-feats` and torchaudio.compliance.kaldi):
snip-edges framing (frame t covers samples [t·shift, t·shift + length)), per-frame DC removal, pre-emphasis whose
first sample uses itself as the previous one (y0 = (1 − α)·x0), a window, a zero-padded real FFT of the next power of
two, the power spectrum over bins 0..n_fft/2, triangular mel filters on the 1127·ln(1 + f/700) scale between
`low_hz` and `high_hz` (bins strictly inside a triangle), and log(max(energy, float32 epsilon)). No dither. A 16-bit
sample s enters as s / 32768, as our WAV reader gives it.

Only what ESP-DL's `SpeechFeatureConfig` can express is accepted (whole milliseconds, whole hertz, its window
names); `to_dict()` is that configuration with ESP-DL's field names, written into the `.espdl` metadata
(`frontend`) so the firmware builds the same front end. Output layout is [n_mels, frames], what the models take.
The computation here is float64; ESP-DL's is float32 (agreement measured in tests/test_calibration.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ESP-DL's WinType names. "hanning" is the symmetric Hann window (2π/(N−1)), "hann" the periodic one (2π/N).
WINDOWS = ("povey", "hanning", "hann", "hamming", "sine", "rectangular", "blackman")
BLACKMAN_COEFF = 0.42  # ESP-DL's default


@dataclass(frozen=True)
class FbankConfig:
    sample_rate: int = 16000
    frame_length_ms: int = 25
    frame_shift_ms: int = 10
    n_mels: int = 40
    low_hz: int = 20
    high_hz: int = 7600
    preemphasis: float = 0.97
    window: str = "povey"
    log_floor: float = float(np.finfo(np.float32).eps)
    remove_dc_offset: bool = True

    def __post_init__(self):
        whole = all(isinstance(v, int) for v in (self.sample_rate, self.frame_length_ms, self.frame_shift_ms,
                                                  self.n_mels, self.low_hz, self.high_hz))
        if not whole:
            raise ValueError("ESP-DL's Fbank takes whole milliseconds and hertz: sample_rate, frame_length_ms, "
                             "frame_shift_ms, n_mels, low_hz and high_hz must be integers")
        if self.window not in WINDOWS:
            raise ValueError(f"unknown window {self.window!r}: ESP-DL has {', '.join(WINDOWS)}")
        if not 0 <= self.low_hz < self.high_hz <= self.sample_rate // 2:
            raise ValueError(f"mel range {self.low_hz}-{self.high_hz} Hz must satisfy 0 <= low < high <= "
                             f"{self.sample_rate // 2} (Nyquist)")
        if not 0 <= self.preemphasis < 1:
            raise ValueError(f"pre-emphasis {self.preemphasis} must be in [0, 1) (ESP-DL asserts it)")
        if self.frame_shift <= 0 or self.frame_length < self.frame_shift:
            raise ValueError("frames must be at least one sample apart and no shorter than their shift")

    @property
    def frame_length(self) -> int:
        return self.frame_length_ms * self.sample_rate // 1000

    @property
    def frame_shift(self) -> int:
        return self.frame_shift_ms * self.sample_rate // 1000

    @property
    def n_fft(self) -> int:
        """ESP-DL's FFT size: the next power of two of the frame length (not configurable there)."""
        return 1 << (self.frame_length - 1).bit_length()

    @property
    def frames_per_second(self) -> float:
        return 1000.0 / self.frame_shift_ms

    def to_dict(self) -> dict:
        """ESP-DL's `SpeechFeatureConfig`, field by field: what the firmware sets to compute these features."""
        return {
            "sample_rate": self.sample_rate, "frame_length": self.frame_length_ms, "frame_shift": self.frame_shift_ms,
            "num_mel_bins": self.n_mels, "preemphasis": self.preemphasis, "window_type": self.window,
            "low_freq": self.low_hz, "high_freq": self.high_hz, "log_epsilon": self.log_floor, "use_log_fbank": 1,
            "use_power": True, "use_energy": False, "raw_energy": True, "remove_dc_offset": self.remove_dc_offset,
            "use_int16_fft": False, "input": "int16 PCM, mono; ESP-DL divides by 32768",
        }


def _mel(hz):
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_filterbank(config: FbankConfig) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangular filters; a bin counts only strictly inside its triangle."""
    mel_low, mel_high = _mel(config.low_hz), _mel(config.high_hz)
    delta = (mel_high - mel_low) / (config.n_mels + 1)
    left = mel_low + delta * np.arange(config.n_mels)[:, None]
    center, right = left + delta, left + 2 * delta
    mels = _mel(config.sample_rate / config.n_fft * np.arange(config.n_fft // 2 + 1))[None, :]
    up = (mels - left) / (center - left)
    down = (right - mels) / (right - center)
    return np.maximum(0.0, np.minimum(up, down))


def window(config: FbankConfig) -> np.ndarray:
    n = np.arange(config.frame_length)
    a = 2 * np.pi / (config.frame_length if config.window == "hann" else config.frame_length - 1)
    shapes = {
        "povey": lambda: (0.5 - 0.5 * np.cos(a * n)) ** 0.85,
        "hanning": lambda: 0.5 - 0.5 * np.cos(a * n),
        "hann": lambda: 0.5 - 0.5 * np.cos(a * n),
        "hamming": lambda: 0.54 - 0.46 * np.cos(a * n),
        "sine": lambda: np.sin(0.5 * a * n),
        "rectangular": lambda: np.ones(len(n)),
        "blackman": lambda: BLACKMAN_COEFF - 0.5 * np.cos(a * n) + (0.5 - BLACKMAN_COEFF) * np.cos(2 * a * n),
    }
    return shapes[config.window]()


def fbank(waveform: np.ndarray, config: FbankConfig = FbankConfig()) -> np.ndarray:
    """Log-mel features [n_mels, frames] of a mono waveform in [-1, 1] at config.sample_rate."""
    x = np.asarray(waveform, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected a mono waveform, got shape {x.shape}")
    if len(x) < config.frame_length:
        return np.zeros((config.n_mels, 0), dtype=np.float32)
    n_frames = 1 + (len(x) - config.frame_length) // config.frame_shift
    idx = np.arange(config.frame_length)[None, :] + config.frame_shift * np.arange(n_frames)[:, None]
    frames = x[idx]
    if config.remove_dc_offset:
        frames = frames - frames.mean(axis=1, keepdims=True)
    if config.preemphasis:
        frames = np.concatenate(
            [frames[:, :1] * (1 - config.preemphasis), frames[:, 1:] - config.preemphasis * frames[:, :-1]], axis=1
        )
    spectrum = np.abs(np.fft.rfft(frames * window(config), n=config.n_fft)) ** 2
    energies = spectrum @ mel_filterbank(config).T
    return np.log(np.maximum(energies, config.log_floor)).T.astype(np.float32)
