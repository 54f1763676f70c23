"""Artifacts are written in one place, all or nothing.

Everything is first written into a staging folder beside the output folder; only when every
file is complete, and the caller keeps `install` set, are they moved into place (os.replace,
atomic per file). A run that fails or declines leaves the previous artifacts as they were and
no partial files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


@dataclass
class Staging:
    path: Path
    install: bool = True


@contextlib.contextmanager
def staged_output(out_dir: Path) -> Iterator[Staging]:
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Staging(Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent)))
    try:
        yield staging
        if staging.install:
            out_dir.mkdir(exist_ok=True)
            for item in sorted(staging.path.iterdir()):
                os.replace(item, out_dir / item.name)
    finally:
        shutil.rmtree(staging.path, ignore_errors=True)
