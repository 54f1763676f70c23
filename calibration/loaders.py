"""Loaders for the user's own data: WAV files, `.npy` feature arrays or one `.npz`, whole or block by block.

Everything comes out as float32 [n_mels, frames] features ([clips, n_mels, frames] for calibration). Longer
recordings are cut into as many whole windows of `frames` as they hold; anything that cannot give a clean clip is
refused with one line that says what to fix (DataError), never a traceback. WAV files are read block by block,
so a recording of any length takes bounded memory; audio at another sample rate than the front end's is refused
everywhere (calibration and `stream` alike), never resampled behind the user's back.

The sanity checks say what no audio front end produces: NaN or Inf, magnitudes beyond FEATURE_LIMIT (a log-mel
front end stays within a few tens; dB-scaled ones within a few hundred), and, for calibration, data that carries
no signal (constant, or spanning less than MIN_SPREAD): quantization would calibrate on it silently.
"""

from __future__ import annotations

import wave
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .frontend import FbankConfig, fbank

FEATURE_LIMIT = 1e4
MIN_SPREAD = 1e-3
BLOCK_FRAMES = 500  # frames of features computed at once from a WAV: 5 s of audio, about 10 MB of work


class DataError(ValueError):
    """The user's data cannot be used; the message says why and what to do."""


def check_values(array: np.ndarray, source: str, needs_signal: bool = True) -> None:
    """Refuse (DataError) values no audio front end produces; with `needs_signal`, also data without signal."""
    if array.size == 0:
        raise DataError(f"{source}: empty (no values)")
    if not np.isfinite(array).all():
        raise DataError(f"{source}: contains NaN or Inf values")
    low, high = float(array.min()), float(array.max())
    if max(-low, high) > FEATURE_LIMIT:
        raise DataError(f"{source}: values reach {low if -low > high else high:.3g}, beyond what any audio front end "
                        f"gives (log-mel: within a few tens; |value| <= {FEATURE_LIMIT:g} accepted): compute the "
                        "features with calibration.fbank")
    if needs_signal and high == low:
        raise DataError(f"{source}: every value is {low:.6g} (silence or padding, no signal): "
                        "calibrate on recordings of real audio")
    if needs_signal and high - low < MIN_SPREAD:
        raise DataError(f"{source}: values span only {high - low:.3g} (from {low:.6g} to {high:.6g}), less than any "
                        "front end's output on real audio: calibrate on recordings of real audio")


def require_rate(path: Path, rate: int, config: FbankConfig) -> None:
    if rate != config.sample_rate:
        raise DataError(f"{path}: {rate} Hz audio; the front end takes {config.sample_rate} Hz: convert it first "
                        f"(e.g. sox in.wav -r {config.sample_rate} out.wav)")


@dataclass
class _WavFormat:
    rate: int
    width: int
    channels: int
    samples: int  # per channel, as the header says


def _pcm(raw: bytes, fmt: _WavFormat) -> np.ndarray:
    """Mono float32 in [-1, 1] from PCM bytes (8/16/24/32-bit; channels averaged; a torn last frame dropped)."""
    frame_bytes = fmt.width * fmt.channels
    raw = raw[: len(raw) - len(raw) % frame_bytes]
    if fmt.width == 1:
        pcm = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif fmt.width == 2:
        pcm = np.frombuffer(raw, "<i2").astype(np.float32) / 32768
    elif fmt.width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        pcm = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8).astype(np.float32) / 8388608
    else:
        pcm = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648
    return pcm.reshape(-1, fmt.channels).mean(axis=1)


def _open_wav(path: Path) -> tuple[wave.Wave_read, _WavFormat]:
    try:
        f = wave.open(str(path), "rb")
        fmt = _WavFormat(f.getframerate(), f.getsampwidth(), f.getnchannels(), f.getnframes())
    except (wave.Error, EOFError, OSError) as e:
        raise DataError(f"{path}: not a readable PCM WAV file ({e})") from None
    if fmt.width not in (1, 2, 3, 4):
        f.close()
        raise DataError(f"{path}: {8 * fmt.width}-bit samples are not supported (use 8, 16, 24 or 32-bit PCM)")
    return f, fmt


def _read_frames(f: wave.Wave_read, n: int, path: Path) -> bytes:
    try:
        return f.readframes(n)
    except (wave.Error, EOFError, OSError) as e:
        raise DataError(f"{path}: the WAV data cannot be read ({e})") from None


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float waveform in [-1, 1] and its sample rate, the whole file at once (for short clips)."""
    f, fmt = _open_wav(path)
    with f:
        return _pcm(_read_frames(f, fmt.samples, path), fmt), fmt.rate


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling through the spectrum (whole clip; for generating data, not for the user's)."""
    if rate == target:
        return x
    n_out = int(round(len(x) * target / rate))
    return np.fft.irfft(np.fft.rfft(x), n=n_out) * (n_out / len(x))


