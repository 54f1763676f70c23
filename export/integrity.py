"""The integrity stamp of an exported .espdl file: its own CRC-32, recorded inside it.

Every .espdl the exporter writes carries the metadata entry `espdl_stream.crc32`, 8 lowercase hex
digits: the CRC-32 (IEEE 802.3, zlib.crc32 / esp_rom_crc32_le) of the whole file with those 8 value
bytes taken as "00000000". The exporter writes that placeholder through esp-ppq's metadata, then
`stamp` patches the 8 bytes in place (same length: the FlatBuffer stays valid). A checker finds the
value through the metadata, locates it in the raw bytes as the FlatBuffers string
`<uint32 little-endian 8><8 hex digits>\\0` (exactly once), and recomputes. CRC-32 catches every
single-byte change. The firmware does the same at boot (firmware/main/stream_check/).

Both files of one export also carry `espdl_stream.export_id`, recorded in streaming_vectors.bin and
report.json too, so that a checker refuses an offline file, a streaming file and vectors of different exports.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

from .errors import ExportError
from .espdl_file import EspdlDamaged, EspdlFile, file_bytes, parse_espdl

OUR_KEYS = "espdl_stream."  # the prefix of the metadata this exporter writes (version, export id, stamp)
STAMP_KEY = OUR_KEYS + "crc32"
EXPORT_ID_KEY = OUR_KEYS + "export_id"
PLACEHOLDER = "00000000"


def export_id(*parts: bytes) -> str:
    """The id of one export: a digest of everything its files are made from (the float model, the calibration
    and test clips, the configuration), so the same inputs give the same id (and byte-identical files) and any
    other export another one."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little") + part)
    return digest.hexdigest()[:16]


def require_one_export(export_ids: dict[str, str | None]) -> str | None:
    """The export id a set of files shares ({file: its export id, None when it carries none}), or ExportError
    (one line) when they come from different exports. Files that all carry none (not written by export-espdl)
    cannot be told apart and pass."""
    if len(set(export_ids.values())) > 1:
        listed = ", ".join(f"{name} {'export ' + i if i else 'without an export id'}" for name, i in export_ids.items())
        raise ExportError(f"the files are not from one export ({listed}): give files that one export-espdl run wrote "
                          "together (one --out folder)")
    return next(iter(export_ids.values()), None)


def _string_bytes(value: str) -> bytes:
    """How FlatBuffers stores the string: length, characters, terminating zero."""
    text = value.encode("utf-8")
    return len(text).to_bytes(4, "little") + text + b"\0"


def _find_once(data: bytes, value: str) -> int | None:
    """Offset of the 8 value characters in `data`, or None unless the string occurs exactly once."""
    needle = _string_bytes(value)
    first = data.find(needle)
    return None if first < 0 or data.find(needle, first + 1) >= 0 else first + 4


def _locate(data: bytes, value: str, path: Path) -> int:
    at = _find_once(data, value)
    if at is None:
        raise ExportError(f"{path}: the {STAMP_KEY} value {value!r} does not occur exactly once in the file's bytes: "
                          "re-export it")
    return at


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


def _stamp_of(data: bytes, path: Path) -> tuple[EspdlFile, str | None, str | None]:
    """(the file, the stamp it records, the CRC-32 its bytes give): the stamp None when the file carries none,
    the CRC None when the stamp's characters do not occur exactly once in the bytes."""
    espdl = parse_espdl(data, str(path))
    recorded = espdl.metadata.get(STAMP_KEY)
    at = None if recorded is None else _find_once(data, recorded)
    return espdl, recorded, None if at is None else _crc_with_placeholder(data, at)


def check(path: Path) -> tuple[str | None, str | None]:
    """(recorded, computed) CRC-32 of a stamped .espdl file: equal when the file is intact. Either is
    None when a corrupted file no longer lets it be read (its FlatBuffer or the value's characters)."""
    path = Path(path)
    try:
        _, recorded, computed = _stamp_of(path.read_bytes(), path)
    except EspdlDamaged:  # a flipped byte in the FlatBuffer's structure: the file is corrupted
        return None, None
    if recorded is None:
        raise ExportError(f"{path}: no {STAMP_KEY} entry in its metadata: the file was not written by "
                          f"this exporter, or before files were stamped; re-export it")
    return recorded, computed


def read_intact(path: Path) -> tuple[EspdlFile, str | None]:
    """Read an .espdl file and check its stamp before anything uses it: (the file, its CRC-32, or None for a file
    this exporter did not write, which carries none). A file whose bytes no longer give its stamp, or that was
    stamped and no longer shows it, is refused (EspdlDamaged, one line)."""
    path = Path(path)
    data = file_bytes(path)
    espdl, recorded, computed = _stamp_of(data, path)
    damaged = f"{path}: the file is damaged (changed since it was exported): export it again or copy it again"
    if recorded is None:
        if OUR_KEYS.encode() in data:  # written by this exporter, and a flipped byte hid or renamed the stamp
            raise EspdlDamaged(f"{damaged}; its {STAMP_KEY} stamp no longer reads")
        return espdl, None
    if computed is None:
        raise EspdlDamaged(f"{damaged}; its {STAMP_KEY} stamp {recorded!r} does not occur once in its bytes")
    if computed != recorded:
        raise EspdlDamaged(f"{damaged}; its bytes give CRC-32 {computed}, its stamp says {recorded}")
    return espdl, recorded
