"""Integration: what a long run on a host needs, with real execs on every bpftrace
version: the -o file moved away and opened again on SIGUSR1 (logrotate's postrotate)
during a burst of execs, with none lost or written twice."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import json_records, tool_command

pytestmark = pytest.mark.root

# 2,000 execs, each numbered in its argv; the 1,001st waits for the test's go, so that the
# signal, sent once 300 are in the file, comes while the burst runs
BURST = """
import os, sys, time, pathlib
marker, go = sys.argv[1], pathlib.Path(sys.argv[2])
for n in range(1, 2001):
    while n == 1001 and not go.exists():
        time.sleep(0.01)
    os.waitpid(os.posix_spawn(marker, [marker, str(n)], {}), 0)
"""


def numbers_in(path: Path, marker: Path) -> list[int]:
    """The numbers of the marker's execs in the file's whole lines (it may be mid-write)."""
    text = path.read_text(errors="surrogateescape")
    whole = text[:text.rfind("\n") + 1]
    return [int(r["argv"][1]) for r in json_records(whole)
            if r.get("filename") == str(marker)]


def test_sigusr1_reopens_the_output_losing_nothing(engine: str, tmp_path: Path,
                                                   nothing_left_running: None) -> None:
    marker, go = tmp_path / "marker", tmp_path / "go"
    shutil.copy("/bin/true", marker)
    out, moved = tmp_path / "execs.jsonl", tmp_path / "execs.jsonl.1"
    proc = subprocess.Popen(tool_command("--json", "-o", str(out), "--bpftrace", engine,
                                         "--", sys.executable, "-c", BURST, str(marker),
                                         str(go)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and len(numbers_in(out, marker)) >= 300):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.05)
        out.rename(moved)
        os.kill(proc.pid, signal.SIGUSR1)
        go.touch()
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, stderr
    before, after = numbers_in(moved, marker), numbers_in(out, marker)
    assert before + after == list(range(1, 2001))  # each once, in order, across the two
    assert len(before) >= 300 and len(after) >= 1000
    end = json_records(out.read_text())[-1]
    assert end["event"] == "end" and end["missing_execs"] == 0 and end["lost_events"] == 0
