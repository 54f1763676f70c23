"""`export-espdl`: the help, one-line errors with exit code 2, and the default run."""

import json

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
        (["--chunk", "5"], "offline length of 96 frames is not a whole number of 5-frame chunks"),
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
    assert "[1/9]" in captured.err and "[9/9]" in captured.err  # 9 stages: with the accuracy table
    assert "accuracy on 360 held-out clips" in captured.out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["config"] == {"target": "esp32s3", "bits": 8, "chunk": 8, "frames": 96, "calib_steps": 32,
                                "verify_clips": 4, "seed": 0}


def test_verify_passes_on_our_export_and_names_a_shared_cache(tmp_path, features, capsys):
    import io

    import torch

    from espdl_stream.export import ppq
    from espdl_stream.export.intake import model_to_onnx
    from espdl_stream.export.plan import find_cache_sites
    from espdl_stream.models import build_model

    out = tmp_path / "out"
    assert main(["--out", str(out), "--quiet", "--calib-steps", "8"]) == 0
    capsys.readouterr()
    files = ["--offline", str(out / "model.espdl"), "--streaming", str(out / "streaming_model.espdl")]
    assert main(["verify", *files, "--vectors", str(out / "streaming_vectors.bin")]) == 0
    assert "emulating esp32s3" in capsys.readouterr().out  # the target comes from the file's metadata

    # esp-ppq's plain auto streaming, without the project's per-op table: the residual Add reads a cache
    proto = find_cache_sites(model_to_onnx(build_model("tcn"), 40, 96)).graph
    q = ppq.quantize(proto, [{"x": torch.from_numpy(c[None])} for c in features[:8]], "esp32s3", 8, io.StringIO())
    plain = tmp_path / "plain_streaming.espdl"
    ppq.export_espdl(q, plain, io.StringIO(), streaming=ppq.StreamingExport((), [1, 40, 8], esp_ppq_table={}))
    assert main(["verify", "--offline", str(out / "model.espdl"), "--streaming", str(plain), "--target", "esp32s3"]) == 1
    report = capsys.readouterr().out
    assert "Add node '/blocks/blocks.0/Add': inputs of shapes (1, 10, 64) and (1, 8, 64) do not broadcast" in report
    assert "a shared cache" in report and "FAILED" in report


def test_verify_errors_are_one_line(tmp_path, capsys):
    code, _, err = run_cli(["verify", "--offline", tmp_path / "none.espdl", "--streaming", tmp_path / "none.espdl"], capsys)
    assert code == 2
    assert "none.espdl: no such file" in err and "\n" not in err.strip()
