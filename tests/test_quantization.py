"""Quantization that keeps accuracy: intervals, per-layer errors, mixed precision, options, the report page."""

import base64
import io
import json
import re

import numpy as np
import pytest
import torch

from espdl_stream.calibration import LabeledClips
from espdl_stream.export import accuracy, ppq, precision, verify
from espdl_stream.export.emulator import Emulator
from espdl_stream.export.errors import ExportError
from espdl_stream.export.intake import model_to_onnx
from espdl_stream.export.plan import find_cache_sites
from espdl_stream.export.espdl_file import read_espdl
from espdl_stream.export.layer_error import float_tensors, per_layer_errors
from espdl_stream.export.pipeline import ExportConfig, export_streaming
from espdl_stream.models import build_model


# ---------------------------------------------------------------- intervals and the verdict
def test_wilson_interval_known_values():
    # Wilson's score interval: 81 of 263 -> 0.2553 to 0.3662 (as statsmodels' proportion_confint gives it)
    low, high = accuracy.wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert accuracy.wilson_interval(0, 10)[0] == 0.0 and accuracy.wilson_interval(10, 10)[1] == pytest.approx(1.0)


def _pairs(a, b, c, d):
    """Paired outcomes: a both right, b first right only, c second right only, d both wrong."""
    first = np.array([1] * a + [1] * b + [0] * c + [0] * d, bool)
    second = np.array([1] * a + [0] * b + [1] * c + [0] * d, bool)
    return first, second


def test_paired_interval_without_correlation_is_newcombes_unpaired_interval():
    # with a*d == b*c the paired outcomes are uncorrelated and method 10 is Newcombe's hybrid score interval for
    # independent samples: 80/100 vs 60/100 -> 0.0731 to 0.3185 (statsmodels' confint_proportions_2indep, 'newcomb')
    low, high = accuracy.paired_difference_interval(*_pairs(48, 32, 12, 8))
    assert (round(low, 4), round(high, 4)) == (0.0731, 0.3185)


def test_paired_interval_uses_the_pairing():
    # the same two accuracies (90% and 88%), once with every disagreement one-sided, once spread out
    tight = accuracy.paired_difference_interval(*_pairs(880, 20, 0, 100))
    loose = accuracy.paired_difference_interval(*_pairs(800, 100, 80, 20))
    assert tight[0] > 0 and tight[0] < 0.02 < tight[1]
    assert loose[1] - loose[0] > 2 * (tight[1] - tight[0])
    same = accuracy.paired_difference_interval(*_pairs(900, 0, 0, 100))
    assert same[0] < 0 < same[1] and same[1] - same[0] < 0.01


def _report(float_right, quant_right, width="int8", target=0.5):
    labels = np.zeros(len(float_right), int)
    evaluation = LabeledClips(np.zeros((len(labels), 1, 1), np.float32), labels, ("a", "b"))
    decisions = accuracy.Decisions(np.where(float_right, 0, 1), np.where(quant_right, 0, 1), np.where(quant_right, 0, 1), 20.0)
    return accuracy.accuracy_report(evaluation, decisions, target, width)


def test_cost_over_target_is_a_warning_not_a_failure():
    within = accuracy.accuracy_checks(_report(*_pairs(995, 2, 1, 2)))
    assert [c.result for c in within] == ["PASS", "PASS"]
    over = accuracy.accuracy_checks(_report(*_pairs(980, 15, 1, 4)))
    assert [c.result for c in over] == ["PASS", "WARN"] and all(c.passed for c in over)
    assert "cost +1.40 points (95% CI" in over[1].detail and "try --bits mixed" in over[1].detail
    assert json.loads(json.dumps(over[1].to_dict()))["result"] == "WARN"


