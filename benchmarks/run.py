"""Benchmarks: what streaming saves, what a stream costs on this PC, and an estimate for the chips.

    python benchmarks/run.py [--quick] [--json benchmarks/results.json]

Figures are medians over repeats, measured side by side in one run, as ratios where that is the point; nothing
here asserts a time (these machines are shared). The on-chip figures are estimates from MAC counts with an
assumed MACs-per-cycle, until a board measures them (the firmware prints its own latency).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import shape_inference

from espdl_stream.calibration import calibration_clips
from espdl_stream.export.intake import model_to_onnx
from espdl_stream.export.plan import find_cache_sites, streaming_twin
from espdl_stream.export.runtime import SessionManager, StreamingModel, StreamingSession
from espdl_stream.models import MODEL_NAMES, build_model

CHUNK, FRAMES, N_MELS, FPS = 8, 96, 40, 100.0
# Assumed effective int8 MACs per cycle (about half of the SIMD peak) and clocks: an estimate, not a measurement.
# The clocks are the firmware's (firmware/sdkconfig.defaults.<target>: 240 and 360 MHz).
CHIPS = {"esp32s3": {"mhz": 240, "macs_per_cycle": 8}, "esp32p4": {"mhz": 360, "macs_per_cycle": 16}}


def macs(model: onnx.ModelProto) -> int:
    """Multiply-accumulates of one run, from the graph's shapes: Conv, LSTM and GRU (the rest is negligible)."""
    inferred = shape_inference.infer_shapes(model)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out, w = shapes[node.output[0]], inits[node.input[1]]
            total += int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type in ("LSTM", "GRU"):
            gates = 4 if node.op_type == "LSTM" else 3
            steps, w, r = shapes[node.input[0]][0], inits[node.input[1]], inits[node.input[2]]
            total += steps * gates * w[1] // gates * (w[2] + r[2])
    return total


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def streaming_cost(name: str, repeats: int) -> dict:
    """Streaming vs re-running the offline model over the receptive window for every chunk."""
    model = build_model(name)
    offline = model_to_onnx(model, N_MELS, FRAMES)
    plan = find_cache_sites(offline)
    recurrent = plan.recurrent
    window = FRAMES if recurrent else 1 + sum(s.cache_frames * s.input_stride for s in plan.sites)
    rerun_frames = FRAMES if recurrent else -(-(window - 1 + CHUNK) // plan.total_stride) * plan.total_stride
    rerun = model_to_onnx(model, N_MELS, rerun_frames)
    twin = streaming_twin(plan, CHUNK)
    stream_macs, rerun_macs = macs(twin), macs(rerun)
    clip = calibration_clips()[0]
    sess_rerun = session(rerun)
    feeds = {i.name: np.zeros([d.dim_value for d in i.type.tensor_type.shape.dim], np.float32) for i in rerun.graph.input}
    feeds["x"] = np.ascontiguousarray(np.resize(clip, (N_MELS, rerun_frames))[None])
    stream = StreamingSession(StreamingModel(twin, plan, CHUNK, FPS))
    stream.warm_up()
    sess_rerun.run(None, feeds)
    chunk = np.ascontiguousarray(clip[:, :CHUNK])
    return {
        "receptive_window_frames": window if not recurrent else None,
        "rerun_frames": rerun_frames,
        "macs_per_chunk_streaming": stream_macs,
        "macs_per_chunk_rerun": rerun_macs,
        "mac_ratio": round(stream_macs / rerun_macs, 4),
        "ideal_ratio": round(CHUNK / rerun_frames, 4),
        "host_ms_per_chunk_streaming": round(median_ms(lambda: stream.process(chunk), repeats), 4),
        "host_ms_per_chunk_rerun": round(median_ms(lambda: sess_rerun.run(None, feeds), repeats), 4),
    }


def throughput(name: str, sessions: int, chunks_each: int) -> dict:
    model = StreamingModel.from_torch(build_model(name), N_MELS, FRAMES, CHUNK, FPS)
    manager = SessionManager(model, max_sessions=sessions)
    ids = [manager.create() for _ in range(sessions)]
    clips = calibration_clips()
    StreamingSession(model).warm_up()
    start = time.perf_counter()
    for k in range(chunks_each):
        for i, sid in enumerate(ids):
            clip = clips[i % len(clips)]
            manager.process(sid, np.ascontiguousarray(clip[:, (k * CHUNK) % FRAMES : (k * CHUNK) % FRAMES + CHUNK]))
    elapsed = time.perf_counter() - start
    total = sessions * chunks_each
    audio_s = total * CHUNK / FPS
    return {"sessions": sessions, "chunks_per_s": round(total / elapsed, 1), "real_time_factor": round(elapsed / audio_s, 5)}


def exports(quick: bool) -> list[dict]:
    rows = []
    for name in (("tcn",) if quick else MODEL_NAMES):
        for target in ("esp32s3", "esp32p4"):
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "espdl_stream.export.cli", "--model", name, "--target", target,
                                "--out", out, "--quiet"], check=True, capture_output=True)
                wall = time.perf_counter() - start
                report = json.loads((Path(out) / "report.json").read_text())
                params = report["model"]["parameters"]
                rows.append({
                    "model": name, "target": target, "wall_s": round(wall, 2), "pipeline_s": report["timings_s"]["total"],
                    "peak_memory_mb": report["peak_memory_mb"], "parameters": params, "parameter_bytes_int8": params,
                    "model_espdl_bytes": report["files"]["model.espdl"]["bytes"],
                    "streaming_espdl_bytes": report["files"]["streaming_model.espdl"]["bytes"],
                })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the TCN only, fewer repeats")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args(argv)
    repeats = 50 if args.quick else 300
    started = time.perf_counter()
    names = ("tcn",) if args.quick else MODEL_NAMES
    results = {
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}, "
                   f"{len(os.sched_getaffinity(0))} cores",
        "chunk_frames": CHUNK, "chips_assumed": CHIPS,
        "exports": exports(args.quick),
        "streaming": {name: streaming_cost(name, repeats) for name in names},
        "throughput": {name: [throughput(name, n, 12 if n > 8 else 48) for n in (1, 8, 64)] for name in names},
    }
    for cost in results["streaming"].values():
        cost["chip_estimate_ms_per_chunk"] = {
            chip: round(cost["macs_per_chunk_streaming"] / (c["mhz"] * 1e3 * c["macs_per_cycle"]), 4) for chip, c in CHIPS.items()}
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{results['date']}, {results['machine']}, chunk {CHUNK} frames ({1e3 * CHUNK / FPS:.0f} ms of audio)\n")
    print("export            wall s  pipeline s  peak MB  params   model.espdl  streaming.espdl")
    for r in results["exports"]:
        print(f"{r['model']:5s} {r['target']:8s} {r['wall_s']:7.2f}  {r['pipeline_s']:10.2f}  {r['peak_memory_mb']:7.0f}  "
              f"{r['parameters']:7d}  {r['model_espdl_bytes']:11d}  {r['streaming_espdl_bytes']:15d}")
    print("\nstreaming vs re-running offline per chunk")
    print("model  rerun frames  MACs stream  MACs rerun  ratio (ideal)    host ms stream / rerun   est. ms S3 / P4")
    for name, c in results["streaming"].items():
        est = c["chip_estimate_ms_per_chunk"]
        print(f"{name:5s}  {c['rerun_frames']:12d}  {c['macs_per_chunk_streaming']:11d}  {c['macs_per_chunk_rerun']:10d}  "
              f"{c['mac_ratio']:.3f} ({c['ideal_ratio']:.3f})   {c['host_ms_per_chunk_streaming']:8.3f} / {c['host_ms_per_chunk_rerun']:8.3f}"
              f"        {est['esp32s3']:.3f} / {est['esp32p4']:.3f}")
    print("\nruntime throughput (one thread, round robin over the sessions)")
    for name, rows in results["throughput"].items():
        print(f"{name:5s}  " + "   ".join(f"{r['sessions']:2d} sessions: {r['chunks_per_s']:8.1f} chunks/s (RTF {r['real_time_factor']:.4f})" for r in rows))
    print(f"\n{results['seconds']} s; written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
