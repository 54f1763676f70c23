"""The one reader of .espdl files: graph, parameters in their packed layouts, test values, metadata.

An .espdl file is a 16-byte header (magic "EDL2", an encryption flag, the payload size) followed by a
FlatBuffers `Model` (ESP-DL's `fbs_loader/espdl.fbs`, an ONNX-like schema). This module decodes the
FlatBuffers wire format itself, so reading a file needs neither esp-ppq nor the flatbuffers package.

Every size and offset read from the file goes through `_Buffer`, whose methods check it against the
bytes there are before anything is sliced or allocated, and every shape is bounded before it is used: a
damaged file is refused with EspdlFormatError, never read past its end, and what reading it allocates
grows with the file's size, never with a number written in it.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ExportError

ESPDL_MAGIC = b"EDL2"
ESPDL_HEADER_BYTES = 16

# ESP-DL's TensorDataType (the ONNX codes) -> numpy dtype
NUMPY_TYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
               9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}
TYPE_NAMES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
              10: "float16", 11: "float64", 12: "uint32", 13: "uint64"}
INT8, INT16, INT32, INT64, FLOAT32 = 3, 5, 6, 7, 1
MAX_DIM = 2**31 - 1  # ESP-DL keeps shapes as C ints (TensorBase::shape is a std::vector<int>)


class EspdlFormatError(ExportError):
    """The bytes are not a readable .espdl file; the message says where reading stopped."""


class EspdlDamaged(EspdlFormatError):
    """An .espdl file whose FlatBuffers structure is broken (a size or offset points outside the file)."""


@dataclass
class EspdlTensor:
    name: str
    dims: list[int]
    exponent: int  # the first; per-channel weights have one per output channel in `exponents`
    dtype: int  # ONNX TensorProto data type code
    values: np.ndarray | None = None
    exponents: list[int] = field(default_factory=list)
    layout: str = ""  # how the exporter packed a parameter, e.g. "(N/16)HWC16"; "" when it does not say

    @property
    def per_channel(self) -> bool:
        return len(self.exponents) > 1


@dataclass
class EspdlNode:
    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attributes: dict


@dataclass
class EspdlFile:
    nodes: list[EspdlNode]
    inputs: dict[str, EspdlTensor]
    outputs: dict[str, EspdlTensor]
    value_infos: dict[str, EspdlTensor]
    test_inputs: dict[str, EspdlTensor]
    test_outputs: dict[str, EspdlTensor]
    initializers: dict[str, EspdlTensor]
    metadata: dict[str, str] = field(default_factory=dict)

    def consumers(self, variable: str) -> list[EspdlNode]:
        return [n for n in self.nodes if variable in n.inputs]

    def tensor(self, name: str) -> EspdlTensor:
        """Shape, type and exponent of any variable (graph input, output, intermediate) or parameter."""
        for table in (self.inputs, self.outputs, self.value_infos, self.initializers):
            if name in table:
                return table[name]
        raise EspdlFormatError(f"the graph reads '{name}', to which the file gives no shape, type or exponent")


# ---------------------------------------------------------------- the FlatBuffers wire format
class _Buffer:
    """Bounds-checked reads of a FlatBuffers buffer. The only place that turns sizes in the file into slices."""

    def __init__(self, data: bytes, source: str):
        self.data = memoryview(data)
        self.source = source

    def _need(self, pos: int, size: int, what: str) -> None:
        if pos < 0 or size < 0 or pos + size > len(self.data):
            raise EspdlDamaged(f"{self.source}: {what} at byte {pos} (+{size}) lies outside the file "
                                   f"({len(self.data)} bytes): the file is damaged or not an .espdl model")

    def scalar(self, pos: int, fmt: str, what: str = "a value"):
        size = struct.calcsize(fmt)
        self._need(pos, size, what)
        return struct.unpack_from("<" + fmt, self.data, pos)[0]

    def deref(self, pos: int, what: str) -> int:
        """Follow a uoffset_t: the position it points to."""
        return pos + self.scalar(pos, "I", what)

    def table(self, pos: int, what: str) -> "_Table":
        vtable = pos - self.scalar(pos, "i", what)
        vtable_size = self.scalar(vtable, "H", f"{what}'s vtable")
        self._need(vtable, vtable_size, f"{what}'s vtable")
        return _Table(self, pos, vtable, vtable_size, what)

    def vector(self, pos: int, element_size: int, what: str) -> tuple[int, int]:
        """(start, count) of the vector at `pos`, its elements checked to lie inside the file."""
        count = self.scalar(pos, "I", f"{what}'s length")
        self._need(pos + 4, count * element_size, what)
        return pos + 4, count

    def array(self, pos: int, dtype, what: str) -> np.ndarray:
        """A vector of scalars as a numpy array (a copy: the file's bytes may go)."""
        dtype = np.dtype(dtype).newbyteorder("<")
        start, count = self.vector(pos, dtype.itemsize, what)
        return np.frombuffer(self.data, dtype=dtype, count=count, offset=start).copy()

    def string(self, pos: int, what: str) -> str:
        start, count = self.vector(pos, 1, what)
        return bytes(self.data[start : start + count]).decode("utf-8", errors="replace")


class _Table:
    def __init__(self, buf: _Buffer, pos: int, vtable: int, vtable_size: int, what: str):
        self.buf, self.pos, self.vtable, self.vtable_size, self.what = buf, pos, vtable, vtable_size, what

    def _field(self, slot: int) -> int:
        """Position of field `slot`, or 0 when the file leaves it out."""
        entry = 4 + 2 * slot
        if entry + 2 > self.vtable_size:
            return 0
        offset = self.buf.scalar(self.vtable + entry, "H", f"{self.what}'s vtable")
        return self.pos + offset if offset else 0

    def scalar(self, slot: int, fmt: str, default=0):
        pos = self._field(slot)
        return self.buf.scalar(pos, fmt, self.what) if pos else default

    def string(self, slot: int) -> str:
        pos = self._field(slot)
        return self.buf.string(self.buf.deref(pos, self.what), self.what) if pos else ""

    def table(self, slot: int) -> "_Table | None":
        pos = self._field(slot)
        return self.buf.table(self.buf.deref(pos, self.what), self.what) if pos else None

    def array(self, slot: int, dtype) -> np.ndarray | None:
        pos = self._field(slot)
        return self.buf.array(self.buf.deref(pos, self.what), dtype, self.what) if pos else None

    def tables(self, slot: int) -> list["_Table"]:
        pos = self._field(slot)
        if not pos:
            return []
        start, count = self.buf.vector(self.buf.deref(pos, self.what), 4, self.what)
        return [self.buf.table(self.buf.deref(start + 4 * i, self.what), self.what) for i in range(count)]

    def strings(self, slot: int) -> list[str]:
        pos = self._field(slot)
        if not pos:
            return []
        start, count = self.buf.vector(self.buf.deref(pos, self.what), 4, self.what)
        return [self.buf.string(self.buf.deref(start + 4 * i, self.what), self.what) for i in range(count)]

    def struct_bytes(self, slot: int, struct_size: int) -> bytes:
        """The concatenated bytes of a vector of fixed-size structs (Tensor.raw_data: 16-byte AlignedBytes)."""
        pos = self._field(slot)
        if not pos:
            return b""
        start, count = self.buf.vector(self.buf.deref(pos, self.what), struct_size, self.what)
        return bytes(self.buf.data[start : start + count * struct_size])


# Field slots, in the order espdl.fbs declares them (a union takes two: its type, then its value).
class _Model:
    GRAPH, METADATA = 7, 8


class _Graph:
    NODE, INITIALIZER, INPUT, OUTPUT, VALUE_INFO, TEST_INPUTS, TEST_OUTPUTS = 0, 2, 4, 5, 6, 8, 9


class _Node:
    INPUT, OUTPUT, NAME, OP_TYPE, ATTRIBUTE = 0, 1, 2, 3, 5


class _Attribute:
    NAME, TYPE, F, I, S, FLOATS, INTS = 0, 3, 4, 5, 6, 10, 11


class _Tensor:
    DIMS, DATA_TYPE, NAME, DOC_STRING, RAW_DATA, EXPONENTS = 0, 1, 6, 7, 8, 13


class _ValueInfo:
    NAME, TYPE, EXPONENTS = 0, 1, 3


TENSOR_TYPE = 1  # TypeInfoValue.tensor_type
ATTRIBUTE_FLOAT, ATTRIBUTE_INT, ATTRIBUTE_STRING, ATTRIBUTE_FLOATS, ATTRIBUTE_INTS = 1, 2, 3, 6, 7
LAYOUT_PREFIX = "layout ==> "


def _attribute(a: _Table):
    """The value of one node attribute; tensors, graphs and type protos (no ESP-DL module reads them) are None."""
    kind = a.scalar(_Attribute.TYPE, "i")
    if kind == ATTRIBUTE_FLOAT:
        return float(a.scalar(_Attribute.F, "f"))  # AttributeF: a struct of one float, inline
    if kind == ATTRIBUTE_INT:
        return int(a.scalar(_Attribute.I, "q"))
    if kind == ATTRIBUTE_STRING:
        raw = a.array(_Attribute.S, np.uint8)
        return bytes(raw).decode("utf-8", errors="replace") if raw is not None else ""
    if kind == ATTRIBUTE_FLOATS:
        values = a.array(_Attribute.FLOATS, np.float32)
        return [] if values is None else [float(v) for v in values]
    if kind == ATTRIBUTE_INTS:
        values = a.array(_Attribute.INTS, np.int64)
        return [] if values is None else [int(v) for v in values]
    return None


def _value_info(v: _Table) -> EspdlTensor:
    name = v.string(_ValueInfo.NAME)
    dims, dtype = [], 0
    type_info = v.table(_ValueInfo.TYPE)
    tensor_type = type_info.table(1) if type_info is not None and type_info.scalar(0, "B") == TENSOR_TYPE else None
    if tensor_type is not None:
        dtype = tensor_type.scalar(0, "i")
        shape = tensor_type.table(1)
        for dim in shape.tables(0) if shape is not None else []:
            value = dim.table(0)
            dims.append(int(value.scalar(1, "q")) if value is not None else -1)
    if any(d < -1 or d > MAX_DIM for d in dims):  # -1: a dimension the file leaves open
        raise EspdlDamaged(f"{v.buf.source}: '{name}' has the shape {dims}, which no ESP-DL tensor has: "
                           "the file is damaged")
    exponents = v.array(_ValueInfo.EXPONENTS, np.int64)
    exponents = [] if exponents is None else [int(e) for e in exponents]
    return EspdlTensor(name, dims, exponents[0] if exponents else 0, dtype, exponents=exponents)


def _tensor(t: _Table) -> EspdlTensor:
    name = t.string(_Tensor.NAME)
    dims_array = t.array(_Tensor.DIMS, np.int64)
    dims = [] if dims_array is None else [int(d) for d in dims_array]
    dtype = t.scalar(_Tensor.DATA_TYPE, "i")
    source = t.buf.source
    if dtype not in NUMPY_TYPES:
        raise EspdlDamaged(f"{source}: tensor '{name}' has data type {dtype}, which ESP-DL does not define")
    if any(d < 0 or d > MAX_DIM for d in dims):
        raise EspdlDamaged(f"{source}: tensor '{name}' has the shape {dims}, which no ESP-DL tensor has")
    raw = t.struct_bytes(_Tensor.RAW_DATA, 16)  # 16-byte aligned blocks: the values, then padding
    item = np.dtype(NUMPY_TYPES[dtype]).newbyteorder("<")
    count = math.prod(dims)  # Python integers: a damaged shape cannot overflow into a small count
    if -(-count * item.itemsize // 16) * 16 != len(raw):
        raise EspdlDamaged(f"{source}: tensor '{name}' of shape {dims} needs {count * item.itemsize} bytes, "
                           f"the file holds {len(raw)}: the file is damaged")
    values = np.frombuffer(raw, dtype=item, count=count).reshape(dims)
    exponents = t.array(_Tensor.EXPONENTS, np.int64)
    exponents = [] if exponents is None else [int(e) for e in exponents]
    layout = t.string(_Tensor.DOC_STRING)
    layout = layout[len(LAYOUT_PREFIX):] if layout.startswith(LAYOUT_PREFIX) else layout
    return EspdlTensor(name, dims, exponents[0] if exponents else 0, dtype, values, exponents, layout)


def parse_espdl(data: bytes, source: str = "the .espdl file") -> EspdlFile:
    """Decode the bytes of an .espdl file."""
    if data[:4] != ESPDL_MAGIC:
        raise EspdlFormatError(f"{source}: not an .espdl file (it starts with {bytes(data[:4])!r}, an .espdl "
                               f"file with {ESPDL_MAGIC!r})")
    if len(data) < ESPDL_HEADER_BYTES:
        raise EspdlDamaged(f"{source}: {len(data)} bytes, shorter than the {ESPDL_HEADER_BYTES}-byte .espdl header: "
                           "the file is truncated")
    mode, size = struct.unpack_from("<II", data, 4)  # fbs_loader.cpp: the encryption mode, the model's length
    if mode == 1:
        raise EspdlFormatError(f"{source}: the model is encrypted; only unencrypted .espdl files can be read")
    if mode != 0:
        raise EspdlDamaged(f"{source}: encryption mode {mode} in the header (ESP-DL knows 0 and 1): the file is damaged")
    held = len(data) - ESPDL_HEADER_BYTES
    if size > held:
        raise EspdlDamaged(f"{source}: the header announces a {size}-byte model, the file holds {held}: "
                           "the file is truncated")
    if held - size >= 16:  # ESP-DL's format pads the model to 16 bytes at most
        raise EspdlDamaged(f"{source}: {held - size} bytes after the {size}-byte model the header announces: "
                           "the file is damaged")
    buf = _Buffer(bytes(data[ESPDL_HEADER_BYTES : ESPDL_HEADER_BYTES + size]), source)
    model = buf.table(buf.deref(0, "the model"), "the model")
    graph = model.table(_Model.GRAPH)
    if graph is None:
        raise EspdlDamaged(f"{source}: the model has no graph")
    nodes = [
        EspdlNode(n.string(_Node.NAME), n.string(_Node.OP_TYPE), n.strings(_Node.INPUT), n.strings(_Node.OUTPUT),
                  {a.string(_Attribute.NAME): _attribute(a) for a in n.tables(_Node.ATTRIBUTE)})
        for n in graph.tables(_Graph.NODE)
    ]

    def infos(slot):
        return {info.name: info for info in map(_value_info, graph.tables(slot))}

    def tensors(slot):
        return {t.name: t for t in map(_tensor, graph.tables(slot))}

    return EspdlFile(
        nodes=nodes,
        inputs=infos(_Graph.INPUT),
        outputs=infos(_Graph.OUTPUT),
        value_infos=infos(_Graph.VALUE_INFO),
        test_inputs=tensors(_Graph.TEST_INPUTS),
        test_outputs=tensors(_Graph.TEST_OUTPUTS),
        initializers=tensors(_Graph.INITIALIZER),
        metadata={e.string(0): e.string(1) for e in model.tables(_Model.METADATA)},
    )


def file_bytes(path) -> bytes:
    """The bytes of an .espdl file, or EspdlFormatError (one line) when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise EspdlFormatError(f"{path}: cannot be read ({e.strerror or e})") from e


def read_espdl(path) -> EspdlFile:
    return parse_espdl(file_bytes(path), str(path))
