"""Per-chunk streaming test vectors for the firmware: a small little-endian binary format.

Layout (all integers little-endian):

    header   "ESV1"  magic (4 bytes)
             u16     format version (2)
             u16     tolerance: how many LSB a device output may differ from the expected one
                     (0 for int8; 1 for int16, whose kernels may round one step apart on the chip)
             u32     number of chunks
             u32     number of tensors
             u16     export id length, then the UTF-8 export id: the `espdl_stream.export_id` of the two
                     .espdl files written with these vectors ("" when none), so no checker pairs them with
                     another export's streaming model
    tensors  per tensor, in the order their data follows:
             u16     name length, then the UTF-8 name
             u8      role: 0 input fed each chunk, 1 output expected each chunk
             u8      element type: 1 int8, 2 int16
             i8      exponent (value = integer * 2**exponent)
             u8      rank, then rank x u32 dims of ONE chunk, in ESP-DL layout ([1, frames, channels])
    data     for each chunk, for each tensor: its integers, row-major
    trailer  u32     CRC-32 (zlib) of every byte before it

A reader checks the magic, version and CRC, then every count and size against the bytes there are before it
loops or allocates, so a truncated, corrupted or crafted file is refused with VectorFormatError.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

MAGIC = b"ESV1"
VERSION = 2  # 2: the export id after the header
ROLE_INPUT, ROLE_OUTPUT = 0, 1
_DTYPES = {1: np.dtype("<i1"), 2: np.dtype("<i2")}
_CODES = {np.dtype("int8"): 1, np.dtype("int16"): 2}
_HEADER, _TRAILER = 16, 4


class VectorFormatError(ValueError):
    pass


@dataclass
class VectorFile:
    tensors: list["VectorTensor"]
    tolerance: int = 0
    export_id: str = ""  # the espdl_stream.export_id of the .espdl files these vectors belong to


@dataclass
class VectorTensor:
    name: str
    role: int
    exponent: int
    chunks: list[np.ndarray]  # one integer array per chunk, all of one shape and dtype


def _text(value: str) -> bytes:
    data = value.encode()
    return struct.pack("<H", len(data)) + data


def write_vectors(vectors: VectorFile) -> bytes:
    tensors = vectors.tensors
    n_chunks = len(tensors[0].chunks)
    out = bytearray(MAGIC + struct.pack("<HHII", VERSION, vectors.tolerance, n_chunks, len(tensors)))
    out += _text(vectors.export_id)
    for t in tensors:
        if len(t.chunks) != n_chunks:
            raise VectorFormatError(f"tensor {t.name} has {len(t.chunks)} chunks, expected {n_chunks}")
        first = t.chunks[0]
        out += _text(t.name)
        out += struct.pack("<BBbB", t.role, _CODES[first.dtype], t.exponent, first.ndim)
        out += struct.pack(f"<{first.ndim}I", *first.shape)
    for i in range(n_chunks):
        for t in tensors:
            out += np.ascontiguousarray(t.chunks[i], dtype=t.chunks[0].dtype.newbyteorder("<")).tobytes()
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


class _Reader:
    """Reads the table part of a vector file; every read is checked against the bytes there are."""

    def __init__(self, data: bytes, pos: int, end: int):
        self.data, self.pos, self.end = data, pos, end

    def take(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > self.end:
            raise VectorFormatError(f"the vector file ends inside its {what}")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def text(self, what: str) -> str:
        (length,) = self.take("H", what)
        raw = self.take(f"{length}s", what)[0]
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise VectorFormatError(f"the {what} is not UTF-8 text") from None


def read_vectors(data: bytes) -> VectorFile:
    if len(data) < _HEADER + _TRAILER or data[:4] != MAGIC:
        raise VectorFormatError("not a streaming vector file (bad magic)")
    (crc,) = struct.unpack_from("<I", data, len(data) - _TRAILER)
    if zlib.crc32(data[:-_TRAILER]) != crc:
        raise VectorFormatError("CRC mismatch: the vector file is corrupted or truncated")
    version, tolerance, n_chunks, n_tensors = struct.unpack_from("<HHII", data, 4)
    if version != VERSION:
        raise VectorFormatError(f"vector format version {version}, this reader knows {VERSION}: re-export the model")
    end = len(data) - _TRAILER
    reader = _Reader(data, _HEADER, end)
    export_id = reader.text("export id")
    specs = []
    for _ in range(n_tensors):  # a count beyond the bytes there are ends at the first read past them
        name = reader.text("tensor table")
        role, code, exponent, rank = reader.take("BBbB", "tensor table")
        dims = reader.take(f"{rank}I", "tensor table")
        if code not in _DTYPES:
            raise VectorFormatError(f"tensor {name}: unknown element type {code}")
        if role not in (ROLE_INPUT, ROLE_OUTPUT):
            raise VectorFormatError(f"tensor {name}: unknown role {role}")
        specs.append((name, role, exponent, _DTYPES[code], dims))
    names = [spec[0] for spec in specs]
    roles = {spec[1] for spec in specs}
    if len(set(names)) != len(names) or roles != {ROLE_INPUT, ROLE_OUTPUT} or n_chunks == 0:
        raise VectorFormatError(f"{n_chunks} chunks of tensors {names}: a vector file holds at least one chunk of "
                                "inputs and expected outputs, each name once")
    chunk_bytes = sum(math.prod(dims) * dtype.itemsize for *_, dtype, dims in specs)  # exact: Python integers
    if n_chunks * chunk_bytes != end - reader.pos:
        raise VectorFormatError(f"{n_chunks} chunks of {chunk_bytes} bytes announced, {end - reader.pos} bytes of "
                                "data held")
    tensors = [VectorTensor(name, role, exponent, []) for name, role, exponent, _, _ in specs]
    pos = reader.pos
    for _ in range(n_chunks):
        for t, (*_, dtype, dims) in zip(tensors, specs):
            count = math.prod(dims)
            t.chunks.append(np.frombuffer(data, dtype, count, pos).reshape(dims).astype(dtype.newbyteorder("=")))
            pos += count * dtype.itemsize
    return VectorFile(tensors, tolerance, export_id)
