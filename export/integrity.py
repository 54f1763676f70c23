"""The integrity stamp of an exported .espdl file: its own CRC-32, recorded inside it.

Every .espdl the exporter writes carries the metadata entry `espdl_stream.crc32`, 8 lowercase hex
digits: the CRC-32 (IEEE 802.3, zlib.crc32 / esp_rom_crc32_le) of the whole file with those 8 value
bytes taken as "00000000". The exporter writes that placeholder through esp-ppq's metadata, then
`stamp` patches the 8 bytes in place (same length: the FlatBuffer stays valid). A checker finds the
value through the metadata, locates it in the raw bytes as the FlatBuffers string
`<uint32 little-endian 8><8 hex digits>\\0` (exactly once), and recomputes. CRC-32 catches every
single-byte change. The firmware does the same at boot (firmware/main/stream_check/).
"""

from __future__ import annotations

import zlib
from pathlib import Path

from .errors import ExportError
from .espdl_file import EspdlDamaged, read_espdl

STAMP_KEY = "espdl_stream.crc32"
PLACEHOLDER = "00000000"


def _string_bytes(value: str) -> bytes:
    """How FlatBuffers stores the string: length, characters, terminating zero."""
    text = value.encode("utf-8")
    return len(text).to_bytes(4, "little") + text + b"\0"


def _locate(data: bytes, value: str, path: Path) -> int:
    """Offset of the 8 value characters in `data`; the string must occur exactly once."""
    needle = _string_bytes(value)
    first = data.find(needle)
    if first < 0 or data.find(needle, first + 1) >= 0:
        found = "does not occur" if first < 0 else "occurs more than once"
        raise ExportError(f"{path}: the {STAMP_KEY} value {value!r} {found} in the file's bytes: re-export it")
    return first + 4


def _crc_with_placeholder(data: bytes, at: int) -> str:
    return f"{zlib.crc32(data[:at] + PLACEHOLDER.encode() + data[at + 8:]):08x}"


def stamp(path: Path) -> str:
    """Replace the placeholder value of a freshly written .espdl by the file's CRC-32; returns it."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    at = _locate(bytes(data), PLACEHOLDER, path)
    crc = _crc_with_placeholder(bytes(data), at)
    data[at : at + 8] = crc.encode("ascii")
    path.write_bytes(bytes(data))
    return crc


def check(path: Path) -> tuple[str | None, str | None]:
    """(recorded, computed) CRC-32 of a stamped .espdl file: equal when the file is intact. Either is
    None when a corrupted file no longer lets it be read (its FlatBuffer or the value's characters)."""
    path = Path(path)
    try:
        metadata = read_espdl(path).metadata
    except EspdlDamaged:  # a flipped byte in the FlatBuffer's structure: the file is corrupted
        return None, None
    except ExportError:
        raise
    except Exception:  # a flipped byte in the FlatBuffer's structure or in a string: the file is corrupted
        return None, None
    recorded = metadata.get(STAMP_KEY)
    if recorded is None:
        raise ExportError(f"{path}: no {STAMP_KEY} entry in its metadata: the file was not written by "
                          f"this exporter, or before files were stamped; re-export it")
    data = path.read_bytes()
    return recorded, _crc_with_placeholder(data, _locate(data, recorded, path))
