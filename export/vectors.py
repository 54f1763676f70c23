"""Per-chunk streaming test vectors for the firmware: a small little-endian binary format.

Layout (all integers little-endian):

    header   "ESV1"  magic (4 bytes)
             u16     format version (1)
             u16     tolerance: how many LSB a device output may differ from the expected one
                     (0 for int8; 1 for int16, whose kernels may round one step apart on the chip)
             u32     number of chunks
             u32     number of tensors
    tensors  per tensor, in the order their data follows:
             u16     name length, then the UTF-8 name
             u8      role: 0 input fed each chunk, 1 output expected each chunk
             u8      element type: 1 int8, 2 int16
             i8      exponent (value = integer * 2**exponent)
             u8      rank, then rank x u32 dims of ONE chunk, in ESP-DL layout ([1, frames, channels])
    data     for each chunk, for each tensor: its integers, row-major
    trailer  u32     CRC-32 (zlib) of every byte before it

A reader checks the magic, version, sizes and CRC, so a truncated or corrupted file is refused.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

MAGIC = b"ESV1"
VERSION = 1
ROLE_INPUT, ROLE_OUTPUT = 0, 1
_DTYPES = {1: np.dtype("<i1"), 2: np.dtype("<i2")}
_CODES = {np.dtype("int8"): 1, np.dtype("int16"): 2}


class VectorFormatError(ValueError):
    pass


@dataclass
class VectorFile:
    tensors: list["VectorTensor"]
    tolerance: int = 0


@dataclass
class VectorTensor:
    name: str
    role: int
    exponent: int
    chunks: list[np.ndarray]  # one integer array per chunk, all of one shape and dtype


def write_vectors(vectors: VectorFile) -> bytes:
    tensors = vectors.tensors
    n_chunks = len(tensors[0].chunks)
    out = bytearray(MAGIC + struct.pack("<HHII", VERSION, vectors.tolerance, n_chunks, len(tensors)))
    for t in tensors:
        if len(t.chunks) != n_chunks:
            raise VectorFormatError(f"tensor {t.name} has {len(t.chunks)} chunks, expected {n_chunks}")
        first = t.chunks[0]
        name = t.name.encode()
        out += struct.pack("<H", len(name)) + name
        out += struct.pack("<BBbB", t.role, _CODES[first.dtype], t.exponent, first.ndim)
        out += struct.pack(f"<{first.ndim}I", *first.shape)
    for i in range(n_chunks):
        for t in tensors:
            out += np.ascontiguousarray(t.chunks[i], dtype=t.chunks[0].dtype.newbyteorder("<")).tobytes()
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


def read_vectors(data: bytes) -> VectorFile:
    if len(data) < 20 or data[:4] != MAGIC:
        raise VectorFormatError("not a streaming vector file (bad magic)")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise VectorFormatError("CRC mismatch: the vector file is corrupted or truncated")
    version, tolerance, n_chunks, n_tensors = struct.unpack_from("<HHII", data, 4)
    if version != VERSION:
        raise VectorFormatError(f"vector format version {version}, this reader knows {VERSION}")
    pos, specs = 16, []
    for _ in range(n_tensors):
        (n,) = struct.unpack_from("<H", data, pos)
        name = data[pos + 2 : pos + 2 + n].decode()
        pos += 2 + n
        role, code, exponent, rank = struct.unpack_from("<BBbB", data, pos)
        dims = struct.unpack_from(f"<{rank}I", data, pos + 4)
        pos += 4 + 4 * rank
        if code not in _DTYPES:
            raise VectorFormatError(f"tensor {name}: unknown element type {code}")
        specs.append((name, role, exponent, _DTYPES[code], tuple(dims)))
    tensors = [VectorTensor(name, role, exponent, []) for name, role, exponent, _, _ in specs]
    for _ in range(n_chunks):
        for t, (_, _, _, dtype, dims) in zip(tensors, specs):
            size = int(np.prod(dims)) * dtype.itemsize
            if pos + size > len(data) - 4:
                raise VectorFormatError("the vector file ends inside its data")
            t.chunks.append(np.frombuffer(data, dtype, int(np.prod(dims)), pos).reshape(dims).astype(dtype.newbyteorder("=")))
            pos += size
    if pos != len(data) - 4:
        raise VectorFormatError(f"{len(data) - 4 - pos} unexplained bytes after the data")
    return VectorFile(tensors, tolerance)
