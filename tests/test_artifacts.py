"""Artifacts: the output folder checked before any work, one export at a time, stale staging from killed runs
cleaned up, an install that Ctrl-C cannot cut in half."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from espdl_stream.export import artifacts
from espdl_stream.export.artifacts import check_output_dir, output_lock, staged_output
from espdl_stream.export.errors import ExportError


def test_output_folder_refusals(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ExportError, match="is a file: give a folder"):
        check_output_dir(tmp_path / "afile")
    with pytest.raises(ExportError, match="afile is a file, so no folder can be made below it"):
        check_output_dir(tmp_path / "afile" / "out")
    assert check_output_dir(tmp_path / "new" / "out") == (tmp_path / "new" / "out").resolve()
    assert not (tmp_path / "new" / "out").exists()  # checking creates nothing but the parents


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where nothing can be created")
def test_output_folder_where_nothing_can_be_written():
    with pytest.raises(ExportError, match="give a folder you can write to"):
        check_output_dir(Path("/proc/espdl-stream-test/out"))


def test_a_second_export_into_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    with output_lock(out.resolve()):
        with pytest.raises(ExportError, match=rf"another export \(process {os.getpid()}\) is writing there"):
            check_output_dir(out)
        with pytest.raises(ExportError, match="another export"):
            with staged_output(out):
                pass
    with staged_output(out) as stage:  # free again
        (stage.path / "a.bin").write_bytes(b"1")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no lock file, no staging folder left
    assert (out / "a.bin").read_bytes() == b"1"


def test_a_killed_run_leaves_staging_that_the_next_run_removes(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.espdl").write_bytes(b"previous")
    (tmp_path / "keep.staging-not-ours").mkdir()
    script = textwrap.dedent(f"""
        import sys, time
        from espdl_stream.export.artifacts import staged_output
        with staged_output({str(out)!r}) as stage:
            (stage.path / "model.espdl").write_bytes(b"half")
            print("staged", flush=True)
            time.sleep(60)
    """)
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout.readline().strip() == "staged"
        with pytest.raises(ExportError, match="another export"):
            check_output_dir(out)
    finally:
        run.kill()
        run.wait()
    stale = sorted(p.name for p in tmp_path.iterdir())
    assert stale[0].startswith(".out.lock") and stale[1].startswith(".out.staging-")  # what SIGKILL leaves
    with staged_output(out) as stage:
        (stage.path / "model.espdl").write_bytes(b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.staging-not-ours", "out"]
    assert (out / "model.espdl").read_bytes() == b"new"


def test_ctrl_c_during_the_install_waits_for_the_last_file(tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_replace = os.replace
    calls = []

    def replace_then_interrupt(src, dst):
        calls.append(dst)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # arrives between the first file and the second
        real_replace(src, dst)

    monkeypatch.setattr(artifacts.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        with staged_output(out) as stage:
            for name in ("a.bin", "b.bin", "c.bin"):
                (stage.path / name).write_bytes(name.encode())
    assert sorted(p.name for p in out.iterdir()) == ["a.bin", "b.bin", "c.bin"]  # all in, then the interrupt
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
