"""The host streaming runtime: one session equals the offline model, many interleaved sessions each equal one alone."""

import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import EXAMPLES, THREE_WORDS, three_keyword_stream, write_wav

from espdl_stream.calibration import calibration_clips
from espdl_stream.export.cli import main
from espdl_stream.export.runtime import SessionLimitError, SessionManager, StreamingModel, StreamingSession
from espdl_stream.models import MODEL_NAMES, build_model, detector_settings


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


def _detections(out: str) -> list[tuple[str, float, float]]:
    """(keyword, time, score) of every `yes at 1.23 s (score 0.97)` line."""
    found = re.findall(r"^(\w+) at (\d+\.\d+) s \(score (\d\.\d+)\)$", out, re.MULTILINE)
    return [(k, float(t), float(s)) for k, t, s in found]


def _assert_the_three_words(out: str) -> None:
    found = _detections(out)
    assert [k for k, _, _ in found] == list(THREE_WORDS), out
    for keyword, time_s, _ in found:  # from the word's file start to 0.2 s after the file ends
        start, end = THREE_WORDS[keyword]
        assert start <= time_s <= end + 0.2, out


def test_the_shipped_three_keyword_stream_is_the_three_recordings_joined(tmp_path):
    joined = three_keyword_stream(tmp_path / "three.wav").read_bytes()
    assert (EXAMPLES / "yes_go_stop.wav").read_bytes() == joined
    assert (EXAMPLES.parent / "firmware" / "main" / "audio" / "yes_go_stop.wav").read_bytes() == joined  # the demo's


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_three_keywords_in_one_stream_are_detected_at_their_times_and_nothing_else(model, capsys):
    assert main(["stream", str(EXAMPLES / "yes_go_stop.wav"), "--model", model]) == 0
    out = capsys.readouterr().out
    _assert_the_three_words(out)
    assert "through %s (float, ONNX Runtime); detector: smoothing" % model in out and "3 detections; 99 chunks" in out
    detector = detector_settings(model)  # each keyword's own threshold, named
    assert ", ".join(f"{k} {t:g}" for k, t in zip(detector["keywords"], detector["thresholds"])) in out


# Not yet for the GRU's int8 file for the P4: stop peaks at 0.9876 there (smoothed), under its threshold of 0.99
# (float 1.00, the S3's int8 0.9954). strict: the day it passes, the mark must go.
P4_GRU_MISSES_STOP = pytest.mark.xfail(strict=True, reason="the GRU's int8 ESP32-P4 file detects yes and go here, not stop")


@pytest.mark.parametrize("model,target", [("tcn", "esp32s3"), ("tcn", "esp32p4"), ("lstm", "esp32s3"), ("lstm", "esp32p4"),
                                          ("gru", "esp32s3"), pytest.param("gru", "esp32p4", marks=P4_GRU_MISSES_STOP)])
def test_the_committed_default_export_detects_them_in_the_emulator(model, target, capsys):
    """What the chip computes: the committed int8 files, their exact bytes and their metadata's detector."""
    firmware_models = Path(__file__).resolve().parent.parent / "firmware" / "main" / "models" / model / target
    assert main(["stream", str(EXAMPLES / "yes_go_stop.wav"), "--espdl", str(firmware_models), "--quiet"]) == 0
    _assert_the_three_words(capsys.readouterr().out)


def test_a_stream_without_a_detector_is_refused_in_one_line(tmp_path, capsys):
    from espdl_stream.calibration import synthetic_features

    out = tmp_path / "random"
    assert main(["--weights", "random", "--out", str(out), "--quiet", "--calib-steps", "8"]) == 0
    capsys.readouterr()
    np.save(tmp_path / "x.npy", synthetic_features(1, 96, seed=0)[0])
    assert main(["stream", str(tmp_path / "x.npy"), "--espdl", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no keyword detector in its metadata" in err and "\n" not in err


def test_a_users_model_streams_with_the_detector_it_was_exported_with(tmp_path, capsys):
    """export_streaming(detector=) puts the user's detector into the file; stream --espdl follows it. A threshold of
    0 fires whenever the refractory time allows: one detection every R + 1 = 11 output frames."""
    from user_models import Activation

    from espdl_stream.calibration import synthetic_features
    from espdl_stream.export import ExportConfig, export_streaming
    from espdl_stream.export.detector import DetectorConfig

    torch.manual_seed(0)
    clips = synthetic_features(6, 96, seed=0)
    classes = tuple(f"class{i}" for i in range(12))
    detector = DetectorConfig(classes, ("class3",), (0.0,), 1, 10, 0.01)
    assert export_streaming(Activation(torch.nn.ReLU()).eval(), clips, clips[:2], ExportConfig(calib_steps=4),
                            tmp_path, detector=detector).passed
    assert main(["stream", str(EXAMPLES / "yes_go_stop.wav"), "--espdl", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    found = re.findall(r"^class3 at (\d+\.\d\d) s", out, re.M)
    assert len(found) == 72 and "72 detections; 99 chunks" in out  # 792 output frames, one in every 11
    assert found[:2] == ["0.01", "0.12"]


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


@pytest.mark.parametrize("word", ["stop", "go", "yes"])
def test_stream_command_on_each_shipped_recording(word, capsys):
    assert main(["stream", str(EXAMPLES / f"{word}.wav"), "--quiet"]) == 0  # a voice never heard in training
    assert [k for k, _, _ in _detections(capsys.readouterr().out)] == [word]
