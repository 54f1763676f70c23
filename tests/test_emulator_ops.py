"""Differential tests: single-op and small-graph models exported by esp-ppq for both chips and both widths
(tests/op_fixtures.py, committed under tests/fixtures/ops/), their embedded test values against the emulator."""

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
