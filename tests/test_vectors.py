"""The per-chunk test vector format: round trip, and refusal of damaged and crafted files."""

import re
import struct
import zlib

import numpy as np
import pytest

from espdl_stream.export.vectors import (
    ROLE_INPUT,
    ROLE_OUTPUT,
    VectorFile,
    VectorFormatError,
    VectorTensor,
    read_vectors,
    write_vectors,
)


def _vectors():
    rng = np.random.default_rng(0)
    return VectorFile([
        VectorTensor("x", ROLE_INPUT, -3, [rng.integers(-128, 128, (1, 8, 40), dtype=np.int8) for _ in range(5)]),
        VectorTensor("y", ROLE_OUTPUT, -12, [rng.integers(-32768, 32768, (1, 4, 12), dtype=np.int16) for _ in range(5)]),
    ], tolerance=1, export_id="0123456789abcdef")


def test_round_trip_is_exact():
    original = _vectors()
    data = write_vectors(original)
    assert data[:4] == b"ESV1"
    back = read_vectors(data)
    assert back.tolerance == 1 and back.export_id == "0123456789abcdef"
    assert [(t.name, t.role, t.exponent) for t in back.tensors] == [("x", 0, -3), ("y", 1, -12)]
    for a, b in zip(original.tensors, back.tensors):
        assert all(np.array_equal(p, q) and p.dtype == q.dtype for p, q in zip(a.chunks, b.chunks))


def test_layout_is_little_endian_and_documented():
    data = write_vectors(VectorFile([VectorTensor("y", ROLE_OUTPUT, -1, [np.array([[[258]]], np.int16)])], tolerance=1,
                                    export_id="ab"))
    assert data[4:16] == bytes([2, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0])  # version 2, tolerance 1, 1 chunk, 1 tensor
    assert data[16:20] == b"\x02\x00ab"  # the export id's length, then its text
    assert data[-6:-4] == bytes([2, 1])  # 258 little-endian, then the CRC


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: d[:-9], "CRC mismatch"),
        (lambda d: d[:30] + bytes([d[30] ^ 1]) + d[31:], "CRC mismatch"),
        (lambda d: b"XXXX" + d[4:], "bad magic"),
        (lambda d: b"", "bad magic"),
    ],
)
def test_damaged_files_are_refused(damage, message):
    with pytest.raises(VectorFormatError, match=message):
        read_vectors(damage(write_vectors(_vectors())))


def _recrc(body: bytes) -> bytes:
    """A crafted file: the body as given, with a valid CRC, so only the reader's own checks stand in the way."""
    return body + struct.pack("<I", zlib.crc32(body))


def _table(*tensors, chunks=1, export_id=b"", version=2) -> bytes:
    return b"ESV1" + struct.pack("<HHII", version, 0, chunks, len(tensors)) + struct.pack("<H", len(export_id)) + \
        export_id + b"".join(tensors)


def _tensor(name: bytes, role=0, code=1, dims=(1, 4)) -> bytes:
    return struct.pack("<H", len(name)) + name + struct.pack("<BBbB", role, code, 0, len(dims)) + \
        struct.pack(f"<{len(dims)}I", *dims)


@pytest.mark.parametrize("body,message", [
    (_table(_tensor(b"x"), _tensor(b"y", 1)) + bytes(7), "1 chunks of 8 bytes announced, 7 bytes of data held"),
    (_table(_tensor(b"x", dims=(2**31, 2**31, 2**31)), _tensor(b"y", 1)) + bytes(8),
     "1 chunks of 9903520314283042199192993796 bytes announced"),  # no overflow into a small size
    (_table(_tensor(b"x"), _tensor(b"y", 1), chunks=2**32 - 1) + bytes(8), "4294967295 chunks of 8 bytes announced"),
    (b"ESV1" + struct.pack("<HHII", 2, 0, 1, 2**32 - 1) + bytes(2) + _tensor(b"x"), "ends inside its tensor table"),
    (_table(_tensor(b"x"), _tensor(b"y", 1), chunks=0), "0 chunks of tensors ['x', 'y']"),
    (_table(_tensor(b"x"), _tensor(b"x", 1)) + bytes(8), "each name once"),
    (_table(_tensor(b"x"), _tensor(b"y")) + bytes(8), "inputs and expected outputs"),
    (_table(_tensor(b"x"), _tensor(b"y", role=7)) + bytes(8), "tensor y: unknown role 7"),
    (_table(_tensor(b"x"), _tensor(b"y", code=9)) + bytes(8), "tensor y: unknown element type 9"),
    (_table(_tensor(b"\xff\xfe"), _tensor(b"y", 1)) + bytes(8), "the tensor table is not UTF-8 text"),
    (b"ESV1" + struct.pack("<HHII", 2, 0, 1, 2) + struct.pack("<H", 60000) + b"id", "ends inside its export id"),
    (_table(_tensor(b"x"), _tensor(b"y", 1), version=1) + bytes(8), "version 1, this reader knows 2: re-export"),
], ids=["data-short", "dims-overflow", "chunks-huge", "tensors-huge", "no-chunks", "duplicate-name", "no-output",
        "role", "element-type", "name-not-utf8", "export-id-cut", "version-1"])
def test_crafted_files_with_a_valid_crc_are_refused_by_their_sizes(body, message):
    with pytest.raises(VectorFormatError, match=re.escape(message)):
        read_vectors(_recrc(body))
