"""`export-espdl`: export a streaming model to .espdl files with proof that streaming equals offline.

`export-espdl check` plans a model without quantizing: the pipeline, the checks and esp-ppq (seconds to import)
are imported only by the commands that use them.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from safetensors import SafetensorError

from ..calibration import DataError, FbankConfig, calibration_clips, keyword_eval_set, load_features, require_clips
from ..calibration.loaders import feature_stream
from ..models import MODEL_NAMES, build_model, detector_settings, training_summary, weights_path
from . import integrity
from .artifacts import check_output_dir
from .detector import DetectorConfig
from .errors import ExportError
from .espdl_file import EspdlFile
from .intake import INPUT_LAYOUTS, INPUT_NAME, OUTPUT_NAME, load_model, take_model
from .plan import check_table, plan_streaming
from .vectors import VectorFormatError, read_vectors

EXIT_FAILED_CHECK, EXIT_USAGE = 1, 2
# Bounds of the numeric arguments: beyond them a run would only exhaust memory (a chunk is one streaming step,
# 10 s at most; an offline clip 100 s).
MAX_CHUNK_FRAMES, MAX_OFFLINE_FRAMES, MAX_CALIBRATION_CLIPS = 1000, 10000, 4096


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# Argument validators: each refuses a bad value in one line at parse time, before any work starts.

def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """argparse type: a whole number in [minimum, maximum]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def existing_file(text: str) -> Path:
    """argparse type: a file that exists and can be read."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder: give a file")
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{path}: no such file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{path} is not a regular file: give a file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{path}: not readable")
    return path


def existing_path(text: str) -> Path:
    """argparse type: a file or folder that exists."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{path}: no such file or directory")
    return path


def model_spec(text: str) -> str:
    """argparse type: a shipped model's name, path/to/file.py:factory, package.module:callable or a .onnx file."""
    if text in MODEL_NAMES or text.endswith(".onnx") or (":" in text and text.rpartition(":")[2]):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is none of the shipped models ({', '.join(MODEL_NAMES)}), a "
                                     "path/to/file.py:factory, a package.module:callable or a .onnx file")


def export_folder(text: str) -> Path:
    """argparse type: a folder export-espdl wrote (holding streaming_model.espdl)."""
    from .pipeline import STREAMING_FILE

    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: no such folder (give the --out folder of an export)")
    if not (path / STREAMING_FILE).is_file():
        raise argparse.ArgumentTypeError(f"{path} holds no {STREAMING_FILE}: give the --out folder of an export")
    return path


def _model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default="trained", metavar="trained|random|PATH",
                   help="shipped models: their trained weights (models/weights/) or a random initialisation from --seed; "
                        "your model: a .safetensors file or a torch.save'd state dict (read with weights_only=True)")
    p.add_argument("--input-layout", choices=INPUT_LAYOUTS, metavar="|".join(INPUT_LAYOUTS),
                   help="how your model reads the features: BFT [batch, n_mels, frames] (default), BTF "
                        "[batch, frames, n_mels], B1FT / B1TF for a Conv2d model (default for an ONNX file: from its input)")


