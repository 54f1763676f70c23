"""The firmware without a board: its portable C++ core on the host, the committed models, the partition budget."""

import csv
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from espdl_stream.export import ppq
from espdl_stream.export.cli import main as export_main
from espdl_stream.export.vectors import VectorFile, read_vectors, write_vectors

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"
COMMITTED = {target: FIRMWARE / "main" / "models" / "tcn" / target for target in ("esp32s3", "esp32p4")}
SHIPPED_FILES = ("model.espdl", "streaming_model.espdl", "streaming_vectors.bin")
CODE_BUDGET = 2 * 1024 * 1024  # ESP-IDF, ESP-DL and the app: generous, the packed models come on top


@pytest.fixture(scope="session")
def host_check(tmp_path_factory) -> Path:
    for tool in ("cmake", "g++"):
        assert shutil.which(tool), f"{tool} is needed to build the firmware's portable core on the host"
    build = tmp_path_factory.mktemp("host_build")
    subprocess.run(["cmake", "-S", str(FIRMWARE / "host_test"), "-B", str(build)], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "-j2"], check=True, capture_output=True)
    return build / "host_check"


@pytest.fixture(scope="module")
def lstm_export(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lstm")
    assert export_main(["--model", "lstm", "--target", "esp32p4", "--bits", "16", "--chunk", "4",
                        "--calib-steps", "8", "--out", str(out), "--quiet"]) == 0
    return out


def _run(host_check, truth, expected, pairs="[]", *extra):
    done = subprocess.run([str(host_check), str(truth), str(expected), pairs, "100", *extra], capture_output=True, text=True)
    return done.returncode, done.stdout


def _state_pairs(models_dir: Path) -> str:
    return ppq.read_espdl(models_dir / "streaming_model.espdl").metadata["state_pairs"]


@pytest.mark.parametrize("target", ["esp32s3", "esp32p4"])
def test_core_passes_on_the_committed_default_vectors(host_check, target):
    vectors = COMMITTED[target] / "streaming_vectors.bin"
    code, out = _run(host_check, vectors, vectors, _state_pairs(COMMITTED[target]))
    assert code == 0, out
    assert "STREAM PASS: 12 chunks, 2 tensors, 0 state pairs" in out and "RESET PASS" in out
    assert "latency us min/median/max 1000/" in out


def test_core_copies_lstm_states_back_as_the_metadata_says(host_check, lstm_export):
    vectors = lstm_export / "streaming_vectors.bin"
    pairs = _state_pairs(lstm_export)
    code, out = _run(host_check, vectors, vectors, pairs)
    assert code == 0, out
    assert "STREAM PASS: 24 chunks, 8 tensors, 6 state pairs" in out
    code, out = _run(host_check, vectors, vectors, pairs, "--no-copy-back")
    assert code == 1 and "ORACLE: chunk 1 was fed a wrong 'c0_in'" in out  # the oracle notices a missing copy-back


def test_corrupted_vector_file_is_refused(host_check, tmp_path):
    data = bytearray((COMMITTED["esp32s3"] / "streaming_vectors.bin").read_bytes())
    data[100] ^= 0x01
    corrupted = tmp_path / "corrupted.bin"
    corrupted.write_bytes(bytes(data))
    code, out = _run(host_check, corrupted, corrupted)
    assert code == 2 and "CRC mismatch" in out


def _edited(source: Path, tmp_path: Path, delta: int) -> tuple[Path, int]:
    vectors = read_vectors(source.read_bytes())
    y = next(t for t in vectors.tensors if t.name == "y")
    chunk = y.chunks[3].copy()
    flat = chunk.reshape(-1)
    want = int(flat[5]) + delta
    flat[5] = want
    y.chunks[3] = chunk
    path = tmp_path / f"expected_{delta}.bin"
    path.write_bytes(write_vectors(VectorFile(vectors.tensors, vectors.tolerance)))
    return path, want


def test_a_wrong_expected_value_is_reported_precisely(host_check, tmp_path):
    truth = COMMITTED["esp32s3"] / "streaming_vectors.bin"
    expected, want = _edited(truth, tmp_path, 3)
    code, out = _run(host_check, truth, expected)
    assert code == 1
    assert f"first mismatch: chunk 3, tensor y, index 5: got {want - 3}, want {want} (1 values outside 0 LSB)" in out
    assert "STREAM FAIL" in out


def test_int16_tolerance_is_one_step(host_check, lstm_export, tmp_path):
    truth, pairs = lstm_export / "streaming_vectors.bin", _state_pairs(lstm_export)
    assert read_vectors(truth.read_bytes()).tolerance == 1
    within, _ = _edited(truth, tmp_path, 1)
    assert _run(host_check, truth, within, pairs)[0] == 0
    outside, _ = _edited(truth, tmp_path, 2)
    code, out = _run(host_check, truth, outside, pairs)
    assert code == 1 and "index 5" in out


def _packed_size(models_dir: Path) -> int:
    """Size of ESP-DL's PDL3 pack of the folder's .espdl files: 60-byte header, 12 bytes and the name per
    model, aligned to 16, then each model padded to 16 bytes."""
    models = sorted(models_dir.glob("*.espdl"))
    header = 60 + sum(12 + len(m.name) for m in models)
    return (header + 15) // 16 * 16 + sum((m.stat().st_size + 15) // 16 * 16 for m in models)


def _factory_partition_bytes() -> int:
    rows = [r for r in csv.reader(io.StringIO((FIRMWARE / "partitions.csv").read_text())) if r and not r[0].startswith("#")]
    size = next(r[4].strip() for r in rows if r[0].strip() == "factory")
    return int(size[:-1]) * 1024 * 1024 if size.endswith("M") else int(size, 0)


@pytest.mark.parametrize("target", ["esp32s3", "esp32p4"])
def test_packed_models_fit_the_app_partition(target, lstm_export):
    for models_dir in (COMMITTED[target], lstm_export):
        needed = _packed_size(models_dir) + (models_dir / "streaming_vectors.bin").stat().st_size + CODE_BUDGET
        assert needed <= _factory_partition_bytes(), f"{models_dir}: {needed} bytes"


@pytest.mark.parametrize("target", ["esp32s3", "esp32p4"])
def test_committed_models_regenerate_byte_identical(target, tmp_path):
    assert export_main(["--target", target, "--out", str(tmp_path), "--quiet"]) == 0
    for name in SHIPPED_FILES:
        assert (tmp_path / name).read_bytes() == (COMMITTED[target] / name).read_bytes(), (
            f"{target}/{name} differs from a fresh `export-espdl --target {target}`: re-export and commit it")


def test_board_test_is_skipped_without_a_board():
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(FIRMWARE / "pytest_streaming.py")],
                          capture_output=True, text=True, cwd=FIRMWARE)
    assert done.returncode == 0 and "1 skipped" in done.stdout, done.stdout


def test_firmware_project_follows_esp_idf_conventions():
    for path in ("CMakeLists.txt", "main/CMakeLists.txt", "main/idf_component.yml", "main/app_main.cpp",
                 "sdkconfig.defaults", "sdkconfig.defaults.esp32s3", "sdkconfig.defaults.esp32p4", "partitions.csv",
                 "pytest_streaming.py", "README.md"):
        assert (FIRMWARE / path).is_file(), path
    app = (FIRMWARE / "main" / "app_main.cpp").read_text()
    assert "get_metadata_prop(\"state_pairs\")" in app and "test()" in app and "reset()" in app
    assert not any("esp_" in line or "dl_" in line for line in (FIRMWARE / "main/stream_check/stream_check.hpp").read_text().splitlines()
                   if line.startswith("#include"))
    for target in ("esp32s3", "esp32p4"):
        assert all((COMMITTED[target] / name).is_file() for name in SHIPPED_FILES)
