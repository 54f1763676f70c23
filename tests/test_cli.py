"""`export-espdl`: the help, one-line errors with exit code 2, and the default run."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli

from espdl_stream.export.cli import main


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--model", "--target", "--bits", "--chunk", "--frames", "--calib", "--out", "--seed"):
        assert option in text


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--target", "esp32"], "invalid choice: 'esp32'"),
        (["--bits", "4"], "invalid choice: 4"),
        (["--chunk", "10"], "offline length of 96 frames is not a whole number of 10-frame chunks"),
        (["--chunk", "5"], "chunk of 5 frames is not a multiple of the model's total time stride 2"),
        (["--calib", "/no/such/place"], "/no/such/place: no such file or directory"),
    ],
)
def test_errors_are_one_line_and_exit_2(argv, message, capsys, tmp_path):
    code, _, err = run_cli([*argv, "--out", tmp_path / "out", "--quiet"], capsys)
    err = err.strip()
    assert code == 2
    assert message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_too_few_calibration_clips_is_refused(tmp_path, capsys):
    np.save(tmp_path / "few.npy", np.random.default_rng(0).standard_normal((3, 40, 96)).astype(np.float32))
    assert main(["--calib", str(tmp_path / "few.npy"), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "need at least 32" in capsys.readouterr().err


def test_user_calibration_folder_runs(tmp_path, features, capsys):
    calib = tmp_path / "calib"
    calib.mkdir()
    for i, clip in enumerate(features[:10]):
        np.save(calib / f"{i}.npy", clip)
    assert main(["--calib", str(calib), "--calib-steps", "8", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["model"]["calibration"] == str(calib) and report["passed"]


def test_default_run_prints_the_verdict_table(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "ALL PASS" in captured.out and captured.out.count("PASS") >= 10
    assert "[1/10]" in captured.err and "[10/10]" in captured.err  # 10 stages: with the accuracy table
    assert "accuracy on 1008 held-out clips" in captured.out
    assert f"report: {tmp_path / 'out' / 'report.html'}" in captured.out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["config"] == {"target": "esp32s3", "bits": 8, "chunk": 8, "frames": 96, "calib_steps": 32,
                                "verify_clips": 4, "seed": 0, "calibration": "default", "equalization": False,
                                "bias_correction": False, "int16_layers": []}


def test_the_mixed_line_says_why_no_layer_was_raised():
    from espdl_stream.export.cli import raised_layers

    eight_bits = {"layers": [], "kept": True}
    assert raised_layers({"int16_layers": [], "trials": [eight_bits]}) == "none (int8 meets the target)"
    tried = [eight_bits] + [{"layers": [name], "kept": False} for name in ("/a/Conv", "/b/Add")]
    assert raised_layers({"int16_layers": [], "trials": tried}) == "none (2 layers tried, none raised the output SNR)"
    assert raised_layers({"int16_layers": ["/a/Conv", "/b/Add"], "trials": []}) == "/a/Conv, /b/Add"


def test_verify_passes_on_our_export_and_names_a_shared_cache(tmp_path, features, capsys):
    import io

    import torch

    from espdl_stream.export import integrity, ppq
    from espdl_stream.export.espdl_file import read_espdl
    from espdl_stream.export.intake import model_to_onnx
    from espdl_stream.export.plan import find_cache_sites
    from espdl_stream.export.vectors import read_vectors
    from espdl_stream.models import build_model

    out = tmp_path / "out"
    assert main(["--out", str(out), "--quiet", "--calib-steps", "8"]) == 0
    capsys.readouterr()
    files = ["--offline", str(out / "model.espdl"), "--streaming", str(out / "streaming_model.espdl")]
    assert main(["verify", *files, "--vectors", str(out / "streaming_vectors.bin")]) == 0
    printed = capsys.readouterr().out
    assert "emulating esp32s3" in printed  # the target comes from the file's metadata
    export_id = json.loads((out / "report.json").read_text())["export_id"]
    assert {read_espdl(out / name).metadata[integrity.EXPORT_ID_KEY] for name in ("model.espdl", "streaming_model.espdl")} \
        == {read_vectors((out / "streaming_vectors.bin").read_bytes()).export_id} == {export_id}
    assert f"streaming_model.espdl CRC-32 {integrity.check(out / 'streaming_model.espdl')[0]} intact" in printed
    assert f"one export, id {export_id}" in printed

    # esp-ppq's plain auto streaming, without the project's per-op table: the residual Add reads a cache
    proto = find_cache_sites(model_to_onnx(build_model("tcn"), 40, 96)).graph
    q = ppq.quantize(proto, [{"x": torch.from_numpy(c[None])} for c in features[:8]], "esp32s3", 8, io.StringIO())
    plain, offline = tmp_path / "plain_streaming.espdl", tmp_path / "plain_model.espdl"
    ppq.export_espdl(q, plain, io.StringIO(), streaming=ppq.StreamingExport((), [1, 40, 8], esp_ppq_table={}))
    ppq.export_espdl(q, offline, io.StringIO(), test_inputs={"x": torch.from_numpy(features[8][None])})
    assert main(["verify", "--offline", str(offline), "--streaming", str(plain), "--target", "esp32s3"]) == 1
    report = capsys.readouterr().out
    assert "Add node '/blocks/blocks.0/Add': inputs of shapes (1, 6, 96) and (1, 4, 96) do not broadcast" in report
    assert "a shared cache" in report and "FAILED" in report


def test_verify_errors_are_one_line(tmp_path, capsys):
    code, _, err = run_cli(["verify", "--offline", tmp_path / "none.espdl", "--streaming", tmp_path / "none.espdl"], capsys)
    assert code == 2
    assert "none.espdl: no such file" in err and "\n" not in err.strip()


USER_MODELS = str(Path(__file__).resolve().parent / "user_models.py")


def test_check_prints_the_layers_and_what_decided(capsys):
    assert main(["check", "tcn"]) == 0
    out = capsys.readouterr().out
    assert "blocks.3.depthwise.conv" in out and "needs a cache of 16 frames" in out and "causal conv" in out
    assert "STREAMS: 7 caches (1 + 2 + 4 + 8 + 16 + 32 + 3 frames), 0 states, total stride 2, chunk 8 frames" in out


def test_check_and_the_export_refuse_with_the_same_words(capsys, tmp_path):
    assert main(["check", f"{USER_MODELS}:SamePadding"]) == 1
    out = capsys.readouterr().out
    refusal = "layer 'conv' (Conv) cannot stream: pads 1 frame(s) on the left and 1 on the right"
    assert f"REFUSED: {refusal}" in out
    assert main(["--model", f"{USER_MODELS}:SamePadding", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert refusal in err and "\n" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv,message", [
    (["check", "/no/such.onnx"], "/no/such.onnx: no such file"),
    (["check", "resnet"], "'resnet' is none of the shipped models (tcn, lstm, gru), a path/to/file.py:factory"),
    (["check", "tcn", "--weights", "mine.pt"], "the shipped tcn takes trained or random"),
    (["check", f"{USER_MODELS}:StackedGRU"], "cannot run on x of shape [1, 40, 96] read as BFT"),
    (["--model", f"{USER_MODELS}:PlainLSTM", "--weights", "/no/weights.pt"], "/no/weights.pt: no such file"),
])
def test_model_errors_are_one_line_and_exit_2(argv, message, capsys, tmp_path):
    code, _, err = run_cli([*argv, "--out", tmp_path / "out", "--quiet"] if argv[0] != "check" else argv, capsys)
    assert code == 2
    assert message in err and "\n" not in err.strip()


def test_export_a_users_model_from_a_file_and_from_onnx(tmp_path, capsys):
    out = tmp_path / "lstm"
    assert main(["--model", f"{USER_MODELS}:StackedGRU", "--input-layout", "BTF", "--calib-steps", "4",
                 "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["state_pairs"] == [["h0_out", "h0_in"], ["h1_out", "h1_in"]] and report["passed"]
    assert report["model"]["name"] == "user_models.StackedGRU" and report["accuracy"] is None
    assert re.search(r"^PyTorch vs offline ONNX \(float\) +PASS ", capsys.readouterr().out, re.MULTILINE)

    import torch

    from espdl_stream.export.intake import load_model

    onnx_file = tmp_path / "tcn.onnx"
    with pytest.warns(DeprecationWarning):  # exported the way a user would, with torch's legacy exporter
        torch.onnx.export(load_model(f"{USER_MODELS}:LocuslabTCN"), (torch.zeros(1, 40, 50),), str(onnx_file),
                          input_names=["feats"], output_names=["scores"], dynamic_axes={"feats": {2: "t"}},
                          opset_version=17, dynamo=False)
    assert main(["check", str(onnx_file)]) == 0
    assert "/network/network.1/net/conv2/Conv" in capsys.readouterr().out  # the ONNX file's own node names
    assert main(["--onnx", str(onnx_file), "--calib-steps", "4", "--out", str(tmp_path / "onnx"), "--quiet"]) == 0
    assert re.search(r"^your ONNX vs offline ONNX \(float\) +PASS ", capsys.readouterr().out, re.MULTILINE)
