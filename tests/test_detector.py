"""The keyword detector: its specification on a hand-made stream, chunking, and the firmware's C++ twin against it."""

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from espdl_stream.export.detector import Detection, Detector, DetectorConfig

ROOT = Path(__file__).resolve().parent.parent
DETECTOR_SOURCES = (ROOT / "firmware" / "host_test" / "detector_check.cpp", ROOT / "firmware" / "main" / "detector" / "kws_detector.cpp")
TOY = DetectorConfig(classes=("a", "b", "unknown", "silence"), keywords=("a", "b"), thresholds=(0.6, 0.7),
                     smoothing_frames=2, refractory_frames=3, frame_period_s=0.1)


def _frames(*labels: str, config: DetectorConfig = TOY) -> np.ndarray:
    """[classes, frames] logits that put posterior ~1 on each frame's class."""
    logits = np.zeros((len(config.classes), len(labels)), np.float32)
    for t, label in enumerate(labels):
        logits[config.classes.index(label), t] = 30.0
    return logits


def test_the_specification_on_a_hand_made_stream():
    s = "silence"
    logits = _frames(s, s, s, "a", "a", "a", "a", s, "b", s, s, "b", "b", "a", "a", s)
    found = Detector(TOY).process(logits)
    # a: frame 3 averages (0 + 1) / 2 = 0.5 < 0.6; frame 4 reaches 1.0 -> detected at (4 + 1) * 0.1 s;
    # frames 5-7 are refractory; a single 'b' (frame 8) smooths to 0.5 < 0.7; 'b' again at 11-12 -> frame 12;
    # 'a' at 13-14 is inside the refractory period after frame 12 (frames 13-15)
    assert [(d.keyword, d.frame) for d in found] == [("a", 4), ("b", 12)]
    assert found[0].time_s == pytest.approx(0.5) and found[0].score == pytest.approx(1.0)
    assert str(found[0]) == "a at 0.50 s (score 1.00)"


def test_the_best_keyword_above_its_threshold_wins_and_ties_go_to_the_first():
    config = DetectorConfig(("a", "b", "c"), ("a", "b"), (0.3, 0.3), 1, 0, 0.01)
    logits = np.log(np.array([[0.35, 0.45, 0.2], [0.4, 0.4, 0.2]], np.float64)).T.astype(np.float32)
    found = Detector(config).process(logits)
    assert [d.keyword for d in found] == ["b", "a"]  # frame 0: b is higher; frame 1: a tie, the first keyword


def test_chunks_of_any_size_give_the_detections_of_the_whole_stream():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1, (4, 500)).astype(np.float32)
    logits[rng.integers(0, 2, 500), np.arange(500)] += rng.choice([0.0, 6.0], 500, p=[0.8, 0.2]).astype(np.float32)
    whole = Detector(TOY).process(logits)
    assert len(whole) > 10
    for chunk in (1, 2, 7, 64):
        detector = Detector(TOY)
        parts = [d for k in range(0, 500, chunk) for d in detector.process(logits[:, k : k + chunk])]
        assert parts == whole
    detector.reset()
    assert detector.process(logits) == whole


def test_a_config_that_cannot_work_is_refused():
    for bad, message in ((dict(keywords=("a", "z")), "not classes"), (dict(thresholds=(0.5,)), "1 thresholds for 2"),
                         (dict(smoothing_frames=0), "at least one frame")):
        with pytest.raises(ValueError, match=message):
            DetectorConfig(**{**TOY.__dict__, **bad})
    assert DetectorConfig.from_json(TOY.to_json()) == TOY


# ---------------------------------------------------------------- the C++ detector of the firmware
@pytest.fixture(scope="module")
def detector_check(tmp_path_factory) -> Path:
    compiler = next(filter(shutil.which, ("g++", "c++", "clang++")), None)
    if compiler is None:
        pytest.skip("no C++ compiler (g++, c++ or clang++) on PATH to build the firmware's detector on the host")
    binary = tmp_path_factory.mktemp("detector") / "detector_check"
    subprocess.run([compiler, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-O1", "-fsanitize=address,undefined",
                    "-I", str(DETECTOR_SOURCES[1].parent), *map(str, DETECTOR_SOURCES), "-o", str(binary)], check=True)
    return binary


def run_cpp(binary: Path, config_json: str, logits: np.ndarray, tmp_path: Path) -> tuple[int, str]:
    (tmp_path / "config.json").write_text(config_json)
    (tmp_path / "logits.bin").write_bytes(np.ascontiguousarray(logits.T, "<f4").tobytes())  # [frames][classes]
    done = subprocess.run([str(binary), str(tmp_path / "config.json"), str(tmp_path / "logits.bin")],
                          capture_output=True, text=True)
    return done.returncode, done.stdout


