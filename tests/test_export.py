"""The exporter end to end: equivalence on both chips and widths, and a negative test per guard."""

import inspect
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from espdl_stream.export import ppq, verify
from espdl_stream.export.intake import model_to_onnx
from espdl_stream.export.plan import CacheSite, find_cache_sites
from espdl_stream.export.errors import ExportError, UnstreamableModel
from espdl_stream.export.espdl_file import read_espdl
from espdl_stream.export.pipeline import ExportConfig, export_streaming
from espdl_stream.export.vectors import read_vectors
from espdl_stream.models import CausalTCN, TCNConfig, build_model
from espdl_stream.models.layers import CausalConv1d


def _export(features, out, model=None, **overrides):
    config = ExportConfig(**{"calib_steps": 8, "verify_clips": 2, **overrides})
    return export_streaming(model or build_model("tcn"), features[: config.calib_steps],
                            features[config.calib_steps : config.calib_steps + config.verify_clips], config, out)


@pytest.mark.parametrize("model", ["tcn", "lstm", "gru"])
@pytest.mark.parametrize("target", ["esp32s3", "esp32p4"])
@pytest.mark.parametrize("bits", [8, 16])
def test_streaming_equals_offline_every_chunk(features, tmp_path, model, target, bits):
    chunk = 4 if bits == 16 else 8
    result = _export(features, tmp_path, model=build_model(model), target=target, bits=bits, chunk=chunk, calib_steps=32)
    checks = {c.name: c for c in result.checks}
    assert result.passed, [c.detail for c in result.checks if not c.passed]
    assert checks["quantized streaming vs offline (host simulation)"].per_chunk == [0.0] * (96 // chunk)
    float_check = checks["ONNX Runtime streaming vs offline (float)"]
    assert float_check.passed and (model != "tcn" or max(float_check.per_chunk) == 0.0)
    # the written bytes in the ESP-DL emulator: streaming equals offline exactly, every chunk and state
    assert checks["streaming .espdl equals offline .espdl on every prefix (emulated)"].per_chunk == [0.0] * (96 // chunk)
    assert checks["test values written into model.espdl (read back, re-emulated)"].passed
    # esp-ppq and the emulator agree on convolutional models; for recurrences the gap is a reported figure
    assert ("esp-ppq simulation vs ESP-DL emulator (test clip)" in checks) == (model == "tcn")
    # the firmware's view: streaming vectors, chunk by chunk, equal the offline file's own test values
    vector_file = read_vectors((tmp_path / "streaming_vectors.bin").read_bytes())
    assert vector_file.tolerance == (0 if bits == 8 else 1)
    vectors = {t.name: t for t in vector_file.tensors}
    offline = read_espdl(tmp_path / "model.espdl")
    assert set(result.report["esp_ppq_vs_esp_dl_lsb"]) == set(offline.outputs)
    assert np.array_equal(np.concatenate(vectors["y"].chunks, axis=1), offline.test_outputs["y"].values)
    assert np.array_equal(np.concatenate(vectors["x"].chunks, axis=1), offline.test_inputs["x"].values)
    assert vectors["y"].exponent == offline.test_outputs["y"].exponent
    state_pairs = result.report["state_pairs"]
    for state_out, _ in state_pairs:  # after the last chunk, the states are the offline model's final states
        assert np.array_equal(vectors[state_out].chunks[-1], offline.test_outputs[state_out].values)
    streaming = read_espdl(tmp_path / "streaming_model.espdl")
    assert streaming.metadata["chunk_frames"] == str(chunk)
    assert json.loads(streaming.metadata["state_pairs"]) == state_pairs
    assert len(state_pairs) == {"tcn": 0, "lstm": 6, "gru": 3}[model]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "esp-ppq.log", "model.espdl", "report.html", "report.json", "streaming_model.espdl", "streaming_vectors.bin"]


def test_state_contract_refuses_states_that_cannot_be_copied_back(features, tmp_path):
    result = _export(features, tmp_path, model=build_model("lstm"))
    assert result.passed
    files = {name: read_espdl(tmp_path / name) for name in ("model.espdl", "streaming_model.espdl")}
    plan = find_cache_sites(model_to_onnx(build_model("lstm"), 40, 96))
    assert verify.check_state_contract(files, plan).passed
    files["streaming_model.espdl"].outputs["h1_out"].exponent += 1
    files["model.espdl"].outputs["c0_out"].dtype = 3  # int8
    check = verify.check_state_contract(files, plan)
    assert not check.passed
    assert "h1_out [1, 1, 96] type 3 exponent" in check.detail and "LSTM cell state 'c0_out' is type 3" in check.detail


def test_lstm_chunk_must_be_a_multiple_of_its_subsampling(features, tmp_path):
    with pytest.raises(UnstreamableModel, match="not a multiple of the model's total time stride 4"):
        _export(features, tmp_path, model=build_model("lstm"), chunk=6, frames=96)


def test_esp32p4_int16_simulates_recurrences_as_esp_dl_does():
    from esp_ppq.executor.base import OPERATION_FORWARD_TABLE
    from esp_ppq.executor.op.torch.espdl import GRU_quant_forward, LSTM_quant_forward

    table = OPERATION_FORWARD_TABLE[ppq.platform_for("esp32p4", 16)]  # (the float forward only before quantizing)
    assert inspect.unwrap(table["LSTM"]) is LSTM_quant_forward and inspect.unwrap(table["GRU"]) is GRU_quant_forward


def test_a_users_strided_model_exports(features, tmp_path):
    result = _export(features, tmp_path, model=CausalTCN(TCNConfig(input_stride=2, dilations=(1, 3))).eval())
    assert result.passed, [c.detail for c in result.checks if not c.passed]
    assert result.report["total_stride"] == 2


@pytest.fixture(scope="module")
def quantized_tcn(features):
    plan = find_cache_sites(model_to_onnx(build_model("tcn"), 40, 96))
    return ppq.quantize(plan.graph, _calibration(features[:8]), "esp32s3", 8, io.StringIO()), plan


def _calibration(clips):
    return [{"x": torch.from_numpy(c[None])} for c in clips]


def _chunks(clip, chunk):
    return [torch.from_numpy(np.ascontiguousarray(clip[None, :, i : i + chunk])) for i in range(0, clip.shape[-1], chunk)]


def _streaming_file(q, path, sites=(), esp_ppq_table=None):
    ppq.export_espdl(q, path, io.StringIO(), streaming=ppq.StreamingExport(sites, [1, 40, 8], esp_ppq_table))
    return read_espdl(path)


def test_guard_shared_cache_from_plain_auto_streaming_is_detected(quantized_tcn, tmp_path):
    q, plan = quantized_tcn
    espdl = _streaming_file(q, tmp_path / "auto.espdl", esp_ppq_table={})  # esp-ppq's own auto streaming
    check = verify.check_streaming_structure(espdl, plan, 8, 40)
    assert not check.passed
    # the residual Add reads a cache output, directly or through a RequantizeLinear esp-ppq put before it
    assert "reads the output of cache" in check.detail and "a shared cache" in check.detail
    ours = _streaming_file(q, tmp_path / "ours.espdl", plan.sites)
    assert verify.check_streaming_structure(ours, plan, 8, 40).passed


def test_guard_wrong_window_is_detected_in_file_and_simulation(quantized_tcn, tmp_path, features):
    q, plan = quantized_tcn
    wrong = plan.sites[3]
    sites = tuple(
        CacheSite(s.variable, s.consumer, s.window + 1, s.stride, s.channels, s.input_stride) if s == wrong else s
        for s in plan.sites
    )
    check = verify.check_streaming_structure(_streaming_file(q, tmp_path / "w.espdl", sites), plan, 8, 40)
    assert not check.passed and f"has window {wrong.window + 1}, needs {wrong.window}" in check.detail
    # the same mistake in the simulated graph: the conv then yields a different number of frames
    # than its residual partner, and the simulation stops at that Add instead of streaming garbage
    chunks = _chunks(features[30], 8)
    block = wrong.consumer.split("/")[2]  # e.g. /blocks/blocks.2/depthwise/conv/Conv
    with pytest.raises(RuntimeError, match=f"Op Execution Error: /blocks/{block}/Add"):
        ppq.simulate_streaming(q, sites, chunks)


def test_guard_failed_export_does_not_poison_the_next(quantized_tcn, tmp_path, monkeypatch):
    q, plan = quantized_tcn
    good = tmp_path / "good.espdl"
    _streaming_file(q, good, plan.sites)
    bad_table = {"no_such_variable": {"window_size": 3, "op_name": None, "frame_axis": 1}}
    with pytest.raises(ExportError, match="esp-ppq"):
        _streaming_file(q, tmp_path / "bad.espdl", esp_ppq_table=bad_table)
    _streaming_file(q, tmp_path / "after.espdl", plan.sites)
    assert (tmp_path / "after.espdl").read_bytes() == good.read_bytes()
    # without the guard the leftover table poisons the next export
    monkeypatch.setattr(ppq, "reset_export_state", lambda: None)
    with pytest.raises(ExportError):
        _streaming_file(q, tmp_path / "bad2.espdl", esp_ppq_table=bad_table)
    with pytest.raises(ExportError):
        _streaming_file(q, tmp_path / "poisoned.espdl", plan.sites)


def test_guard_errors_esp_ppq_only_logs_are_raised(features):
    class MeanOverTime(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = CausalConv1d(40, 8, 3)

        def forward(self, x):
            return self.conv(x).mean(dim=2, keepdim=True)

    proto = model_to_onnx(MeanOverTime().eval(), 40, 96)  # the plan would refuse it
    q = ppq.quantize(proto, _calibration(features[:4]), "esp32s3", 8, io.StringIO())
    with pytest.raises(ExportError, match="operates along the frame axis"):
        ppq.export_espdl(q, Path(os.devnull), io.StringIO(), streaming=ppq.StreamingExport((), [1, 40, 8], {}))


def test_failed_verification_leaves_previous_artifacts(features, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.espdl").write_bytes(b"previous")
    real = ppq.simulate_streaming

    def off_by_one(*args):
        results = real(*args)
        results[5]["y"] = results[5]["y"].copy()
        results[5]["y"][0, 0, 0] += 1
        return results

    monkeypatch.setattr(ppq, "simulate_streaming", off_by_one)
    result = _export(features, out)
    assert not result.passed
    quantized = next(c for c in result.checks if c.name.startswith("quantized"))
    assert quantized.per_chunk[5] == 1 and sum(quantized.per_chunk) == 1
    assert sorted(p.name for p in out.iterdir()) == ["model.espdl", "report.failed.html", "report.failed.json"]
    assert (out / "model.espdl").read_bytes() == b"previous"


def test_crash_midway_leaves_no_partial_files(features, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("previous")
    real = ppq.export_espdl

    def crash_on_streaming(q, path, log, **kwargs):
        if kwargs.get("streaming"):
            path.write_bytes(b"half a file")
            raise ExportError("simulated crash")
        return real(q, path, log, **kwargs)

    monkeypatch.setattr(ppq, "export_espdl", crash_on_streaming)
    with pytest.raises(ExportError, match="simulated crash"):
        _export(features, out)
    assert [p.name for p in out.iterdir()] == ["report.json"]
    assert (out / "report.json").read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left behind


@pytest.mark.parametrize("model", ["tcn", "lstm"])
def test_same_inputs_same_bytes_whatever_the_hash_seed(tmp_path, model):
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-m", "espdl_stream.export.cli", "--model", model, "--out", str(out), "--quiet",
                        "--calib-steps", "8"], check=True, env=env, capture_output=True)
        outputs.append(out)
    for name in ("model.espdl", "streaming_model.espdl", "streaming_vectors.bin"):
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes(), name


def test_16_bit_exports_use_esp_ppqs_float64_simulation(features):
    """16 bits run esp-ppq's double-precision simulation (its float32 one may round a chunk and the whole clip
    one LSB apart, depending on the host's float32 arithmetic), and with it streaming equals offline exactly."""
    for target in ("esp32s3", "esp32p4"):
        assert ppq.platform_for(target, 16) == ppq.get_target_platform(target, 16, debug=True)
        assert ppq.platform_for(target, 16) != ppq.get_target_platform(target, 16)
    plan = find_cache_sites(model_to_onnx(build_model("tcn"), 40, 96))
    clip = features[35]
    q = ppq.quantize(plan.graph, _calibration(features[:8]), "esp32p4", 16, io.StringIO())
    assert q.platform == ppq.platform_for("esp32p4", 16)
    offline = ppq.simulate_offline(q, {"x": torch.from_numpy(clip[None])})["y"]
    streamed = np.concatenate([r["y"] for r in ppq.simulate_streaming(q, plan.sites, _chunks(clip, 4))], axis=2)
    assert int((offline != streamed).sum()) == 0
