"""Integration: what a long run on a host needs, with real execs on every bpftrace
version: the -o file moved away and opened again on SIGUSR1 (logrotate's postrotate)
during a burst of execs, with none lost or written twice; a bpftrace killed with SIGKILL
started again, the gap said, and the events and served counts going on."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import exec_as, json_records, numbered, started, tool_command, wait_until

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


def test_sigusr1_reopens_the_output_losing_nothing(engine: str, tmp_path: Path,
                                                   nothing_left_running: None) -> None:
    marker, go = tmp_path / "marker", tmp_path / "go"
    shutil.copy("/bin/true", marker)
    out, moved = tmp_path / "execs.jsonl", tmp_path / "execs.jsonl.1"
    with started(tool_command("--json", "-o", str(out), "--bpftrace", engine, "--",
                              sys.executable, "-c", BURST, str(marker), str(go))) as (proc, _):
        wait_until(lambda: len(numbered(out, marker)) >= 300, "300 execs in the file")
        out.rename(moved)
        os.kill(proc.pid, signal.SIGUSR1)
        go.touch()
        assert proc.wait(timeout=120) == 0
    before, after = numbered(moved, marker), numbered(out, marker)
    assert before + after == list(range(1, 2001))  # each once, in order, across the two
    assert len(before) >= 300 and len(after) >= 1000
    end = json_records(out.read_text())[-1]
    assert end["event"] == "end" and end["missing_execs"] == 0 and end["lost_events"] == 0


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def engine_of(tool: int) -> int:
    """The bpftrace our own bptrace-exec started (with no COMMAND, its only child)."""
    found = children(tool)
    assert len(found) == 1, found
    return found[0]


def test_a_killed_bpftrace_is_started_again_and_the_gap_said(
        engine: str, markers: Path, tmp_path: Path, nothing_left_running: None) -> None:
    marker, out = markers / "marker-restart", tmp_path / "execs.jsonl"
    shutil.copy("/bin/true", marker)
    with started(tool_command("--json", "-o", str(out), "--restart", "--uid", "4244",
                              "--bpftrace", engine, "--duration", "300")) as (proc, lines):
        lines.wait_for(lambda line: line.startswith("Tracing"))
        exec_as(4244, marker, range(1, 6))
        wait_until(lambda: len(numbered(out, marker)) == 5, "the first 5 execs")
        os.kill(engine_of(proc.pid), signal.SIGKILL)
        lines.wait_for(lambda line: "starting it again in 1 s (restart 1)" in line)
        lines.wait_for(lambda line: "tracing again after a gap of" in line)
        exec_as(4244, marker, range(6, 13))
        wait_until(lambda: len(numbered(out, marker)) == 12, "the next 7 execs")
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0, lines.text()
    assert numbered(out, marker) == list(range(1, 13))
    records = json_records(out.read_text())
    gap = next(r for r in records if r["event"] == "gap")
    assert gap["restarts"] == 1 and "killed" in gap["reason"] and gap["seconds"] >= 1
    end = records[-1]
    assert end["event"] == "end" and end["execs"] == 12  # each once, across two bpftraces
    assert end["missing_execs"] is None  # what the killed one saw last is unknown


def test_served_counts_go_on_across_a_restart(engine: str, markers: Path,
                                              nothing_left_running: None) -> None:
    marker = markers / "marker-served"
    shutil.copy("/bin/true", marker)
    with started(tool_command("--serve", "127.0.0.1:0", "--interval", "1", "--uid", "4245",
                              "--bpftrace", engine, "--duration", "300")) as (proc, lines):
        url = lines.wait_for(lambda line: "serving metrics on" in line).split()[-1]
        lines.wait_for(lambda line: line.startswith("Tracing"))

        def served() -> dict[str, float]:
            with urllib.request.urlopen(url, timeout=10) as reply:
                text = reply.read().decode()
            return {s.name: s.value for f in text_string_to_metric_families(text)
                    for s in f.samples if s.name in (
                        "bptrace_exec_execs_total", "bptrace_exec_restarts_total",
                        "bptrace_exec_up")}
        exec_as(4245, marker, range(1, 6))
        wait_until(lambda: served()["bptrace_exec_execs_total"] == 5, "5 execs served")
        os.kill(engine_of(proc.pid), signal.SIGKILL)
        lines.wait_for(lambda line: "tracing again after a gap of" in line)
        exec_as(4245, marker, range(6, 13))
        wait_until(lambda: served()["bptrace_exec_execs_total"] == 12, "12 execs served")
        assert served() == {"bptrace_exec_execs_total": 12, "bptrace_exec_restarts_total": 1,
                            "bptrace_exec_up": 1}
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0, lines.text()


def test_a_stop_as_a_restarted_bpftrace_starts_ends_the_run_as_usual(
        engine: str, tmp_path: Path, nothing_left_running: None) -> None:
    """A service stopped (SIGTERM) while its bpftrace is started again: the run traced
    before, and ends as a stop between bpftraces does (0), not as interrupted."""
    out = tmp_path / "execs.jsonl"
    with started(tool_command("--json", "-o", str(out), "--restart", "--uid", "4245",
                              "--bpftrace", engine, "--duration", "300")) as (proc, lines):
        lines.wait_for(lambda line: line.startswith("Tracing"))
        first = engine_of(proc.pid)
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: [c for c in children(proc.pid) if c != first],
                   "the bpftrace started again")  # forked long before its probes attach
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, lines.text()
    assert json_records(out.read_text())[-1]["event"] == "end"
