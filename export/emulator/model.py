"""Execute one .espdl file as ESP-DL's Model does: every node in topological order on integer tensors in the
file's own layout, shapes derived from the inputs, StreamingCache state kept between runs until reset()."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..espdl_file import EspdlFile, read_espdl
from .core import NP_TYPES, QUANT_BITS, REGISTRY, TARGETS, Context, EmulatorError, oversized, rounding_for, saturate


def topological_order(espdl: EspdlFile) -> list[int]:
    """Node indices in an order where every input exists before it is read (ESP-DL sorts the graph too);
    the file's own order wherever it already is one."""
    available = set(espdl.inputs) | set(espdl.initializers) | {""}
    pending, order = list(range(len(espdl.nodes))), []
    while pending:
        ready = [i for i in pending if all(name in available for name in espdl.nodes[i].inputs)]
        if not ready:
            node = espdl.nodes[pending[0]]
            missing = [name for name in node.inputs if name not in available]
            raise EmulatorError(f"{node.op_type} node '{node.name}' reads {missing}, which nothing produces")
        for i in ready:
            available.update(espdl.nodes[i].outputs)
        order += ready
        pending = [i for i in pending if i not in ready]
    missing = [name for name in espdl.outputs if not name or name not in available]
    if missing:
        raise EmulatorError(f"graph output '{missing[0]}' is produced by no node")
    return order