def parser() -> argparse.ArgumentParser:
    from .pipeline import BITS, TARGETS, ExportConfig
    from .ppq import CALIBRATION_ALGORITHMS

    defaults = ExportConfig()
    p = _Parser(
        prog="export-espdl",
        description="Quantize a streaming audio model with ESP-PPQ for ESP-DL, offline and streaming from one "
        "calibration, prove the streaming model equals the offline one (float and integer, every chunk), and write "
        ".espdl files, per-chunk test vectors and a report.",
        epilog="`export-espdl check --help`: what of a model streams, layer by layer, before any quantizing. "
        "`export-espdl verify --help`: check any pair of offline and streaming .espdl files in the ESP-DL emulator. "
        "`export-espdl stream --help`: play a recording through a streaming model on this PC.",
    )
    model = p.add_mutually_exclusive_group()
    model.add_argument("--model", type=model_spec, default="tcn", metavar="NAME|FILE.py:FACTORY|MODULE:CALLABLE",
                       help=f"a shipped model ({', '.join(MODEL_NAMES)}; default: tcn), or your own: the module a "
                            f"factory in a .py file or an importable module returns")
    model.add_argument("--onnx", type=existing_file, metavar="FILE", help="your model as an ONNX file exported elsewhere")
    p.add_argument("--target", choices=TARGETS, default=defaults.target, help="chip (default: %(default)s)")
    p.add_argument("--bits", type=_bits, choices=BITS, default=defaults.bits,
                   help="integer width; mixed: 8 bits, with layers raised to 16 one by one (each kept if it measurably "
                        "helps) until the accuracy target is met (default: %(default)s)")
    p.add_argument("--chunk", type=whole_number(1, MAX_CHUNK_FRAMES), default=defaults.chunk, metavar="FRAMES",
                   help="frames per streaming step; a multiple of the model's time stride (default: %(default)s)")
    p.add_argument("--frames", type=whole_number(1, MAX_OFFLINE_FRAMES), default=defaults.frames, metavar="FRAMES",
                   help="offline input length, a whole number of chunks (default: %(default)s)")
    p.add_argument("--calib", type=existing_path, metavar="PATH",
                   help="calibration data: a folder of .wav or .npy [n_mels, frames] files, or one .npy/.npz "
                        "(default: the shipped set of recorded and synthetic speech, calibration/data/)")
    _model_arguments(p)
    p.add_argument("--calib-steps", type=whole_number(1, MAX_CALIBRATION_CLIPS), default=defaults.calib_steps, metavar="N",
                   help="calibration clips (default: %(default)s)")
    q = p.add_argument_group("quantization (esp-ppq's settings; the defaults are the ones measured best, README)")
    q.add_argument("--calibration", choices=("default", *CALIBRATION_ALGORITHMS), default=defaults.calibration,
                   help="activation calibration: default is esp-ppq's per width (kl at 8 bits, minmax at 16)")
    q.add_argument("--equalization", action=argparse.BooleanOptionalAction, default=defaults.equalization,
                   help="layerwise weight equalization (default: %(default)s)")
    q.add_argument("--bias-correction", action=argparse.BooleanOptionalAction, default=defaults.bias_correction,
                   help="correct each convolution's bias for its quantization error (default: %(default)s)")
    q.add_argument("--int16-layers", type=lambda v: tuple(n for n in v.split(",") if n), default=(), metavar="NAMES",
                   help="with --bits mixed: these layers (comma-separated, as report.html names them) at 16 bits instead "
                        "of searching")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: firmware/main/models/<model>/<target>, what `idf.py -DESPDL_MODEL=<model>` builds; your own model's <model> is module.factory, or the ONNX file's name)")
    p.add_argument("--seed", type=whole_number(0, 2**32 - 1), default=defaults.seed, help="seed of weights and synthetic data (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress lines, only the verdict table")
    return p


def _bits(value: str) -> int | str:
    return value if value == "mixed" else int(value) if value.isdigit() else value


def _features(args, config, frontend: FbankConfig) -> tuple[np.ndarray, np.ndarray, str]:
    if args.calib is None:
        clips, source = calibration_clips()[..., : config.frames], "shipped recorded and synthetic speech (calibration/data/)"
        if clips.shape[-1] < config.frames:
            raise DataError(f"the shipped calibration clips have {clips.shape[-1]} frames: give --calib for --frames {config.frames}")
    else:
        clips, source = load_features(args.calib, config.frames, frontend), str(args.calib)
    clips = require_clips(clips, config.calib_steps, source)
    held_out = clips[config.calib_steps : config.calib_steps + config.verify_clips]
    verification = held_out if len(held_out) else clips[: config.verify_clips]
    return clips[: config.calib_steps], verification, source


def check_lines(checks) -> list[str]:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check'.ljust(width)}  result  detail"]
    return lines + [f"{c.name.ljust(width)}  {c.result}    {c.detail}" for c in checks]


