"""The integrity stamp (export/integrity.py): every exported .espdl carries its own CRC-32, which a flipped byte breaks."""

import shutil
import zlib
from pathlib import Path

import pytest

from espdl_stream.export import integrity
from espdl_stream.export.errors import ExportError

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
