"""Artifacts are written in one place, all or nothing, by one export at a time.

Everything is first written into a staging folder beside the output folder; only when every
file is complete, and the caller keeps `install` set, are they moved into place (os.replace,
atomic per file, with Ctrl-C and SIGTERM held back until the last file is in). A run that
fails, declines or is interrupted leaves the previous artifacts as they were and no partial files.

A lock file beside the output folder (`.<name>.lock`, an advisory flock that the kernel drops
when its holder dies, even by SIGKILL) lets one export at a time write there; a second one is
refused with one line. Whoever holds the lock removes the staging folders that killed runs left;
stopped by Ctrl-C or SIGTERM (through the command's launcher), a run removes its own first.
POSIX only (fcntl), like the rest of the tool chain.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..launcher import on_stop
from .errors import ExportError


@dataclass
class Staging:
    path: Path
    install: bool = True


def _lock_path(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}.lock"


def _staging_prefix(out_dir: Path) -> str:
    return f".{out_dir.name}.staging-"


def check_output_dir(out_dir: Path) -> Path:
    """The resolved output folder, or ExportError (one line) if the artifacts could not be written there now:
    a file in the way, a folder not writable, or another export writing there (its lock is tried)."""
    out_dir = Path(out_dir).resolve()
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise ExportError(f"output folder {out_dir} is a file: give a folder (it is created if missing)")
        existing = next(p for p in (out_dir, *out_dir.parents) if p.exists())
    except OSError as e:
        raise ExportError(f"output folder {out_dir}: cannot look at it ({e.strerror})") from None
    if not existing.is_dir():
        raise ExportError(f"output folder {out_dir}: {existing} is a file, so no folder can be made below it")
    for folder in [p for p in (out_dir, out_dir.parent) if p.exists()] or [existing]:
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ExportError(f"output folder {out_dir}: {folder} is not writable: give a folder you can write to")
    with output_lock(out_dir):  # writes and removes the lock file: proves the place is writable, and free
        pass
    return out_dir


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Hold the lock on `out_dir`; ExportError (one line) if another process holds it."""
    lock = _lock_path(out_dir)
    fd = _acquire(lock, out_dir)
    try:
        with on_stop(lambda: lock.unlink(missing_ok=True)):
            yield
    finally:
        lock.unlink(missing_ok=True)  # while still locked: the next holder makes a fresh file (see _acquire)
        os.close(fd)


def _acquire(lock: Path, out_dir: Path) -> int:
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"output folder {out_dir}: cannot create {e.filename} ({e.strerror}): "
                          "give a folder you can write to") from None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ExportError(f"output folder {out_dir}: cannot write beside it in {lock.parent} ({e.strerror}): "
                              "give a folder you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ExportError(f"output folder {out_dir}: another export (process {holder}) is writing there: "
                              "wait for it to finish or write elsewhere") from None
        try:  # the holder before us may have removed the file between our open and our lock: lock the live one
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)


def _remove_stale_staging(out_dir: Path) -> None:
    """Staging folders of runs that were killed (only the lock holder may be staging, and that is us)."""
    for stale in out_dir.parent.glob(f"{_staging_prefix(out_dir)}*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block ends, so an install is never left half done."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _: caught.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        for s in caught[:1]:
            signal.raise_signal(s)


@contextlib.contextmanager
def staged_output(out_dir: Path) -> Iterator[Staging]:
    out_dir = check_output_dir(out_dir)
    with output_lock(out_dir):
        _remove_stale_staging(out_dir)
        staging = Staging(Path(tempfile.mkdtemp(prefix=_staging_prefix(out_dir), dir=out_dir.parent)))
        try:
            with on_stop(lambda: shutil.rmtree(staging.path, ignore_errors=True)):
                yield staging
                if staging.install:
                    with _signals_deferred():
                        out_dir.mkdir(exist_ok=True)
                        for item in sorted(staging.path.iterdir()):
                            os.replace(item, out_dir / item.name)
        finally:
            shutil.rmtree(staging.path, ignore_errors=True)