def test_confusion_matrix_counts_true_by_predicted():
    matrix = accuracy.confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_features_are_quantized_as_each_chip_rounds(tmp_path):
    proto = model_to_onnx(build_model("tcn"), 40, 96)
    calibration = [{"x": torch.from_numpy(np.random.default_rng(k).normal(size=(1, 40, 96)).astype(np.float32))}
                   for k in range(8)]
    q = ppq.quantize(proto, calibration, "esp32s3", 8, io.StringIO())
    ppq.export_espdl(q, tmp_path / "m.espdl", io.StringIO())
    espdl = read_espdl(tmp_path / "m.espdl")
    step = 2.0 ** espdl.inputs["x"].exponent
    values = np.array([[[0.5 * step, 1.5 * step, 2.5 * step, -0.5 * step, 1000.0]]], np.float32)
    assert Emulator(espdl, "esp32s3").quantize("x", values).tolist() == [[[1, 2, 3, 0, 127]]]
    assert Emulator(espdl, "esp32p4").quantize("x", values).tolist() == [[[0, 2, 2, 0, 127]]]


# ---------------------------------------------------------------- the mixed-precision search
def test_search_keeps_the_layers_that_help_until_the_target_is_met():
    snr_gain = {"a": 0.05, "b": 3.0, "c": -2.0, "x": 0.0, "d": 2.0, "e": 1.0}  # a does nothing, c hurts

    def measure(layers):
        if "x" in layers:  # a set of widths esp-ppq writes wrong
            return precision.Trial(list(layers), None, None, refused="Transpose changes the exponent")
        snr = 20 + sum(snr_gain[n] for n in layers)
        return precision.Trial(list(layers), round(2.0 - 0.3 * (snr - 20), 2), np.float64(snr))

    chosen, trials = precision.search(["a", "b", "c", "x", "d", "e"], measure, 0.5)
    assert chosen == ("b", "d")
    assert [(t.layers, t.kept) for t in trials] == [
        ([], True), (["a"], False), (["b"], True), (["b", "c"], False), (["b", "x"], False), (["b", "d"], True)]
    assert trials[-1].cost_points == 0.5  # stopped there: e never tried
    json.dumps([t.to_dict() for t in trials])  # into report.json as it is
    assert precision.search(["a"], lambda layers: precision.Trial(list(layers), 0.2, 20.0), 0.5)[0] == ()
    # out of reach: every layer that helped
    out_of_reach = lambda layers: precision.Trial(list(layers), 3.0, 20 + sum(snr_gain[n] for n in layers))  # noqa: E731
    assert precision.search(["a", "b", "c"], out_of_reach, 0.5)[0] == ("b",)


# ---------------------------------------------------------------- per-layer error
def _calibration(model_name, clips):
    proto = model_to_onnx(build_model(model_name), 40, 96)
    zeros = {i.name: torch.zeros([d.dim_value for d in i.type.tensor_type.shape.dim]) for i in proto.graph.input if i.name != "x"}
    return proto, zeros, [{"x": torch.from_numpy(c[None]), **zeros} for c in clips]


def _layer_errors(proto, zeros, q, path, clips, target="esp32s3", edit=None):
    layouts = ppq.export_espdl(q, path, io.StringIO())
    espdl = read_espdl(path)
    if edit:
        edit(espdl)
    emulator = Emulator(espdl, target)
    float_inputs = [{"x": c[None], **{n: v.numpy() for n, v in zeros.items()}} for c in clips]
    file_inputs = [{"x": emulator.quantize("x", c.T[None]), **{n: emulator.zeros(n) for n in zeros}}
                   for c in clips]
    return per_layer_errors(emulator, proto, layouts, float_inputs, file_inputs)


