"""The keyword-spotting task: shipped sets, voice-disjoint splits, training, and accuracy in an export."""

import json
import re
from fractions import Fraction

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from espdl_stream.calibration import calibration_clips, keyword_eval_set
from espdl_stream.calibration.kws_data import CLASSES, voices
from espdl_stream.calibration.shipped import DATA
from espdl_stream.models import MODEL_NAMES, build_model, clip_decision, load_weights, training_summary, weights_path


def test_shipped_sets_are_small_real_and_labelled():
    assert all(p.stat().st_size < 5_000_000 for p in DATA.glob("*.npz"))
    calibration = calibration_clips()
    assert calibration.shape[1:] == (40, 96) and len(calibration) >= 64 and np.isfinite(calibration).all()
    sources = np.load(DATA / "calibration.npz")["source"]
    assert (sources == "recorded").sum() > (sources == "synthetic").sum()  # mostly real recorded speech
    evaluation = keyword_eval_set()
    assert evaluation.classes == CLASSES and evaluation.features.shape == (1008, 40, 96)
    assert np.bincount(evaluation.labels).tolist() == [84] * len(CLASSES)
    steps = evaluation.features / np.load(DATA / "kws_eval.npz")["feature_step"]
    assert np.array_equal(steps, np.round(steps))  # the stored integers, decoded exactly


def test_packed_features_decode_exactly():
    from espdl_stream.calibration.shipped import FEATURE_STEP, pack_features, unpack_features

    features = np.random.default_rng(0).uniform(-16, 8, (3, 40, 96))
    decoded = unpack_features(pack_features(features))
    assert decoded.dtype == np.float32 and np.abs(decoded - features).max() <= FEATURE_STEP / 2
    assert np.array_equal(unpack_features(pack_features(decoded)), decoded)


def test_eval_voices_are_never_heard_in_training():
    splits = {v.key: v.split for v in voices()}
    eval_voices = set(np.load(DATA / "kws_eval.npz")["voices"].tolist()) - {""}  # silence clips have no voice
    assert eval_voices and all(splits[v] == "test" for v in eval_voices)


def test_more_training_voices_are_new_names_never_in_validation_or_test():
    from espdl_stream.calibration.kws_data import MORE_VARIANTS, more_training_voices

    more = more_training_voices()
    assert {v.split for v in more} == {"train"} and len({v.key for v in more}) == 2 * len(MORE_VARIANTS)
    assert not {v.key for v in more} & {v.key for v in voices()}
    assert not set(MORE_VARIANTS) & {v.name.split("+")[1] for v in voices() if "+" in v.name}


def test_training_reads_every_training_set_as_one():
    from espdl_stream.calibration.kws_data import StreamSet

    rng = np.random.default_rng(0)
    info = {"frame_shift_s": 0.01, "frame_length": 400, "frame_shift": 160, "seconds": 1.0}
    sets = [StreamSet(rng.normal(size=(40, n)).astype(np.float16), np.array(starts), np.array(segments), info)
            for n, starts, segments in ((50, [0, 20, 50], [[0, 1, 0, 800], [1, 10, 160, 960]]),
                                        (30, [0, 30], [[0, 3, 320, 1600]]))]
    joined = StreamSet.join(sets)
    assert len(joined) == 3 and joined.seconds == 0.8
    expected = [(s, i) for s in sets for i in range(len(s))]
    for j, (s, i) in enumerate(expected):
        assert np.array_equal(joined.stream(j), s.stream(i))
        assert np.array_equal(joined.stream_segments(j), s.stream_segments(i))


def test_recordings_split_by_name_and_none_says_a_keyword():
    from espdl_stream.calibration.kws_data import SAYS_A_KEYWORD, split_of

    assert split_of("city/cs/vit-m-hlava.ogg", 4, 1) == split_of("city/cs/vit-m-hlava.ogg", 4, 1)
    shares = np.bincount([["train", "val", "test"].index(split_of(f"f{i}.ogg", 4, 1)) for i in range(2000)]) / 2000
    assert abs(shares[0] - 0.5) < 0.05 and abs(shares[1] - 0.1) < 0.03 and abs(shares[2] - 0.4) < 0.05
    assert "goforward.raw" in SAYS_A_KEYWORD


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_trained_weights_and_their_detector_are_shipped(name):
    from espdl_stream.export.detector import DetectorConfig
    from espdl_stream.models import detector_settings, total_stride

    assert weights_path(name).is_file()
    summary = training_summary(name)
    assert summary["model"] == name and summary["targets"] in ("aligned", "maxpool")
    trained, fresh = build_model(name), build_model(name, trained=False)
    assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), fresh.state_dict().values()))
    detector = DetectorConfig.from_dict(detector_settings(name))
    assert detector.classes == CLASSES and detector.keywords == CLASSES[:10]
    assert detector.frame_period_s == pytest.approx(total_stride(trained) / 100)


