"""Differential tests: single-op and small-graph models exported by esp-ppq for both chips and both widths
(tests/op_fixtures.py, committed under tests/fixtures/ops/), their embedded test values against the emulator."""

import re

import numpy as np
import pytest

from espdl_stream.export.emulator import Emulator, EmulatorError
from espdl_stream.export.espdl_file import read_espdl

from op_fixtures import CASES, FIXTURES, export_case

FILES = sorted(FIXTURES.glob("*.espdl"))
FLOAT32 = 1

# Where ESP-DL's C++ computes something other than esp-ppq's simulation, read in the C++ and pinned here:
# (largest |difference| from esp-ppq's test values, why).
DIFFERENCES = {
    "prelu_esp32p4_s16": (1, "ESP32-P4 has no int16 PRelu kernel: prelu_11c floors x*alpha >> shift, esp-ppq rounds"),
}
# Files ESP-DL cannot run as the file means them, refused by name.
EVERY = [(t, b) for t in ("esp32s3", "esp32p4") for b in (8, 16)]
REFUSED = {
    **{f"gelu_{t}_s{b}": "Erf node .* not in the emulator's registry" for t, b in EVERY},  # opset 18 GELU: no Erf in ESP-DL
    # esp-ppq 1.3.12 marks a runtime right operand "native_kn"; ESP-DL v3.3.9 reads it as a packed filter
    **{f"matmul_two_inputs_{t}_s{b}": "input1_layout 'native_kn'" for t, b in EVERY},
}


def test_every_case_has_its_fixtures():
    expected = {case.file(t, b).name for case in CASES for t in ("esp32s3", "esp32p4") for b in case.bits}
    assert {f.name for f in FILES} == expected


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_emulator_reproduces_esp_ppq_test_values(path):
    espdl = read_espdl(path)
    if path.stem in REFUSED:
        with pytest.raises(EmulatorError, match=REFUSED[path.stem]):
            Emulator(espdl, espdl.metadata["target"])
        return
    out = Emulator(espdl, espdl.metadata["target"]).run({n: t.values for n, t in espdl.test_inputs.items()}, keep_all=True)
    worst = 0.0
    for name, expected in espdl.test_outputs.items():
        got = out[name]
        assert got.shape == expected.values.shape, name
        diff = float(np.abs(got.astype(np.float64) - expected.values.astype(np.float64)).max())
        if espdl.tensor(name).dtype == FLOAT32:  # softmax, log, sqrt: libm's last bits; Model::test allows 2e-5
            assert got.dtype == np.float32 and diff <= 2e-5, (name, diff)
        else:
            assert got.dtype == expected.values.dtype, name
            worst = max(worst, diff)
    assert worst == DIFFERENCES.get(path.stem, (0,))[0]


@pytest.mark.parametrize("name,target,bits", [("gemm_relu_unaligned", "esp32s3", 8), ("conv1d_depthwise_k5", "esp32p4", 16)])
def test_the_generator_is_current(tmp_path, name, target, bits):
    """Two fixtures made again now are byte for byte the committed ones."""
    case = next(c for c in CASES if c.name == name)
    export_case(case, target, bits, tmp_path / "fresh.espdl")
    assert (tmp_path / "fresh.espdl").read_bytes() == case.file(target, bits).read_bytes()


# ---------------------------------------------------------------- `export-espdl verify` on files this project did not write
def _verify(argv, capsys):
    from espdl_stream.export.cli import main

    code = main(["verify", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_verify_an_offline_file_alone(capsys):
    code, out, err = _verify(["--offline", str(FIXTURES / "lstm_bidirectional_esp32p4_s16.espdl")], capsys)
    assert code == 0 and err == "" and "emulating esp32p4 (rounding half to even)" in out
    assert re.search(r"offline .espdl reproduces its embedded test values +PASS", out) and "ALL PASS" in out


def test_verify_refuses_in_one_line_what_esp_dl_cannot_run(capsys):
    code, out, err = _verify(["--offline", str(FIXTURES / "gelu_esp32s3_s8.espdl")], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "Erf node '/0/Erf': Erf is not in the emulator's registry" in err


def test_verify_a_failing_file_names_the_tensor(tmp_path, capsys):
    """The P4 int16 PRelu floors where esp-ppq rounds: within Model::test's one step, so it passes; one step
    more in an int8 file is a failure that names the tensor."""
    assert _verify(["--offline", str(FIXTURES / "prelu_esp32p4_s16.espdl")], capsys)[0] == 0
    data = bytearray((FIXTURES / "relu_esp32s3_s8.espdl").read_bytes())
    espdl = read_espdl(FIXTURES / "relu_esp32s3_s8.espdl")
    expected = espdl.test_outputs["out"].values.tobytes()
    at = data.find(expected)
    data[at] = (data[at] + 1) % 256  # the first embedded test output, one step off
    (tmp_path / "off.espdl").write_bytes(bytes(data))
    code, out, _ = _verify(["--offline", str(tmp_path / "off.espdl")], capsys)
    assert code == 1 and "'out' differs by up to 1 (tolerance 0)" in out and "FAILED" in out


def test_verify_a_streaming_file_against_its_vectors_alone(capsys):
    from pathlib import Path

    models = Path(__file__).parent.parent / "firmware" / "main" / "models"
    streaming = sorted(models.rglob("streaming_model.espdl"))[0]
    code, out, err = _verify(["--streaming", str(streaming), "--vectors", str(streaming.parent / "streaming_vectors.bin")],
                             capsys)
    assert code == 0 and err == "" and re.search(r"streaming .espdl reproduces the per-chunk vectors \(emulated\) +PASS", out)