def frames_in(samples: int, config: FbankConfig) -> int:
    """Feature frames the front end makes of `samples` samples (whole frames only)."""
    return 0 if samples < config.frame_length else 1 + (samples - config.frame_length) // config.frame_shift


def wav_frames(path: Path, config: FbankConfig = FbankConfig()) -> int:
    """Feature frames a WAV file gives, from its header (the sample rate checked)."""
    f, fmt = _open_wav(path)
    f.close()
    require_rate(path, fmt.rate, config)
    return frames_in(fmt.samples, config)


def wav_features(path: Path, config: FbankConfig = FbankConfig(), block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Log-mel features [n_mels, <= block_frames] of a WAV file, block by block, in bounded memory.

    Each block is the front end run on a sample range that covers whole frames (frame i starts at sample
    i * frame_shift), and the samples after the last whole frame carry over: joined, the blocks are the
    whole file's features."""
    f, fmt = _open_wav(path)
    with f:
        require_rate(path, fmt.rate, config)
        carry, read = np.zeros(0, np.float32), 0
        while raw := _read_frames(f, block_frames * config.frame_shift, path):
            samples = _pcm(raw, fmt)
            carry, read = np.concatenate([carry, samples]), read + len(samples)
            n = frames_in(len(carry), config)
            if n:
                yield fbank(carry[: (n - 1) * config.frame_shift + config.frame_length], config)
                carry = carry[n * config.frame_shift :]
    if read < fmt.samples:
        raise DataError(f"{path}: truncated: its header announces {fmt.samples} samples, the file holds {read}")


def _windows(features: np.ndarray, frames: int, source: str) -> list[np.ndarray]:
    if features.shape[1] < frames:
        raise DataError(
            f"{source}: {features.shape[1]} frames, shorter than the offline length of {frames} frames "
            f"(use longer clips or a smaller --frames)"
        )
    return [features[:, i : i + frames] for i in range(0, features.shape[1] - frames + 1, frames)]


def check_feature_array(array: np.ndarray, n_mels: int, source: str, clips: bool = False) -> None:
    """The layout [n_mels, frames] (or [clips, n_mels, frames] with `clips`) of real numbers, or DataError."""
    expected = f"[{'clips, ' if clips else ''}{n_mels} mel bins, frames]"
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise DataError(f"{source}: values of type {array.dtype}, expected real numbers {expected}")
    if array.ndim != 2 + clips or array.shape[-2] != n_mels:
        raise DataError(f"{source}: feature array of shape {list(array.shape)}, expected {expected}")


def _load_array_file(path: Path, mmap: bool = False):
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable NumPy file ({e})") from None


def _from_array_file(path: Path, n_mels: int) -> list[tuple[np.ndarray, str]]:
    loaded = _load_array_file(path)
    if path.suffix.lower() == ".npz":
        if not loaded.files:
            raise DataError(f"{path}: holds no arrays")
        try:
            arrays = [(loaded[k], f"{path}[{k}]") for k in sorted(loaded.files)]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"{path}: an array cannot be read ({e})") from None
    else:
        arrays = [(loaded, str(path))]
    clips = []
    for array, source in arrays:
        check_feature_array(array, n_mels, source, clips=array.ndim == 3)
        batch = array if array.ndim == 3 else array[None]
        check_values(batch, source)
        clips += [(clip.astype(np.float32), source) for clip in batch]
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
            features = np.concatenate([np.zeros((config.n_mels, 0), np.float32), *wav_features(p, config)], axis=1)
            if features.shape[1]:
                check_values(features, str(p))
            clips.append((features, str(p)))
        else:
            clips += _from_array_file(p, config.n_mels)
    windows = [w for features, source in clips for w in _windows(features, frames, source)]
    return np.stack(windows).astype(np.float32)


def feature_stream(path: Path, config: FbankConfig = FbankConfig(),
                   block_frames: int = BLOCK_FRAMES) -> tuple[int, Iterator[np.ndarray]]:
    """The frames a .wav recording or a .npy of [n_mels, frames] features gives (from its header), and its
    features block by block in bounded memory (a WAV read in blocks, a .npy memory-mapped), each block checked."""
    suffix = path.suffix.lower()
    if suffix == ".wav":
        return wav_frames(path, config), wav_features(path, config, block_frames)
    if suffix != ".npy":
        raise DataError(f"{path}: give a .wav recording or a .npy of features")
    array = _load_array_file(path, mmap=True)
    check_feature_array(array, config.n_mels, str(path))

    def blocks() -> Iterator[np.ndarray]:
        for start in range(0, array.shape[1], block_frames):
            block = np.asarray(array[:, start : start + block_frames], dtype=np.float32)
            check_values(block, f"{path} (frames {start} to {start + block.shape[1] - 1})", needs_signal=False)
            yield block

    return array.shape[1], blocks()


def require_clips(features: np.ndarray, needed: int, source: str) -> np.ndarray:
    if len(features) < needed:
        raise DataError(f"{source}: {len(features)} clips of the offline length, need at least {needed} for calibration")
    return features