class Emulator:
    """Executes one .espdl file on the host with ESP-DL's integer semantics for `target`.

    `run` takes one input set in the file's shapes; `run_batch` takes N independent input sets stacked on a
    leading axis and computes them at once, as N separate batch-1 runs would.
    """

    def __init__(self, espdl: EspdlFile | str | Path, target: str):
        if target not in TARGETS:
            raise EmulatorError(f"target {target!r} is not emulated: choose one of {', '.join(TARGETS)}")
        self.file = espdl if isinstance(espdl, EspdlFile) else read_espdl(Path(espdl))
        self.target = target
        self.rounding = rounding_for(target)
        self.contexts = []
        for index in topological_order(self.file):
            node = self.file.nodes[index]
            spec = REGISTRY.get(node.op_type)
            if spec is None:
                raise EmulatorError(f"{node.op_type} node '{node.name}': {node.op_type} is not in the emulator's "
                                    "registry (see the supported-ops table in the README)")
            ctx = Context(self.file, node, target, self.rounding)
            if QUANT_BITS.get(node.attributes.get("quant_type")) not in spec.bits:
                ctx.fail(f"quant_type {node.attributes.get('quant_type')!r} is not emulated for {node.op_type} "
                         f"(emulated: {', '.join('F32' if b == 32 else f'S{b}' for b in spec.bits)})")
            if spec.check is not None:
                try:
                    spec.check(ctx)
                except EmulatorError:
                    raise
                except Exception as e:  # an attribute of a type the module cannot take: name the node
                    raise EmulatorError(f"{node.op_type} node '{node.name}': {type(e).__name__}: {e}") from e
            self.contexts.append((spec.run, ctx))
        self._parameters = {name: t.values[None] for name, t in self.file.initializers.items()}

    @property
    def rounding_name(self) -> str:
        return "half to even" if self.rounding.half_even else "half up"

    def reset(self) -> None:
        """What Model::reset() does: every StreamingCache back to zeros."""
        for _, ctx in self.contexts:
            ctx.state.pop("cache", None)

    def run_batch(self, inputs: dict[str, np.ndarray], keep_all: bool = False,
                  forced: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """One run per leading index of the inputs ([runs, *shape] each); returns the graph outputs
        ([runs, *shape]), or every tensor when keep_all (to find where two runs diverge). A tensor in `forced` is
        what later nodes read in place of what its node computed (each layer then sees given inputs: the
        layerwise error); keep_all returns the computed one."""
        values: dict[str, np.ndarray | None] = {"": None}
        computed: dict[str, np.ndarray] = {}
        forced = forced or {}
        for name, info in self.file.inputs.items():
            if name not in inputs:
                raise EmulatorError(f"no value for graph input '{name}'")
            values[name] = np.asarray(inputs[name], dtype=NP_TYPES.get(info.dtype, np.int8))
        values.update(self._parameters)
        for run, ctx in self.contexts:
            node = ctx.node
            try:
                with np.errstate(all="ignore"):  # float32 overflows to inf and NaN as the chip's C does, silently
                    outputs = run(ctx, [values[name] for name in node.inputs])
            except EmulatorError:
                raise
            except Exception as e:  # a shape or value the op cannot take: name the node
                raise EmulatorError(f"{node.op_type} node '{node.name}' failed: {type(e).__name__}: {e}") from e
            for name, value in zip(node.outputs, outputs):  # ops that grow a tensor check first; this stops the rest
                if oversized(value.shape[1:]):
                    ctx.fail(f"output '{name}': {oversized(value.shape[1:])}")
            computed.update(zip(node.outputs, outputs))
            values.update((name, forced.get(name, value)) for name, value in zip(node.outputs, outputs))
        values.update(computed)
        names = [n for n in values if n and n not in self._parameters] if keep_all else list(self.file.outputs)
        return {name: values[name] for name in names}

    def run(self, inputs: dict[str, np.ndarray], keep_all: bool = False,
            forced: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """One run on inputs in the file's shapes."""
        out = self.run_batch({name: np.asarray(value)[None] for name, value in inputs.items()}, keep_all,
                             {name: np.asarray(value)[None] for name, value in (forced or {}).items()})
        return {name: value[0] for name, value in out.items()}

    def quantize(self, name: str, values: np.ndarray) -> np.ndarray:
        """Float values for graph input `name` as the integers the firmware hands ESP-DL: scaled by the input's
        exponent, rounded as this chip rounds, saturated to its type."""
        tensor = self.file.inputs[name]
        return saturate(self.rounding.round(np.asarray(values, np.float32) * np.float32(2.0 ** -tensor.exponent)),
                        tensor.dtype)

    def zeros(self, name: str, runs: int | None = None) -> np.ndarray:
        """Zero integers for graph input `name` (a recurrent state at the start of a stream)."""
        info = self.file.inputs[name]
        problem = oversized(info.dims) or ("" if info.dtype in NP_TYPES else f"its type code {info.dtype} is not "
                                                                               "int8, int16 or float32")
        if problem:
            raise EmulatorError(f"graph input '{name}': {problem}")
        return np.zeros(([runs] if runs is not None else []) + info.dims, NP_TYPES[info.dtype])

    def state_pairs(self) -> list[tuple[str, str]]:
        """(state output, state input) to copy back after each run: from the file's `state_pairs` metadata,
        else by name, every 'X_out' output with an 'X_in' input."""
        if "state_pairs" in self.file.metadata:
            try:
                pairs = [tuple(pair) for pair in json.loads(self.file.metadata["state_pairs"])]
            except (ValueError, TypeError) as e:
                raise EmulatorError(f"the file's state_pairs metadata is not a list of name pairs: {e}") from e
        else:
            pairs = [(o, o[: -len("_out")] + "_in") for o in self.file.outputs
                     if o.endswith("_out") and o[: -len("_out")] + "_in" in self.file.inputs]
        for out, inp in pairs:
            if out not in self.file.outputs or inp not in self.file.inputs:
                raise EmulatorError(f"state pair {out} -> {inp} names no graph output/input of the file")
        return pairs

    def stream_batch(self, chunks: list[dict[str, np.ndarray]], keep_all: bool = False) -> list[dict[str, np.ndarray]]:
        """Run chunk after chunk from a reset ([runs, *shape] inputs per chunk, without states): state inputs
        start at zero, each state output goes back in."""
        self.reset()
        pairs = self.state_pairs()
        runs = len(next(iter(chunks[0].values()))) if chunks else 0
        states = {i: self.zeros(i, runs) for _, i in pairs}
        results = []
        for chunk in chunks:
            out = self.run_batch({**chunk, **states}, keep_all=keep_all)
            results.append(out)
            states = {i: out[o] for o, i in pairs}
        return results

    def stream(self, chunks: list[dict[str, np.ndarray]], keep_all: bool = False) -> list[dict[str, np.ndarray]]:
        """stream_batch for one run, in the file's shapes."""
        batched = self.stream_batch([{n: np.asarray(v)[None] for n, v in c.items()} for c in chunks], keep_all)
        return [{n: v[0] for n, v in out.items()} for out in batched]
