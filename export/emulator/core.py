"""What every operator shares: the chips' rounding, saturation, the registry, and the view an op has of the file.

Read from ESP-DL's C++ (espressif/esp-dl v3.3.9 = master 12c0616 for everything under dl/; read, not copied):
- tool::round: ESP32-P4 rounds half to even (`fcvt.w.s rne`), ESP32-S3 half up, `(int)floorf(x + 0.5)` with
  the 0.5 a double; tool::shift_and_round and the SIMD kernels round integer shifts the same way per chip;
- tool::truncate: saturation to the output type; C's implicit int -> int16_t conversion wraps.

Every tensor the emulator holds has one axis in front of the file's own shape: independent runs (clips),
computed at once. An op sees arrays [runs, *shape] and must treat each run as ESP-DL treats its one tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import ExportError
from ..espdl_file import FLOAT32, INT8, INT16, TYPE_NAMES, EspdlFile, EspdlNode

TARGETS = ("esp32s3", "esp32p4")
INT_RANGES = {INT8: (-128, 127), INT16: (-32768, 32767)}
NP_TYPES = {INT8: np.int8, INT16: np.int16, FLOAT32: np.float32}
QUANT_BITS = {"S8": 8, "S16": 16, "F32": 32}  # the `quant_type` attribute esp-ppq writes on every node
# The most PSRAM an ESP32-S3 or ESP32-P4 takes is 32 MB: no tensor of a model that runs there has more elements.
# A size beyond it comes from a damaged or hostile file (a flipped byte turning a Conv pad of 2 into 8,388,610
# made the emulator allocate 23 GB), and is refused before anything that large is allocated.
MAX_TENSOR_ELEMENTS = 32 * 2**20


class EmulatorError(ExportError):
    """The file uses something the emulator does not execute, or breaks an ESP-DL rule; names the node."""


def oversized(shape) -> str:
    """Why a tensor of `shape` (one run's) cannot exist on the chips, or "" when it can."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        return f"the shape {dims} has a negative size"
    elements = math.prod(dims)
    if elements > MAX_TENSOR_ELEMENTS:
        return (f"the shape {dims} holds {elements:,} elements, more than the chips' 32 MB of PSRAM can: "
                "the file is damaged")
    return ""


# ---------------------------------------------------------------- rounding as the chips round
@dataclass(frozen=True)
class Rounding:
    half_even: bool

    def round(self, values) -> np.ndarray:
        """tool::round of float32 values: half to even (P4) or floorf(x + 0.5) with a double 0.5 (S3)."""
        v = np.asarray(values, dtype=np.float32)
        if self.half_even:
            return np.rint(v).astype(np.int64)
        return np.floor((v.astype(np.float64) + 0.5).astype(np.float32)).astype(np.int64)

    def round_double(self, values) -> np.ndarray:
        """tool::round of double values: floor(x + 0.5) (S3); on the P4 its C round_half_even(double), which
        rounds half away from zero and then steps an odd result within 1e-6 of a tie back towards zero."""
        v = np.asarray(values, dtype=np.float64)
        if not self.half_even:
            return np.floor(v + 0.5).astype(np.int64)
        rounded = np.where(v < 0, v - 0.5, v + 0.5)
        whole = np.trunc(rounded)
        tie = (np.abs(rounded - whole) < 1e-6) & (whole.astype(np.int64) % 2 != 0)
        return (whole - np.where(tie, np.where(v < 0, -1, 1), 0)).astype(np.int64)

    def shift(self, values, shift) -> np.ndarray:
        """Integer rounding shift (tool::shift_and_round, the SIMD kernels); a negative shift multiplies.
        `shift` is one number or broadcasts against `values` (per channel, say)."""
        v = np.asarray(values)
        v = v if v.dtype in (np.int32, np.int64) else v.astype(np.int64)  # an int32 accumulator stays int32
        shift = np.asarray(shift, dtype=v.dtype)
        if shift.size == 1:  # one exponent for the tensor
            shift = shift.reshape(())
        if shift.ndim == 0:
            return self._shift(v, int(shift)) if shift >= 0 else v << -int(shift)
        right = np.maximum(shift, 0)
        return np.where(shift >= 0, self._shift(v, right), v << np.maximum(-shift, 0))

    def _shift(self, v: np.ndarray, right) -> np.ndarray:
        """v / 2**right rounded, right >= 0: half up is (v + half) >> right; half to even adds half - 1 and the
        quotient's lowest bit, so that a tie carries only into an odd quotient."""
        half = np.left_shift(v.dtype.type(1), right) >> 1  # 0 when right == 0
        if self.half_even:
            return (v + np.maximum(half - 1, 0) + ((v >> right) & (right > 0))) >> right
        return (v + half) >> right


def rounding_for(target: str) -> Rounding:
    return Rounding(half_even=(target == "esp32p4"))


def saturate(values, dtype: int) -> np.ndarray:
    low, high = INT_RANGES[dtype]
    values = np.asarray(values)
    kind = values.dtype.type if values.dtype.kind in "iu" else np.int64
    return np.clip(values, kind(low), kind(high)).astype(NP_TYPES[dtype])


def wrap_int16(values) -> np.ndarray:
    """C's implicit int -> int16_t conversion: modulo 2**16."""
    return np.asarray(values, dtype=np.int64).astype(np.int16)


def scale(exponent: int) -> np.float32:
    """DL_SCALE / DL_RESCALE: 2**exponent as a float32 (exact for every exponent a file uses)."""
    return np.float32(2.0**exponent)


# ---------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Op:
    """One ESP-DL module: how it computes, and what of it is emulated (for the supported-ops table)."""

    op_type: str
    run: Callable  # (ctx, inputs) -> outputs; every array [runs, *shape]
    bits: tuple[int, ...]  # the quant_type widths emulated: 8, 16 and 32 (float)
    note: str  # one line for the README's table: what the emulation covers and what it refuses
    check: Callable | None = None  # (ctx) -> None: refuses what the file asks for before anything runs
    # ESP-DL uses the integers as they are, never rescaling: "all" its data inputs and outputs, or only its
    # "inputs" (a comparison), must share one exponent for the result to mean what the graph says
    raw_integers: str = ""


REGISTRY: dict[str, Op] = {}
INDEX_TYPES = (6, 7)  # int32/int64 tensors are shapes, axes and indices, not data


def op(op_type: str, bits=(8, 16), note: str = "", check: Callable | None = None, raw_integers: str = ""):
    """Register the function as the emulation of ESP-DL's module `op_type`."""

    def register(run):
        REGISTRY[op_type] = Op(op_type, run, tuple(bits), note, check, raw_integers)
        return run

    return register


def exponent_mismatches(espdl: EspdlFile) -> list[str]:
    """Nodes of modules that use integers without rescaling (Transpose, Concat, Add, ...) whose tensors carry
    different exponents: ESP-DL computes them all the same, so the chip reads those integers at the wrong scale."""
    found = []
    for node in espdl.nodes:
        spec = REGISTRY.get(node.op_type)
        if spec is None or not spec.raw_integers:
            continue
        names = node.inputs + (node.outputs if spec.raw_integers == "all" else [])
        data = [n for n in names if n and espdl.tensor(n).dtype not in INDEX_TYPES]
        exponents = {n: espdl.tensor(n).exponent for n in data}
        if len(set(exponents.values())) > 1:
            listed = ", ".join(f"{n}: {e}" for n, e in exponents.items())
            found.append(f"{node.op_type} '{node.name}' ({listed})")
    return found


# ---------------------------------------------------------------- what an op sees
@dataclass
class Context:
    """One node of one file on one target: its tensors' shapes, types and exponents as the file states them,
    the target's rounding, parameters, and state an op keeps across runs (StreamingCache, tables)."""

    file: EspdlFile
    node: EspdlNode
    target: str
    rounding: Rounding
    state: dict = field(default_factory=dict)

    @property
    def attributes(self) -> dict:
        return self.node.attributes

    @property
    def bits(self) -> int:
        quant_type = self.attributes.get("quant_type")
        if quant_type not in QUANT_BITS:
            self.fail(f"quant_type {quant_type!r} is not emulated (S8, S16, F32 are)")
        return QUANT_BITS[quant_type]

    def fail(self, message: str):
        raise EmulatorError(f"{self.node.op_type} node '{self.node.name}': {message}")

    def require(self, condition, message: str) -> None:
        if not condition:
            self.fail(message)

    def require_size(self, shape, what: str) -> None:
        """Before allocating `what` of `shape` (one run's): refuse a size no model on the chips has."""
        problem = oversized(shape)
        if problem:
            self.fail(f"{what}: {problem}")

    def exponent(self, name: str) -> int:
        return self.file.tensor(name).exponent

    def dtype(self, name: str) -> int:
        return self.file.tensor(name).dtype

    def dims(self, name: str) -> list[int]:
        return self.file.tensor(name).dims

    def in_exp(self, i: int = 0) -> int:
        return self.exponent(self.node.inputs[i])

    def out_exp(self, i: int = 0) -> int:
        return self.exponent(self.node.outputs[i])

    def out_dtype(self, i: int = 0) -> int:
        dtype = self.dtype(self.node.outputs[i])
        self.require(dtype in NP_TYPES, f"output '{self.node.outputs[i]}' is {TYPE_NAMES.get(dtype, dtype)}, "
                                        "not int8, int16 or float32")
        return dtype

    def has_input(self, i: int) -> bool:
        return len(self.node.inputs) > i and bool(self.node.inputs[i])

    def param(self, i: int) -> np.ndarray:
        """The values of input `i`, which ESP-DL reads from the file's parameters (a Reshape's shape, say)."""
        name = self.node.inputs[i] if self.has_input(i) else ""
        self.require(name in self.file.initializers,
                     f"input {i} ('{name}') must be a parameter stored in the file: ESP-DL reads it when loading")
        return self.file.initializers[name].values

    def ints(self, i: int) -> list[int]:
        return [int(v) for v in np.asarray(self.param(i)).reshape(-1)]
