"""The proofs. Each check reads models, graphs or written files; none changes what is exported.

- float: the external-state ONNX twin run chunk by chunk in ONNX Runtime equals the offline ONNX;
- quantized: the streaming graph simulated on the host, chunk by chunk, gives the same integers
  as the offline quantized graph, every chunk;
- files: the streaming .espdl has exactly the planned caches, each read only by its own consumer,
  every weight is an integer, and every recurrent state leaves with the exponent and type it comes
  back in with;
- the exact bytes in the ESP-DL emulator: the offline file reproduces its embedded test values,
  the streaming file equals the offline file on every chunk and the per-chunk vectors.

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

from .emulator import Emulator, EmulatorError
from .onnx_graph import INPUT_NAME, OUTPUT_NAME, StreamingPlan, with_dynamic_time
from .ppq import read_espdl

FLOAT_TOLERANCE = 1e-5
TIME_MIXING_OPS = {"Conv", "AveragePool", "MaxPool"}
FLOAT_DTYPES = {1: "float32", 10: "float16", 11: "float64"}  # ONNX TensorProto codes
INT16 = 5
QUANTIZE_OPS = {"QuantizeLinear", "DequantizeLinear", "RequantizeLinear"}

Outputs = dict[str, np.ndarray]


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    per_chunk: list[float] = field(default_factory=list)  # worst value over clips and tensors, per chunk

    def to_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, "per_chunk": self.per_chunk}


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
    carried = {f"cache{k}_in": np.zeros((1, s.channels, s.cache_frames), np.float32) for k, s in enumerate(plan.sites)}
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
    """What the offline model says each chunk must give: y on the chunk's frames, the states after its prefix."""
    full = run(clip)
    per = chunk // plan.total_stride
    references = []
    for i in range(clip.shape[-1] // chunk):
        reference = {OUTPUT_NAME: full[OUTPUT_NAME][..., i * per : (i + 1) * per]}
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
    tensors = OUTPUT_NAME if len(names) == 1 else f"{OUTPUT_NAME} and {len(names) - 1} states"
    return f"{len(references[0])} chunks x {len(references)} clips ({tensors})"


def check_torch_vs_onnx(torch_outputs: list[np.ndarray], onnx_outputs: list[np.ndarray]) -> Check:
    """Two float32 runtimes sum in different orders: the bound is relative to the output's magnitude."""
    worst = max(float(np.abs(a - b).max()) for a, b in zip(torch_outputs, onnx_outputs))
    scale = max(1.0, max(float(np.abs(a).max()) for a in torch_outputs))
    limit = FLOAT_TOLERANCE * scale
    return Check("PyTorch vs offline ONNX (float)", worst <= limit,
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


def check_quantized_streaming(references: list[list[Outputs]], streamed: list[list[Outputs]], bits: int) -> Check:
    worst, differing, where = compare_chunks(references, streamed)
    total = sum(differing)
    return Check(
        "quantized streaming vs offline (host simulation)",
        total == 0,
        f"{_scope(references)}, {total} differing int{bits} values, max |diff| {max(worst):g} LSB" + (f", {where}" if total else ""),
        worst,
    )


# ---------------------------------------------------------------- the written files
def check_streaming_structure(espdl, plan: StreamingPlan, chunk: int, n_mels: int) -> Check:
    """The written streaming file has exactly the planned caches, and nothing else reads a cache output.

    Intermediate value-info shapes are not checked: esp-ppq leaves them at the offline length, and
    ESP-DL ignores them, deriving every shape from the graph input's (checked here).
    """
    problems = []
    x = espdl.inputs.get(INPUT_NAME)
    if x is None or x.dims != [1, chunk, n_mels]:
        problems.append(f"input '{INPUT_NAME}' is {x.dims if x else 'missing'}, expected [1, {chunk}, {n_mels}]")
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
        if cache.attributes.get("frame_axis") != 1:
            problems.append(f"cache for '{site.consumer}' is on frame axis {cache.attributes.get('frame_axis')}, ESP-DL's is 1")
    for cache in caches:
        for reader in espdl.consumers(cache.outputs[0]):
            if reader.op_type not in TIME_MIXING_OPS:
                problems.append(
                    f"{reader.op_type} '{reader.name}' reads the output of cache '{cache.name}' "
                    f"(window+chunk-1 frames where it expects a chunk): a shared cache"
                )
    for node in espdl.nodes:
        pads = node.attributes.get("pads")
        if node.op_type in TIME_MIXING_OPS and pads and any(pads):
            problems.append(f"{node.op_type} '{node.name}' still pads {pads}: it would insert zeros into every chunk")
    windows = ",".join(str(s.window) for s in plan.sites)
    return Check(
        "streaming .espdl structure",
        not problems,
        "; ".join(problems) or f"{len(caches)} StreamingCache nodes, windows {windows or '-'}, frame axis 1, each read only by its op",
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
def _time_axis(streamed: np.ndarray, offline: np.ndarray) -> int | None:
    differing = [a for a in range(streamed.ndim) if streamed.shape[a] != offline.shape[a]]
    return differing[0] if len(differing) == 1 else None


def _first_diverging_node(streaming, streamed: Outputs, offline: Outputs) -> str:
    """The first node of the streaming file whose output differs from the offline run's on the same frames."""
    for node in streaming.nodes:
        for name in node.outputs:
            if name not in streamed or name not in offline:
                continue
            got, want = streamed[name], offline[name]
            if got.shape != want.shape:
                axis = _time_axis(got, want)
                if axis is None:
                    continue
                want = np.take(want, range(want.shape[axis] - got.shape[axis], want.shape[axis]), axis=axis)
            if not np.array_equal(got, want):
                return f"{node.op_type} '{node.name}'"
    return "no single node (the difference is carried in from an earlier chunk)"


RECURRENT_NOTE = ("ESP-DL clamps its gate tables at +-6.3 (sigmoid) and +-3.5 (tanh) and computes the int16 cell "
                  "state in float32; esp-ppq simulates neither")


def emulate_streaming(offline_path, streaming_path, target: str, vectors=None) -> list[Check]:
    """Run the written files as ESP-DL would: the streaming file chunk by chunk on the offline file's own
    test input, each chunk against the offline file on the same prefix (and the vectors, when given)."""
    offline, streaming = read_espdl(offline_path), read_espdl(streaming_path)
    if INPUT_NAME not in offline.test_inputs:
        raise ValueError(f"{offline_path}: no embedded test input '{INPUT_NAME}' to stream")
    x = offline.test_inputs[INPUT_NAME].values  # [1, frames, channels]
    chunk = streaming.inputs[INPUT_NAME].dims[1]
    if x.shape[1] % chunk:
        raise ValueError(f"the test input's {x.shape[1]} frames are not a whole number of {chunk}-frame chunks")
    offline_emu, streaming_emu = Emulator(offline, target), Emulator(streaming, target)
    zeros = {name: offline_emu.zeros(name) for name in offline.inputs if name != INPUT_NAME}
    expected = {t.name: t for t in vectors.tensors} if vectors is not None else {}
    worst, vector_worst, where = [], [], ""
    n_chunks = x.shape[1] // chunk
    start = time.perf_counter()
    try:
        streamed_all = streaming_emu.stream([x[:, k * chunk : (k + 1) * chunk] for k in range(n_chunks)], keep_all=True)
    except EmulatorError as e:
        return [Check("emulated .espdl streaming vs offline (exact bytes)", False, f"{e}")]
    elapsed = time.perf_counter() - start
    for k, streamed in enumerate(streamed_all):
        reference = offline_emu.run({INPUT_NAME: x[:, : (k + 1) * chunk], **zeros}, keep_all=True)
        chunk_worst = 0
        for name in streaming.outputs:
            got, want = streamed[name], reference[name]
            if got.shape != want.shape:
                axis = _time_axis(got, want)
                want = np.take(want, range(want.shape[axis] - got.shape[axis], want.shape[axis]), axis=axis)
            diff = int(np.abs(got.astype(np.int64) - want.astype(np.int64)).max())
            if diff and not where:
                where = f"chunk {k}, output '{name}': first diverging node {_first_diverging_node(streaming, streamed, reference)}"
            chunk_worst = max(chunk_worst, diff)
        worst.append(float(chunk_worst))
        if expected:
            vector_worst.append(float(max(int(np.abs(streamed[n].astype(np.int64) - t.chunks[k].astype(np.int64)).max())
                                          for n, t in expected.items() if t.role == 1)))
    top = max(worst)
    checks = [Check(
        "emulated .espdl streaming vs offline (exact bytes)", top == 0,
        (f"{n_chunks} chunks ({len(streaming.outputs)} outputs), every value equal; "
         f"{n_chunks / elapsed:.0f} chunks/s in the emulator") if top == 0 else f"max |diff| {top:g} LSB at {where}",
        worst,
    )]
    if expected:
        tolerance = vectors.tolerance
        checks.append(Check(
            "emulated streaming vs the per-chunk vectors", max(vector_worst) <= tolerance,
            f"{n_chunks} chunks, max |diff| {max(vector_worst):g} LSB (device tolerance {tolerance})", vector_worst,
        ))
    return checks


def emulate_test_values(offline_path, target: str) -> Check:
    """The offline file's own test input through the emulator, against its embedded test output:
    int8 exact, int16 within one LSB (ESP-DL's own test allows that)."""
    offline = read_espdl(offline_path)
    out = Emulator(offline, target).run({n: t.values for n, t in offline.test_inputs.items()})
    diffs = {n: int(np.abs(out[n].astype(np.int64) - t.values.astype(np.int64)).max()) for n, t in offline.test_outputs.items()}
    top = max(diffs.values())
    limit = 0 if offline.inputs[INPUT_NAME].dtype == 3 else 1
    detail = f"{len(diffs)} test outputs, max |diff| {top} LSB" + (f" (in {max(diffs, key=diffs.get)})" if top else "")
    return Check("emulated .espdl vs its embedded test values", top <= limit, f"{detail} (limit {limit})")


def check_esp_ppq_vs_emulator(esp_ppq: Outputs, emulated: Outputs, recurrent: bool, bits: int) -> Check:
    """esp-ppq's simulation against ESP-DL's semantics on the test clip, both in the file's layout.

    Judged for convolutional models (int8 exact, int16 one LSB). For LSTM/GRU it is a figure: ESP-DL reads its gates
    from sigmoid/tanh tables clamped at +-6.3 and +-3.5, which esp-ppq's simulation does not do, and saturated gates
    of a trained model sit beyond those bounds. The files carry ESP-DL's values, so the board checks against them.
    """
    diffs = {n: int(np.abs(esp_ppq[n].astype(np.int64) - emulated[n].astype(np.int64)).max()) for n in emulated}
    top = max(diffs.values())
    detail = f"max |diff| {top} LSB" + (f" (in {max(diffs, key=diffs.get)})" if top else "")
    name = "esp-ppq simulation vs ESP-DL emulator (test clip)"
    if recurrent:
        return Check(name, True, f"{detail}; reported, not judged: {RECURRENT_NOTE}; test values and vectors are ESP-DL's")
    limit = 0 if bits == 8 else 1
    return Check(name, top <= limit, f"{detail} (limit {limit})")