def test_per_layer_error_points_at_the_layer_that_loses(features, tmp_path):
    proto, zeros, calibration = _calibration("tcn", features[:8])
    q = ppq.quantize(proto, calibration, "esp32s3", 8, io.StringIO())
    clean = _layer_errors(proto, zeros, q, tmp_path / "clean.espdl", features[8:10])
    rows = {r.layer: r for r in clean.rows}
    first = clean.rows[0]
    assert first.graphwise_snr_db == first.layerwise_snr_db  # the first layer's inputs are the graph's
    assert all(r.bits == 8 and 10 < r.layerwise_snr_db < 60 for r in clean.rows)
    assert clean.graphwise_snr_db["y"] == rows["/head/Conv"].graphwise_snr_db
    broken = "/blocks/blocks.2/pointwise/Conv"

    def damage(espdl):  # a planted fault: one layer's weights lose their low bits
        weight = espdl.initializers[next(n.inputs[1] for n in espdl.nodes if n.name == broken)]
        weight.values = (weight.values // 16 * 16).astype(weight.values.dtype)

    damaged = {r.layer: r for r in _layer_errors(proto, zeros, q, tmp_path / "damaged.espdl", features[8:10], edit=damage).rows}
    assert damaged[broken].layerwise_snr_db < rows[broken].layerwise_snr_db - 6
    for name, row in rows.items():  # everything before it is as it was; after it only the graphwise error grows
        if name == broken:
            break
        assert damaged[name] == row
    later = [name for name in rows if list(rows).index(name) > list(rows).index(broken)]
    assert all(damaged[n].layerwise_snr_db == pytest.approx(rows[n].layerwise_snr_db, abs=0.5) for n in later)
    assert damaged["/head/Conv"].graphwise_snr_db < rows["/head/Conv"].graphwise_snr_db - 1


def test_per_layer_error_of_recurrent_layers_and_why_not_esp_ppqs(features, tmp_path):
    from esp_ppq.executor import TorchExecutor

    proto, zeros, calibration = _calibration("lstm", features[:8])
    q = ppq.quantize(proto, calibration, "esp32s3", 8, io.StringIO())
    errors = _layer_errors(proto, zeros, q, tmp_path / "lstm.espdl", features[8:10])
    lstm = [r for r in errors.rows if r.op_type == "LSTM"]
    assert len(lstm) == 3 and all(0 < r.layerwise_snr_db < 60 for r in lstm)
    assert {"c0_out", "h2_out"} <= set(errors.graphwise_snr_db)  # the states too
    # raising the projection after an LSTM takes the ops that move its input (no rescaling in them on ESP-DL)
    # and the residual Add that sets its exponent
    assert ppq.int16_unit(q, "/layers.2/proj/Conv", "/layers.2/proj/Conv_output_0") == (
        "/layers.2/proj/Conv", "/layers.2/Transpose_1", "/layers.2/rnn/Squeeze", "/layers.2/Add")
    # and raising that Add takes the same ops: the Transpose before its aligned projection too (without it the
    # Transpose got the 16-bit exponent from the 8-bit Squeeze and the LSTM's trial cost 45.7 points)
    assert set(ppq.int16_unit(q, "/layers.2/Add", "/layers.2/Add_output_0")) == {
        "/layers.2/proj/Conv", "/layers.2/Transpose_1", "/layers.2/rnn/Squeeze", "/layers.2/Add"}
    # esp-ppq's own report takes its "float" reference from its graph with every op dequantized: its LSTM forward
    # still quantizes gates and cell state, so the reference is off by far more than float rounding
    name = "/layers.0/rnn/LSTM_output_0"
    for op in q.graph.operations.values():
        if isinstance(op, ppq.QuantableOperation):
            op.dequantize()
    with torch.no_grad():
        esp_ppq_float = TorchExecutor(q.graph, device="cpu").forward({"x": torch.from_numpy(features[8][None]), **zeros},
                                                                    output_names=[name])[0].numpy()
    float_lstm = float_tensors(proto, [name], [{"x": features[8][None], **{n: v.numpy() for n, v in zeros.items()}}])[0][name]
    assert np.abs(esp_ppq_float - float_lstm).max() > 1e-3


# ---------------------------------------------------------------- mixed precision
def _export(features, out, model="tcn", evaluation=None, **overrides):
    config = ExportConfig(**{"calib_steps": 8, "verify_clips": 2, **overrides})
    return export_streaming(build_model(model), features[:8], features[8:10], config, out, evaluation=evaluation)


def _requantized(espdl):
    """(input type, output type) of every RequantizeLinear: 3 int8, 5 int16."""
    return {(espdl.tensor(n.inputs[0]).dtype, espdl.tensor(n.outputs[0]).dtype) for n in espdl.nodes
            if n.op_type == "RequantizeLinear"}


@pytest.mark.parametrize("target", ["esp32s3", "esp32p4"])
def test_mixed_graph_streams_exactly_on_both_chips(features, tmp_path, target):
    raised = ("/blocks/blocks.1/depthwise/conv/Conv", "/blocks/blocks.3/Add")
    result = _export(features, tmp_path, target=target, bits="mixed", int16_layers=raised)
    assert result.passed, [c.detail for c in result.checks if not c.passed]
    checks = {c.name: c for c in result.checks}
    assert checks["streaming .espdl equals offline .espdl on every prefix (emulated)"].per_chunk == [0.0] * 12
    assert checks["quantized streaming vs offline (host simulation)"].per_chunk == [0.0] * 12
    # the ops that share the Add's exponent come along: its aligned input and the activation after it
    assert {r["layer"] for r in result.report["layer_errors"] if r["bits"] == 16} == {
        *raised, "/blocks/blocks.3/pointwise/Conv", "/blocks/blocks.3/act_1/Relu"}
    assert result.report["mixed_precision"]["int16_layers"] == list(raised)
    assert result.report["device_tolerance_lsb"] == 1 and result.report["width"] == "mixed"
    for name in ("model.espdl", "streaming_model.espdl"):  # ESP-DL's RequantizeLinear changes the width
        assert {(3, 5), (5, 3)} <= _requantized(read_espdl(tmp_path / name))


def test_a_recurrence_raised_alone_keeps_its_state_contract(features, tmp_path):
    # esp-ppq 1.3.12 fails to trace a 16-bit LSTM in an 8-bit graph without the guard in ppq.py
    result = _export(features, tmp_path, model="lstm", target="esp32p4", bits="mixed", int16_layers=("/layers.2/rnn/LSTM",))
    assert result.passed, [c.detail for c in result.checks if not c.passed]
    streaming = read_espdl(tmp_path / "streaming_model.espdl")
    assert streaming.inputs["h2_in"].dtype == streaming.outputs["h2_out"].dtype == 5
    assert streaming.inputs["h1_in"].dtype == 3
    assert "recurrent state copy-back contract" in [c.name for c in result.checks]


def test_mixed_cost_is_measured_as_the_accuracy_stage_measures_it(features, tmp_path):
    from espdl_stream.calibration import keyword_eval_set

    full = keyword_eval_set()
    pick = np.concatenate([np.nonzero(full.labels == c)[0][:2] for c in range(len(full.classes))])
    evaluation = LabeledClips(full.features[pick], full.labels[pick], full.classes)
    raised = ("/head/Conv",)
    result = _export(features, tmp_path, evaluation=evaluation, bits="mixed", int16_layers=raised)
    proto, _, calibration = _calibration("tcn", features[:8])
    q8 = ppq.quantize(proto, calibration, "esp32s3", 8, io.StringIO())
    run_float = verify.onnx_offline_runner(proto, find_cache_sites(proto))
    probe = precision.CostProbe(
        lambda ops: ppq.quantize(proto, calibration, "esp32s3", 8, io.StringIO(), ppq.QuantOptions(int16_layers=ops)),
        {"/head/Conv": ppq.int16_unit(q8, "/head/Conv", "y")}, "esp32s3", evaluation.features, evaluation.labels,
        accuracy.float_logits(evaluation, 96, run_float), io.StringIO())
    assert probe(raised).cost_points == result.report["accuracy"]["quantization_cost_points"]


def test_mixed_needs_labels_or_named_layers(features, tmp_path):
    with pytest.raises(ExportError, match="needs labelled clips .* or name the layers with --int16-layers"):
        _export(features, tmp_path, bits="mixed")
    with pytest.raises(ExportError, match="no layer 'nope' to raise to 16 bits"):
        _export(features, tmp_path, bits="mixed", int16_layers=("nope",))
    with pytest.raises(ExportError, match="only with --bits mixed"):
        ExportConfig(bits=8, int16_layers=("/head/Conv",)).validate()


# ---------------------------------------------------------------- esp-ppq's options
def test_options_reach_esp_ppqs_setting():
    proto = model_to_onnx(build_model("lstm"), 40, 96)
    setting = ppq.quantization_setting("esp32s3", 8, ppq.QuantOptions("mse", True, True, ("/head/Conv",)), proto)
    assert setting.quantize_activation_setting.calib_algorithm == "mse"
    assert setting.equalization and setting.bias_correct
    # esp-ppq's bias correction fails on an LSTM: it is given the convolutions only
    assert setting.bias_correct_setting.interested_layers == [n.name for n in proto.graph.node if n.op_type == "Conv"]
    assert setting.dispatching_table.dispatchings["/head/Conv"] == ppq.platform_for("esp32s3", 16).value
    assert setting.quantize_activation_setting.calib_algorithm_per_layer == {"/head/Conv": "minmax"}  # 16-bit layers
    assert ppq.quantization_setting("esp32s3", 16, ppq.QuantOptions(), proto).quantize_activation_setting.calib_algorithm == "minmax"
    with pytest.raises(ExportError, match="calibration 'nope' is not supported"):
        ExportConfig(calibration="nope").validate()


def test_bias_correction_runs_on_a_recurrent_model():
    from espdl_stream.calibration import calibration_clips

    proto, _, calibration = _calibration("lstm", calibration_clips()[:8])  # fails in esp-ppq without the guard
    plain = ppq.quantize(proto, calibration, "esp32s3", 8, io.StringIO())
    corrected = ppq.quantize(proto, calibration, "esp32s3", 8, io.StringIO(), ppq.QuantOptions(bias_correction=True))
    bias = "model.frontend.0.conv.bias"
    assert not torch.equal(plain.graph.variables[bias].value, corrected.graph.variables[bias].value)
    options = ppq.QuantOptions("percentile", equalization=True, bias_correction=True)
    assert options.describe(8) == "percentile calibration, equalization, bias correction"


def test_an_esp_ppq_failure_while_quantizing_is_one_line(monkeypatch):
    def crash(**kwargs):
        raise TypeError("Unexpected Type of value")

    monkeypatch.setattr(ppq, "espdl_quantize_onnx", crash)
    proto, _, calibration = _calibration("tcn", np.zeros((1, 40, 96), np.float32))
    with pytest.raises(ExportError, match=r"esp-ppq failed to quantize \(kl calibration\): TypeError: Unexpected"):
        ppq.quantize(proto, calibration, "esp32s3", 8, io.StringIO())


# ---------------------------------------------------------------- the page
def test_report_page_shows_the_verdict_the_plots_and_the_tables(features, tmp_path):
    from espdl_stream.calibration import keyword_eval_set

    full = keyword_eval_set()
    pick = np.concatenate([np.nonzero(full.labels == c)[0][:2] for c in range(len(full.classes))])
    result = _export(features, tmp_path, evaluation=LabeledClips(full.features[pick], full.labels[pick], full.classes))
    page = (tmp_path / "report.html").read_text()
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 5  # accuracy, confusion matrices, test clip, per-layer chart, timings
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    for check in result.checks:
        assert check.name in page
    assert "Error per layer" in page and "/blocks/blocks.3/depthwise/conv/Conv" in page and "95% interval" in page
    assert json.loads((tmp_path / "report.json").read_text())["files"]["report.html"]["bytes"] == len(page.encode())
