"""Speech-like audio made offline, for calibration and evaluation when no recordings are given.

Each clip is a source-filter synthesis: a sequence of phone-like segments (voiced vowels on a
gliding pitch with three formants, unvoiced fricatives, short stops and pauses), passed through
the real front end. The features have what quantization calibration must see in speech: harmonic
structure, formant movement, onsets, near-silence and a wide dynamic range. Real recorded speech
replaces it as the shipped default once a calibration set is committed.
"""

from __future__ import annotations

import numpy as np

from .frontend import FbankConfig, fbank

_VOWEL_FORMANTS = np.array(  # F1, F2, F3 in Hz of a few English vowels
    [[730, 1090, 2440], [270, 2290, 3010], [530, 1840, 2480], [570, 840, 2410], [300, 870, 2240], [660, 1720, 2410]]
)


def _envelope(freqs: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    response = np.zeros_like(freqs)
    for f, bw in zip(formants, bandwidths):
        response += 1.0 / (1.0 + ((freqs - f) / (bw / 2)) ** 2)
    return response


def synth_utterance(rng: np.random.Generator, seconds: float, sample_rate: int) -> np.ndarray:
    n = int(seconds * sample_rate)
    out = np.zeros(n)
    pos = int(rng.uniform(0.0, 0.15) * sample_rate)  # leading silence
    f0 = rng.uniform(90, 230)
    while pos < n:
        kind = rng.choice(["vowel", "fricative", "stop", "pause"], p=[0.55, 0.2, 0.15, 0.1])
        length = int(sample_rate * {"vowel": rng.uniform(0.07, 0.22), "fricative": rng.uniform(0.05, 0.14),
                                    "stop": rng.uniform(0.02, 0.05), "pause": rng.uniform(0.03, 0.15)}[kind])
        length = min(length, n - pos)
        if length <= 64:
            break
        t = np.arange(length) / sample_rate
        spectrum_freqs = np.fft.rfftfreq(length, 1 / sample_rate)
        if kind == "vowel":
            glide = f0 * (1 + rng.uniform(-0.15, 0.15) * t / max(t[-1], 1e-3))
            phase = 2 * np.pi * np.cumsum(glide) / sample_rate
            source = np.sign(np.sin(phase)) * (1 + 0.02 * rng.standard_normal(length))  # buzzy glottal source
            formants = _VOWEL_FORMANTS[rng.integers(len(_VOWEL_FORMANTS))] * rng.uniform(0.9, 1.15)
            shape = _envelope(spectrum_freqs, formants, np.array([90, 110, 170]) * rng.uniform(0.8, 1.5))
            gain = rng.uniform(0.3, 1.0)
        elif kind == "fricative":
            source = rng.standard_normal(length)
            centre = rng.uniform(2500, 6500)
            shape = _envelope(spectrum_freqs, np.array([centre]), np.array([rng.uniform(1500, 3000)]))
            gain = rng.uniform(0.05, 0.3)
        elif kind == "stop":
            source = rng.standard_normal(length) * np.exp(-t / 0.01)
            shape = np.ones_like(spectrum_freqs)
            gain = rng.uniform(0.1, 0.5)
        else:
            source, shape, gain = rng.standard_normal(length), np.ones_like(spectrum_freqs), 0.003
        segment = np.fft.irfft(np.fft.rfft(source) * shape, n=length)
        segment *= gain / (np.abs(segment).max() + 1e-9)
        segment *= np.hanning(length) ** 0.3  # soft edges, no clicks
        out[pos : pos + length] += segment
        pos += length
    out += 1e-3 * rng.standard_normal(n)  # room noise floor
    return (out / (np.abs(out).max() + 1e-9) * rng.uniform(0.1, 0.9)).astype(np.float32)


def synthetic_features(
    n_clips: int, frames: int, seed: int, config: FbankConfig = FbankConfig()
) -> np.ndarray:
    """[n_clips, n_mels, frames] log-mel features of speech-like clips, deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    samples = config.frame_length + (frames - 1) * config.frame_shift
    seconds = samples / config.sample_rate
    clips = [fbank(synth_utterance(rng, seconds, config.sample_rate), config)[:, :frames] for _ in range(n_clips)]
    return np.stack(clips).astype(np.float32)
