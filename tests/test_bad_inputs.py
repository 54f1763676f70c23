"""Bad inputs a user can give, table-driven: each ends in one line on stderr with exit code 2, never a traceback
(an exception escaping `main` fails the test) and never exit 0; a refused export writes nothing anywhere.
Ctrl-C and SIGTERM, in a real process: one line, exit 130 and 143, nothing left behind."""

import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli, write_wav

from espdl_stream.export import cli, integrity
from espdl_stream.export.artifacts import output_lock
from espdl_stream.export.espdl_file import read_espdl
from espdl_stream import models

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "firmware" / "main" / "models"
SHIPPED = MODELS / "tcn" / "esp32s3"  # a real export
PROC = Path("/proc/self").is_dir()


def _float_wav(path):
    """A WAV of IEEE float samples (format 3), which the loaders do not read."""
    data = np.zeros(1600, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
                     + b"data" + struct.pack("<I", len(data)) + data)


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """One folder of bad files, made once."""
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    speech = 0.1 * rng.standard_normal(16000 * 2)
    (d / "afile").write_text("not a folder")
    (d / "empty_dir").mkdir()
    (d / "txt_only").mkdir()
    (d / "txt_only" / "notes.txt").write_text("no data")
    (d / "notes.txt").write_text("no data")
    arrays = {
        "nan": np.full((40, 100), np.nan, np.float32),
        "inf": np.where(np.eye(40, 100) > 0, np.inf, 1.0).astype(np.float32),
        "big": np.full((40, 40, 96), 1e30, np.float32),
        "bigfeat": np.full((40, 200), 1e30, np.float32),
        "negbig": -np.abs(rng.standard_normal((40, 40, 96))).astype(np.float32) * 1e30,
        "zeros": np.zeros((40, 40, 96), np.float32),
        "floor": np.full((40, 40, 96), -15.94, np.float32),
        "tiny": (1e-6 * rng.standard_normal((40, 40, 96))).astype(np.float32),
        "mels13": rng.standard_normal((13, 100)).astype(np.float32),
        "oned": rng.standard_normal(100).astype(np.float32),
        "fourd": rng.standard_normal((2, 2, 40, 100)).astype(np.float32),
        "complex": np.ones((40, 100), np.complex64),
        "bool": np.ones((40, 100), bool),
        "short": rng.standard_normal((40, 50)).astype(np.float32),
        "noframes": np.zeros((40, 0), np.float32),
        "few": rng.standard_normal((3, 40, 96)).astype(np.float32),
        "feat3d": rng.standard_normal((1, 40, 100)).astype(np.float32),
        "late": np.concatenate([rng.standard_normal((40, 900)), np.full((40, 100), 1e30)], axis=1).astype(np.float32),
    }
    for name, array in arrays.items():
        np.save(d / f"{name}.npy", array)
    (d / "trunc.npy").write_bytes((d / "few.npy").read_bytes()[:1000])
    np.savez(d / "empty.npz")
    (d / "corrupt.npz").write_bytes(b"PK\x03\x04 not a zip archive")
    write_wav(d / "rate8k.wav", speech[:8000], rate=8000)
    write_wav(d / "rate44k.wav", speech, rate=44100)
    write_wav(d / "silence.wav", np.zeros(16000 * 2))
    write_wav(d / "empty.wav", np.zeros(0))
    write_wav(d / "tiny.wav", speech[:100])
    write_wav(d / "six_frames.wav", speech[:1200])
    write_wav(d / "cut.wav", speech)
    (d / "cut.wav").write_bytes((d / "cut.wav").read_bytes()[:30000])  # the header still announces 2 s
    (d / "garbage.wav").write_bytes(b"not audio at all, just text")
    (d / "trunc_header.wav").write_bytes((d / "rate8k.wav").read_bytes()[:20])
    _float_wav(d / "float.wav")
    (d / "mixed").mkdir()
    write_wav(d / "mixed" / "a.wav", speech)
    write_wav(d / "mixed" / "silence.wav", np.zeros(16000 * 2))
    (d / "no_espdl").mkdir()
    vectors = (SHIPPED / "streaming_vectors.bin").read_bytes()
    (d / "notvec.bin").write_text('{"a json": "file"}' * 4)
    (d / "empty.bin").write_bytes(b"")
    (d / "half.bin").write_bytes(vectors[: len(vectors) // 2])
    (d / "flipped.bin").write_bytes(vectors[:100] + bytes([vectors[100] ^ 1]) + vectors[101:])
    (d / "short.bin").write_bytes(vectors[:10])
    old = vectors[:4] + (1).to_bytes(2, "little") + vectors[6:16] + vectors[18 + vectors[16] : -4]  # version 1: no id
    (d / "version1.bin").write_bytes(old + zlib.crc32(old).to_bytes(4, "little"))
    _damaged_espdl_files(d, rng)
    return d


def _flipped(data: bytes, at: int, mask: int = 0x01) -> bytes:
    return data[:at] + bytes([data[at] ^ mask]) + data[at + 1 :]


def _damaged_espdl_files(d: Path, rng) -> None:
    """.espdl files as a disk, a copy or a hand edit leaves them, and export folders holding them."""
    offline, streaming = (SHIPPED / "model.espdl").read_bytes(), (SHIPPED / "streaming_model.espdl").read_bytes()
    weight = max(read_espdl(SHIPPED / "streaming_model.espdl").initializers.values(), key=lambda t: t.values.nbytes)
    test_input = read_espdl(SHIPPED / "model.espdl").test_inputs["x"].values
    crc = integrity.check(SHIPPED / "model.espdl")[0].encode()
    files = {
        "trunc.espdl": offline[:2000],
        "ten.espdl": offline[:10],
        "random_after_magic.espdl": offline[:4] + rng.bytes(4000),
        "header_only.espdl": offline[:4] + bytes(12),
        "text.espdl": b"not a model, just text\n" * 10,
        "grown.espdl": offline + bytes(100),
        "weight_flipped.espdl": _flipped(streaming, streaming.find(weight.values.tobytes()) + 10),
        "test_value_flipped.espdl": _flipped(offline, offline.find(test_input.tobytes()) + 7),
        "stamp_flipped.espdl": _flipped(offline, offline.find(crc) + 3),
        "stamp_renamed.espdl": offline.replace(integrity.STAMP_KEY.encode(), b"espdl_stream.crc33"),
        "pad_flipped.espdl": _flipped(offline, offline.find(struct.pack("<Iqq", 2, 2, 0)) + 6, 0x80),  # 2 -> 8388610
        "model_copy.espdl": offline,
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    fixture = (ROOT / "tests" / "fixtures" / "ops" / "conv1d_k3_d2_relu_esp32s3_s8.espdl").read_bytes()
    (d / "foreign_pad.espdl").write_bytes(fixture.replace(struct.pack("<Iqq", 2, 2, 2), struct.pack("<Iqq", 2, 2, 8388610)))
    exports = {"esp_truncated": files["trunc.espdl"], "esp_ten": files["ten.espdl"], "esp_text": files["text.espdl"],
               "esp_flipped": files["weight_flipped.espdl"], "esp_offline": offline, "esp_foreign": fixture}
    for folder, data in exports.items():
        (d / folder).mkdir()
        (d / folder / "streaming_model.espdl").write_bytes(data)


EXPORT = [  # (id, arguments, what the line must say)
    ("out-is-a-file", ["--out", "{d}/afile"], "is a file: give a folder"),
    ("out-below-a-file", ["--out", "{d}/afile/out"], "afile is a file, so no folder can be made below it"),
    ("frames-0", ["--frames", "0"], "argument --frames: must be from 1 to 10000, got 0"),
    ("frames-negative", ["--frames", "-8"], "argument --frames: must be from 1 to 10000, got -8"),
    ("frames-text", ["--frames", "abc"], "argument --frames: 'abc' is not a whole number"),
    ("frames-huge", ["--frames", "10001"], "must be from 1 to 10000, got 10001"),
    ("frames-beyond-shipped", ["--frames", "200"], "frames: give --calib for --frames 200"),
    ("chunk-0", ["--chunk", "0"], "argument --chunk: must be from 1 to 1000, got 0"),
    ("chunk-negative", ["--chunk", "-8"], "argument --chunk: must be from 1 to 1000, got -8"),
    ("chunk-fraction", ["--chunk", "1.5"], "argument --chunk: '1.5' is not a whole number"),
    ("chunk-huge", ["--chunk", "1001"], "must be from 1 to 1000, got 1001"),
    ("chunk-not-dividing", ["--chunk", "10"], "offline length of 96 frames is not a whole number of 10-frame chunks"),
    ("chunk-vs-stride", ["--model", "lstm", "--chunk", "6"], "chunk of 6 frames is not a multiple of the model's total"),
    ("calib-steps-0", ["--calib-steps", "0"], "argument --calib-steps: must be from 1 to 4096, got 0"),
    ("calib-steps-huge", ["--calib-steps", "5000"], "must be from 1 to 4096, got 5000"),
    ("calib-steps-beyond-data", ["--calib-steps", "4000"], "clips of the offline length, need at least 4000"),
    ("seed-negative", ["--seed", "-1"], "argument --seed: must be from 0 to 4294967295, got -1"),
    ("seed-huge", ["--seed", str(2**70)], "must be from 0 to 4294967295"),
    ("target", ["--target", "esp32"], "argument --target: invalid choice: 'esp32'"),
    ("bits", ["--bits", "4"], "argument --bits: invalid choice: 4"),
    ("model", ["--model", "resnet"], "argument --model: 'resnet' is none of the shipped models (tcn, lstm, gru)"),
    ("weights", ["--weights", "mine"], "--weights 'mine': the shipped tcn takes trained or random"),
    ("unknown-option", ["--fast"], "unrecognized arguments: --fast"),
    ("calib-missing", ["--calib", "{d}/nothing"], "argument --calib: {d}/nothing: no such file or directory"),
    ("calib-empty-folder", ["--calib", "{d}/empty_dir"], "no .wav, .npy or .npz files found"),
    ("calib-text-only", ["--calib", "{d}/txt_only"], "no .wav, .npy or .npz files found"),
    ("calib-text-file", ["--calib", "{d}/notes.txt"], "no .wav, .npy or .npz files found"),
    ("calib-npz-without-arrays", ["--calib", "{d}/empty.npz"], "empty.npz: holds no arrays"),
    ("calib-npz-corrupt", ["--calib", "{d}/corrupt.npz"], "corrupt.npz: not a readable NumPy file"),
    ("calib-npy-truncated", ["--calib", "{d}/trunc.npy"], "trunc.npy: not a readable NumPy file"),
    ("calib-nan", ["--calib", "{d}/nan.npy"], "nan.npy: contains NaN or Inf values"),
    ("calib-inf", ["--calib", "{d}/inf.npy"], "inf.npy: contains NaN or Inf values"),
    ("calib-1e30", ["--calib", "{d}/big.npy"], "big.npy: values reach 1e+30, beyond what any audio front end gives"),
    ("calib-minus-1e30", ["--calib", "{d}/negbig.npy"], "negbig.npy: values reach -"),
    ("calib-zeros", ["--calib", "{d}/zeros.npy"], "zeros.npy: every value is 0 (silence or padding, no signal)"),
    ("calib-log-floor", ["--calib", "{d}/floor.npy"], "floor.npy: every value is -15.94"),
    ("calib-no-spread", ["--calib", "{d}/tiny.npy"], "tiny.npy: values span only"),
    ("calib-13-mels", ["--calib", "{d}/mels13.npy"], "shape [13, 100], expected [40 mel bins, frames]"),
    ("calib-1-d", ["--calib", "{d}/oned.npy"], "shape [100], expected [40 mel bins, frames]"),
    ("calib-4-d", ["--calib", "{d}/fourd.npy"], "shape [2, 2, 40, 100]"),
    ("calib-complex", ["--calib", "{d}/complex.npy"], "values of type complex64, expected real numbers"),
    ("calib-bool", ["--calib", "{d}/bool.npy"], "values of type bool, expected real numbers"),
    ("calib-short", ["--calib", "{d}/short.npy"], "50 frames, shorter than the offline length of 96 frames"),
    ("calib-no-frames", ["--calib", "{d}/noframes.npy"], "noframes.npy: empty (no values)"),
    ("calib-too-few", ["--calib", "{d}/few.npy"], "3 clips of the offline length, need at least 32"),
    ("calib-wav-8k", ["--calib", "{d}/rate8k.wav"], "8000 Hz audio; the front end takes 16000 Hz: convert it first"),
    ("calib-wav-44k", ["--calib", "{d}/rate44k.wav"], "44100 Hz audio; the front end takes 16000 Hz"),
    ("calib-wav-silence", ["--calib", "{d}/silence.wav"], "silence.wav: every value is"),
    ("calib-wav-garbage", ["--calib", "{d}/garbage.wav"], "garbage.wav: not a readable PCM WAV file"),
    ("calib-wav-empty", ["--calib", "{d}/empty.wav"], "empty.wav: 0 frames, shorter than the offline length"),
    ("calib-wav-tiny", ["--calib", "{d}/tiny.wav"], "tiny.wav: 0 frames, shorter than the offline length"),
    ("calib-wav-torn-header", ["--calib", "{d}/trunc_header.wav"], "trunc_header.wav: not a readable PCM WAV file"),
    ("calib-wav-float", ["--calib", "{d}/float.wav"], "float.wav: not a readable PCM WAV file"),
    ("calib-wav-truncated", ["--calib", "{d}/cut.wav"], "cut.wav: truncated: its header announces 32000 samples, the "
                                                        "file holds 14978"),
    ("calib-one-silent-file", ["--calib", "{d}/mixed"], "silence.wav: every value is"),
]
if PROC:
    EXPORT.append(("out-unwritable", ["--out", "/proc/espdl-stream-test/out"], "give a folder you can write to"))

STREAM = [
    ("input-missing", ["{d}/nothing.wav"], "argument input: {d}/nothing.wav: no such file"),
    ("input-folder", ["{d}/empty_dir"], "empty_dir is a folder: give a file"),
    ("input-text", ["{d}/notes.txt"], "notes.txt: give a .wav recording or a .npy of features"),
    ("chunk-0", ["{d}/six_frames.wav", "--chunk", "0"], "argument --chunk: must be from 1 to 1000, got 0"),
    ("chunk-negative", ["{d}/six_frames.wav", "--chunk", "-8"], "argument --chunk: must be from 1 to 1000, got -8"),
    ("chunk-huge", ["{d}/six_frames.wav", "--chunk", "100000"], "must be from 1 to 1000, got 100000"),
    ("chunk-text", ["{d}/six_frames.wav", "--chunk", "eight"], "'eight' is not a whole number"),
    ("chunk-vs-stride", [str(ROOT / "examples" / "stop.wav"), "--model", "lstm", "--chunk", "6"],
     "chunk of 6 frames is not a multiple of the model's total time stride 4"),
    ("model", ["{d}/six_frames.wav", "--model", "resnet"], "argument --model: invalid choice: 'resnet'"),
    ("espdl-missing", ["{d}/six_frames.wav", "--espdl", "{d}/nothing"], "{d}/nothing: no such folder"),
    ("espdl-not-an-export", ["{d}/six_frames.wav", "--espdl", "{d}/no_espdl"], "holds no streaming_model.espdl"),
    ("espdl-chunk-differs", ["{d}/six_frames.wav", "--espdl", str(SHIPPED), "--chunk", "4"],
     "takes chunks of 8 frames; leave --chunk out with --espdl"),
    ("wav-8k", ["{d}/rate8k.wav"], "8000 Hz audio; the front end takes 16000 Hz"),
    ("wav-garbage", ["{d}/garbage.wav"], "garbage.wav: not a readable PCM WAV file"),
    ("wav-float", ["{d}/float.wav"], "float.wav: not a readable PCM WAV file"),
    ("wav-empty", ["{d}/empty.wav"], "empty.wav: no usable audio (empty, or shorter than one 25 ms frame)"),
    ("wav-tiny", ["{d}/tiny.wav"], "tiny.wav: no usable audio"),
    ("wav-fewer-frames-than-a-chunk", ["{d}/six_frames.wav"], "6 frames, fewer than one 8-frame chunk"),
    ("wav-truncated", ["{d}/cut.wav", "--quiet"], "cut.wav: truncated: its header announces 32000 samples"),
    ("npy-1e30", ["{d}/bigfeat.npy"], "bigfeat.npy (frames 0 to 199): values reach 1e+30, beyond what any audio"),
    ("npy-nan", ["{d}/nan.npy"], "nan.npy (frames 0 to 99): contains NaN or Inf values"),
    ("npy-13-mels", ["{d}/mels13.npy"], "shape [13, 100], expected [40 mel bins, frames]"),
    ("npy-3-d", ["{d}/feat3d.npy"], "shape [1, 40, 100], expected [40 mel bins, frames]"),
    ("npy-complex", ["{d}/complex.npy"], "values of type complex64"),
    ("npy-no-frames", ["{d}/noframes.npy"], "noframes.npy: no usable audio"),
    ("npy-truncated", ["{d}/trunc.npy"], "trunc.npy: not a readable NumPy file"),
    ("npy-1e30-late-in-the-stream", ["{d}/late.npy", "--quiet"], "late.npy (frames 500 to 999): values reach 1e+30"),
    ("espdl-truncated", ["{d}/six_frames.wav", "--espdl", "{d}/esp_truncated"],
     "esp_truncated/streaming_model.espdl: the header announces a "),
    ("espdl-10-bytes", ["{d}/six_frames.wav", "--espdl", "{d}/esp_ten"], "shorter than the 16-byte .espdl header"),
    ("espdl-text", ["{d}/six_frames.wav", "--espdl", "{d}/esp_text"], "not an .espdl file (it starts with b'not '"),
    ("espdl-flipped-weight", ["{d}/six_frames.wav", "--espdl", "{d}/esp_flipped"],
     "esp_flipped/streaming_model.espdl: the file is damaged (changed since it was exported)"),
    ("espdl-offline-model", ["{d}/six_frames.wav", "--espdl", "{d}/esp_offline"],
     "is an offline model (its metadata says so), not a streaming one"),
    ("espdl-not-ours", ["{d}/six_frames.wav", "--espdl", "{d}/esp_foreign"],
     "not a streaming model export-espdl wrote (inputs ['in0']"),
]

PAIR = ["--offline", "{s}/model.espdl", "--streaming", "{s}/streaming_model.espdl"]
VERIFY = [
    ("offline-missing", ["--offline", "{d}/none.espdl", "--streaming", "{s}/streaming_model.espdl"],
     "argument --offline: {d}/none.espdl: no such file"),
    ("offline-folder", ["--offline", "{d}/empty_dir", "--streaming", "{s}/streaming_model.espdl"],
     "empty_dir is a folder: give a file"),
    ("streaming-missing", ["--offline", "{s}/model.espdl", "--streaming", "{d}/none.espdl"], "argument --streaming"),
    ("nothing-given", [], "give --offline FILE, --offline with --streaming FILE, or --streaming FILE --vectors FILE"),
    ("vectors-without-streaming", ["--offline", "{s}/model.espdl", "--vectors", "{s}/streaming_vectors.bin"],
     "--vectors needs the --streaming file they were written for"),
    ("target", [*PAIR, "--target", "esp32"], "argument --target: invalid choice: 'esp32'"),
    ("vectors-missing", [*PAIR, "--vectors", "{d}/none.bin"], "argument --vectors: {d}/none.bin: no such file"),
    ("vectors-device", [*PAIR, "--vectors", "/dev/null"], "/dev/null is not a regular file: give a file"),
    ("vectors-not-vectors", [*PAIR, "--vectors", "{d}/notvec.bin"], "notvec.bin: not a streaming vector file (bad magic)"),
    ("vectors-empty", [*PAIR, "--vectors", "{d}/empty.bin"], "empty.bin: not a streaming vector file"),
    ("vectors-half", [*PAIR, "--vectors", "{d}/half.bin"], "half.bin: CRC mismatch: the vector file is corrupted or truncated"),
    ("vectors-flipped-bit", [*PAIR, "--vectors", "{d}/flipped.bin"], "flipped.bin: CRC mismatch"),
    ("vectors-10-bytes", [*PAIR, "--vectors", "{d}/short.bin"], "short.bin: not a streaming vector file"),
    ("vectors-format-1", [*PAIR, "--vectors", "{d}/version1.bin"], "vector format version 1, this reader knows 2: re-export"),
    ("vectors-of-another-model", ["--streaming", "{s}/streaming_model.espdl", "--vectors", "{m}/lstm/esp32s3/streaming_vectors.bin"],
     "the files are not from one export"),
    ("vectors-of-another-target", ["--streaming", "{s}/streaming_model.espdl", "--vectors", "{m}/tcn/esp32p4/streaming_vectors.bin"],
     "the files are not from one export"),
    ("pair-of-two-models", ["--offline", "{s}/model.espdl", "--streaming", "{m}/lstm/esp32s3/streaming_model.espdl"],
     "the files are not from one export"),
    ("pair-of-two-targets", ["--offline", "{m}/tcn/esp32p4/model.espdl", "--streaming", "{s}/streaming_model.espdl"],
     "the files are not from one export"),
    ("model-as-both", ["--offline", "{s}/model.espdl", "--streaming", "{s}/model.espdl"], "are the same file"),
    ("model-and-its-copy", ["--offline", "{s}/model.espdl", "--streaming", "{d}/model_copy.espdl"], "are the same file"),
    ("pair-swapped", ["--offline", "{s}/streaming_model.espdl", "--streaming", "{s}/model.espdl"],
     "streaming_model.espdl is the streaming model of its export (its metadata says so): give it as --streaming"),
    ("streaming-as-offline", ["--offline", "{s}/streaming_model.espdl"], "give it as --streaming"),
    ("offline-as-streaming", ["--streaming", "{s}/model.espdl", "--vectors", "{s}/streaming_vectors.bin"],
     "model.espdl is the offline model of its export (its metadata says so): give it as --offline"),
    ("espdl-truncated", ["--offline", "{d}/trunc.espdl"], "-byte model, the file holds 1984: the file is truncated"),
    ("espdl-10-bytes", ["--offline", "{d}/ten.espdl"], "ten.espdl: 10 bytes, shorter than the 16-byte .espdl header"),
    ("espdl-random-after-magic", ["--offline", "{d}/random_after_magic.espdl"], "random_after_magic.espdl: encryption mode"),
    ("espdl-header-only", ["--offline", "{d}/header_only.espdl"], "header_only.espdl: the model at byte 0 (+4) lies outside"),
    ("espdl-text", ["--offline", "{d}/text.espdl"], "text.espdl: not an .espdl file"),
    ("espdl-grown", ["--offline", "{d}/grown.espdl"], "grown.espdl: 100 bytes after the "),
    ("espdl-weight-flipped", ["--offline", "{s}/model.espdl", "--streaming", "{d}/weight_flipped.espdl"],
     "weight_flipped.espdl: the file is damaged (changed since it was exported): export it again or copy it again; "
     "its bytes give CRC-32"),
    ("espdl-test-value-flipped", ["--offline", "{d}/test_value_flipped.espdl"], "test_value_flipped.espdl: the file is damaged"),
    ("espdl-stamp-flipped", ["--offline", "{d}/stamp_flipped.espdl"], "stamp_flipped.espdl: the file is damaged"),
    ("espdl-stamp-renamed", ["--offline", "{d}/stamp_renamed.espdl"], "its espdl_stream.crc32 stamp no longer reads"),
    ("espdl-pad-flipped", ["--offline", "{d}/pad_flipped.espdl"], "pad_flipped.espdl: the file is damaged"),
    ("espdl-pad-flipped-not-ours", ["--offline", "{d}/foreign_pad.espdl"],
     "the padded input: the shape [1, 8388624, 8] holds 67,108,992 elements, more than the chips' 32 MB of PSRAM can"),
]


def _argv(template, d):
    return [a.replace("{d}", str(d)).replace("{s}", str(SHIPPED)).replace("{m}", str(MODELS)) for a in template]


def _refused_in_one_line(code, err, message):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("case,args,message", EXPORT, ids=[c[0] for c in EXPORT])
def test_export_refuses_bad_input(bad, tmp_path, capsys, case, args, message):
    before = sorted(p.name for p in bad.rglob("*"))
    code, out, err = run_cli(["--out", tmp_path / "out", "--quiet", *_argv(args, bad)], capsys)
    _refused_in_one_line(code, err, message.replace("{d}", str(bad)))
    assert "PASS" not in out
    assert list(tmp_path.iterdir()) == []  # nothing written: no output folder, no staging, no lock
    assert sorted(p.name for p in bad.rglob("*")) == before


@pytest.mark.parametrize("case,args,message", STREAM, ids=[c[0] for c in STREAM])
def test_stream_refuses_bad_input(bad, capsys, case, args, message):
    code, _, err = run_cli(["stream", *_argv(args, bad)], capsys)
    _refused_in_one_line(code, err, message.replace("{d}", str(bad)))


@pytest.mark.parametrize("case,args,message", VERIFY, ids=[c[0] for c in VERIFY])
def test_verify_refuses_bad_input(bad, capsys, case, args, message):
    code, out, err = run_cli(["verify", *_argv(args, bad)], capsys)
    _refused_in_one_line(code, err, message.replace("{d}", str(bad)))
    assert "ALL PASS" not in out


def test_an_export_already_writing_there_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    with output_lock(out):
        code, _, err = run_cli(["--out", out, "--quiet"], capsys)
    _refused_in_one_line(code, err, "another export (process")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage,message", [
    (lambda path: path.unlink(), "the shipped weights of tcn are missing: reinstall espdl-stream, or give --weights random"),
    (lambda path: path.write_bytes(path.read_bytes()[:5000]), "the shipped weights of tcn cannot be loaded"),
    (lambda path: path.write_bytes(np.random.default_rng(0).bytes(5000)), "the shipped weights of tcn cannot be loaded"),
], ids=["missing", "truncated", "random-bytes"])
@pytest.mark.parametrize("command", [["--out", "{out}", "--quiet"], ["stream", "{wav}"]], ids=["export", "stream"])
def test_missing_or_damaged_shipped_weights_are_an_error_not_a_random_model(tmp_path, monkeypatch, capsys, damage,
                                                                          message, command):
    weights = tmp_path / "tcn.safetensors"
    weights.write_bytes(models.weights_path("tcn").read_bytes())
    damage(weights)
    monkeypatch.setattr(models, "weights_path", lambda name: weights)
    monkeypatch.setattr(cli, "weights_path", lambda name: weights)
    write_wav(tmp_path / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(16000))
    argv = [a.replace("{out}", str(tmp_path / "out")).replace("{wav}", str(tmp_path / "a.wav")) for a in command]
    code, _, err = run_cli(argv, capsys)
    _refused_in_one_line(code, err, message)
    assert not (tmp_path / "out").exists()


def _export_process(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "espdl_stream.launcher", "--out", str(out), "--quiet",
                             "--calib-steps", "8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig,code,line", [(signal.SIGINT, 130, "export-espdl: interrupted (Ctrl-C)"),
                                           (signal.SIGTERM, 143, "export-espdl: terminated (SIGTERM)")],
                         ids=["ctrl-c", "sigterm"])
def test_interrupted_export_is_one_line_and_leaves_nothing(tmp_path, sig, code, line):
    out = tmp_path / "out"
    run = _export_process(out)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".out.staging-") for p in tmp_path.iterdir()):  # mid-export: staging exists
        assert run.poll() is None and time.monotonic() < deadline, "the export ended before it staged anything"
        time.sleep(0.02)
    run.send_signal(sig)
    _, err = run.communicate(timeout=120)
    assert run.returncode == code
    assert err.strip() == line
    assert list(tmp_path.iterdir()) == []  # staging removed, lock released, nothing installed


def _handles_sigterm(pid: int) -> bool:
    """Whether the process catches SIGTERM yet (Python itself does not: the launcher's handlers are in place)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


@pytest.mark.skipif(not PROC, reason="reads the process's signal mask in /proc")
def test_ctrl_c_while_starting_up_is_one_line(tmp_path):
    """Ctrl-C while torch and esp-ppq are still importing (seconds); earlier than the launcher's first line only
    Python's own start-up could be interrupted."""
    run = _export_process(tmp_path / "out")
    deadline = time.monotonic() + 60
    while not _handles_sigterm(run.pid):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130 and err.strip() == "export-espdl: interrupted (Ctrl-C)"
    assert list(tmp_path.iterdir()) == []
