"""The firmware without a board: its portable C++ core on the host (with ESP-DL's memory sharing), app_main.cpp
compiled as ESP-IDF compiles it, the embedding steps of main/CMakeLists.txt, the committed models, the partition budget."""

import csv
import importlib.util
import io
import json
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from helpers import EXAMPLES

from espdl_stream.export import integrity
from espdl_stream.export.espdl_file import read_espdl
from espdl_stream.export.cli import main as export_main
from espdl_stream.export.vectors import ROLE_INPUT, ROLE_OUTPUT, VectorFile, VectorTensor, read_vectors, write_vectors

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"
HOST_TEST = FIRMWARE / "host_test"
MODELS = FIRMWARE / "main" / "models"
COMMITTED = {target: MODELS / "tcn" / target for target in ("esp32s3", "esp32p4")}
DEMO_WAV = FIRMWARE / "main" / "audio" / "yes_go_stop.wav"  # the keyword demo's default audio
SHIPPED_FILES = ("model.espdl", "streaming_model.espdl", "streaming_vectors.bin")
CODE_BUDGET = 2 * 1024 * 1024  # ESP-IDF, ESP-DL and the app: generous, the packed models come on top
# tools/cmake/build.cmake: every ESP-IDF release's warning flags (5.3: -Werror=all; 5.4 on: -Werror -Wno-error=extra),
# -std=gnu++2b (5.3-5.5; 6.0 asks gnu++26, newer than this g++), and the C++ defaults -fno-exceptions -fno-rtti
IDF_WARNINGS = ["-Wall", "-Wno-error=unused-function", "-Wno-error=unused-variable", "-Wno-error=unused-but-set-variable",
                "-Wno-error=deprecated-declarations", "-Wextra", "-Wno-unused-parameter", "-Wno-sign-compare",
                "-Wno-enum-conversion"]
IDF_FLAG_SETS = {"5.3": ["-Werror=all"], "5.4+": ["-Werror", "-Wno-error=extra"]}


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


memory_plan = _load(HOST_TEST / "memory_plan.py")
export_models = _load(FIRMWARE / "export_models.py")
packer = _load(HOST_TEST / "embedding" / "esp-dl" / "fbs_loader" / "pack_espdl_models.py")


def _tool(name: str) -> str:
    """cmake / ninja from PATH, else from their PyPI packages (the test extras)."""
    found = shutil.which(name)
    if not found:
        module = __import__(name)
        found = shutil.which(name, path=getattr(module, "CMAKE_BIN_DIR", None) or getattr(module, "BIN_DIR", None))
    assert found, f"{name} is needed to build the firmware's portable core on the host: pip install -e '.[test]'"
    return found


