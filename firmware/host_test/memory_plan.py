"""ESP-DL's memory plan of a .espdl file, replayed on the host so the firmware's host test shares bytes
the way the chip does.

Read from esp-dl v3.3.9 (= master 12c0616), dl/model/src/dl_memory_manager_greedy.cpp and
dl_memory_manager.cpp; the rules have not changed since v3.3.7:

- every tensor lives from the node that writes it (graph inputs: from node 0) to the node after its
  last reader; graph outputs are never freed. A graph input is freed like any other tensor, so a
  recurrent model's state input may hand its bytes to a later state output.
- a single-output node whose module is in-place (Add, RequantizeLinear, lookup-table activations:
  MODULE_INPLACE_CHANGED_BUFFER; Squeeze, Reshape, ...: MODULE_INPLACE_UNCHANGED_BUFFER) writes into
  its first variable input that is large enough and not a graph output, unless that input is read
  again later (a "dirty" follower is then given its own bytes).
- at each node, first free the tensors whose life ended, merging free neighbours, then place each
  new tensor (in variable-index order) in the smallest free chunk that holds it, else extend the
  last chunk if free, else append; chunks are 16-byte aligned. With PSRAM and the default
  max_internal_size=0 (what app_main.cpp builds), everything is planned in one PSRAM arena.

Node order: ESP-DL's FbsModel::topological_sort (in its prebuilt libfbs_model.a, not readable) is
taken to be the file's node order, which esp-ppq writes topologically sorted.

usage: python memory_plan.py MODEL.espdl TARGET > layout.txt   (one line per tensor: see `layout_lines`)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from espdl_stream.export.emulator import Emulator
from espdl_stream.export.espdl_file import EspdlFile, read_espdl

ALIGNMENT = 16
ONNX_TYPE_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8}
# the module each op type is created as (dl/module/include/dl_module_*.hpp), when it is in-place
INPLACE_CHANGED = {
    "Add", "And", "Clip", "Elu", "Equal", "Exp", "Greater", "GreaterOrEqual", "HardSigmoid", "HardSwish",
    "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log", "LpNormalization", "Max", "Min", "Mod", "Neg",
    "Not", "Or", "PRelu", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
    "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu", "RequantizeLinear", "ReverseSequence",
    "RMSNormalization", "ScatterND", "Sigmoid", "Sqrt", "Swish", "Tanh", "Xor",
}
INPLACE_UNCHANGED = {"Flatten", "Identity", "Reshape", "Squeeze", "Unsqueeze"}


@dataclass(eq=False)
class TensorInfo:
    """dl::TensorInfo: a variable's life (node indices) and size, and its in-place links."""
    name: str
    begin: int
    size: int
    end: int = -1
    leader: TensorInfo | None = None
    dirty: TensorInfo | None = None
    clean: TensorInfo | None = None
    offset: int = 0

    def update_time(self, time: int) -> None:
        if self.leader:
            self.leader.update_time(time)
            self.end = self.leader.end
        elif time == -1 or time > self.end:
            self.end = time

    def set_leader(self, leader: TensorInfo | None) -> None:
        self.leader = leader
        if leader and (leader.end < self.end or self.end == -1):
            leader.update_time(self.end)

    def root(self) -> TensorInfo:
        return self.leader.root() if self.leader else self


@dataclass(eq=False)
class Chunk:
    size: int
    offset: int
    tensor: TensorInfo | None = None

    @property
    def free(self) -> bool:
        return self.tensor is None


@dataclass
class MemoryPlan:
    tensors: list[TensorInfo]  # in ESP-DL's variable-index order
    arena_bytes: int
    graph_inputs: list[str] = field(default_factory=list)
    graph_outputs: list[str] = field(default_factory=list)

    def span(self, name: str) -> tuple[int, int]:
        t = next(t for t in self.tensors if t.name == name)
        return t.root().offset, t.root().offset + t.size


