"""The integrity stamp (export/integrity.py): every exported .espdl carries its own CRC-32, which a flipped byte breaks."""

import shutil
import zlib
from pathlib import Path

import pytest

from espdl_stream.export import integrity
from espdl_stream.export.errors import ExportError
from espdl_stream.export.espdl_file import EspdlDamaged, read_espdl
from espdl_stream.export.vectors import read_vectors

MODELS = Path(__file__).resolve().parent.parent / "firmware" / "main" / "models"


@pytest.fixture
def stamped(tmp_path) -> Path:
    path = tmp_path / "streaming_model.espdl"
    shutil.copy(MODELS / "lstm" / "esp32s3" / "streaming_model.espdl", path)
    return path


def test_committed_files_carry_their_own_crc32():
    for path in sorted(MODELS.glob("*/*/*.espdl")):
        recorded, computed = integrity.check(path)
        assert recorded == computed and len(recorded) == 8, path


def test_the_stamp_is_the_crc_of_the_file_with_a_placeholder(stamped):
    data = stamped.read_bytes()
    recorded, _ = integrity.check(stamped)
    needle = (8).to_bytes(4, "little") + recorded.encode() + b"\0"
    assert data.count(needle) == 1
    assert f"{zlib.crc32(data.replace(needle, needle[:4] + b'00000000' + needle[-1:])):08x}" == recorded
    # stamping again from the placeholder gives the same bytes
    stamped.write_bytes(data.replace(needle, needle[:4] + b"00000000" + needle[-1:]))
    assert integrity.stamp(stamped) == recorded and stamped.read_bytes() == data


@pytest.mark.parametrize("where", ["weights", "stamp digit", "last byte", "flatbuffer header"])
def test_one_flipped_byte_is_caught(stamped, where):
    data = bytearray(stamped.read_bytes())
    recorded, _ = integrity.check(stamped)
    at = {"weights": len(data) // 2, "stamp digit": data.find(recorded.encode()) + 3, "last byte": len(data) - 1,
          "flatbuffer header": 16}[where]
    data[at] ^= 0x01
    stamped.write_bytes(bytes(data))
    recorded_now, computed = integrity.check(stamped)
    assert recorded_now is None or recorded_now != computed  # None: the FlatBuffer itself no longer reads


def test_a_file_without_a_stamp_is_refused_in_one_line(tmp_path):
    path = tmp_path / "model.espdl"
    shutil.copy(MODELS / "tcn" / "esp32s3" / "model.espdl", path)
    data = path.read_bytes()
    recorded, _ = integrity.check(path)
    path.write_bytes(data.replace(integrity.STAMP_KEY.encode(), b"espdl_stream.crc99"))
    with pytest.raises(ExportError, match="no espdl_stream.crc32 entry"):
        integrity.check(path)
    with pytest.raises(ExportError, match="does not occur"):
        integrity.stamp(path)  # no placeholder to patch


def test_both_files_and_the_vectors_of_each_committed_export_share_one_export_id():
    ids = set()
    for folder in sorted(p for p in MODELS.glob("*/*") if p.is_dir()):
        found = {read_espdl(folder / name).metadata.get(integrity.EXPORT_ID_KEY) for name in ("model.espdl", "streaming_model.espdl")}
        found.add(read_vectors((folder / "streaming_vectors.bin").read_bytes()).export_id)
        assert len(found) == 1 and len(next(iter(found))) == 16, (folder, found)
        ids |= found
    assert len(ids) == 6  # every model and target its own export


def test_the_export_id_is_a_digest_of_what_the_files_are_made_from():
    assert integrity.export_id(b"onnx", b"calibration") == integrity.export_id(b"onnx", b"calibration")
    assert integrity.export_id(b"onnx", b"calibration") != integrity.export_id(b"onnx", b"calibratioN")
    assert integrity.export_id(b"ab", b"c") != integrity.export_id(b"a", b"bc")  # the parts' lengths count


def test_files_of_different_exports_are_refused_files_without_ids_pass():
    assert integrity.require_one_export({"a": "12", "b": "12", "c": "12"}) == "12"
    assert integrity.require_one_export({"a": None, "b": None}) is None  # not written by export-espdl
    with pytest.raises(ExportError, match="not from one export .a export 12, b export 34"):
        integrity.require_one_export({"a": "12", "b": "34"})
    with pytest.raises(ExportError, match="b without an export id"):
        integrity.require_one_export({"a": "12", "b": None})


@pytest.mark.parametrize("key", [integrity.STAMP_KEY, integrity.EXPORT_ID_KEY])
def test_a_renamed_key_does_not_make_an_exported_file_look_unstamped(stamped, key):
    data = stamped.read_bytes()
    assert integrity.read_intact(stamped)[1] == integrity.check(stamped)[0]
    stamped.write_bytes(data.replace(key.encode(), key[:-1].encode() + b"X"))
    with pytest.raises(EspdlDamaged, match="the file is damaged"):
        integrity.read_intact(stamped)


def test_a_file_this_exporter_did_not_write_reads_without_a_stamp():
    fixture = Path(__file__).resolve().parent / "fixtures" / "ops" / "add_esp32s3_s8.espdl"
    espdl, crc = integrity.read_intact(fixture)
    assert crc is None and espdl.nodes
