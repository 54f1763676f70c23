"""What esp-ppq's quantization options cost in accuracy, per shipped model, chip and width.

    python benchmarks/quantization.py [--models tcn lstm gru] [--targets esp32s3 esp32p4] [--json benchmarks/quantization.json]

Each row is one `export-espdl` run (the shipped calibration, the shipped labelled clips) with one set of options: the
accuracy cost with its paired 95% interval, how many clips the float and quantized models decide differently, and
the SNR of the frame logits against float over all those clips, all measured on the written files in the ESP-DL
emulator. The defaults of `export-espdl` were chosen from these figures (README, "What quantization costs").
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

from espdl_stream.export.cli import main as export_espdl
from espdl_stream.models import MODEL_NAMES

VARIANTS = {
    8: {
        "kl (esp-ppq's default)": ["--calibration", "kl"],
        "minmax": ["--calibration", "minmax"],
        "percentile": ["--calibration", "percentile"],
        "mse": ["--calibration", "mse"],
        "kl + equalization": ["--calibration", "kl", "--equalization"],
        "kl + bias correction": ["--calibration", "kl", "--bias-correction"],
        "kl + equalization + bias correction": ["--calibration", "kl", "--equalization", "--bias-correction"],
    },
    16: {
        "minmax (esp-ppq's default)": ["--calibration", "minmax"],
        "minmax + equalization": ["--calibration", "minmax", "--equalization"],
        "minmax + bias correction": ["--calibration", "minmax", "--bias-correction"],
    },
}


def run(model: str, target: str, bits: int, options: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):  # the row says enough
        code = export_espdl(["--model", model, "--target", target, "--bits", str(bits), "--out", out, "--quiet", *options])
        report = json.loads((Path(out) / ("report.json" if code == 0 else "report.failed.json")).read_text())
    accuracy = report["accuracy"]
    return {
        "model": model, "target": target, "bits": bits, "options": options, "passed": report["passed"],
        "clips": accuracy["clips"],
        "float_percent": accuracy["top1_percent"]["float"],
        "quantized_percent": accuracy["top1_percent"]["quantized_offline"],
        "cost_points": accuracy["quantization_cost_points"],
        "cost_interval_95": accuracy["quantization_cost_interval_95_points"],
        "decisions_changed": accuracy["float_right_quantized_wrong"] + accuracy["float_wrong_quantized_right"],
        "agreement_percent": accuracy["agreement_float_vs_quantized_percent"],
        "output_snr_db": accuracy["output_snr_db"],
        "export_s": report["timings_s"]["total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--targets", nargs="+", default=["esp32s3", "esp32p4"], choices=["esp32s3", "esp32p4"])
    parser.add_argument("--bits", nargs="+", type=int, default=[8, 16], choices=[8, 16])
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    print(f"{'model':5s} {'target':8s} bits {'options':38s} {'cost':>6s} {'95% interval':>16s} {'changed':>7s} "
          f"{'SNR dB':>6s} {'s':>5s}")
    for model in args.models:
        for target in args.targets:
            for bits in args.bits:
                for name, options in VARIANTS[bits].items():
                    row = {"variant": name, **run(model, target, bits, options)}
                    rows.append(row)
                    low, high = row["cost_interval_95"]
                    print(f"{model:5s} {target:8s} {bits:4d} {name:38s} {row['cost_points']:+6.2f} "
                          f"{f'{low:+.2f} to {high:+.2f}':>16s} {row['decisions_changed']:7d} {row['output_snr_db']:6.1f} "
                          f"{row['export_s']:5.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"date": date.today().isoformat(), "python": platform.python_version(),
                                         "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