def _aligned(size: int) -> int:
    return (size + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def _sizes(file: EspdlFile, target: str) -> dict[str, int]:
    """Bytes of every variable: its element count from one emulated run, its type from the file."""
    emulator = Emulator(file, target)
    values = emulator.run({name: emulator.zeros(name) for name in file.inputs}, keep_all=True)
    sizes = {}
    for name, value in values.items():
        try:
            itemsize = ONNX_TYPE_BYTES[file.tensor(name).dtype]
        except KeyError:
            itemsize = np.asarray(value).dtype.itemsize
        sizes[name] = int(np.asarray(value).size) * itemsize
    return sizes


def plan(file: EspdlFile, target: str) -> MemoryPlan:
    sizes = _sizes(file, target)
    params = set(file.initializers)
    graph_outputs = list(file.outputs)
    index: dict[str, int] = {}  # Model::load: variables numbered as the nodes name them, inputs first
    for node in file.nodes:
        for name in [i for i in node.inputs if i and i not in params] + list(node.outputs):
            index.setdefault(name, len(index))
    info: list[TensorInfo | None] = [None] * len(index)
    for name in file.inputs:
        info[index[name]] = TensorInfo(name, 0, sizes[name])
    for step, node in enumerate(file.nodes):
        variables = [info[index[i]] for i in node.inputs if i and i not in params]
        for tensor in variables:
            if tensor.dirty:  # read again after an in-place op changed it: the follower gets its own bytes
                tensor.dirty.set_leader(None)
                tensor.dirty = None
            if tensor.name not in graph_outputs:
                tensor.update_time(step + 1)
        new = [TensorInfo(name, step, sizes[name]) for name in node.outputs]
        for tensor in new:
            info[index[tensor.name]] = tensor
        inplace = node.op_type in INPLACE_CHANGED or node.op_type in INPLACE_UNCHANGED
        if not inplace or len(new) != 1:
            continue
        follower = new[0]
        leader = next((c for c in variables if c.size >= follower.size and c.name not in graph_outputs), None)
        if leader is None:
            continue
        previous_clean = leader.clean
        if leader.dirty:
            leader.dirty.set_leader(None)
            leader.dirty = None
        follower.set_leader(leader)
        if node.op_type in INPLACE_CHANGED:
            if previous_clean:
                follower.set_leader(None)
            else:
                leader.dirty = follower
        else:
            leader.clean = follower
    arena = _simulate(info, len(file.nodes))
    return MemoryPlan(info, arena, list(file.inputs), graph_outputs)


def _simulate(tensors: list[TensorInfo], node_count: int) -> int:
    """MemoryManagerGreedy::simulate: returns the arena size; sets every placed tensor's offset."""
    memory: list[Chunk] = []
    free: list[Chunk] = []  # kept sorted by size, stable, as std::list::sort
    alloc_at: list[list[TensorInfo]] = [[] for _ in range(node_count)]
    free_at: list[list[TensorInfo]] = [[] for _ in range(node_count)]
    for t in tensors:
        if t.leader:
            continue
        if 0 <= t.begin < node_count:
            alloc_at[t.begin].append(t)
        if 0 <= t.end < node_count:
            free_at[t.end].append(t)
    for step in range(node_count):
        for t in free_at[step]:
            k = next(k for k, c in enumerate(memory) if c.tensor is t)
            chunk = memory[k]
            chunk.tensor = None
            if k + 1 < len(memory) and memory[k + 1].free:
                neighbour = memory.pop(k + 1)
                free.remove(neighbour)
                chunk.size += neighbour.size
            if k > 0 and memory[k - 1].free:
                neighbour = memory.pop(k - 1)
                free.remove(neighbour)
                chunk.size += neighbour.size
                chunk.offset = min(chunk.offset, neighbour.offset)
            free.append(chunk)
            free.sort(key=lambda c: c.size)
        for t in alloc_at[step]:
            need = _aligned(t.size)
            chunk = next((c for c in free if c.size >= t.size), None)
            if chunk is not None:
                free.remove(chunk)
                chunk.tensor = t
                if chunk.size > need:
                    rest = Chunk(chunk.size - need, chunk.offset + need)
                    chunk.size = need
                    memory.insert(memory.index(chunk) + 1, rest)
                    free.append(rest)
                    free.sort(key=lambda c: c.size)
            elif memory and memory[-1].free:
                chunk = memory[-1]
                free.remove(chunk)
                chunk.tensor, chunk.size = t, need
            else:
                chunk = Chunk(need, memory[-1].offset + memory[-1].size if memory else 0, t)
                memory.append(chunk)
            t.offset = chunk.offset
    return memory[-1].offset + memory[-1].size if memory else 0


def layout_lines(memory: MemoryPlan) -> list[str]:
    """`name offset bytes step`: where each tensor lives and the node that writes it (-1: a graph input),
    in the order the chip writes them. What firmware/host_test/host_check.cpp --layout reads."""
    written = sorted(memory.tensors, key=lambda t: -1 if t.name in memory.graph_inputs else t.begin)
    return [f"{t.name} {t.root().offset} {t.size} {-1 if t.name in memory.graph_inputs else t.begin}" for t in written]


def shared_state_bytes(memory: MemoryPlan, state_pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(state input, other pair's state output) that share bytes."""
    shared = []
    for _, state_in in state_pairs:
        a, b = memory.span(state_in)
        for state_out, other_in in state_pairs:
            c, d = memory.span(state_out)
            if other_in != state_in and a < d and c < b:
                shared.append((state_in, state_out))
    return shared


if __name__ == "__main__":
    print("\n".join(layout_lines(plan(read_espdl(sys.argv[1]), sys.argv[2]))))
