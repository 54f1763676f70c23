"""The per-chunk test vector format: round trip, and refusal of damaged files."""

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
    ], tolerance=1)


def test_round_trip_is_exact():
    original = _vectors()
    data = write_vectors(original)
    assert data[:4] == b"ESV1"
    back = read_vectors(data)
    assert back.tolerance == 1
    assert [(t.name, t.role, t.exponent) for t in back.tensors] == [("x", 0, -3), ("y", 1, -12)]
    for a, b in zip(original.tensors, back.tensors):
        assert all(np.array_equal(p, q) and p.dtype == q.dtype for p, q in zip(a.chunks, b.chunks))


def test_layout_is_little_endian_and_documented():
    data = write_vectors(VectorFile([VectorTensor("y", ROLE_OUTPUT, -1, [np.array([[[258]]], np.int16)])], tolerance=1))
    assert data[4:16] == bytes([1, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0])  # version 1, tolerance 1, 1 chunk, 1 tensor
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
