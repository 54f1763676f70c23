"""Run the exact bytes of a .espdl file on the host, with ESP-DL's integer semantics for ESP32-S3 or ESP32-P4.

One module per family of ESP-DL modules, one registered function per module (ESP-DL keeps one file per op):
conv (Conv, Gemm, MatMul), elementwise, activation, pooling, reduce, norm, softmax, resize, movement,
quantize, streaming_cache, recurrent. Each says in its docstring which ESP-DL sources it follows. Anything
the registry does not hold, and any case a module refuses, ends in one EmulatorError naming the node and
what it asks for; nothing is guessed.
"""

from . import activation, conv, elementwise, movement, norm, pooling, quantize, recurrent, reduce, resize, softmax  # noqa: F401  (registration)
from . import streaming_cache  # noqa: F401
from .core import NP_TYPES, REGISTRY, TARGETS, EmulatorError, Rounding, exponent_mismatches, rounding_for
from .model import Emulator, topological_order
from .streaming_cache import streaming_cache_step

__all__ = ["Emulator", "EmulatorError", "NP_TYPES", "REGISTRY", "Rounding", "TARGETS", "exponent_mismatches", "rounding_for",
           "streaming_cache_step", "supported_ops_table", "topological_order"]


def supported_ops_table() -> str:
    """The README's table of the registry: every module on both targets at the widths it lists, with what differs
    by target in its note (`python -m espdl_stream.export.emulator` prints it)."""
    width = {8: "int8", 16: "int16", 32: "float32"}
    lines = [f"| ESP-DL module | {' | '.join(TARGETS)} | widths | what is emulated, and what is refused |",
             "|---|" + "---|" * len(TARGETS) + "---|---|"]
    for name in sorted(REGISTRY):
        spec = REGISTRY[name]
        lines.append(f"| {name} | {' | '.join('yes' for _ in TARGETS)} | {', '.join(width[b] for b in spec.bits)} | {spec.note} |")
    return "\n".join(lines)
