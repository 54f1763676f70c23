"""Regenerate the models committed for the firmware, byte for byte: every shipped model for both targets.

    python firmware/export_models.py            # all of them (about a minute on 2 cores)
    python firmware/export_models.py lstm gru   # some of them

Each is a plain `export-espdl --model <model> --target <target>` (the defaults: int8, chunk 8) into
firmware/main/models/<model>/<target>/, the folder `idf.py -DESPDL_MODEL=<model>` builds.
tests/test_firmware.py re-exports some of them with `export_args` and compares the bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "main" / "models"
SHIPPED_MODELS = ("tcn", "lstm", "gru")
TARGETS = ("esp32s3", "esp32p4")


def export_args(model: str, target: str, out: Path) -> list[str]:
    return ["--model", model, "--target", target, "--out", str(out), "--quiet"]


def main(models: list[str]) -> int:
    from espdl_stream.export.cli import main as export_main

    unknown = sorted(set(models) - set(SHIPPED_MODELS))
    if unknown:
        print(f"export_models.py: error: unknown model {', '.join(unknown)}: choose from {', '.join(SHIPPED_MODELS)}",
              file=sys.stderr)
        return 2
    worst = 0
    for model in models or SHIPPED_MODELS:
        for target in TARGETS:
            worst = max(worst, export_main(export_args(model, target, MODELS_DIR / model / target)))
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