def cpp_detections(binary: Path, config: DetectorConfig, logits: np.ndarray, tmp_path: Path) -> list[Detection]:
    code, out = run_cpp(binary, config.to_json(), logits, tmp_path)
    assert code == 0, out
    rows = [line.split() for line in out.splitlines() if line.startswith("DETECTION ")]
    assert out.splitlines()[-1] == f"FRAMES {logits.shape[1]} DETECTIONS {len(rows)}"
    return [Detection(k, int(frame), float(t), float(score)) for _, k, frame, t, score in rows]


def assert_same(cpp: list[Detection], python: list[Detection]) -> None:
    """Same keywords at the same frames and times; scores equal up to the last bits of exp (libm vs NumPy)."""
    assert [(d.keyword, d.frame, d.time_s) for d in cpp] == [(d.keyword, d.frame, d.time_s) for d in python]
    assert all(abs(c.score - p.score) <= 1e-12 for c, p in zip(cpp, python))


def test_cpp_detector_matches_python_on_random_scores(detector_check, tmp_path):
    rng = np.random.default_rng(1)
    config = DetectorConfig(tuple("abcdef"), ("a", "c", "d"), (0.55, 0.6, 0.5), 4, 6, 0.04)
    logits = rng.normal(0, 2, (6, 3000)).astype(np.float32)
    logits[rng.choice([0, 2, 3], 3000), np.arange(3000)] += rng.choice([0.0, 5.0], 3000, p=[0.7, 0.3]).astype(np.float32)
    python = Detector(config).process(logits)
    assert len(python) > 50
    assert_same(cpp_detections(detector_check, config, logits, tmp_path), python)


@pytest.mark.parametrize("bad,message", [
    ('{"classes": ["a"], "keywords": ["b"], "thresholds": [0.5], "smoothing_frames": 1, "refractory_frames": 0, '
     '"frame_period_s": 0.01}', 'keyword "b" is not a class'),
    ('{"classes": ["a"], "keywords": ["a"], "thresholds": [], "smoothing_frames": 1, "refractory_frames": 0, '
     '"frame_period_s": 0.01}', "one threshold per keyword"),
    ('{"classes": ["a"], "keywords": ["a"], "thresholds": [0.5]}', "a field is missing"),
    ('{"classes": ["a"], "extra": 1}', 'unknown field "extra"'),
    ('[1, 2]', "not a JSON object"),
])
def test_cpp_detector_refuses_a_bad_config(detector_check, tmp_path, bad, message):
    code, out = run_cpp(detector_check, bad, np.zeros((1, 1), np.float32), tmp_path)
    assert code == 2 and message in out


def _three_word_features(tmp_path) -> np.ndarray:
    from helpers import three_keyword_stream

    from espdl_stream.calibration import fbank
    from espdl_stream.calibration.loaders import read_wav

    samples, _ = read_wav(three_keyword_stream(tmp_path / "three.wav"))
    return fbank(samples)


@pytest.mark.parametrize("name", ["tcn", "lstm", "gru"])
def test_cpp_detector_matches_python_on_a_real_model_run(detector_check, tmp_path, name):
    """The shipped model's float frame scores of the three-keyword stream, through both detectors."""
    import torch

    from espdl_stream.models import build_model, detector_settings, total_stride

    model = build_model(name)
    features = _three_word_features(tmp_path)
    features = features[:, : features.shape[1] // total_stride(model) * total_stride(model)]
    with torch.no_grad():
        out = model(torch.from_numpy(features[None]))
    logits = (out[0] if isinstance(out, tuple) else out)[0].numpy()
    shipped = DetectorConfig.from_dict(detector_settings(name))
    # the shipped detector, and the same at threshold 0.5 for every keyword: more detections to compare
    # (which words the shipped detector finds is tests/test_runtime.py's question)
    lenient = dataclasses.replace(shipped, thresholds=(0.5,) * len(shipped.keywords))
    assert len(Detector(lenient).process(logits)) >= 3
    for config in (shipped, lenient):
        assert_same(cpp_detections(detector_check, config, logits, tmp_path), Detector(config).process(logits))


def test_cpp_detector_matches_python_on_the_chips_integers(detector_check, tmp_path):
    """The committed int8 ESP32-S3 export in the ESP-DL emulator: the scores the chip's detector will see."""
    from espdl_stream.export.espdl_file import read_espdl
    from espdl_stream.export.runtime import EmulatedSession

    streaming = ROOT / "firmware" / "main" / "models" / "tcn" / "esp32s3" / "streaming_model.espdl"
    config = DetectorConfig.from_json(read_espdl(streaming).metadata["detector"])
    session, features = EmulatedSession(streaming), _three_word_features(tmp_path)
    logits = np.concatenate([session.process(features[:, k : k + session.chunk])
                             for k in range(0, features.shape[1] - session.chunk + 1, session.chunk)], axis=1)
    python = Detector(config).process(logits)
    assert [d.keyword for d in python] == ["yes", "go", "stop"]
    assert_same(cpp_detections(detector_check, config, logits, tmp_path), python)
