"""Small helpers shared by the tests."""

import wave

import numpy as np


def write_wav(path, samples, rate=16000):
    """A mono 16-bit PCM WAV of float samples in [-1, 1]."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