@pytest.fixture(scope="session")
def host_build(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("host_build")
    subprocess.run([_tool("cmake"), "-S", str(HOST_TEST), "-B", str(build), "-G", "Ninja",
                    f"-DCMAKE_MAKE_PROGRAM={_tool('ninja')}"], check=True, capture_output=True)
    subprocess.run([_tool("cmake"), "--build", str(build)], check=True, capture_output=True)
    return build


@pytest.fixture(scope="session")
def host_check(host_build) -> Path:
    return host_build / "host_check"


@pytest.fixture(scope="module")
def lstm_export(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lstm")
    assert export_main(["--model", "lstm", "--target", "esp32p4", "--bits", "16", "--chunk", "4",
                        "--calib-steps", "8", "--out", str(out), "--quiet"]) == 0
    return out


def _layout(models_dir: Path, target: str, tmp_path: Path) -> tuple[Path, list]:
    """Where ESP-DL's planner puts the streaming model's tensors, as host_check --layout reads it."""
    file = read_espdl(models_dir / "streaming_model.espdl")
    plan = memory_plan.plan(file, target)
    path = tmp_path / f"layout_{target}.txt"
    path.write_text("\n".join(memory_plan.layout_lines(plan)) + "\n")
    pairs = [tuple(p) for p in json.loads(file.metadata["state_pairs"])]
    return path, memory_plan.shared_state_bytes(plan, pairs)


def _run(host_check, truth, expected, pairs="[]", *extra):
    done = subprocess.run([str(host_check), str(truth), str(expected), pairs, "100", *extra], capture_output=True, text=True)
    return done.returncode, done.stdout


def _state_pairs(models_dir: Path) -> str:
    return read_espdl(models_dir / "streaming_model.espdl").metadata["state_pairs"]


@pytest.mark.parametrize("model", export_models.SHIPPED_MODELS)
@pytest.mark.parametrize("target", export_models.TARGETS)
def test_core_passes_on_the_committed_models_in_esp_dl_memory_layout(host_check, model, target, tmp_path):
    models_dir = MODELS / model / target
    layout, _ = _layout(models_dir, target, tmp_path)
    vectors = models_dir / "streaming_vectors.bin"
    code, out = _run(host_check, vectors, vectors, _state_pairs(models_dir), "--layout", str(layout))
    assert code == 0, out
    assert re.search(r"STREAM PASS: 12 chunks, \d+ tensors, \d+ state pairs", out) and "RESET PASS" in out
    assert "latency us min/median/max 1000/" in out


def test_copy_back_survives_the_bytes_esp_dl_shares(host_check, tmp_path):
    """ESP-DL's planner frees a state input after its last reader and gives its bytes to later tensors: the
    committed LSTM's h0_in holds c1_out and h2_out after a run. Copying pair by pair would feed c1_in bytes
    already overwritten; the runner reads every output before writing any input."""
    models_dir = MODELS / "lstm" / "esp32s3"
    layout, shared = _layout(models_dir, "esp32s3", tmp_path)
    assert ("h0_in", "c1_out") in shared and ("c0_in", "c2_out") in shared, shared
    vectors, pairs = models_dir / "streaming_vectors.bin", _state_pairs(models_dir)
    code, out = _run(host_check, vectors, vectors, pairs, "--layout", str(layout))
    assert code == 0 and "STREAM PASS: 12 chunks, 8 tensors, 6 state pairs" in out, out
    code, out = _run(host_check, vectors, vectors, pairs, "--layout", str(layout), "--no-copy-back")
    assert code == 1 and "ORACLE: chunk 1 was fed a wrong" in out  # the oracle notices a missing copy-back


def test_copy_back_in_the_16_bit_lstm_layout(host_check, lstm_export, tmp_path):
    layout, shared = _layout(lstm_export, "esp32p4", tmp_path)
    assert shared
    vectors = lstm_export / "streaming_vectors.bin"
    code, out = _run(host_check, vectors, vectors, _state_pairs(lstm_export), "--layout", str(layout))
    assert code == 0 and "STREAM PASS: 24 chunks, 8 tensors, 6 state pairs" in out, out


def test_corrupted_vector_file_is_refused(host_check, tmp_path):
    data = bytearray((COMMITTED["esp32s3"] / "streaming_vectors.bin").read_bytes())
    data[100] ^= 0x01
    corrupted = tmp_path / "corrupted.bin"
    corrupted.write_bytes(bytes(data))
    code, out = _run(host_check, corrupted, corrupted)
    assert code == 2 and "CRC mismatch" in out


def test_vector_sizes_that_wrap_around_are_refused(host_check, tmp_path):
    """A vector file with a valid CRC whose dims multiply to 2**32 + 8 bytes: 8 bytes in 32-bit arithmetic
    (the chip's size_t). The reader checks every product by division before it trusts it."""
    body = bytearray(b"ESV1" + struct.pack("<HHII", 2, 0, 1, 1) + struct.pack("<H", 0))
    body += struct.pack("<H", 1) + b"x" + struct.pack("<BBbB", 0, 1, 0, 2) + struct.pack("<2I", 8, (2**32 + 8) // 8)
    body += bytes(8)
    crafted = tmp_path / "crafted.bin"
    crafted.write_bytes(bytes(body) + struct.pack("<I", zlib.crc32(body)))
    code, out = _run(host_check, crafted, crafted)
    assert code == 2 and "sizes do not add up" in out, out


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
    return len(packer.pack([models_dir / "model.espdl", models_dir / "streaming_model.espdl"]))


def _factory_partition_bytes() -> int:
    rows = [r for r in csv.reader(io.StringIO((FIRMWARE / "partitions.csv").read_text())) if r and not r[0].startswith("#")]
    size = next(r[4].strip() for r in rows if r[0].strip() == "factory")
    return int(size[:-1]) * 1024 * 1024 if size.endswith("M") else int(size, 0)


@pytest.mark.parametrize("target", export_models.TARGETS)
def test_packed_models_fit_the_app_partition(target, lstm_export):
    for models_dir in [MODELS / model / target for model in export_models.SHIPPED_MODELS] + [lstm_export]:
        needed = _packed_size(models_dir) + (models_dir / "streaming_vectors.bin").stat().st_size + CODE_BUDGET
        assert needed <= _factory_partition_bytes(), f"{models_dir}: {needed} bytes"


@pytest.mark.parametrize("model,target", [("tcn", "esp32s3"), ("lstm", "esp32p4")])
def test_committed_models_regenerate_byte_identical(model, target, tmp_path):
    """Two of the six (firmware/export_models.py regenerates them all with the same arguments)."""
    assert export_main(export_models.export_args(model, target, tmp_path)) == 0
    for name in SHIPPED_FILES:
        assert (tmp_path / name).read_bytes() == (MODELS / model / target / name).read_bytes(), (
            f"{model}/{target}/{name} differs from a fresh export: run python firmware/export_models.py and commit")


def test_board_test_is_skipped_without_a_board():
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(FIRMWARE / "pytest_streaming.py")],
                          capture_output=True, text=True, cwd=FIRMWARE)
    assert done.returncode == 0 and "1 skipped" in done.stdout, done.stdout


def test_firmware_project_follows_esp_idf_conventions():
    for path in ("CMakeLists.txt", "main/CMakeLists.txt", "main/idf_component.yml", "main/app_main.cpp", "main/Kconfig.projbuild",
                 "sdkconfig.defaults", "sdkconfig.defaults.esp32s3", "sdkconfig.defaults.esp32p4", "partitions.csv",
                 "pytest_streaming.py", "README.md"):
        assert (FIRMWARE / path).is_file(), path
    assert not any("esp_" in line or "dl_" in line for line in (FIRMWARE / "main/stream_check/stream_check.hpp").read_text().splitlines()
                   if line.startswith("#include"))
    for model in export_models.SHIPPED_MODELS:
        for target in export_models.TARGETS:
            assert all((MODELS / model / target / name).is_file() for name in SHIPPED_FILES)


# ---------------------------------------------------------------- app_main.cpp as ESP-IDF compiles it
def _version(text: str) -> int:
    major, minor, patch = (int(p) for p in (text.split(".") + ["0", "0"])[:3])
    return major * 10000 + minor * 100 + patch


def _manifest_ranges() -> dict[str, tuple[int, int]]:
    """(lowest admitted, first excluded) version of ESP-IDF and ESP-DL in main/idf_component.yml (">=a,<b")."""
    text = (FIRMWARE / "main" / "idf_component.yml").read_text()
    specs = {"idf": re.search(r'^\s*idf:\s*"([^"]+)"', text, re.M).group(1),
             "esp-dl": re.search(r'espressif/esp-dl:(?:\s*\n\s*#[^\n]*)*\s*\n\s*version:\s*"([^"]+)"', text).group(1)}
    ranges = {}
    for name, spec in specs.items():
        low, high = re.fullmatch(r">=([\d.]+),\s*<([\d.]+)", spec).groups()
        ranges[name] = (_version(low), _version(high))
    return ranges


# The CONFIG_ values menuconfig gives app_main.cpp: the default WAV build, and the microphone build (an ESP32-P4 with
# main/Kconfig.projbuild's defaults for the ESP32-P4-Function-EV-Board)
AUDIO_BUILDS = {
    "wav": [],
    "mic": ["-DCONFIG_IDF_TARGET_ESP32P4=1", "-DCONFIG_ESPDL_DEMO_AUDIO_MIC=1", "-DCONFIG_ESPDL_DEMO_I2C_SDA_GPIO=7",
            "-DCONFIG_ESPDL_DEMO_I2C_SCL_GPIO=8", "-DCONFIG_ESPDL_DEMO_I2S_MCLK_GPIO=13",
            "-DCONFIG_ESPDL_DEMO_I2S_BCLK_GPIO=12", "-DCONFIG_ESPDL_DEMO_I2S_WS_GPIO=10",
            "-DCONFIG_ESPDL_DEMO_I2S_DIN_GPIO=11", "-DCONFIG_ESPDL_DEMO_MIC_GAIN_DB=18",
            "-DCONFIG_ESPDL_DEMO_MIC_SECONDS=0"],
}
CORE_DIRS = ("stream_check", "kws_stream", "detector")  # main/CMakeLists.txt's INCLUDE_DIRS


def _compile_app_main(espdl_version: int, flags: list[str], app: Path = FIRMWARE / "main" / "app_main.cpp",
                      audio: str = "wav"):
    standin = HOST_TEST / "idf_standin"
    main = FIRMWARE / "main"
    return subprocess.run(["g++", "-std=gnu++2b", "-fsyntax-only", "-include", str(standin / "target_abi.h"),
                           *IDF_WARNINGS, *flags, "-fno-exceptions", "-fno-rtti", "-D_GNU_SOURCE",
                           f"-DESPDL_VERSION={espdl_version}", *AUDIO_BUILDS[audio], f"-I{standin}",
                           *(f"-I{main / d}" for d in CORE_DIRS), str(app),
                           *(str(next((main / d).glob("*.cpp"))) for d in CORE_DIRS)],
                          capture_output=True, text=True)


@pytest.mark.parametrize("audio", sorted(AUDIO_BUILDS))
@pytest.mark.parametrize("idf", sorted(IDF_FLAG_SETS))
def test_app_main_compiles_with_esp_idf_flags_and_the_chips_integer_types(idf, audio):
    """At the oldest ESP-DL the manifest admits; uint32_t is unsigned long as on the chips (target_abi.h); with the
    embedded WAV and with the microphone."""
    done = _compile_app_main(_manifest_ranges()["esp-dl"][0], IDF_FLAG_SETS[idf], audio=audio)
    assert done.returncode == 0, done.stderr


def test_the_abi_check_catches_a_format_that_fits_only_the_host(tmp_path):
    app = tmp_path / "app_main.cpp"
    source = (FIRMWARE / "main" / "app_main.cpp").read_text()
    app.write_text(source + '\nvoid print_chunks(uint32_t chunks) { printf("%u chunks\\n", chunks); }\n')
    done = _compile_app_main(_manifest_ranges()["esp-dl"][0], IDF_FLAG_SETS["5.4+"], app)
    assert done.returncode != 0 and "format" in done.stderr and "long unsigned int" in done.stderr, done.stderr


def test_the_manifest_admits_only_esp_dl_releases_the_firmware_works_with():
    ranges = _manifest_ranges()
    espdl_low, espdl_high = ranges["esp-dl"]
    assert espdl_low >= 30302, "Model::reset() exists from ESP-DL 3.3.2"
    assert espdl_low >= 30307, "the PDL3 package the boot check reads is packed from ESP-DL 3.3.7"
    if ranges["idf"][1] > 60000:
        assert espdl_low >= 30308, "ESP-DL builds on ESP-IDF 6.0 from 3.3.8"
    assert espdl_high <= 30400, "the emulator and the vectors follow ESP-DL 3.3's integer rules"
    assert ranges["idf"] == (50300, 60100), "the ESP-IDF releases checked: 5.3.x to 6.0.x (firmware/README.md)"
    assert _compile_app_main(30300, IDF_FLAG_SETS["5.4+"]).returncode != 0  # 3.3.0 had no Model::reset()


# ---------------------------------------------------------------- main/CMakeLists.txt's packing and embedding
def _embed(tmp_path: Path, model: str, target: str, main_dir: Path = FIRMWARE / "main", *options: str):
    build = tmp_path / "build"
    configure = subprocess.run([_tool("cmake"), "-S", str(HOST_TEST / "embedding"), "-B", str(build), "-G", "Ninja",
                                f"-DCMAKE_MAKE_PROGRAM={_tool('ninja')}", f"-DIDF_TARGET={target}", f"-DESPDL_MODEL={model}",
                                f"-DPYTHON={sys.executable}", f"-DMAIN_DIR={main_dir}", *options],
                               capture_output=True, text=True)
    if configure.returncode:
        return configure
    return subprocess.run([_tool("cmake"), "--build", str(build)], capture_output=True, text=True)


def _stamps(models_dir: Path) -> list[str]:
    return [f"{name}={integrity.check(models_dir / name)[0]}" for name in ("model.espdl", "streaming_model.espdl")]


def test_embedding_steps_build_and_the_boot_check_passes(tmp_path):
    built = _embed(tmp_path, "gru", "esp32p4")
    assert built.returncode == 0, built.stdout + built.stderr
    done = subprocess.run([str(tmp_path / "build" / "embedded_check"), *_stamps(MODELS / "gru" / "esp32p4")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    packed = (tmp_path / "build" / "espdl_models" / "models.espdl").read_bytes()
    assert packed == packer.pack([MODELS / "gru" / "esp32p4" / n for n in ("model.espdl", "streaming_model.espdl")])
    assert "16-byte aligned" in done.stdout and "NOT" not in done.stdout
    assert done.stdout.count("INTEGRITY PASS") == 2 and "VECTORS PASS: 12 chunks" in done.stdout
    assert "WAV PASS: 128000 samples at 16000 Hz" in done.stdout  # main/audio/yes_go_stop.wav, the default


def _copy_of_main(tmp_path: Path, target: str) -> Path:
    main = tmp_path / "main"
    (main / "models" / "tcn").mkdir(parents=True)
    shutil.copy(FIRMWARE / "main" / "CMakeLists.txt", main)
    shutil.copytree(FIRMWARE / "main" / "audio", main / "audio")  # the default WAV travels with the component
    shutil.copytree(MODELS / "tcn" / target, main / "models" / "tcn" / target)
    return main


def test_embedding_without_cmake_dir_fails_as_with_esp_dl(tmp_path):
    """ESP-DL's utilities.cmake finds its script through cmake_dir; the stand-in keeps that contract."""
    main = _copy_of_main(tmp_path, "esp32s3")
    cmake = main / "CMakeLists.txt"
    fixed = "set(cmake_dir ${espdl_dir}/fbs_loader/cmake)\ninclude(${cmake_dir}/utilities.cmake)"
    assert fixed in cmake.read_text()
    cmake.write_text(cmake.read_text().replace(fixed, "include(${espdl_dir}/fbs_loader/cmake/utilities.cmake)"))
    built = _embed(tmp_path, "tcn", "esp32s3", main)
    assert built.returncode != 0
    assert "/data_file_embed_asm_aligned.cmake', needed by 'models.espdl.S', missing" in built.stdout + built.stderr


def test_embedding_links_the_wav_the_build_names_and_refuses_a_missing_one(tmp_path):
    main = _copy_of_main(tmp_path, "esp32s3")
    assert _embed(tmp_path, "tcn", "esp32s3", main, f"-DESPDL_DEMO_WAV={EXAMPLES / 'stop.wav'}").returncode == 0
    done = subprocess.run([str(tmp_path / "build" / "embedded_check")], capture_output=True, text=True)
    assert "WAV PASS: 16000 samples at 16000 Hz" in done.stdout, done.stdout
    missing = tmp_path / "nothing.wav"
    built = _embed(tmp_path / "again", "tcn", "esp32s3", main, f"-DESPDL_DEMO_WAV={missing}")
    message = " ".join(built.stderr.split())  # CMake wraps long messages
    assert built.returncode != 0 and f"No WAV at {missing}: give the keyword demo one with -DESPDL_DEMO_WAV" in message


def test_boot_check_refuses_a_model_with_one_flipped_byte(tmp_path):
    main = _copy_of_main(tmp_path, "esp32s3")
    model = main / "models" / "tcn" / "esp32s3" / "model.espdl"
    stamps = _stamps(model.parent)
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01  # a weight
    model.write_bytes(bytes(data))
    assert _embed(tmp_path, "tcn", "esp32s3", main).returncode == 0  # a copy of main/ builds with its defaults
    done = subprocess.run([str(tmp_path / "build" / "embedded_check"), *stamps], capture_output=True, text=True)
    assert done.returncode == 1
    assert "INTEGRITY FAIL: model.espdl: CRC-32" in done.stdout and "INTEGRITY PASS: streaming_model.espdl" in done.stdout


# ---------------------------------------------------------------- the keyword demo's portable core (host_test/kws_check)
# one target each, so both roundings and a recurrent model's copy-back are exercised
DEMO_MODELS = (("tcn", "esp32s3"), ("lstm", "esp32p4"), ("gru", "esp32s3"))


def _fbank_config(settings: dict):
    """The Python front end configured from a model's `frontend` metadata (ESP-DL's field names)."""
    from espdl_stream.calibration.frontend import FbankConfig

    config = FbankConfig(sample_rate=settings["sample_rate"], frame_length_ms=settings["frame_length"],
                         frame_shift_ms=settings["frame_shift"], n_mels=settings["num_mel_bins"],
                         low_hz=settings["low_freq"], high_hz=settings["high_freq"], preemphasis=settings["preemphasis"],
                         window=settings["window_type"], log_floor=settings["log_epsilon"],
                         remove_dc_offset=settings["remove_dc_offset"])
    assert config.to_dict() == settings, "the metadata holds what FbankConfig writes, nothing else"
    return config


class DemoReference:
    """The Python side of the demo for one model, as `export-espdl stream --espdl` runs it: the front end's features
    of a WAV, the emulated streaming model chunk by chunk (EmulatedSession) and the detector (KeywordSpotter). The
    integers the emulator is fed and gives back are recorded on the way; `write` puts them where kws_check reads
    them."""

    def __init__(self, models_dir: Path, target: str, features=None, chunks: int | None = None):
        from espdl_stream.calibration.frontend import fbank
        from espdl_stream.calibration.loaders import read_wav
        from espdl_stream.export.detector import DetectorConfig
        from espdl_stream.export.runtime import EmulatedSession, KeywordSpotter

        self.target = target
        path = models_dir / "streaming_model.espdl"
        self.espdl = read_espdl(path)
        self.meta = self.espdl.metadata
        self.frontend = _fbank_config(json.loads(self.meta["frontend"]))
        samples, _ = read_wav(DEMO_WAV)
        self.features = fbank(samples, self.frontend) if features is None else features  # [mel bins, frames]
        spotter = KeywordSpotter(EmulatedSession(path, target), DetectorConfig.from_json(self.meta["detector"]))
        emulator, runs = spotter.session.emulator, []
        run = emulator.run
        emulator.run = lambda inputs, keep_all=False: runs.append((inputs, run(inputs, keep_all))) or runs[-1][1]
        self.chunk = spotter.session.chunk
        n = self.features.shape[1] // self.chunk if chunks is None else chunks
        self.detections = [d for k in range(n)
                           for d in spotter.process(self.features[:, k * self.chunk : (k + 1) * self.chunk])]
        self.vectors = VectorFile([VectorTensor("x", ROLE_INPUT, self.espdl.inputs["x"].exponent,
                                                [inputs["x"] for inputs, _ in runs])] +
                                  [VectorTensor(name, ROLE_OUTPUT, info.exponent, [out[name] for _, out in runs])
                                   for name, info in self.espdl.outputs.items()])

    def write(self, tmp_path: Path, frontend: str | None = None, wav: Path = DEMO_WAV) -> list[str]:
        """kws_check's arguments before the options."""
        files = {"frontend.json": frontend or self.meta["frontend"], "detector.json": self.meta["detector"]}
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        (tmp_path / "features.bin").write_bytes(np.ascontiguousarray(self.features.T, "<f4").tobytes())
        (tmp_path / "truth.bin").write_bytes(write_vectors(self.vectors))
        return [str(wav), str(tmp_path / "frontend.json"), str(tmp_path / "detector.json"),
                str(tmp_path / "features.bin"), str(tmp_path / "truth.bin"), self.meta["state_pairs"],
                self.meta["chunk_frames"], self.meta["total_stride"], self.meta["frames_per_second"],
                "half_even" if self.target == "esp32p4" else "half_up"]


def _kws_check(host_build: Path, args: list[str], *options: str) -> tuple[int, str, list[tuple]]:
    done = subprocess.run([str(host_build / "kws_check"), *args, *options], capture_output=True, text=True)
    found = [(k, int(f), float(t), float(s)) for k, f, t, s in re.findall(r"^DETECTION (\S+) (\d+) (\S+) (\S+)$",
                                                                          done.stdout, re.M)]
    return done.returncode, done.stdout + done.stderr, found


@pytest.mark.parametrize("model,target", DEMO_MODELS)
def test_demo_core_detects_what_python_detects_on_the_three_keyword_stream(host_build, model, target, tmp_path):
    """The firmware's demo loop on examples/yes_go_stop.wav (the Python front end's features standing in for
    ESP-DL's Fbank, the emulator's integers for ESP-DL): the same frames, chunks and detections as the Python
    side, fed in odd-sized blocks as a microphone delivers them, the LSTM in ESP-DL's memory layout."""
    reference = DemoReference(MODELS / model / target, target)
    options = ["--block", "1237"]
    if reference.meta["state_pairs"] != "[]":
        options += ["--layout", str(_layout(MODELS / model / target, target, tmp_path)[0])]
    code, out, found = _kws_check(host_build, reference.write(tmp_path), *options)
    assert code == 0 and "KWS PASS" in out, out
    n_frames = reference.features.shape[1]
    assert f"FRAMES {n_frames} CHUNKS {n_frames // reference.chunk} DETECTIONS {len(found)}" in out
    assert [(k, f) for k, f, _, _ in found] == [(d.keyword, d.frame) for d in reference.detections]
    for (_, _, time_s, score), d in zip(found, reference.detections):
        assert time_s == d.time_s and score == pytest.approx(d.score, rel=1e-12, abs=1e-12)
    assert reference.detections, "a comparison without detections would prove little"
    # timing by the oracle's clock: chunk k (from 1) "computes" 1000 + 37 * (k % 5) us, the front end nothing
    chunks = n_frames // reference.chunk
    spent = [1000 + 37 * (k % 5) for k in range(1, chunks + 1)]
    audio_s = chunks * reference.chunk / float(reference.meta["frames_per_second"])
    assert (f"latency us min/median/max {min(spent)}/{int(np.median(spent))}/{max(spent)}, "
            f"real-time factor {sum(spent) * 1e-6 / audio_s:.4f}") in out


def test_demo_core_frames_the_same_in_any_block_size(host_build, tmp_path):
    reference = DemoReference(MODELS / "tcn" / "esp32s3", "esp32s3")
    args = reference.write(tmp_path)
    runs = [_kws_check(host_build, args, "--block", str(block)) for block in (1, 160, 16000)]
    assert all(code == 0 for code, _, _ in runs), runs[0][1]
    assert runs[0][2] == runs[1][2] == runs[2][2] and runs[0][2]


@pytest.mark.parametrize("model,target,other", [("lstm", "esp32p4", "half_up"), ("tcn", "esp32s3", "half_even")])
def test_demo_quantization_rounds_ties_as_esp_dl_on_each_chip(host_build, model, target, other, tmp_path):
    """Features that land exactly halfway between two integers at the input's exponent: the core must round them
    as the emulator does for the target (half to even on the P4, half up on the S3); the other rule is caught."""
    models_dir = MODELS / model / target
    exponent = read_espdl(models_dir / "streaming_model.espdl").inputs["x"].exponent
    rng = np.random.default_rng(0)
    frames = 2 * int(read_espdl(models_dir / "streaming_model.espdl").metadata["chunk_frames"])
    ties = (rng.integers(-100, 100, size=(40, frames)) + 0.5) * 2.0 ** exponent
    reference = DemoReference(models_dir, target, features=ties.astype(np.float32), chunks=2)
    frontend = reference.frontend
    samples = frontend.frame_length + (frames - 1) * frontend.frame_shift  # exactly the two chunks' frames
    args = reference.write(tmp_path)
    code, out, _ = _kws_check(host_build, args, "--samples", str(samples))
    assert code == 0 and "FRAMES %d CHUNKS 2" % frames in out, out
    args[-1] = other
    code, out, _ = _kws_check(host_build, args, "--samples", str(samples))
    assert code == 1 and "ORACLE: chunk 0 was fed a wrong 'x'" in out, out


def _edit(settings: str, **changes) -> str:
    values = json.loads(settings)
    for key, value in changes.items():
        if value is None:
            del values[key]
        else:
            values[key] = value
    return json.dumps(values)


@pytest.mark.parametrize("changes,message", [
    ({"num_mel_bins": 32}, "the model takes 40 mel bins, its frontend metadata makes 32: re-export the model"),
    ({"num_mel_bins": None}, "frontend: \"num_mel_bins\" is missing or of the wrong kind"),
    ({"frame_shift": 20}, "frames per second, its front end shifts frames by 20 ms"),
    ({"window_type": "kaiser"}, "frontend: window \"kaiser\" is not one of ESP-DL's"),
    ({"dither": 0.0}, "frontend: unknown field \"dither\""),
    ({"use_energy": True}, "frontend: use_energy adds a feature the models do not take"),
])
def test_demo_refuses_a_front_end_that_does_not_fit_the_model(host_build, tmp_path, changes, message):
    """The board reads the same metadata at boot and stops with the same line (app_main.cpp)."""
    reference = DemoReference(MODELS / "tcn" / "esp32s3", "esp32s3", chunks=1)
    code, out, _ = _kws_check(host_build, reference.write(tmp_path, frontend=_edit(reference.meta["frontend"], **changes)))
    assert code == 2 and "CONFIG ERROR: " in out and message in out, out


def test_demo_refuses_a_chunk_the_model_does_not_take(host_build, tmp_path):
    reference = DemoReference(MODELS / "tcn" / "esp32s3", "esp32s3", chunks=1)
    args = reference.write(tmp_path)
    args[6] = "16"
    code, out, _ = _kws_check(host_build, args)
    assert code == 2 and "the model's input holds 8 frames, its chunk_frames metadata says 16" in out, out


def _wav_variant(tmp_path: Path, name: str) -> Path:
    data = bytearray(DEMO_WAV.read_bytes())
    if name == "truncated":
        data = data[: len(data) // 2]
    elif name == "stereo":
        data[22:24] = struct.pack("<H", 2)
    elif name == "huge_data":
        data[40:44] = struct.pack("<I", 0xFFFFFFF0)
    path = tmp_path / f"{name}.wav"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("variant,message", [
    ("truncated", "the WAV file is truncated: its 'data' chunk says 256000 bytes, 127978 follow"),
    ("stereo", "channels of 16 bits: the demo takes 16-bit PCM mono"),
    ("huge_data", "the WAV file is truncated: its 'data' chunk says 4294967280 bytes"),
])
def test_demo_wav_reader_checks_every_size(host_build, tmp_path, variant, message):
    reference = DemoReference(MODELS / "tcn" / "esp32s3", "esp32s3", chunks=1)
    code, out, _ = _kws_check(host_build, reference.write(tmp_path, wav=_wav_variant(tmp_path, variant)))
    assert code == 2 and message in out, out
