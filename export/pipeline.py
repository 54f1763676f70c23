"""model -> ONNX -> quantize once -> export offline and streaming -> verify -> artifacts.

`export_streaming` is the Python API; the `export-espdl` command is a thin layer over it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import resource
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime
import torch

from .. import __version__
from ..calibration import FbankConfig, LabeledClips
from ..calibration.loaders import check_values
from ..models import streaming_rules
from . import accuracy, integrity, ppq, precision, verify
from .accuracy import ACCURACY_TARGETS
from .intake import INPUT_NAME, Intake, take_model
from .plan import StreamingPlan, layer_rows, plan_streaming, streaming_twin
from .artifacts import check_output_dir, staged_output
from .detector import DetectorConfig
from .emulator import Emulator
from .espdl_file import read_espdl
from .errors import ExportError, UnstreamableModel
from .layer_error import LayerErrors, per_layer_errors
from .report import REPORT_PAGE, ClipTrace, write_page
from .vectors import ROLE_INPUT, ROLE_OUTPUT, VectorFile, VectorTensor, write_vectors

TARGETS = ("esp32s3", "esp32p4")
BITS = (8, 16, "mixed")  # mixed: 8 bits, with the layers that need it at 16 (precision.py)
OFFLINE_FILE, STREAMING_FILE = "model.espdl", "streaming_model.espdl"
VECTORS_FILE, REPORT_FILE, PPQ_LOG_FILE = "streaming_vectors.bin", "report.json", "esp-ppq.log"
FAILED_REPORT_FILE, FAILED_REPORT_PAGE = "report.failed.json", "report.failed.html"
# How far the chip may be from the host's integers: ESP-DL's own model->test() wants int8 exact and
# int16 within one step (its int16 kernels may round one LSB apart from the simulation); a graph with
# 16-bit layers gets the 16-bit tolerance.
DEVICE_TOLERANCE_LSB = {8: 0, 16: 1}


@dataclass(frozen=True)
class ExportConfig:
    target: str = "esp32s3"
    bits: int | str = 8  # 8, 16 or "mixed"
    chunk: int = 8  # frames per streaming step
    frames: int = 96  # offline length, a whole number of chunks
    calib_steps: int = 32
    verify_clips: int = 4
    seed: int = 0
    # esp-ppq's calibration; the defaults are the ones measured best (README, "What quantization costs")
    calibration: str = "default"
    equalization: bool = False
    bias_correction: bool = False
    int16_layers: tuple[str, ...] = ()  # with bits "mixed": these layers at 16 bits, instead of searching

    @property
    def base_bits(self) -> int:
        return 8 if self.bits == "mixed" else int(self.bits)

    @property
    def width(self) -> str:
        return "mixed" if self.bits == "mixed" else f"int{self.bits}"

    def quant_options(self, int16_ops: tuple[str, ...] = ()) -> ppq.QuantOptions:
        return ppq.QuantOptions(self.calibration, self.equalization, self.bias_correction, int16_ops)

    def validate(self) -> None:
        if self.target not in TARGETS:
            raise ExportError(f"target {self.target!r} is not supported: choose one of {', '.join(TARGETS)}")
        if self.bits not in BITS:
            raise ExportError(f"{self.bits} bits is not supported: choose 8, 16 or mixed")
        if self.calib_steps < 1 or self.verify_clips < 1:
            raise ExportError("calibration steps and verification clips must be at least 1")
        if self.chunk < 1 or self.frames < 1:
            raise ExportError(f"chunk ({self.chunk}) and offline length ({self.frames}) must be at least 1 frame")
        if self.calibration not in ("default", *ppq.CALIBRATION_ALGORITHMS):
            raise ExportError(f"calibration {self.calibration!r} is not supported: choose one of "
                              f"{', '.join(ppq.CALIBRATION_ALGORITHMS)}")
        if self.int16_layers and self.bits != "mixed":
            raise ExportError("16-bit layers are named only with --bits mixed")


@dataclass
class ExportResult:
    report: dict
    checks: list[verify.Check]
    out_dir: Path

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


class Progress:
    """Numbered stage lines with their wall time, on stderr so stdout keeps the verdict table."""

    def __init__(self, stages: int, echo: Callable[[str], None] | None):
        self.stages, self.done, self.echo = stages, 0, echo
        self.timings: dict[str, float] = {}

    def stage(self, name: str):
        progress = self

        class _Stage:
            def __enter__(self):
                progress.done += 1
                self.start = time.perf_counter()
                if progress.echo:
                    progress.echo(f"[{progress.done}/{progress.stages}] {name} ...")

            def __exit__(self, kind, *_):
                seconds = time.perf_counter() - self.start
                progress.timings[name] = round(seconds, 3)
                if progress.echo and kind is None:
                    progress.echo(f"      done in {seconds:.1f} s")

        return _Stage()


def _check_model_rules(model: torch.nn.Module, plan: StreamingPlan) -> None:
    """The model's own rules (from its causal layers) must be what the exported graph needs."""
    declared = sorted((r.window, r.stride) for r in streaming_rules(model) if r.window > 1)
    found = sorted((s.window, s.stride) for s in plan.sites)
    if declared and declared != found:
        raise UnstreamableModel(
            f"the model's causal layers need caches {declared} (window, stride) but its ONNX graph needs {found}"
        )


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def _split_chunks(clips: np.ndarray, chunk: int) -> list[torch.Tensor]:
    """[clips, n_mels, frames] -> one [clips, n_mels, chunk] tensor per chunk."""
    return [_tensor(clips[:, :, i : i + chunk]) for i in range(0, clips.shape[-1], chunk)]


