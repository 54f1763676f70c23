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


def run_cli(argv, capsys):
    """export-espdl in this process: (exit code, stdout, stderr); argparse's refusals included."""
    from espdl_stream.export.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err
