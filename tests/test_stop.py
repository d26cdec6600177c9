"""Stopping loses nothing: a call made just before the tool is told to stop is always
shown, on a busy machine, and nothing is counted as lost that the kernel did not drop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import IN_CI, bpftrace_of, json_records, tool_command, wait_until

pytestmark = pytest.mark.root
RUNS = 20 if IN_CI else 3
# Makes one call as `bpx-stop`, then sends SIGINT to the tool at once.
HELPER = """
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(15, b"bpx-stop", 0, 0, 0)
kind, marker, tool = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "execve":
    pid = os.fork()
    if pid == 0:
        os.execv("/bin/true", ["/bin/true", marker])
    os.waitpid(pid, 0)
elif kind == "openat":
    try:
        os.open(marker, os.O_RDONLY)
    except OSError:
        pass
else:
    os.kill(os.getpid(), 0)
os.kill(tool, signal.SIGINT)
"""


@pytest.fixture(scope="module")
def busy_cpus() -> Iterator[None]:
    """One spinning process per CPU, started here and stopped by pid."""
    burners = [subprocess.Popen(["sh", "-c", "while :; do :; done"])
               for _ in range(os.cpu_count() or 1)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def _made_call(kind: str, marker: str, helper: int, records: list[dict[str, object]]) -> bool:
    for r in records:
        if r.get("event") == "exec":
            if r["argv"] == ["/bin/true", marker]:
                return True
        elif r.get("event") == "call":
            args = r["args"]
            assert isinstance(args, dict)
            if kind == "openat" and args.get("path") == marker:
                return True
            if kind == "kill" and args.get("target") == helper and args.get("signal") == "0":
                return True
    return False


@pytest.mark.parametrize("kind", ["execve", "openat", "kill"])
def test_a_call_just_before_the_stop_is_never_lost(engine: str, kind: str, busy_cpus: None,
                                                   tmp_path: Path,
                                                   nothing_left_running: None) -> None:
    for run in range(RUNS):
        tool = subprocess.Popen(tool_command(kind, "--json", "--comm", "bpx-stop",
                                             "--bpftrace", engine),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert tool.stderr is not None
        status = tool.stderr.readline()
        assert status.startswith("Tracing"), status + tool.stderr.read()
        marker = str(tmp_path / f"bpx-stop-{run}")
        helper = subprocess.Popen([sys.executable, "-c", HELPER, kind, marker, str(tool.pid)])
        assert helper.wait(timeout=60) == 0
        started = time.monotonic()
        out, err = tool.communicate(timeout=60)
        records = json_records(out)
        assert tool.returncode == 0, err
        assert _made_call(kind, marker, helper.pid, records), f"run {run}: {out}\n{err}"
        unit = "execs" if kind == "execve" else "calls"
        assert records[-1]["event"] == "end" and records[-1][f"missing_{unit}"] == 0, err
        assert time.monotonic() - started < 10


def test_a_stop_as_bpftrace_starts_is_an_interruption(engine: str, tmp_path: Path,
                                                      nothing_left_running: None) -> None:
    """Ctrl-C before every probe is attached: bpftrace may die of the SIGINT it is sent
    (before it sets its handler) or stop as it loads the program; either way nothing was
    traced, and the run says it was interrupted (130), not that bpftrace failed."""
    before_ready = 0
    for attempt in range(3):  # a stop that came after the probes were attached: again
        # a cache of its own: no bpftrace started early, before the run's own handlers
        tool = subprocess.Popen(tool_command("execve", "--bpftrace", engine),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / str(attempt))})
        # forked long before its probes are attached
        wait_until(lambda tool=tool: tool.poll() is not None or bpftrace_of(tool.pid),
                   "the tool's bpftrace")
        tool.send_signal(signal.SIGINT)
        _, err = tool.communicate(timeout=60)
        if err.startswith("Tracing"):
            assert tool.returncode == 0, err
            continue
        before_ready += 1
        assert tool.returncode == 130, err
        assert "interrupted" in err and "Traceback" not in err, err
        assert "bpftrace" not in err, err  # no failure of bpftrace's is reported
    assert before_ready, "every stop came after the probes were attached"

