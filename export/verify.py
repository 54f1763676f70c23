"""The proofs. Each check reads models, graphs or written files; none changes what is exported.

- float: the external-state ONNX twin run chunk by chunk in ONNX Runtime equals the offline ONNX;
- quantized: the streaming graph simulated on the host, chunk by chunk, gives the same integers
  as the offline quantized graph, every chunk;
- files: the offline .espdl carries test values equal to the host simulation, and the streaming
  .espdl has exactly the planned caches, each read only by its own consumer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort

from .onnx_graph import INPUT_NAME, OUTPUT_NAME, StreamingPlan

FLOAT_TOLERANCE = 1e-5
TIME_MIXING_OPS = {"Conv", "AveragePool", "MaxPool"}


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    per_chunk: list[float] = field(default_factory=list)  # worst value over the clips, per chunk

    def to_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, "per_chunk": self.per_chunk}


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run_offline_onnx(model: onnx.ModelProto, clips: np.ndarray) -> list[np.ndarray]:
    session = _session(model)
    return [session.run([OUTPUT_NAME], {INPUT_NAME: clip[None]})[0] for clip in clips]


def run_streaming_onnx(twin: onnx.ModelProto, plan: StreamingPlan, clip: np.ndarray, chunk: int) -> list[np.ndarray]:
    """Feed one clip [n_mels, frames] chunk by chunk, every cache output fed back as the next cache input."""
    session = _session(twin)
    caches = {f"cache{k}_in": np.zeros((1, s.channels, s.cache_frames), np.float32) for k, s in enumerate(plan.sites)}
    cache_outputs = [f"cache{k}_out" for k in range(len(plan.sites))]
    outputs = []
    for start in range(0, clip.shape[-1], chunk):
        results = session.run([OUTPUT_NAME, *cache_outputs], {INPUT_NAME: clip[None, :, start : start + chunk], **caches})
        outputs.append(results[0])
        caches = {f"cache{k}_in": value for k, value in enumerate(results[1:])}
    return outputs


def _chunk_slices(n_chunks: int, chunk: int, stride: int) -> list[slice]:
    per = chunk // stride
    return [slice(i * per, (i + 1) * per) for i in range(n_chunks)]


def compare_chunks(offline: list[np.ndarray], streamed: list[list[np.ndarray]], chunk: int, stride: int) -> tuple[list[float], list[int]]:
    """Per chunk: largest |difference| and number of differing values, worst over the clips."""
    n_chunks = len(streamed[0])
    worst, differing = [0.0] * n_chunks, [0] * n_chunks
    for full, parts in zip(offline, streamed):
        for i, (part, where) in enumerate(zip(parts, _chunk_slices(n_chunks, chunk, stride))):
            reference = full[..., where]
            if part.shape != reference.shape:
                worst[i], differing[i] = float("inf"), max(differing[i], reference.size)
                continue
            diff = np.abs(part.astype(np.float64) - reference.astype(np.float64))
            worst[i] = max(worst[i], float(diff.max()))
            differing[i] = max(differing[i], int((diff > 0).sum()))
    return worst, differing


def check_torch_vs_onnx(torch_outputs: list[np.ndarray], onnx_outputs: list[np.ndarray]) -> Check:
    worst = max(float(np.abs(a - b).max()) for a, b in zip(torch_outputs, onnx_outputs))
    return Check("PyTorch vs offline ONNX (float)", worst <= FLOAT_TOLERANCE, f"max |diff| {worst:.2e} (limit {FLOAT_TOLERANCE:g})")


def check_float_streaming(offline: list[np.ndarray], streamed: list[list[np.ndarray]], chunk: int, stride: int) -> Check:
    worst, _ = compare_chunks(offline, streamed, chunk, stride)
    top = max(worst)
    return Check(
        "ONNX Runtime streaming vs offline (float)",
        top <= FLOAT_TOLERANCE,
        f"{len(worst)} chunks x {len(offline)} clips, max |diff| {top:.2e} (limit {FLOAT_TOLERANCE:g})",
        worst,
    )


def check_quantized_streaming(offline: list[np.ndarray], streamed: list[list[np.ndarray]], chunk: int, stride: int, bits: int) -> Check:
    worst, differing = compare_chunks(offline, streamed, chunk, stride)
    total = sum(differing)
    return Check(
        "quantized streaming vs offline (host simulation)",
        total == 0,
        f"{len(worst)} chunks x {len(offline)} clips, {total} differing int{bits} values, max |diff| {max(worst):g} LSB",
        worst,
    )


def check_offline_test_values(test_outputs: dict, simulated: dict[str, np.ndarray]) -> Check:
    """The offline file's embedded test outputs ([1, frames, C] in ESP-DL layout) equal the host simulation."""
    problems = []
    for name, expected in simulated.items():
        stored = test_outputs.get(name)
        if stored is None:
            problems.append(f"no test output '{name}' in the file")
            continue
        if stored.values.shape != expected.shape or (stored.values != expected).any():
            problems.append(f"test output '{name}' differs from the host simulation")
    return Check("offline .espdl test values", not problems, "; ".join(problems) or "embedded test output equals the host simulation")


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


FLOAT_DTYPES = {1: "float32", 10: "float16", 11: "float64"}  # ONNX TensorProto codes


QUANTIZE_OPS = {"QuantizeLinear", "DequantizeLinear", "RequantizeLinear"}


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


def snr_db(reference: np.ndarray, approximation: np.ndarray) -> float:
    noise = float(np.sum((reference.astype(np.float64) - approximation) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)