def raised_layers(mixed: dict) -> str:
    """The layers `--bits mixed` raised, or why none: int8 met the target, or no layer tried lifted the output."""
    if mixed["int16_layers"]:
        return ", ".join(mixed["int16_layers"])
    tried = len(mixed["trials"]) - 1  # the first trial is the 8-bit graph itself
    return f"none ({tried} layers tried, none raised the output SNR)" if tried else "none (int8 meets the target)"


def verdict_table(result) -> str:
    r = result.report
    lines = [
        f"{r['model']['name']} -> {r['config']['target']} {r['width']} ({r['quantization']}), chunk {r['config']['chunk']} "
        f"frames, offline {r['config']['frames']} frames, quantization SNR {r['quantization_snr_db']['y']:.1f} dB",
        *check_lines(result.checks),
    ]
    if r.get("accuracy"):
        a = r["accuracy"]
        top, (low, high) = a["top1_percent"], a["quantization_cost_interval_95_points"]
        lines.insert(1, f"accuracy on {a['clips']} held-out clips: float {top['float']}%, {r['width']} offline "
                        f"{top['quantized_offline']}%, streaming {top['quantized_streaming']}% (cost "
                        f"{a['quantization_cost_points']:+.2f} points, 95% CI {low:+.2f} to {high:+.2f}, target "
                        f"{a['quantization_target_points']})")
    if r.get("mixed_precision"):
        lines.insert(1, f"16-bit layers: {raised_layers(r['mixed_precision'])}")
    warnings = sum(c.result == "WARN" for c in result.checks)
    if result.passed:
        verdict = "ALL PASS" + (f" ({warnings} WARN: exit code 0, see above)" if warnings else "")
        lines.append(f"{verdict}: artifacts in {result.out_dir}, {r['timings_s']['total']:.1f} s")
        lines.append(f"report: {result.out_dir / 'report.html'}")
    else:
        lines.append(f"FAILED: artifacts in {result.out_dir} unchanged, {r['timings_s']['total']:.1f} s")
        lines.append(f"report: {result.out_dir / 'report.failed.html'} (and report.failed.json)")
    return "\n".join(lines)


def verify_parser() -> argparse.ArgumentParser:
    from .pipeline import TARGETS

    p = _Parser(
        prog="export-espdl verify",
        description="Run .espdl files in the ESP-DL emulator, names, shapes and types read from the files. "
        "--offline: the file's embedded test inputs against its embedded test outputs, within ESP-DL's "
        "Model::test tolerance. --offline with --streaming: the streaming file chunk by chunk on the offline file's "
        "test input (state outputs copied back) against the offline file on the same prefix. --vectors with "
        "--streaming: the vectors' inputs through the streaming file against their outputs. Exit 0 only if every "
        "check passes, 1 if one fails, 2 if a file cannot be checked (the message names the op or layout).",
    )
    p.add_argument("--offline", type=existing_file, help="offline .espdl with embedded test values")
    p.add_argument("--streaming", type=existing_file, help="streaming .espdl (StreamingCache nodes, state inputs/outputs)")
    p.add_argument("--target", choices=TARGETS, help="chip whose arithmetic to emulate (default: the files' metadata)")
    p.add_argument("--vectors", type=existing_file, help="per-chunk vectors (streaming_vectors.bin) for the streaming file")
    return p


def _target(args, files) -> str:
    from .pipeline import TARGETS

    named = {f.metadata.get("target") for f in files} - {None}
    if args.target:
        return args.target
    if len(named) == 1 and named <= set(TARGETS):
        return named.pop()
    raise ExportError(f"the files name target {sorted(named) or 'none'}: give --target esp32s3 or esp32p4")


def _one_export(given: dict[str, Path], files: dict[str, EspdlFile], vectors_path, vectors) -> str | None:
    """Refuse files that do not belong together: one file as both, a file in the other's role, or files and
    vectors from different exports. Returns the export id they share (None for files without one)."""
    if len(given) == 2 and filecmp.cmp(given["offline"], given["streaming"], shallow=False):
        raise ExportError(f"--offline {given['offline']} and --streaming {given['streaming']} are the same file: give "
                          "the offline model.espdl and the streaming_model.espdl of one export")
    for role, espdl in files.items():
        mode = espdl.metadata.get("mode")
        if mode in ("offline", "streaming") and mode != role:
            raise ExportError(f"--{role} {given[role]} is the {mode} model of its export (its metadata says so): "
                              f"give it as --{mode}")
    ids = {str(given[role]): espdl.metadata.get(integrity.EXPORT_ID_KEY) for role, espdl in files.items()}
    if vectors is not None:
        ids[str(vectors_path)] = vectors.export_id or None
    return integrity.require_one_export(ids)


