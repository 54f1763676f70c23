"""The `export-espdl` command's entry point, free of heavy imports.

Importing torch and esp-ppq takes seconds; this module is loaded first, so Ctrl-C and SIGTERM end the command with
one line and the conventional exit code (130, 143) at any moment, imports included. Both unwind the stack, so the
export's cleanup runs (its staging folder removed, its lock released; an install in progress completes first).
"""

from __future__ import annotations

import signal
import sys

EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM


class Terminated(BaseException):
    """SIGTERM, raised where the program is so that the same cleanup as for Ctrl-C runs."""


def _raise_terminated(signum, frame):
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        from .export.cli import main as export_espdl

        return export_espdl(argv)
    except KeyboardInterrupt:
        print("export-espdl: interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("export-espdl: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED


if __name__ == "__main__":
    sys.exit(main())