def test_clip_decision_takes_each_class_at_its_peak():
    def clip(*frames):  # one frame per (class, posterior) pair, the rest of the mass on silence
        logits = np.full((1, 12, len(frames)), -20.0)
        for t, (label, p) in enumerate(frames):
            logits[0, label, t], logits[0, 11, t] = np.log(p), np.log(1 - p)
        return logits

    assert clip_decision(clip((11, 0.9), (2, 0.8), (11, 0.9))).tolist() == [2]  # a brief keyword is the keyword
    assert clip_decision(clip((10, 0.9), (2, 0.4))).tolist() == [10]  # a keyword below 0.5: other speech
    assert clip_decision(clip((10, 0.3), (2, 0.4))).tolist() == [11]
    both = clip((10, 0.99), (3, 0.6), (5, 0.7))
    assert clip_decision(both).tolist() == [5]
    assert clip_decision(both[..., :2]).tolist() == [3]  # a prefix: the decision after that chunk


def _toy_streams(tmp_path):
    """Two tiny stream sets in kws_data's format: a keyword is a loud band in its own mel bin."""
    from espdl_stream.calibration.kws_data import StreamSet

    rng = np.random.default_rng(0)
    for split in ("train", "train_more_voices", "val"):
        features = rng.normal(-8, 1, (40, 4000)).astype(np.float32)
        segments = []
        for k, start in enumerate(range(100, 3900, 120)):
            label = k % 12 if k % 12 != 11 else 10
            features[3 * label : 3 * label + 3, start : start + 40] += 8
            segments.append((k // 16, label, (start - k // 16 * 2000) * 160, (start - k // 16 * 2000 + 40) * 160))
        info = {"frame_shift_s": 0.01, "frame_length": 400, "frame_shift": 160}
        StreamSet(features, np.array([0, 2000, 4000]), np.array(segments), info).save(tmp_path / f"{split}.npz")


def test_frame_targets_put_a_keyword_at_its_end():
    from espdl_stream.calibration.kws_data import StreamSet
    from espdl_stream.models.train import IGNORE, frame_of, stream_targets

    info = {"frame_shift_s": 0.01, "frame_length": 400, "frame_shift": 160}
    streams = StreamSet(np.zeros((40, 300)), np.array([0, 300]),
                        np.array([[0, 2, 16000, 24000], [0, 10, 32000, 35200]]), info)
    end = frame_of(24000 - 1, 400, 160)
    assert frame_of(0, 400, 160) == 0 and end == 148  # the first frame whose window holds the last sample
    aligned = stream_targets(streams, CLASSES, "aligned").frames
    assert (aligned[: frame_of(16000, 400, 160)] == 11).all()
    assert (aligned[frame_of(16000, 400, 160) : end - 5] == IGNORE).all()
    assert (aligned[end - 5 : end + 21] == 2).all() and aligned[end + 21] == 11
    assert (aligned[frame_of(32000, 400, 160) : frame_of(35199, 400, 160) + 11] == 10).all()
    pooled = stream_targets(streams, CLASSES, "maxpool")
    assert pooled.keyword_regions.tolist() == [[2, frame_of(16000, 400, 160), end + 20]]
    assert (pooled.frames[frame_of(16000, 400, 160) : end + 21] == IGNORE).all()


@pytest.mark.parametrize("name,targets", [("tcn", "maxpool"), ("gru", "aligned")])
def test_training_runs_on_streams_and_saves_loadable_weights(tmp_path, name, targets):
    from safetensors.torch import load_file

    from espdl_stream.models import train

    _toy_streams(tmp_path)
    out = tmp_path / f"{name}.safetensors"
    assert train.main(["--model", name, "--data", str(tmp_path), "--epochs", "1", "--targets", targets,
                       "--out", str(out)]) == 0
    build_model(name, trained=False).load_state_dict(load_file(str(out)))


def test_training_starts_from_saved_weights_and_says_so(tmp_path, capsys):
    from safetensors.torch import load_file

    from espdl_stream.models import train

    _toy_streams(tmp_path)
    saved = build_model("gru", seed=3, trained=False)
    noise = torch.Generator().manual_seed(0)  # weights unlike any fresh initialisation
    with torch.no_grad():
        for p in saved.parameters():
            p.add_(torch.randn(p.shape, generator=noise))
    save_file(saved.state_dict(), str(tmp_path / "start.safetensors"))
    model = build_model("gru", trained=False)
    load_weights(model, tmp_path / "start.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), saved.state_dict().values()))
    out = tmp_path / "warm.safetensors"
    assert train.main(["--model", "gru", "--data", str(tmp_path), "--epochs", "1", "--threads", "1",
                       "--init", str(tmp_path / "start.safetensors"), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["init"] == "start.safetensors"
    build_model("gru", trained=False).load_state_dict(load_file(str(out)))


@pytest.mark.parametrize("argv,message", [
    (["--init", "missing.safetensors"], r"--init \S*missing.safetensors: no such file$"),
    (["--init", "TCN"], r"--init \S*tcn.safetensors does not fit the model: Missing key\(s\) in state_dict: .+$"),
    (["--init", "train.npz"], r"--init train.npz: not a readable state dict \(RuntimeError: .+\)$"),
    (["--init", "pickled.pt"], r"--init pickled.pt: not a readable state dict \(torch.load with weights_only=True "
                               r"refused it: not a torch.save'd dict of tensors\)$"),
    (["--epochs", "0"], r"--epochs 0: give at least 1$"),
    (["--data", "nowhere"], r"--data nowhere: no train.npz and val.npz there: make them with python -m "
                            r"espdl_stream.calibration.kws_data --out nowhere$"),
])
def test_training_errors_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    from espdl_stream.models import train

    _toy_streams(tmp_path)
    torch.save({"weights": Fraction(1, 3)}, tmp_path / "pickled.pt")  # an object torch's weights_only load refuses
    monkeypatch.chdir(tmp_path)
    argv = [str(weights_path("tcn")) if a == "TCN" else a for a in argv]
    assert train.main(["--model", "gru", "--data", str(tmp_path), "--epochs", "1", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.fullmatch("error: " + message.rstrip("$"), err), err


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


def test_streams_keep_every_segment_where_it_is_heard():
    from espdl_stream.calibration import FbankConfig
    from espdl_stream.calibration.kws_data import (UNKNOWN, NoiseBank, StreamRecipe, Utterance, compose_stream,
                                                   negative_stream, stream_set)

    rng = np.random.default_rng(0)
    tone = lambda f: np.sin(2 * np.pi * f * np.arange(6000) / 16000)  # noqa: E731
    pool = [Utterance(k, tone(300 + 100 * k), "v") for k in range(10)] + [Utterance(UNKNOWN, tone(2500), "v")]
    recordings = [rng.standard_normal(40000) * 0.1 for _ in range(3)]
    noise = NoiseBank(recordings)
    keywords = [pool[3], pool[7], pool[3]]
    audio, segments = compose_stream(StreamRecipe(0, 0.5, 0.25, (10, 10)), pool, recordings, noise, rng, keywords)
    assert [s.label for s in segments if s.label != UNKNOWN] == [3, 7, 3]  # the given keywords, in order, once
    assert np.array_equal(audio * 32768, np.round(audio * 32768))  # 16-bit samples, as a device reads them
    assert all(0 < a.start < a.end <= b.start for a, b in zip(segments, segments[1:])) and segments[-1].end < len(audio)
    for s in segments:  # speech where a segment is, 10 dB above the noise bed around it
        inside = np.sqrt(np.mean(audio[s.start : s.end] ** 2))
        before = np.sqrt(np.mean(audio[s.start - 2000 : s.start] ** 2))
        assert inside > 2 * before
    negative, parts = negative_stream(pool, recordings, noise, rng, 20)
    assert len(negative) >= 20 * 16000 and {s.label for s in parts} == {UNKNOWN}
    streams = stream_set([(audio, segments), (negative, parts)], FbankConfig(), {})
    assert len(streams) == 2 and streams.stream(1).shape[1] == 1 + (len(negative) - 400) // 160
    assert streams.stream_segments(0)[:, 0].tolist() == [s.label for s in segments]