def verify_main(argv: list[str]) -> int:
    return refusing_in_one_line("export-espdl verify", _verify, verify_parser().parse_args(argv), refused=(ValueError,))


def _verify(args: argparse.Namespace) -> int:
    from . import verify

    if args.offline is None and (args.streaming is None or args.vectors is None):
        raise ExportError("give --offline FILE, --offline with --streaming FILE, or --streaming FILE --vectors FILE")
    if args.vectors is not None and args.streaming is None:
        raise ExportError("--vectors needs the --streaming file they were written for")
    given = {role: path for role, path in (("offline", args.offline), ("streaming", args.streaming)) if path}
    intact = {role: integrity.read_intact(path) for role, path in given.items()}  # damaged files stop here
    try:
        vectors = read_vectors(args.vectors.read_bytes()) if args.vectors else None
    except VectorFormatError as e:
        raise VectorFormatError(f"{args.vectors}: {e}") from None
    export = _one_export(given, {role: espdl for role, (espdl, _) in intact.items()}, args.vectors, vectors)
    files = {str(given[role]): espdl for role, (espdl, _) in intact.items()}
    target = _target(args, files.values())
    checks = [verify.check_raw_integer_exponents(files)]
    if args.offline is not None:
        checks.append(verify.emulate_test_values(args.offline, target))
        if args.streaming is not None:
            checks.append(verify.emulate_streaming(args.offline, args.streaming, target))
    if vectors is not None:
        checks.append(verify.emulate_vectors(args.streaming, target, vectors))
    passed = all(c.passed for c in checks)
    names = " and ".join(str(p) for p in (args.offline, args.streaming, args.vectors) if p is not None)
    print(f"{names}, emulating {target} (rounding {'half to even' if target == 'esp32p4' else 'half up'})")
    stamps = [f"{given[role].name} CRC-32 {crc} intact" if crc else f"{given[role].name} carries no integrity stamp "
              "(not written by export-espdl)" for role, (_, crc) in intact.items()]
    print(f"integrity: {', '.join(stamps)}" + (f"; one export, id {export}" if export else ""))
    print("\n".join(check_lines(checks)))
    print("ALL PASS" if passed else "FAILED")
    return 0 if passed else EXIT_FAILED_CHECK


def stream_parser() -> argparse.ArgumentParser:
    from .pipeline import ExportConfig

    p = _Parser(
        prog="export-espdl stream",
        description="Play a recording through a streaming keyword spotter chunk by chunk, as it would arrive, and "
        "print each keyword detected with its time and score (the detector of the model's metadata: smoothing, "
        "thresholds, refractory time), then latency and real-time factor.",
    )
    p.add_argument("input", type=existing_file, help="a 16 kHz mono .wav, or a .npy of [n_mels, frames] features")
    p.add_argument("--model", choices=MODEL_NAMES, default="tcn", help="shipped model (float, ONNX Runtime)")
    p.add_argument("--chunk", type=whole_number(1, MAX_CHUNK_FRAMES), metavar="FRAMES",
                   help=f"frames per step (default: {ExportConfig().chunk}; with --espdl: the file's)")
    p.add_argument("--espdl", type=export_folder, metavar="DIR",
                   help="instead: a folder export-espdl wrote; its streaming_model.espdl runs in the ESP-DL emulator")
    p.add_argument("--quiet", action="store_true", help="only the detections and the statistics")
    return p


