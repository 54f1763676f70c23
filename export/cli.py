"""`export-espdl`: export a streaming model to .espdl files with proof that streaming equals offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from ..calibration import DataError, FbankConfig, calibration_clips, fbank, keyword_eval_set, load_features, require_clips
from ..models import MODEL_NAMES, build_model, training_summary, weights_path
from . import verify
from .errors import ExportError
from .pipeline import BITS, TARGETS, ExportConfig, ExportResult, export_streaming
from .ppq import read_espdl
from .vectors import VectorFormatError, read_vectors

EXIT_FAILED_CHECK, EXIT_USAGE = 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    defaults = ExportConfig()
    p = _Parser(
        prog="export-espdl",
        description="Quantize a streaming audio model with ESP-PPQ for ESP-DL, offline and streaming from one "
        "calibration, prove the streaming model equals the offline one (float and integer, every chunk), and write "
        ".espdl files, per-chunk test vectors and a report.",
        epilog="`export-espdl verify --help`: check any pair of offline and streaming .espdl files in the ESP-DL emulator. "
        "`export-espdl stream --help`: play a recording through a streaming model on this PC.",
    )
    p.add_argument("--model", choices=MODEL_NAMES, default="tcn", help="shipped model to export (default: tcn)")
    p.add_argument("--target", choices=TARGETS, default=defaults.target, help="chip (default: %(default)s)")
    p.add_argument("--bits", type=int, choices=BITS, default=defaults.bits, help="integer width (default: %(default)s)")
    p.add_argument("--chunk", type=int, default=defaults.chunk, metavar="FRAMES",
                   help="frames per streaming step; a multiple of the model's time stride (default: %(default)s)")
    p.add_argument("--frames", type=int, default=defaults.frames, metavar="FRAMES",
                   help="offline input length, a whole number of chunks (default: %(default)s)")
    p.add_argument("--calib", type=Path, metavar="PATH",
                   help="calibration data: a folder of .wav or .npy [n_mels, frames] files, or one .npy/.npz "
                        "(default: the shipped set of recorded and synthetic speech, calibration/data/)")
    p.add_argument("--weights", choices=("trained", "random"), default="trained",
                   help="the shipped trained weights (models/weights/) or a random initialisation from --seed")
    p.add_argument("--calib-steps", type=int, default=defaults.calib_steps, metavar="N",
                   help="calibration clips (default: %(default)s)")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: firmware/main/models/<model>/<target>, what `idf.py -DESPDL_MODEL=<model>` builds)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of weights and synthetic data (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress lines, only the verdict table")
    return p


def _features(args, config: ExportConfig, frontend: FbankConfig) -> tuple[np.ndarray, np.ndarray, str]:
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


def check_lines(checks: list[verify.Check]) -> list[str]:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check'.ljust(width)}  result  detail"]
    return lines + [f"{c.name.ljust(width)}  {'PASS' if c.passed else 'FAIL'}    {c.detail}" for c in checks]


def verdict_table(result: ExportResult) -> str:
    r = result.report
    lines = [
        f"{r['model']['name']} -> {r['config']['target']} int{r['config']['bits']}, chunk {r['config']['chunk']} "
        f"frames, offline {r['config']['frames']} frames, quantization SNR {r['quantization_snr_db']['y']:.1f} dB",
        *check_lines(result.checks),
    ]
    where = result.out_dir if result.passed else f"{result.out_dir} (unchanged; see report.failed.json)"
    if r.get("accuracy"):
        a = r["accuracy"]
        top = a["top1_percent"]
        lines.insert(1, f"accuracy on {a['clips']} held-out clips: float {top['float']}%, int{r['config']['bits']} offline "
                        f"{top['quantized_offline']}%, streaming {top['quantized_streaming']}% (cost "
                        f"{a['quantization_cost_points']:+.2f} points, target {a['quantization_target_points']})")
    lines.append(f"{'ALL PASS' if result.passed else 'FAILED'}: artifacts in {where}, {r['timings_s']['total']:.1f} s")
    return "\n".join(lines)


def verify_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="export-espdl verify",
        description="Run a pair of .espdl files in the ESP-DL emulator: the offline file on its own embedded test "
        "input against its embedded test output, and the streaming file chunk by chunk on that input (state outputs "
        "copied back to their inputs) against the offline file on the same prefix and, when given, the per-chunk "
        "vectors. Exit 0 only if everything matches.",
    )
    p.add_argument("--offline", type=Path, required=True, help="offline model.espdl (with embedded test values)")
    p.add_argument("--streaming", type=Path, required=True, help="streaming_model.espdl")
    p.add_argument("--target", choices=TARGETS, help="chip whose rounding to emulate (default: from the metadata)")
    p.add_argument("--vectors", type=Path, help="streaming_vectors.bin to compare every chunk with")
    return p


def verify_main(argv: list[str]) -> int:
    args = verify_parser().parse_args(argv)
    try:
        for path in (args.offline, args.streaming, args.vectors):
            if path is not None and not path.is_file():
                raise ExportError(f"{path}: no such file")
        target = args.target or read_espdl(args.streaming).metadata.get("target")
        if target not in TARGETS:
            raise ExportError("the streaming file does not name its target: give --target esp32s3 or esp32p4")
        vectors = read_vectors(args.vectors.read_bytes()) if args.vectors else None
        checks = [verify.emulate_test_values(args.offline, target)]
        checks += verify.emulate_streaming(args.offline, args.streaming, target, vectors)
    except (ExportError, VectorFormatError, ValueError) as e:
        print(f"export-espdl verify: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    passed = all(c.passed for c in checks)
    print(f"{args.streaming} against {args.offline}, emulating {target}")
    print("\n".join(check_lines(checks)))
    print("ALL PASS" if passed else "FAILED")
    return 0 if passed else EXIT_FAILED_CHECK


def stream_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="export-espdl stream",
        description="Play a recording through a streaming model chunk by chunk, as it would arrive: per-chunk top "
        "keyword and score, the decision over the whole stream, latency and real-time factor.",
    )
    p.add_argument("input", type=Path, help="a 16 kHz mono .wav, or a .npy of [n_mels, frames] features")
    p.add_argument("--model", choices=MODEL_NAMES, default="tcn", help="shipped model (float, ONNX Runtime)")
    p.add_argument("--chunk", type=int, default=ExportConfig().chunk, metavar="FRAMES", help="frames per step")
    p.add_argument("--espdl", type=Path, metavar="DIR",
                   help="instead: a folder export-espdl wrote; its streaming_model.espdl runs in the ESP-DL emulator")
    p.add_argument("--quiet", action="store_true", help="only the final decision and statistics")
    return p


def _stream_features(path: Path, frontend: FbankConfig) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() == ".wav":
        from ..calibration.loaders import read_wav

        samples, rate = read_wav(path)
        if rate != frontend.sample_rate:
            raise DataError(f"{path}: {rate} Hz audio; the models take {frontend.sample_rate} Hz "
                            f"(convert it, e.g. sox in.wav -r {frontend.sample_rate} out.wav)")
        features = fbank(samples, frontend)
    elif path.suffix.lower() == ".npy":
        features = np.load(path, allow_pickle=False).astype(np.float32)
        if features.ndim != 2 or features.shape[0] != frontend.n_mels:
            raise DataError(f"{path}: features of shape {list(features.shape)}, expected [{frontend.n_mels} mel bins, frames]")
    else:
        raise DataError(f"{path}: give a .wav recording or a .npy of features")
    if features.shape[1] == 0 or not np.isfinite(features).all():
        raise DataError(f"{path}: no usable audio (empty, shorter than one 25 ms frame, or NaN/Inf)")
    return features


def stream_main(argv: list[str]) -> int:
    from ..calibration import keyword_eval_set
    from .runtime import EmulatedSession, StreamingModel, StreamingSession

    args = stream_parser().parse_args(argv)
    frontend = FbankConfig()
    try:
        features = _stream_features(args.input, frontend)
        if args.espdl:
            session, source = EmulatedSession(args.espdl / "streaming_model.espdl"), f"{args.espdl} in the ESP-DL emulator"
        else:
            model = StreamingModel.from_torch(build_model(args.model), frontend.n_mels, args.chunk * 4, args.chunk,
                                              frontend.frames_per_second)
            session, source = StreamingSession(model), f"{args.model} (float, ONNX Runtime)"
            session.warm_up()
    except (ExportError, DataError, ValueError) as e:
        print(f"export-espdl stream: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    classes = keyword_eval_set().classes
    chunk = session.chunk if args.espdl else args.chunk
    n = features.shape[1] // chunk
    if n == 0:
        print(f"export-espdl stream: error: {args.input}: {features.shape[1]} frames, fewer than one {chunk}-frame chunk",
              file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.input}: {features.shape[1]} frames ({features.shape[1] / frontend.frames_per_second:.2f} s) "
          f"in {n} chunks of {chunk} through {source}")
    outputs = []
    for k in range(n):
        y = session.process(features[:, k * chunk : (k + 1) * chunk])
        outputs.append(y)
        if not args.quiet:
            logits = y.mean(axis=-1)
            p = np.exp(logits - logits.max())
            p /= p.sum()
            print(f"{(k + 1) * chunk / frontend.frames_per_second:7.2f} s  {classes[int(p.argmax())]:>8s}  {p.max():.2f}")
    decision = np.concatenate(outputs, axis=-1).mean(axis=-1)
    stats = session.stats.summary()
    print(f"whole stream: {classes[int(decision.argmax())]}; {stats['chunks']} chunks, mean {stats['mean_ms']:.3f} ms, "
          f"p95 {stats['p95_ms']:.3f} ms per chunk, real-time factor {stats['real_time_factor']:.5f}")
    if features.shape[1] % chunk:
        print(f"({features.shape[1] % chunk} trailing frames did not fill a chunk and were not streamed)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(1)  # the work is small and serial; idle OpenMP workers spin on a busy machine
    if argv[:1] == ["verify"]:
        return verify_main(argv[1:])
    if argv[:1] == ["stream"]:
        return stream_main(argv[1:])
    args = parser().parse_args(argv)
    config = ExportConfig(target=args.target, bits=args.bits, chunk=args.chunk, frames=args.frames,
                          calib_steps=args.calib_steps, seed=args.seed)
    out = args.out or Path("firmware/main/models") / args.model / args.target
    echo = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    frontend = FbankConfig()
    try:
        config.validate()
        calibration, verification, source = _features(args, config, frontend)
        trained = args.weights == "trained" and weights_path(args.model).is_file()
        model = build_model(args.model, args.seed, trained=trained)
        weights = {"weights": f"trained: {weights_path(args.model).name}", "training": training_summary(args.model)} \
            if trained else {"weights": f"random initialisation (seed {args.seed})"}
        result = export_streaming(
            model, calibration, verification, config, out, model_name=args.model, frontend=frontend,
            notes={**weights, "calibration": source}, echo=echo,
            evaluation=keyword_eval_set() if trained else None,
        )
    except (ExportError, DataError) as e:
        print(f"export-espdl: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(verdict_table(result))
    return 0 if result.passed else EXIT_FAILED_CHECK


if __name__ == "__main__":
    sys.exit(main())