def _file_entry(path: Path, crc32: str | None) -> dict:
    data = path.read_bytes()
    entry = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return {**entry, "crc32": crc32} if crc32 else entry  # an .espdl file's stamp, checked by the firmware at boot


def export_streaming(
    model: torch.nn.Module | Intake | str | Path,
    calibration: np.ndarray,
    verification: np.ndarray,
    config: ExportConfig,
    out_dir: Path,
    model_name: str = "custom",
    frontend: FbankConfig | None = None,
    notes: dict | None = None,
    echo: Callable[[str], None] | None = None,
    evaluation: LabeledClips | None = None,
    input_layout: str | None = None,
    weights: str | Path | None = None,
    detector: DetectorConfig | None = None,
) -> ExportResult:
    """Export `model` for ESP-DL twice from one calibration and prove streaming equals offline.

    model: a torch module, `path/to/file.py:factory` or `package.module:callable` (with `weights`, a
    .safetensors file or a torch state dict), or an .onnx path. input_layout: how the model reads its
    features, BFT (default, [B, n_mels, T]), BTF, B1FT or B1TF (see intake.INPUT_LAYOUTS).

    calibration, verification: float32 [clips, n_mels, config.frames] features. The offline test
    values and the streaming vectors come from verification[0]. With `evaluation` (labelled clips of
    a classification task) the report gains what quantization and streaming cost in accuracy. A keyword
    `detector` goes into the streaming file's metadata, for the firmware and `export-espdl stream`.
    Artifacts land in `out_dir` only if every check passes; otherwise `out_dir` keeps its previous
    files and gets report.failed.json.
    """
    config.validate()
    out_dir = Path(out_dir)
    check_output_dir(out_dir)  # before any work: a file in the way, a folder not writable, another export there
    frontend = frontend or FbankConfig()
    n_mels = calibration.shape[1]
    if any(a.ndim != 3 or a.shape[2] != config.frames for a in (calibration, verification)):
        raise ExportError(f"calibration and verification must be [clips, n_mels, {config.frames} frames] arrays")
    check_values(calibration, "calibration clips")
    check_values(verification, "verification clips")
    if config.bits == "mixed" and evaluation is None and not config.int16_layers:
        raise ExportError("--bits mixed chooses its 16-bit layers by measuring accuracy: it needs labelled clips (the "
                          "shipped trained models have them); or name the layers with --int16-layers")
    progress = Progress(9 + (evaluation is not None) + (config.bits == "mixed"), echo)
    checks: list[verify.Check] = []
    started = time.perf_counter()
    x_name = INPUT_NAME

    with progress.stage("reading the model as ONNX and planning the caches"):
        source = take_model(model, n_mels, config.frames, input_layout, weights)
        plan = plan_streaming(source.onnx, source.layers).require_streamable()
        plan.check_chunk(config.chunk, config.frames)
        if source.module is not None:
            _check_model_rules(source.module, plan)
        offline_onnx = plan.graph
        twin = streaming_twin(plan, config.chunk)
        zero_states = source.zero_states()
        frame_outputs = [o.name for o in plan.frame_outputs]

    n_chunks = config.frames // config.chunk
    with progress.stage(f"float check in ONNX Runtime ({len(verification)} clips x {n_chunks} chunks)"):
        run_float = verify.onnx_offline_runner(offline_onnx, plan)
        float_full = [run_float(c) for c in verification]
        if source.module is not None:
            original = [source.run_torch(_tensor(c[None])) for c in verification]
        else:  # the user's own ONNX: the planned graph (rewrites included) must compute what it computes
            run_original = verify.onnx_offline_runner(source.onnx, plan)
            original = [run_original(c) for c in verification]
        checks.append(verify.check_torch_vs_onnx([o[n] for o in original for n in frame_outputs],
                                                 [f[n] for f in float_full for n in frame_outputs],
                                                 "PyTorch" if source.module is not None else "your ONNX"))
        references = [verify.chunk_references(run_float, c, config.chunk, plan) for c in verification]
        streamed = [verify.run_streaming_onnx(twin, plan, c, config.chunk) for c in verification]
        checks.append(verify.check_float_streaming(references, streamed))

    log = io.StringIO()
    clips = calibration[: config.calib_steps]
    with progress.stage(f"quantizing for {config.target} {config.width} on {len(clips)} calibration clips"):
        calib_inputs = _calibration_inputs(clips, plan, run_float, zero_states)

        def quantize(int16_ops: tuple[str, ...] = ()) -> ppq.Quantized:
            return ppq.quantize(offline_onnx, calib_inputs, config.target, config.base_bits, log,
                                config.quant_options(int16_ops))

        quantized = quantize()
        float_logits = accuracy.float_logits(evaluation, config.frames, run_float) if evaluation else None

    def layer_errors(q: ppq.Quantized, path: Path, layouts: dict) -> LayerErrors:
        """The written offline file's per-layer errors on the verification clips."""
        emulator = Emulator(read_espdl(path), config.target)
        float_inputs = [{x_name: c[None], **{n: v.numpy() for n, v in zero_states.items()}} for c in verification]
        file_inputs = [{x_name: emulator.quantize(x_name, ppq.to_file_layout(c[None], layouts[x_name])),
                        **{n: emulator.zeros(n) for n in zero_states}} for c in verification]
        return per_layer_errors(emulator, offline_onnx, layouts, float_inputs, file_inputs)

    mixed = None
    if config.bits == "mixed":
        with progress.stage("mixed precision: layers raised to 16 bits until the accuracy target is met"):
            quantized, mixed = _mixed_precision(quantized, quantize, layer_errors, config, evaluation, float_logits, log)

    test_clip = verification[0]
    test_inputs = {x_name: _tensor(test_clip[None]), **zero_states}
    metadata = _metadata(model_name, config, plan, frontend, detector)
    # one id in both files, the vectors and the report: a checker refuses a set from different exports
    export_id = integrity.export_id(offline_onnx.graph.SerializeToString(), np.ascontiguousarray(clips).tobytes(),
                                    np.ascontiguousarray(test_clip).tobytes(),
                                    json.dumps([asdict(config), metadata, ppq.ESP_PPQ_VERSION], sort_keys=True).encode())
    metadata[integrity.EXPORT_ID_KEY] = export_id

    stamps: dict[str, str] = {}  # file name -> the CRC-32 stamped into it
    with staged_output(out_dir) as stage:
        staging = stage.path
        with progress.stage("writing model.espdl and streaming_model.espdl"):
            layouts = ppq.export_espdl(quantized, staging / OFFLINE_FILE, log, test_inputs=test_inputs,
                                       metadata={**metadata, "mode": "offline"})
            stamps[OFFLINE_FILE] = integrity.stamp(staging / OFFLINE_FILE)
            # esp-ppq lays x out [1, frames, n_mels] when a conv reads it, else leaves [1, n_mels, frames]
            x_frames = layouts[x_name].index(2)
            metadata["frame_axis"] = str(x_frames)  # the offline file gets it when rewritten with ESP-DL's test values
            ppq.export_espdl(quantized, staging / STREAMING_FILE, log,
                             streaming=ppq.StreamingExport(plan.sites, [1, n_mels, config.chunk]),
                             metadata={**metadata, "mode": "streaming"})
            stamps[STREAMING_FILE] = integrity.stamp(staging / STREAMING_FILE)

        with progress.stage("quantized check: host simulation, every chunk, and the written files"):
            def run_quantized(clip):
                return ppq.simulate_offline(quantized, {x_name: _tensor(clip[None]), **zero_states})

            q_references = [verify.chunk_references(run_quantized, c, config.chunk, plan) for c in verification]
            q_streamed = [ppq.simulate_streaming(quantized, plan.sites, _split_chunks(c[None], config.chunk), plan.state_pairs,
                                                 zero_states) for c in verification]
            checks.append(verify.check_quantized_streaming(q_references, q_streamed, config.width))
            files = {name: read_espdl(staging / name) for name in (OFFLINE_FILE, STREAMING_FILE)}
            checks.append(verify.check_streaming_structure(files[STREAMING_FILE], plan, config.chunk, n_mels, layouts[x_name]))
            checks.append(verify.check_integer_parameters(files))
            checks.append(verify.check_raw_integer_exponents(files))
            if plan.recurrent:
                checks.append(verify.check_state_contract(files, plan))

        with progress.stage("test values and vectors from the written bytes, as ESP-DL computes them"):
            # What the chip will compute is ESP-DL's business, not esp-ppq's: the emulator runs the written files,
            # its offline outputs become the embedded test values and its streaming outputs the per-chunk vectors.
            test_ints = {name: t.values for name, t in files[OFFLINE_FILE].test_inputs.items()}
            emulated = Emulator(files[OFFLINE_FILE], config.target).run(test_ints)
            esp_ppq_test = {n: ppq.to_file_layout(v, layouts[n]) for n, v in run_quantized(test_clip).items()}
            esp_ppq_gap = verify.esp_ppq_gap(esp_ppq_test, emulated)
            widest = max(quantized.widths.values())
            if not plan.recurrent:  # LSTM/GRU: ESP-DL's gate arithmetic is not esp-ppq's; the gap is reported
                checks.append(verify.check_esp_ppq_vs_emulator(esp_ppq_gap, widest))
            file_exponents = {name: files[OFFLINE_FILE].outputs[name].exponent for name in emulated}
            # the same offline file again, with ESP-DL's outputs (back in the graph's layout) as its test values;
            # the final check below reads them back
            ppq.export_espdl(quantized, staging / OFFLINE_FILE, log, test_inputs=test_inputs,
                             test_outputs={n: _tensor(ppq.from_file_layout(v, layouts[n]).astype(np.float32)
                                                      * np.float32(2.0 ** file_exponents[n]))
                                           for n, v in emulated.items()},
                             metadata={**metadata, "mode": "offline"})
            stamps[OFFLINE_FILE] = integrity.stamp(staging / OFFLINE_FILE)
            x_test = test_ints[x_name]
            chunks = [np.take(x_test, range(k, k + config.chunk), axis=x_frames)
                      for k in range(0, x_test.shape[x_frames], config.chunk)]
            streamed = Emulator(files[STREAMING_FILE], config.target).stream([{x_name: c} for c in chunks])
            exponents = {name: t.exponent for name, t in {**files[OFFLINE_FILE].inputs, **files[OFFLINE_FILE].outputs}.items()}
            vectors = [VectorTensor(x_name, ROLE_INPUT, exponents[x_name], chunks)]
            vectors += [VectorTensor(name, ROLE_OUTPUT, exponents[name], [r[name] for r in streamed]) for name in plan.outputs]
            tolerance = DEVICE_TOLERANCE_LSB[widest]
            (staging / VECTORS_FILE).write_bytes(write_vectors(VectorFile(vectors, tolerance, export_id)))
            (staging / PPQ_LOG_FILE).write_text(log.getvalue())

        with progress.stage("final check: the written bytes in the ESP-DL emulator"):
            checks.append(verify.check_test_values(read_espdl(staging / OFFLINE_FILE), config.target,
                                                   "test values written into model.espdl (read back, re-emulated)"))
            checks.append(verify.emulate_streaming(staging / OFFLINE_FILE, staging / STREAMING_FILE, config.target))

        with progress.stage(f"error per layer on {len(verification)} verification clips, in the emulator"):
            errors = layer_errors(quantized, staging / OFFLINE_FILE, layouts)

        measured = None
        if evaluation is not None:
            with progress.stage(f"accuracy on {len(evaluation.labels)} labelled clips: float, and the written files "
                                "offline and chunk by chunk"):
                decisions = accuracy.emulated_decisions(evaluation, config.frames, float_logits,
                                                        Emulator(files[OFFLINE_FILE], config.target),
                                                        Emulator(files[STREAMING_FILE], config.target), config.chunk,
                                                        layouts)
                measured = accuracy.accuracy_report(evaluation, decisions, ACCURACY_TARGETS[config.base_bits], config.width)
                checks.extend(accuracy.accuracy_checks(measured))

        with progress.stage("writing the report"):
            report = {
                "tool": {"espdl_stream": __version__, "esp_ppq": ppq.ESP_PPQ_VERSION, "torch": torch.__version__,
                         "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
                "export_id": export_id,  # also in both .espdl files' metadata and in the vectors
                "model": {"name": model_name, "source": source.source, "parameters": _parameters(source),
                          "intake": source.notes, **(notes or {})},
                "config": asdict(config),
                "width": config.width,
                "quantization": quantized.options.describe(config.base_bits),
                "n_mels": n_mels,
                "total_stride": plan.total_stride,
                "caches": [asdict(s) for s in plan.sites],
                "outputs": [asdict(o) for o in plan.frame_outputs],
                "layers": [asdict(r) for r in layer_rows(plan)],
                "state_pairs": [list(pair) for pair in plan.state_pairs],
                "pooling_exported_as_conv": list(plan.pooling_rewrites),
                "exponents": exponents,
                "device_tolerance_lsb": tolerance,
                "quantization_snr_db": {name: errors.graphwise_snr_db[name] for name in plan.outputs},
                "layer_errors": [row.to_dict() for row in errors.rows],
                "mixed_precision": mixed,
                "accuracy": measured,
                "esp_ppq_vs_esp_dl_lsb": esp_ppq_gap,  # test clip, per output: what esp-ppq's test values would miss
                "esp_ppq_error_report": "not used (wrong for LSTM/GRU, see export/layer_error.py): SNRs here are the "
                                        "written file in the ESP-DL emulator against the float ONNX model",
                "checks": [c.to_dict() for c in checks],
                "passed": all(c.passed for c in checks),
                "timings_s": {**progress.timings, "total": round(time.perf_counter() - started, 3)},
                "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
            trace = _test_clip_trace(plan, layouts[plan.frame_outputs[0].name], file_exponents, float_full[0],
                                     emulated, streamed, config.chunk, frontend,
                                     evaluation.classes if evaluation is not None else ())
            write_page(report, trace, staging / REPORT_PAGE)
            report["files"] = {p.name: _file_entry(p, stamps.get(p.name)) for p in sorted(staging.iterdir())}
            report_text = json.dumps(report, indent=2) + "\n"
            stage.install = report["passed"]
            (staging / REPORT_FILE).write_text(report_text)
            if not report["passed"]:
                out_dir.mkdir(parents=True, exist_ok=True)
                (out_dir / FAILED_REPORT_FILE).write_text(report_text)
                os.replace(staging / REPORT_PAGE, out_dir / FAILED_REPORT_PAGE)
    if report["passed"]:
        (out_dir / FAILED_REPORT_FILE).unlink(missing_ok=True)
        (out_dir / FAILED_REPORT_PAGE).unlink(missing_ok=True)
    return ExportResult(report, checks, out_dir)


def _calibration_inputs(clips: np.ndarray, plan: StreamingPlan, run_float, zero_states: dict) -> list[dict]:
    """esp-ppq's calibration feed; a recurrent model's states are the float model's at the end of the previous clip,
    so the state inputs calibrate on values they will see, not on zeros."""
    inputs = []
    for i, clip in enumerate(clips):
        states = run_float(clips[i - 1]) if i and plan.recurrent else {}
        inputs.append({INPUT_NAME: _tensor(clip[None]), **{
            state_in: _tensor(states[state_out]) if states else zero_states[state_in]
            for state_out, state_in in plan.state_pairs}})
    return inputs


def _metadata(model_name: str, config: ExportConfig, plan: StreamingPlan, frontend: FbankConfig,
              detector: DetectorConfig | None) -> dict[str, str]:
    """What both .espdl files carry for the firmware and the checkers (the export id is added once it is known)."""
    return {
        "espdl_stream.version": __version__,
        "model": model_name,
        "target": config.target,
        "chunk_frames": str(config.chunk),
        "offline_frames": str(config.frames),
        "frame_axis": "",  # of x in the file, known once esp-ppq has laid it out
        "total_stride": str(plan.total_stride),
        "frames_per_second": f"{frontend.frames_per_second:g}",
        "caches": json.dumps([{"consumer": s.consumer, "window": s.window} for s in plan.sites]),
        "state_pairs": json.dumps([list(pair) for pair in plan.state_pairs]),  # output -> input, copied after each chunk
        "frontend": json.dumps(frontend.to_dict(), sort_keys=True),
        **({"detector": detector.to_json()} if detector else {}),
        integrity.STAMP_KEY: integrity.PLACEHOLDER,  # integrity.stamp() writes the file's CRC-32 here
    }


def _test_clip_trace(plan: StreamingPlan, layout: tuple, file_exponents: dict, float_outputs: dict, emulated: dict,
                     streamed: list[dict], chunk: int, frontend: FbankConfig, labels: tuple) -> ClipTrace:
    """The report page's plot: the test clip's first per-frame output over time, float, offline and streaming."""
    shown = plan.frame_outputs[0]
    scale = 2.0 ** file_exponents[shown.name]

    def over_time(graph_value: np.ndarray) -> np.ndarray:
        return np.moveaxis(graph_value, shown.time_axis, -1).reshape(-1, graph_value.shape[shown.time_axis])

    return ClipTrace(
        float=over_time(float_outputs[shown.name]),
        offline=over_time(ppq.from_file_layout(emulated[shown.name], layout) * scale),
        streaming=over_time(ppq.from_file_layout(np.concatenate(
            [r[shown.name] for r in streamed], axis=layout.index(shown.time_axis)), layout) * scale),
        frames_per_chunk=chunk // shown.stride,
        seconds_per_frame=shown.stride / frontend.frames_per_second,
        labels=labels,
    )


def _parameters(source: Intake) -> int:
    if source.module is not None:
        return sum(p.numel() for p in source.module.parameters())
    return sum(int(np.prod(t.dims)) for t in source.onnx.graph.initializer)


def _mixed_precision(q8: ppq.Quantized, quantize, layer_errors, config: ExportConfig, evaluation: LabeledClips,
                     float_logits: np.ndarray, log) -> tuple[ppq.Quantized, dict]:
    """The 8-bit graph with some layers at 16 bits: the named ones, or those the search keeps (precision.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / OFFLINE_FILE
        layouts = ppq.export_espdl(q8, path, log)
        rows = layer_errors(q8, path, layouts).rows
    units = {row.layer: ppq.int16_unit(q8, row.layer, row.output) for row in rows}
    if config.int16_layers:
        unknown = [name for name in config.int16_layers if name not in units]
        if unknown:
            raise ExportError(f"no layer {unknown[0]!r} to raise to 16 bits: the layers are {', '.join(units)}")
        chosen, trials, method = tuple(config.int16_layers), [], "the layers given (--int16-layers)"
    else:
        probe = precision.CostProbe(quantize, units, config.target, evaluation.features[..., : config.frames],
                                    evaluation.labels, float_logits, log)
        order = [row.layer for row in sorted(rows, key=lambda row: row.layerwise_snr_db)]
        chosen, trials = precision.search(order, probe, ACCURACY_TARGETS[8])
        method = precision.METHOD
    ops = precision.ops_of(units, chosen)
    return quantize(ops), {"int16_layers": list(chosen), "esp_ppq_ops_at_16_bits": list(ops), "method": method,
                           "trials": [t.to_dict() for t in trials]}