def chunks_of(blocks: Iterator[np.ndarray], chunk: int) -> Iterator[np.ndarray]:
    """[n_mels, chunk] pieces of a stream of [n_mels, any] feature blocks; frames that fill no chunk are dropped."""
    pending = None
    for block in blocks:
        pending = block if pending is None or not pending.shape[1] else np.concatenate([pending, block], axis=1)
        whole = pending.shape[1] // chunk * chunk
        for start in range(0, whole, chunk):
            yield pending[:, start : start + chunk]
        pending = pending[:, whole:]


def _require_streaming_export(path: Path, n_mels: int) -> EspdlFile:
    """The streaming model of an export, intact: its stamp holds, and it takes [1, chunk, n_mels] chunks as 'x'
    and gives 'y' (what `stream` feeds and reads). Returns the file."""
    espdl, _ = integrity.read_intact(path)
    x, y = espdl.inputs.get(INPUT_NAME), espdl.outputs.get(OUTPUT_NAME)
    if espdl.metadata.get("mode") == "offline":
        raise ExportError(f"{path} is an offline model (its metadata says so), not a streaming one: export again into "
                          f"{path.parent}")
    if x is None or y is None or len(x.dims) != 3 or x.dims[0] != 1 or x.dims[2] != n_mels or x.dims[1] < 1:
        found = f"input {x.dims}" if x is not None else f"inputs {list(espdl.inputs)}"
        raise ExportError(f"{path}: not a streaming model export-espdl wrote ({found}, expected '{INPUT_NAME}' of "
                          f"[1, chunk, {n_mels}] and an output '{OUTPUT_NAME}'): give the --out folder of an export")
    return espdl


def stream_main(argv: list[str]) -> int:
    return refusing_in_one_line("export-espdl stream", _stream, stream_parser().parse_args(argv), refused=(ValueError,))


def _spotter(args: argparse.Namespace, frontend: FbankConfig):
    """The keyword spotter to stream through (with the detector the model carries), its chunk, and what it is."""
    from .pipeline import STREAMING_FILE, ExportConfig
    from .runtime import EmulatedSession, KeywordSpotter, StreamingModel, StreamingSession

    if args.espdl:
        path = args.espdl / STREAMING_FILE
        settings = _require_streaming_export(path, frontend.n_mels).metadata.get("detector")
        if settings is None:
            raise ExportError(f"{path} has no keyword detector in its metadata: `stream` plays keyword spotters (the "
                              "shipped models carry theirs; the Python API's export_streaming(..., detector=) gives "
                              "yours one); `export-espdl verify` checks any export")
        session = EmulatedSession(path)
        if args.chunk not in (None, session.chunk):
            raise ExportError(f"--chunk {args.chunk}: {path} takes chunks of {session.chunk} frames; leave --chunk "
                              "out with --espdl")
        return KeywordSpotter(session, DetectorConfig.from_json(settings)), session.chunk, f"{args.espdl} in the ESP-DL emulator"
    chunk = args.chunk or ExportConfig().chunk
    model, notes = shipped_model(args.model)
    if notes.get("detector") is None:
        raise ExportError(f"{weights_path(args.model)}: the shipped {args.model} weights carry no detector: reinstall espdl-stream")
    session = StreamingSession(StreamingModel.from_torch(model, frontend.n_mels, chunk * 4, chunk, frontend.frames_per_second))
    session.warm_up()
    return KeywordSpotter(session, DetectorConfig.from_dict(notes["detector"])), chunk, f"{args.model} (float, ONNX Runtime)"


