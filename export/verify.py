"""The proofs. Each check reads models, graphs or written files; none changes what is exported.

- float: the external-state ONNX twin run chunk by chunk in ONNX Runtime equals the offline ONNX;
- quantized: the streaming graph simulated on the host, chunk by chunk, gives the same integers
  as the offline quantized graph, every chunk;
- files: the streaming .espdl has exactly the planned caches, each read only by its own consumer,
  every weight is an integer, and every recurrent state leaves with the exponent and type it comes
  back in with;
- the exact bytes in the ESP-DL emulator: the offline file reproduces its embedded test values (within
  Model::test's tolerance), the streaming file equals the offline file on every prefix, the per-chunk vectors
  are reproduced; esp-ppq's simulation and the emulator agree. Names, shapes and types come from the files.

"Every chunk" means: the chunk's output frames equal the offline output on those frames, and
(recurrent models) the states after the chunk equal the offline states after the same prefix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort

from .emulator import Emulator, EmulatorError, exponent_mismatches
from .espdl_file import FLOAT32, INT8, INT16, EspdlFile, read_espdl
from .intake import INPUT_NAME
from .plan import StreamingPlan, with_dynamic_time
from .vectors import ROLE_INPUT, ROLE_OUTPUT

FLOAT_TOLERANCE = 1e-5
TIME_MIXING_OPS = {"Conv", "AveragePool", "MaxPool"}
FLOAT_DTYPES = {1: "float32", 10: "float16", 11: "float64"}  # ONNX TensorProto codes
QUANTIZE_OPS = {"QuantizeLinear", "DequantizeLinear", "RequantizeLinear"}

Outputs = dict[str, np.ndarray]


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    per_chunk: list[float] = field(default_factory=list)  # worst value over clips and tensors, per chunk
    warning: bool = False  # passed, but a figure is off its target (e.g. accuracy): WARN, exit code stays 0

    @property
    def result(self) -> str:
        return "FAIL" if not self.passed else "WARN" if self.warning else "PASS"

    def to_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "result": self.result, "detail": self.detail,
                "per_chunk": self.per_chunk}


# ---------------------------------------------------------------- running the float models
def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _zero_states(model: onnx.ModelProto, names) -> dict[str, np.ndarray]:
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    return {name: np.zeros(shapes[name], np.float32) for name in names}


def onnx_offline_runner(model: onnx.ModelProto, plan: StreamingPlan) -> Callable[[np.ndarray], Outputs]:
    """Runs the offline ONNX on any number of frames ([n_mels, frames] in), from zero states."""
    session = _session(with_dynamic_time(model))
    names = [o.name for o in session.get_outputs()]
    zeros = _zero_states(model, plan.state_inputs)

    def run(clip: np.ndarray) -> Outputs:
        return dict(zip(names, session.run(names, {INPUT_NAME: np.ascontiguousarray(clip[None]), **zeros})))

    return run


def run_streaming_onnx(twin: onnx.ModelProto, plan: StreamingPlan, clip: np.ndarray, chunk: int) -> list[Outputs]:
    """Feed one clip [n_mels, frames] chunk by chunk; every cache and state output goes back in."""
    session = _session(twin)
    feedback = [(f"cache{k}_out", f"cache{k}_in") for k in range(len(plan.sites))] + list(plan.state_pairs)
    carried = {f"cache{k}_in": np.zeros(s.cache_shape, np.float32) for k, s in enumerate(plan.sites)}
    carried.update(_zero_states(twin, plan.state_inputs))
    names = [o.name for o in session.get_outputs()]
    results = []
    for start in range(0, clip.shape[-1], chunk):
        outputs = dict(zip(names, session.run(names, {INPUT_NAME: np.ascontiguousarray(clip[None, :, start : start + chunk]), **carried})))
        results.append({name: outputs[name] for name in plan.outputs})
        carried = {i: outputs[o] for o, i in feedback}
    return results


# ---------------------------------------------------------------- per-chunk comparison
def chunk_references(run: Callable[[np.ndarray], Outputs], clip: np.ndarray, chunk: int, plan: StreamingPlan) -> list[Outputs]:
    """What the offline model says each chunk must give: every output on the chunk's frames, the states after its prefix."""
    full = run(clip)
    references = []
    for i in range(clip.shape[-1] // chunk):
        reference = {}
        for o in plan.frame_outputs:
            per = chunk // o.stride
            reference[o.name] = np.take(full[o.name], range(i * per, (i + 1) * per), axis=o.time_axis)
        if plan.recurrent:
            prefix = run(clip[:, : (i + 1) * chunk])
            reference.update({out: prefix[out] for out, _ in plan.state_pairs})
        references.append(reference)
    return references


def compare_chunks(references: list[list[Outputs]], streamed: list[list[Outputs]]) -> tuple[list[float], list[int], str]:
    """Per chunk, worst over clips and tensors: largest |difference| and number of differing values.

    Also names the tensor and chunk of the largest difference.
    """
    n_chunks = len(references[0])
    worst, differing, where, top = [0.0] * n_chunks, [0] * n_chunks, "", 0.0
    for clip_refs, clip_stream in zip(references, streamed):
        for i, (reference, got) in enumerate(zip(clip_refs, clip_stream)):
            for name, expected in reference.items():
                actual = got[name]
                if actual.shape != expected.shape:
                    worst[i], differing[i] = float("inf"), max(differing[i], expected.size)
                    where = f"{name} in chunk {i} has shape {actual.shape}, offline {expected.shape}"
                    continue
                diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
                worst[i] = max(worst[i], float(diff.max()))
                differing[i] = max(differing[i], int((diff > 0).sum()))
                if diff.max() > top:
                    top, where = float(diff.max()), f"largest in {name}, chunk {i}"
    return worst, differing, where


def _scope(references: list[list[Outputs]]) -> str:
    names = list(references[0][0])
    outputs = [n for n in names if not n.endswith("_out")]
    tensors = ", ".join(outputs) + (f" and {len(names) - len(outputs)} states" if len(names) > len(outputs) else "")
    return f"{len(references[0])} chunks x {len(references)} clips ({tensors})"


def check_torch_vs_onnx(torch_outputs: list[np.ndarray], onnx_outputs: list[np.ndarray], source: str = "PyTorch") -> Check:
    """The model as given (PyTorch, or the user's own ONNX) against the planned offline graph, every output.

    Two float32 runtimes sum in different orders: the bound is relative to the output's magnitude."""
    worst = max(float(np.abs(a - b).max()) for a, b in zip(torch_outputs, onnx_outputs))
    scale = max(1.0, max(float(np.abs(a).max()) for a in torch_outputs))
    limit = FLOAT_TOLERANCE * scale
    return Check(f"{source} vs offline ONNX (float)", worst <= limit,
                 f"max |diff| {worst:.2e} (limit {FLOAT_TOLERANCE:g} x max |y| {scale:.1f})")


def check_float_streaming(references: list[list[Outputs]], streamed: list[list[Outputs]]) -> Check:
    """Equal within float32 rounding. ONNX Runtime's LSTM/GRU kernels sum a split sequence in another order, so
    the bound is 1e-5 relative to the outputs' magnitude (a convolutional model's difference is 0)."""
    worst, _, where = compare_chunks(references, streamed)
    top = max(worst)
    scale = max(1.0, max(float(np.abs(v).max()) for clip in references for ref in clip for v in ref.values()))
    limit = FLOAT_TOLERANCE * scale
    return Check(
        "ONNX Runtime streaming vs offline (float)",
        top <= limit,
        f"{_scope(references)}, max |diff| {top:.2e} (limit {FLOAT_TOLERANCE:g} x max |y| {scale:.1f})"
        + (f", {where}" if top > limit else ""),
        worst,
    )


def check_quantized_streaming(references: list[list[Outputs]], streamed: list[list[Outputs]], width: str) -> Check:
    worst, differing, where = compare_chunks(references, streamed)
    total = sum(differing)
    return Check(
        "quantized streaming vs offline (host simulation)",
        total == 0,
        f"{_scope(references)}, {total} differing {width} values, max |diff| {max(worst):g} LSB" + (f", {where}" if total else ""),
        worst,
    )


# ---------------------------------------------------------------- the written files
def check_streaming_structure(espdl, plan: StreamingPlan, chunk: int, n_mels: int, x_layout=(0, 2, 1)) -> Check:
    """The written streaming file has exactly the planned caches, and nothing else reads a cache output.

    Intermediate value-info shapes are not checked: esp-ppq leaves them at the offline length, and
    ESP-DL ignores them, deriving every shape from the graph input's (checked here).
    """
    problems = []
    x = espdl.inputs.get(INPUT_NAME)
    expected = [[1, n_mels, chunk][a] for a in x_layout]  # x_layout: esp-ppq's permutation of [1, n_mels, frames]
    if x is None or x.dims != expected:
        problems.append(f"input '{INPUT_NAME}' is {x.dims if x else 'missing'}, expected {expected}")
    caches = [n for n in espdl.nodes if n.op_type == "StreamingCache"]
    if len(caches) != len(plan.sites):
        problems.append(f"{len(caches)} StreamingCache nodes, planned {len(plan.sites)}")
    for site in plan.sites:
        feeding = [c for c in caches if any(r.name == site.consumer for r in espdl.consumers(c.outputs[0]))]
        if len(feeding) != 1:
            problems.append(f"'{site.consumer}' is fed by {len(feeding)} caches, expected 1")
            continue
        cache = feeding[0]
        if cache.attributes.get("window_size") != site.window:
            problems.append(f"cache for '{site.consumer}' has window {cache.attributes.get('window_size')}, needs {site.window}")
        if cache.attributes.get("frame_axis") != site.frame_axis:
            problems.append(f"cache for '{site.consumer}' is on frame axis {cache.attributes.get('frame_axis')}, "
                            f"its frames are on axis {site.frame_axis}")
    for cache in caches:
        for reader in espdl.consumers(cache.outputs[0]):
            if reader.op_type not in TIME_MIXING_OPS:
                problems.append(
                    f"{reader.op_type} '{reader.name}' reads the output of cache '{cache.name}' "
                    f"(window+chunk-1 frames where it expects a chunk): a shared cache"
                )
    time_index = dict(plan.time_pads)
    for node in espdl.nodes:
        pads = node.attributes.get("pads")
        if node.op_type in TIME_MIXING_OPS and node.name in time_index and pads:
            t = time_index[node.name]
            if pads[t] or pads[t + len(pads) // 2]:
                problems.append(f"{node.op_type} '{node.name}' still pads {pads}: it would insert zeros into every chunk")
    windows = ",".join(str(s.window) for s in plan.sites)
    axes = ",".join(sorted({str(s.frame_axis) for s in plan.sites})) or "-"
    return Check(
        "streaming .espdl structure",
        not problems,
        "; ".join(problems) or f"{len(caches)} StreamingCache nodes, windows {windows or '-'}, frame axis {axes}, "
                               f"each read only by its op",
    )


def check_integer_parameters(files: dict) -> Check:
    """Every weight in the written files is an integer; only (re)quantize nodes may take a float scale."""
    problems = [
        f"{label}: '{name}' is stored as {FLOAT_DTYPES[t.dtype]}"
        for label, espdl in files.items()
        for name, t in espdl.initializers.items()
        if t.dtype in FLOAT_DTYPES and any(n.op_type not in QUANTIZE_OPS for n in espdl.consumers(name))
    ]
    count = sum(len(f.initializers) for f in files.values())
    return Check("integer weights in both files", not problems,
                 "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
                 or f"{count} parameters, weights all integer")


def check_raw_integer_exponents(files: dict) -> Check:
    """ESP-DL copies, adds, compares and max-pools integers without rescaling them (Transpose, Concat, Add, ...):
    every such node's tensors must share one exponent, or the chip reads them at the wrong scale (esp-ppq once
    gave the Transpose after an LSTM another output exponent; its own simulation requantizes and hides that)."""
    problems = [f"{label}: {found}" for label, espdl in files.items() for found in exponent_mismatches(espdl)]
    return Check("ops that use integers as they are keep one exponent", not problems,
                 "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
                 or f"{sum(len(f.nodes) for f in files.values())} nodes in {len(files)} file{'s' if len(files) > 1 else ''}")


def check_state_contract(files: dict, plan: StreamingPlan) -> Check:
    """The firmware copies each state output into its input byte for byte: same shape, type and exponent.

    An LSTM cell state must be int16 (ESP-DL's LSTM asserts it).
    """
    problems = []
    for label, espdl in files.items():
        for state_out, state_in in plan.state_pairs:
            out, inp = espdl.outputs.get(state_out), espdl.inputs.get(state_in)
            if out is None or inp is None:
                problems.append(f"{label}: '{state_out}' or '{state_in}' is not a graph output/input")
                continue
            if (out.dims, out.dtype, out.exponent) != (inp.dims, inp.dtype, inp.exponent):
                problems.append(
                    f"{label}: {state_out} {out.dims} type {out.dtype} exponent {out.exponent} != "
                    f"{state_in} {inp.dims} type {inp.dtype} exponent {inp.exponent}"
                )
            if state_out in plan.cell_states and out.dtype != INT16:
                problems.append(f"{label}: LSTM cell state '{state_out}' is type {out.dtype}, ESP-DL needs int16")
    return Check("recurrent state copy-back contract", not problems,
                 "; ".join(problems) or f"{len(plan.state_pairs)} state pairs, in and out alike in both files")


def snr_db(reference: np.ndarray, approximation: np.ndarray) -> float:
    noise = float(np.sum((reference.astype(np.float64) - approximation) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    return float("inf") if noise == 0 else round(10 * np.log10(signal / noise), 2)


# ---------------------------------------------------------------- the exact bytes, in the emulator
# Model::test's tolerance per output type (dl_model_base.cpp): int16 within one step, int8 exact, float 2e-5.
TEST_TOLERANCE = {INT8: 0, INT16: 1, FLOAT32: 2e-5}


def test_tolerance(dtype: int) -> float:
    return TEST_TOLERANCE.get(dtype, 0)


def _largest_difference(got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape:
        return float("inf")
    return float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max(initial=0.0))


def _test_inputs(espdl: EspdlFile, source) -> dict[str, np.ndarray]:
    missing = [name for name in espdl.inputs if name not in espdl.test_inputs]
    if missing:
        raise EmulatorError(f"{source}: no embedded test value for input '{missing[0]}' (export it with test values)")
    return {name: espdl.test_inputs[name].values for name in espdl.inputs}


def check_test_values(offline: EspdlFile, target: str, name: str, source="the offline file") -> Check:
    """The file's embedded test inputs through the emulator against its embedded test outputs, as the board's
    Model::test() compares them: every named tensor (outputs or intermediates), its type, shape and exponent,
    within Model::test's tolerance for its type."""
    if not offline.test_outputs:
        raise EmulatorError(f"{source}: no embedded test outputs to compare with")
    out = Emulator(offline, target).run(_test_inputs(offline, source), keep_all=True)
    problems, worst, where = [], {}, ""
    for tensor_name, expected in offline.test_outputs.items():
        if tensor_name not in out:
            problems.append(f"'{tensor_name}' is not a tensor of the graph")
            continue
        info = offline.tensor(tensor_name)
        if (expected.dtype, expected.exponent) != (info.dtype, info.exponent):
            problems.append(f"'{tensor_name}' is stored as type {expected.dtype} exponent {expected.exponent}, the graph "
                            f"says type {info.dtype} exponent {info.exponent} (Model::test would refuse it)")
        worst[tensor_name] = _largest_difference(out[tensor_name], expected.values)
    failing = {n: d for n, d in worst.items() if d > test_tolerance(offline.tensor(n).dtype)}
    top = max(worst.values(), default=0.0)
    if failing:
        where = max(failing, key=failing.get)
        problems.append(f"'{where}' differs by up to {worst[where]:g} (tolerance {test_tolerance(offline.tensor(where).dtype):g})")
    detail = "; ".join(problems) or (f"{len(worst)} test outputs, max |diff| {top:g} "
                                     f"(Model::test tolerance: int8 0, int16 1, float32 2e-5)")
    return Check(name, not problems, detail)


def emulate_test_values(offline_path, target: str) -> Check:
    """`verify`'s check of an offline file this project may not have written: ESP-DL's own test, in the emulator."""
    return check_test_values(read_espdl(offline_path), target, "offline .espdl reproduces its embedded test values",
                             offline_path)


def _time_axis(streamed: np.ndarray, offline: np.ndarray) -> int | None:
    differing = [a for a in range(streamed.ndim) if streamed.shape[a] != offline.shape[a]]
    return differing[0] if len(differing) == 1 else None


def _same_frames(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """The offline tensor cut to the streamed one's last frames (a streaming output covers the newest frames)."""
    if got.shape == want.shape:
        return want
    axis = _time_axis(got, want)
    if axis is None or got.shape[axis] > want.shape[axis]:
        return want
    return np.take(want, range(want.shape[axis] - got.shape[axis], want.shape[axis]), axis=axis)


def _first_diverging_node(streaming: EspdlFile, streamed: Outputs, offline: Outputs) -> str:
    """The first node of the streaming file whose output differs from the offline run's on the same frames."""
    for node in streaming.nodes:
        for name in node.outputs:
            if name in streamed and name in offline and node.op_type != "StreamingCache":
                got = streamed[name]
                want = _same_frames(got, offline[name])
                if got.shape == want.shape and not np.array_equal(got, want):
                    return f"{node.op_type} '{node.name}'"
    return "no single node (the difference is carried in from an earlier chunk)"


@dataclass
class StreamLayout:
    """How a streaming file takes the offline file's test input, all read from the two files."""

    data_inputs: list[str]  # inputs fed with frames each chunk
    state_pairs: list[tuple[str, str]]  # (output, input) copied back after each chunk
    frame_axis: dict[str, int]  # per data input, the axis that carries frames
    chunk: int  # frames per chunk
    chunks: int  # whole chunks in the offline test input


def stream_layout(offline: EspdlFile, streaming: EspdlFile, streaming_emu: Emulator, source) -> StreamLayout:
    pairs = streaming_emu.state_pairs()
    states = {i for _, i in pairs}
    data = [n for n in streaming.inputs if n not in states]
    axes, chunks = {}, set()
    for name in data:
        if name not in offline.test_inputs:
            raise EmulatorError(f"{source}: the offline file has no test value for the streaming input '{name}'")
        full, step = offline.test_inputs[name].dims, streaming.inputs[name].dims
        differing = [a for a in range(len(step)) if len(full) == len(step) and full[a] != step[a]]
        if "frame_axis" in streaming.metadata:
            differing = [int(streaming.metadata["frame_axis"])]
        if len(differing) != 1 or step[differing[0]] <= 0:
            raise EmulatorError(f"input '{name}': the offline test input {full} and the streaming input {step} do not "
                                "differ in exactly one (frame) axis")
        axis = differing[0]
        if full[axis] % step[axis]:
            raise EmulatorError(f"input '{name}': the test input's {full[axis]} frames are not a whole number of "
                                f"{step[axis]}-frame chunks")
        axes[name] = axis
        chunks.add((step[axis], full[axis] // step[axis]))
    if len(chunks) != 1:
        raise EmulatorError(f"{source}: the streaming inputs do not share one chunk length ({sorted(chunks)})")
    chunk, count = chunks.pop()
    return StreamLayout(data, pairs, axes, chunk, count)


def _frames(values: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    return np.take(values, range(start, stop), axis=axis)


def emulate_streaming(offline_path, streaming_path, target: str) -> Check:
    """The streaming file chunk by chunk on the offline file's own test input (state outputs copied back), each
    chunk against the offline file run on the same prefix."""
    offline, streaming = read_espdl(offline_path), read_espdl(streaming_path)
    offline_emu, streaming_emu = Emulator(offline, target), Emulator(streaming, target)
    layout = stream_layout(offline, streaming, streaming_emu, offline_path)
    test = _test_inputs(offline, offline_path)
    zeros = {name: offline_emu.zeros(name) for name in offline.inputs if name not in layout.data_inputs}
    chunks = [{n: _frames(test[n], layout.frame_axis[n], k * layout.chunk, (k + 1) * layout.chunk)
               for n in layout.data_inputs} for k in range(layout.chunks)]
    name = "streaming .espdl equals offline .espdl on every prefix (emulated)"
    start = time.perf_counter()
    try:
        streamed_all = streaming_emu.stream(chunks, keep_all=True)
    except EmulatorError as e:  # a streaming graph ESP-DL cannot run (a shared cache, say) fails this check
        return Check(name, False, str(e))
    elapsed = time.perf_counter() - start
    worst, where = [], ""
    for k, streamed in enumerate(streamed_all):
        prefix = {n: _frames(test[n], layout.frame_axis[n], 0, (k + 1) * layout.chunk) for n in layout.data_inputs}
        reference = offline_emu.run({**prefix, **zeros}, keep_all=True)
        chunk_worst = 0.0
        for output in streaming.outputs:
            if output not in reference:
                raise EmulatorError(f"streaming output '{output}' is not a tensor of the offline file")
            diff = _largest_difference(streamed[output], _same_frames(streamed[output], reference[output]))
            if diff and not where:
                where = f"chunk {k}, output '{output}': first diverging node {_first_diverging_node(streaming, streamed, reference)}"
            chunk_worst = max(chunk_worst, diff)
        worst.append(chunk_worst)
    top = max(worst)
    return Check(
        name, top == 0,
        (f"{layout.chunks} chunks of {layout.chunk} frames, {len(streaming.outputs)} outputs, every value equal; "
         f"emulator {layout.chunks / max(elapsed, 1e-9):.0f} chunks/s") if top == 0 else f"max |diff| {top:g} at {where}",
        worst,
    )


def emulate_vectors(streaming_path, target: str, vectors) -> Check:
    """The per-chunk vectors' own inputs through the streaming file (state outputs copied back), every chunk's
    outputs against the vectors' expected ones within the tolerance the file states."""
    streaming = read_espdl(streaming_path)
    emu = Emulator(streaming, target)
    states = {i for _, i in emu.state_pairs()}
    fed = {t.name: t for t in vectors.tensors if t.role == ROLE_INPUT}
    expected = [t for t in vectors.tensors if t.role == ROLE_OUTPUT]
    for name in streaming.inputs:
        if name not in states and name not in fed:
            raise EmulatorError(f"the vectors feed no values to the streaming input '{name}'")
    unknown = [t.name for t in expected if t.name not in streaming.outputs] + [n for n in fed if n not in streaming.inputs]
    if unknown:
        raise EmulatorError(f"the vectors name '{unknown[0]}', which is not an input/output of {streaming_path}")
    count = len(next(iter(fed.values())).chunks) if fed else 0
    start = time.perf_counter()
    streamed = emu.stream([{n: t.chunks[k] for n, t in fed.items()} for k in range(count)])
    elapsed = time.perf_counter() - start
    worst = [max((_largest_difference(out[t.name], t.chunks[k]) for t in expected), default=0.0)
             for k, out in enumerate(streamed)]
    top = max(worst, default=0.0)
    return Check("streaming .espdl reproduces the per-chunk vectors (emulated)", top <= vectors.tolerance,
                 f"{count} chunks, {len(expected)} outputs, max |diff| {top:g} LSB (the vectors' device tolerance "
                 f"{vectors.tolerance}); emulator {count / max(elapsed, 1e-9):.0f} chunks/s", worst)


def esp_ppq_gap(esp_ppq: Outputs, emulated: Outputs) -> dict[str, float]:
    """Per output, the largest |difference| (LSB) between esp-ppq's simulation and the emulator, file layout."""
    return {n: _largest_difference(esp_ppq[n], emulated[n]) for n in emulated}


def check_esp_ppq_vs_emulator(gap: dict[str, float], bits: int) -> Check:
    """esp-ppq's simulation and the emulator, two independent implementations of the same integer semantics, on
    the test clip: int8 exact, int16 within one step. Only for models without LSTM/GRU: there ESP-DL's gate
    arithmetic (tables clamped at +-6.3/+-3.5, int16 gate sums that wrap, float32 updates) is not what esp-ppq
    simulates, so the gap is a reported figure and the recurrent semantics are anchored by tests instead."""
    top = max(gap.values())
    limit = 0 if bits == 8 else 1
    return Check("esp-ppq simulation vs ESP-DL emulator (test clip)", top <= limit,
                 f"max |diff| {top:g} LSB" + (f" (in {max(gap, key=gap.get)})" if top else "") + f" (limit {limit})")
