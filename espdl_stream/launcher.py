"""The `export-espdl` command's entry point, free of heavy imports, and what Ctrl-C and SIGTERM do to it.

Importing torch and esp-ppq takes seconds; this module is loaded first, so Ctrl-C and SIGTERM end the command with
one line and the conventional exit code (130, 143) at any moment, imports included. The handler does not raise into
the running code: an exception raised at an arbitrary point can be swallowed by a finalizer ("Exception ignored
in ... __del__", and the run goes on to exit 0) or turned into an ImportError by a C extension that is loading
(both seen). It runs the cleanups registered with `on_stop` (the export's staging folder and lock), prints the
line and ends the process. An install in progress completes first (export/artifacts.py holds the signals back).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Callable, Iterator

STOP_LINES = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}
_cleanups: list[Callable[[], None]] = []


@contextlib.contextmanager
def on_stop(cleanup: Callable[[], None]) -> Iterator[None]:
    """Within the block, a stop by Ctrl-C or SIGTERM runs `cleanup` before the process ends."""
    _cleanups.append(cleanup)
    try:
        yield
    finally:
        _cleanups.remove(cleanup)


def _stop(signum, frame) -> None:
    for cleanup in reversed(_cleanups):
        try:
            cleanup()
        except Exception:  # a cleanup that fails must not keep the process alive
            pass
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    os.write(2, f"export-espdl: {STOP_LINES[signum]}\n".encode())  # not print: the handler may interrupt a print
    os._exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    for signum in STOP_LINES:
        signal.signal(signum, _stop)
    from .export.cli import main as export_espdl

    return export_espdl(argv)


if __name__ == "__main__":  # python -m espdl_stream.launcher: run the imported module, whose cleanups others register
    from espdl_stream.launcher import main as launch

    sys.exit(launch())