def _stream(args: argparse.Namespace) -> int:
    frontend = FbankConfig()
    frames, blocks = feature_stream(args.input, frontend)
    spotter, chunk, source = _spotter(args, frontend)
    session, config = spotter.session, spotter.detector.config
    n = frames // chunk
    if frames == 0:
        raise DataError(f"{args.input}: no usable audio (empty, or shorter than one {frontend.frame_length_ms:g} ms frame)")
    if n == 0:
        raise DataError(f"{args.input}: {frames} frames, fewer than one {chunk}-frame chunk")
    if not args.quiet:
        if len(set(config.thresholds)) == 1:
            thresholds = f"threshold {config.thresholds[0]:g}"
        else:
            thresholds = "thresholds " + ", ".join(f"{k} {t:g}" for k, t in zip(config.keywords, config.thresholds))
        print(f"{args.input}: {frames} frames ({frames / frontend.frames_per_second:.2f} s) in {n} chunks of {chunk} "
              f"through {source}; detector: smoothing {config.smoothing_frames * config.frame_period_s:.2f} s, "
              f"{thresholds}, refractory {config.refractory_frames * config.frame_period_s:.2f} s")
    detections = 0
    for features in chunks_of(blocks, chunk):
        for detection in spotter.process(features):
            print(detection, flush=True)
            detections += 1
    stats = session.stats.summary()
    print(f"{detections} detection{'s' * (detections != 1)}; {stats['chunks']} chunks, mean {stats['mean_ms']:.3f} ms, "
          f"p95 {stats['p95_ms']:.3f} ms per chunk, real-time factor {stats['real_time_factor']:.5f}")
    if frames % chunk:
        print(f"({frames % chunk} trailing frames did not fill a chunk and were not streamed)")
    return 0


def shipped_model(name: str, seed: int = 0, trained: bool = True) -> tuple[torch.nn.Module, dict]:
    """A shipped model and the report's note on its weights. Missing or unreadable shipped weights are an error
    (ExportError), never a silent random model."""
    path = weights_path(name)
    try:
        model = build_model(name, seed, trained=trained)
        if not trained:
            return model, {"weights": f"random initialisation (seed {seed})"}
        return model, {"weights": f"trained: {path.name}", "training": training_summary(name),
                       "detector": detector_settings(name)}
    except FileNotFoundError:
        raise ExportError(f"{path}: the shipped weights of {name} are missing: reinstall espdl-stream, or give "
                          "--weights random for a random initialisation") from None
    except (SafetensorError, RuntimeError, ValueError, OSError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"{path}: the shipped weights of {name} cannot be loaded ({reason}): reinstall "
                          "espdl-stream") from None


def user_or_shipped_model(spec: str, weights: str, seed: int) -> tuple[torch.nn.Module | Path, str, dict]:
    """(a torch module or an .onnx path, its name, what the report says of its weights)."""
    if spec.endswith(".onnx"):
        return Path(spec), Path(spec).stem, {"weights": "in the ONNX file"}
    if spec in MODEL_NAMES:
        if weights not in ("trained", "random"):
            raise ExportError(f"--weights {weights!r}: the shipped {spec} takes trained or random")
        model, notes = shipped_model(spec, seed, weights == "trained")
        return model, spec, notes
    torch.manual_seed(seed)
    own = None if weights in ("trained", "random") else weights
    where, _, factory = spec.rpartition(":")
    name = f"{Path(where).stem if where.endswith('.py') else where.rpartition('.')[2]}.{factory}"  # e.g. kws.build
    return load_model(spec, own), name, {"weights": own or f"as {spec} makes them (seed {seed})", "factory": spec}


def check_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="export-espdl check",
        description="What of a model streams, before any quantizing: its layers by their PyTorch names (or node names "
        "in an ONNX file), each streaming as is, needing a cache of N frames, carrying state, or unsupported (why), "
        "with the rule that decided and the fix. Exit 0 if the whole model streams, 1 if a layer is refused.",
    )
    p.add_argument("model", type=model_spec, metavar="MODEL",
                   help=f"a shipped model ({', '.join(MODEL_NAMES)}), path/to/file.py:factory, package.module:callable, "
                        f"or a .onnx file")
    _model_arguments(p)
    p.add_argument("--n-mels", type=whole_number(1), metavar="N",
                   help="features per frame (default: an ONNX file's own, else 40, the shipped front end's)")
    p.add_argument("--frames", type=whole_number(1, MAX_OFFLINE_FRAMES), default=96, metavar="FRAMES",
                   help="offline length to plan at (default: 96)")
    p.add_argument("--chunk", type=whole_number(1, MAX_CHUNK_FRAMES), default=8, metavar="FRAMES",
                   help="frames per streaming step (default: 8)")
    p.add_argument("--seed", type=whole_number(0, 2**32 - 1), default=0, help="seed of a model's initial weights (default: 0)")
    return p


