"""The keyword-spotting task: shipped sets, voice-disjoint splits, training, and accuracy in an export."""

import numpy as np
import pytest
import torch

from espdl_stream.calibration import calibration_clips, keyword_eval_set
from espdl_stream.calibration.kws_data import CLASSES, voices
from espdl_stream.calibration.shipped import DATA
from espdl_stream.models import MODEL_NAMES, build_model, clip_decision, training_summary, weights_path


def test_shipped_sets_are_small_real_and_labelled():
    assert sum(p.stat().st_size for p in DATA.glob("*.npz")) < 5_000_000
    calibration = calibration_clips()
    assert calibration.shape[1:] == (40, 96) and len(calibration) >= 64 and np.isfinite(calibration).all()
    sources = np.load(DATA / "calibration.npz")["source"]
    assert (sources == "recorded").sum() > (sources == "synthetic").sum()  # mostly real recorded speech
    evaluation = keyword_eval_set()
    assert evaluation.classes == CLASSES
    assert np.bincount(evaluation.labels).tolist() == [30] * len(CLASSES)


def test_eval_voices_are_never_heard_in_training():
    splits = {v.key: v.split for v in voices()}
    eval_voices = set(np.load(DATA / "kws_eval.npz")["voices"].tolist())
    assert eval_voices and all(splits[v] == "test" for v in eval_voices)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_trained_weights_are_shipped_and_load(name):
    assert weights_path(name).is_file()
    summary = training_summary(name)
    assert summary["model"] == name and summary["test_accuracy"] > 0.5
    trained, fresh = build_model(name), build_model(name, trained=False)
    assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), fresh.state_dict().values()))


def test_clip_decision_is_the_time_average():
    logits = np.zeros((1, 3, 4))
    logits[0, 1, :2] = 5  # class 1 early, class 2 late but stronger on average
    logits[0, 2, 2:] = 6
    assert clip_decision(logits).tolist() == [2]


def test_training_runs_and_saves_loadable_weights(tmp_path):
    from espdl_stream.models import train

    rng = np.random.default_rng(0)
    for split, n in (("train", 48), ("val", 24), ("test", 24)):
        labels = np.arange(n) % 12
        features = rng.standard_normal((n, 40, 96)).astype(np.float16) + labels[:, None, None].astype(np.float16)
        np.savez(tmp_path / f"{split}.npz", features=features, labels=labels)
    out = tmp_path / "tcn.safetensors"
    assert train.main(["--model", "tcn", "--data", str(tmp_path), "--seconds", "1", "--out", str(out)]) == 0
    from safetensors.torch import load_file

    build_model("tcn", trained=False).load_state_dict(load_file(str(out)))


def test_export_reports_what_quantization_and_streaming_cost(tmp_path):
    from espdl_stream.calibration import LabeledClips
    from espdl_stream.export.pipeline import ExportConfig, export_streaming

    full = keyword_eval_set()
    pick = np.concatenate([np.nonzero(full.labels == c)[0][:5] for c in range(len(CLASSES))])
    evaluation = LabeledClips(full.features[pick], full.labels[pick], full.classes)
    clips = calibration_clips()
    result = export_streaming(build_model("tcn"), clips[:16], clips[16:18], ExportConfig(calib_steps=16, verify_clips=2),
                              tmp_path, evaluation=evaluation)
    assert result.passed
    accuracy = result.report["accuracy"]
    top = accuracy["top1_percent"]
    assert accuracy["clips"] == 60 and accuracy["streaming_decisions_differing"] == 0
    assert top["quantized_streaming"] == top["quantized_offline"]
    assert top["float"] > 40  # far above chance (8.3%) on voices never heard in training
    assert abs(top["float"] - top["quantized_offline"]) <= 10
    assert "streaming decisions vs offline (labelled clips)" in [c.name for c in result.checks]
