"""Board test in the pytest-embedded-idf style: flash the firmware and wait for the PASS lines.

With a board attached and `pip install pytest-embedded-idf pytest-embedded-serial-esp`:

    cd firmware && idf.py set-target esp32s3 build
    pytest pytest_streaming.py --target esp32s3 --embedded-services esp,idf

Without pytest-embedded-idf (CI, or any machine without a board) the test is skipped, not failed.
"""

from importlib.util import find_spec

import pytest

# a mark, not importorskip: the test is collected and skipped (exit 0), never "no tests ran" (exit 5)
pytestmark = pytest.mark.skipif(
    find_spec("pytest_embedded_idf") is None, reason="pytest-embedded-idf and a board are needed for on-chip tests"
)


@pytest.mark.esp32s3
@pytest.mark.esp32p4
@pytest.mark.generic
def test_streaming_model_on_chip(dut) -> None:
    dut.expect_exact("OFFLINE SELF-TEST PASS", timeout=120)
    dut.expect(r"STREAMING PASS: \d+ chunks", timeout=120)
    dut.expect_exact("RESET PASS", timeout=120)
    dut.expect(r"real-time factor [0-9.]+", timeout=30)
    dut.expect_exact("ALL PASS", timeout=30)
    # the keyword demo on the embedded WAV (the default build): Fbank, the model and the detector, then its timing.
    # Which keywords it finds is the model's; kws_check on the host gives the same as the Python side.
    dut.expect(r"KWS: ESP-DL Fbank \d+ mel bins", timeout=60)
    dut.expect(r"KWS DONE: \d+ detections in \d+ chunks", timeout=120)
    dut.expect(r"real-time factor [0-9.]+ \(compute time / audio time\)", timeout=30)
