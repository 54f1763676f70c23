"""The host streaming runtime: one session equals the offline model, many interleaved sessions each equal one alone."""

import time
import numpy as np
import pytest
import torch

from helpers import write_wav

from espdl_stream.calibration import calibration_clips
from espdl_stream.export.cli import main
from espdl_stream.export.runtime import SessionLimitError, SessionManager, StreamingModel, StreamingSession
from espdl_stream.models import build_model


@pytest.fixture(scope="module", params=["tcn", "lstm"])
def streaming_model(request):
    return request.param, StreamingModel.from_torch(build_model(request.param), 40, 96, 8)


def _stream(session, clip):
    return np.concatenate([session.process(clip[:, i : i + 8]) for i in range(0, clip.shape[1], 8)], axis=-1)


def test_session_streams_like_the_offline_model_and_resets(streaming_model):
    name, model = streaming_model
    clip = calibration_clips()[0]
    session = StreamingSession(model)
    session.warm_up()
    with torch.no_grad():
        out = build_model(name)(torch.from_numpy(clip[None]))
    offline = (out[0] if isinstance(out, tuple) else out)[0].numpy()
    first = _stream(session, clip)
    assert np.abs(first - offline).max() <= 1e-5 * max(1.0, np.abs(offline).max())
    session.reset()
    assert np.array_equal(_stream(session, clip), first)
    stats = session.stats.summary()
    assert stats["chunks"] == 12 and stats["real_time_factor"] > 0 and stats["p95_ms"] >= stats["mean_ms"] * 0.5
    with pytest.raises(ValueError, match=r"a chunk must be \[40 mel bins, 8 frames\], got \[40, 7\]"):
        session.process(clip[:, :7])


def test_interleaved_streams_each_get_what_they_get_alone(streaming_model):
    _, model = streaming_model
    clips = calibration_clips()[:3]
    alone = [_stream(StreamingSession(model), c) for c in clips]
    manager = SessionManager(model, max_sessions=3)
    ids = [manager.create() for _ in clips]
    outputs = {sid: [] for sid in ids}
    for i in range(0, 96, 8):  # round robin, one chunk of each stream in turn
        for sid, clip in zip(ids, clips):
            outputs[sid].append(manager.process(sid, clip[:, i : i + 8]))
    for sid, expected in zip(ids, alone):
        assert np.array_equal(np.concatenate(outputs[sid], axis=-1), expected)
    with pytest.raises(SessionLimitError, match="the limit is 3"):
        manager.create()
    assert manager.close(ids[0])["chunks"] == 12 and len(manager) == 2


def test_idle_sessions_are_cleaned_up(streaming_model):
    _, model = streaming_model
    manager = SessionManager(model, max_sessions=2, idle_timeout_s=0.05)
    first = manager.create()
    time.sleep(0.1)
    second = manager.create()  # creating cleans up the idle one first
    assert len(manager) == 1 and manager.cleanup() == [] and second != first
    with pytest.raises(KeyError, match="no open session"):
        manager.process(first, np.zeros((40, 8), np.float32))


def test_stream_command_float_and_emulated(tmp_path, capsys):
    from espdl_stream.calibration.synthetic import synth_utterance

    audio = synth_utterance(np.random.default_rng(0), 1.0, 16000)
    write_wav(tmp_path / "a.wav", audio)
    assert main(["stream", str(tmp_path / "a.wav")]) == 0
    out = capsys.readouterr().out
    assert "in 12 chunks of 8" in out and "whole stream:" in out and "real-time factor" in out
    models = tmp_path.parent / "firmware_like"
    assert main(["--out", str(models), "--quiet", "--calib-steps", "8"]) == 0
    capsys.readouterr()
    assert main(["stream", str(tmp_path / "a.wav"), "--espdl", str(models), "--quiet"]) == 0
    assert "in the ESP-DL emulator" in capsys.readouterr().out


@pytest.mark.parametrize("make,message", [
    (lambda p: write_wav(p / "x.wav", np.zeros(8000), rate=8000), "8000 Hz audio; the front end takes 16000 Hz"),
    (lambda p: write_wav(p / "x.wav", np.zeros(0)), "no usable audio"),
    (lambda p: np.save(p / "x.npy", np.zeros((13, 50), np.float32)), "expected [40 mel bins, frames]"),
])
def test_stream_command_refuses_bad_input_in_one_line(tmp_path, capsys, make, message):
    make(tmp_path)
    path = next(tmp_path.iterdir())
    assert main(["stream", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


@pytest.mark.parametrize("model", ["tcn", "lstm"])
@pytest.mark.parametrize("word", ["stop", "go", "yes"])
def test_stream_command_on_the_shipped_recordings(model, word, capsys):
    from pathlib import Path

    wav = Path(__file__).resolve().parent.parent / "examples" / f"{word}.wav"  # a voice never heard in training
    assert main(["stream", str(wav), "--model", model, "--quiet"]) == 0
    assert f"whole stream: {word};" in capsys.readouterr().out
