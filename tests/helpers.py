"""Small helpers shared by the tests."""

import wave
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# The three shipped keywords in one 8-second stream: 1 s of digital silence, then each word's 1 s file followed by
# 1 s of silence, then silence to 8 s. THREE_WORDS: where each file starts and ends, in seconds.
THREE_WORDS = {"yes": (1.0, 2.0), "go": (3.0, 4.0), "stop": (5.0, 6.0)}


def write_wav(path, samples, rate=16000):
    """A mono 16-bit PCM WAV of float samples in [-1, 1]."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def run_cli(argv, capsys):
    """export-espdl in this process: (exit code, stdout, stderr); argparse's refusals included."""
    from espdl_stream.export.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def three_keyword_stream(path):
    """examples/yes.wav, go.wav and stop.wav joined with one-second pauses into an 8 s WAV at `path`, sample for
    sample (16-bit PCM in, 16-bit PCM out)."""
    with wave.open(str(EXAMPLES / "yes.wav"), "rb") as f:
        rate = f.getframerate()
    pcm = np.zeros(8 * rate, "<i2")
    for word, (start, _) in THREE_WORDS.items():
        with wave.open(str(EXAMPLES / f"{word}.wav"), "rb") as f:
            samples = np.frombuffer(f.readframes(f.getnframes()), "<i2")
        pcm[int(start * rate) : int(start * rate) + len(samples)] = samples
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())
    return path