def check_main(argv: list[str]) -> int:
    return refusing_in_one_line("export-espdl check", _check, check_parser().parse_args(argv))


def _check(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    model, name, _ = user_or_shipped_model(args.model, args.weights, args.seed)
    n_mels = args.n_mels or (None if isinstance(model, Path) else FbankConfig().n_mels)
    source = take_model(model, n_mels, args.frames, args.input_layout)
    plan = plan_streaming(source.onnx, source.layers)
    print(f"{name} ({source.source}): x [1, {source.n_mels}, {args.frames}], planned in {time.perf_counter() - started:.2f} s")
    print(check_table(plan))
    for note in source.notes:
        print(f"note: {note}")
    if plan.refusals:
        print(f"REFUSED: {plan.refusals[0].sentence}" + (f" (+{len(plan.refusals) - 1} more above)" if len(plan.refusals) > 1 else ""))
        return EXIT_FAILED_CHECK
    try:
        plan.check_chunk(args.chunk, args.frames)
    except ExportError as e:
        print(f"REFUSED: {e}")
        return EXIT_FAILED_CHECK
    frames = " + ".join(str(s.cache_frames) for s in plan.sites)
    caches = f"{len(plan.sites)} cache{'s' * (len(plan.sites) != 1)} ({frames} frames)" if plan.sites else "no caches"
    print(f"STREAMS: {caches}, {len(plan.state_pairs)} states, total stride {plan.total_stride}, chunk {args.chunk} frames")
    return 0


def refusing_in_one_line(prog: str, command: Callable[[argparse.Namespace], int], args: argparse.Namespace,
                         refused: tuple[type[Exception], ...] = ()) -> int:
    """Run a command; an error the user can cause (bad data, an unusable file or place) is one line and exit 2."""
    try:
        return command(args)
    except (ExportError, DataError, VectorFormatError, *refused) as e:
        message = str(e)
    except OSError as e:  # the disk, permissions: name the file and the reason
        message = f"{e.filename}: {e.strerror}" if e.filename else str(e)
    # names read from a damaged file may hold line breaks and control bytes: escaped, the message stays one line
    message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(1)  # the work is small and serial; idle OpenMP workers spin on a busy machine
    if argv[:1] == ["verify"]:
        return verify_main(argv[1:])
    if argv[:1] == ["stream"]:
        return stream_main(argv[1:])
    if argv[:1] == ["check"]:
        return check_main(argv[1:])
    return refusing_in_one_line("export-espdl", _export, parser().parse_args(argv))


def _export(args: argparse.Namespace) -> int:
    from .pipeline import ExportConfig, export_streaming

    config = ExportConfig(target=args.target, bits=args.bits, chunk=args.chunk, frames=args.frames,
                          calib_steps=args.calib_steps, seed=args.seed, calibration=args.calibration,
                          equalization=args.equalization, bias_correction=args.bias_correction,
                          int16_layers=args.int16_layers)
    model, name, weights = user_or_shipped_model(str(args.onnx) if args.onnx else args.model, args.weights, args.seed)
    out = args.out or Path("firmware/main/models") / name / args.target
    check_output_dir(out)  # before any work: a file in the way, a folder not writable, another export there
    echo = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    frontend = FbankConfig()
    config.validate()
    calibration, verification, source = _features(args, config, frontend)
    trained = name in MODEL_NAMES and args.weights == "trained"
    result = export_streaming(
        model, calibration, verification, config, out, model_name=name, frontend=frontend,
        notes={**weights, "calibration": source}, echo=echo,
        evaluation=keyword_eval_set() if trained else None, input_layout=args.input_layout,
        detector=DetectorConfig.from_dict(weights["detector"]) if weights.get("detector") else None,
    )
    print(verdict_table(result))
    return 0 if result.passed else EXIT_FAILED_CHECK


if __name__ == "__main__":
    from ..launcher import main as launch  # Ctrl-C and SIGTERM as one line

    sys.exit(launch())
