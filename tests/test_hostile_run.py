"""A run that something outside the tool disturbs: its bpftrace stopped or killed, its
reader stalled. What was traced is still shown, the loss is counted exactly where it can
be and said to be unknown where it cannot, and the exit status says how the run went."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Lines, bpftrace_of, json_records, run_tool, tool_command

pytestmark = pytest.mark.root
# Named `bpx-hostile` (the runs filter on it); execs /bin/true with a numbered marker, as
# many times as each line read says, then answers "done".
HELPER = """
import ctypes, os, sys
ctypes.CDLL(None).prctl(15, b"bpx-hostile", 0, 0, 0)
made = 0
for line in sys.stdin:
    for _ in range(int(line)):
        pid = os.fork()
        if pid == 0:
            os.execv("/bin/true", ["/bin/true", f"bpx-{made}"])
        os.waitpid(pid, 0)
        made += 1
    print("done", flush=True)
"""


class Helper:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HELPER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def execs(self, count: int) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{count}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "done\n"

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0


def _start(*args: str) -> tuple[subprocess.Popen[str], Lines, Lines]:
    tool = subprocess.Popen(tool_command(*args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert tool.stdout is not None and tool.stderr is not None
    out, err = Lines(tool.stdout), Lines(tool.stderr)
    err.wait_for(lambda line: line.startswith("Tracing"))
    return tool, out, err


def _markers(records: list[dict[str, object]]) -> list[int]:
    """The helper's execs shown, by number (in JSON, as bpftrace read them: by CPU)."""
    return sorted(int(str(r["argv"][1])[4:]) for r in records  # type: ignore[index]
                  if r.get("event") == "exec" and r["argv"][:1] == ["/bin/true"])  # type: ignore[index]


def test_a_stopped_bpftrace_is_continued_and_nothing_is_lost(engine: str,
                                                            nothing_left_running: None
                                                            ) -> None:
    tool, out, err = _start("execve", "--json", "--comm", "bpx-hostile", "--bpftrace", engine)
    helper = Helper()
    helper.execs(50)
    out.wait_for(lambda line: '"bpx-49"' in line)
    engine_pid = bpftrace_of(tool.pid)
    os.kill(engine_pid, signal.SIGSTOP)
    try:
        helper.execs(100)  # made while bpftrace cannot read them
        helper.close()
        tool.send_signal(signal.SIGINT)
        assert tool.wait(timeout=60) == 0, err.text()
    finally:
        if tool.poll() is None:  # the tool did not take its bpftrace's stop in hand
            os.kill(engine_pid, signal.SIGCONT)
    records = json_records(out.text())
    assert _markers(records) == list(range(150))
    assert records[-1] == {**records[-1], "event": "end", "execs": 150, "kernel_execs": 150,
                           "missing_execs": 0}
    assert "had been stopped by a signal and was continued" in err.text()


def test_a_killed_bpftrace_fails_the_run_with_its_loss_unknown(engine: str,
                                                               nothing_left_running: None,
                                                               tmp_path: Path) -> None:
    helper = ("import os, sys, time\n"
              "for i in range(20):\n"
              "    pid = os.fork()\n"
              "    if pid == 0: os.execv('/bin/true', ['/bin/true', f'bpx-{i}'])\n"
              "    os.waitpid(pid, 0)\n"
              "time.sleep(600)\n")
    rec = tmp_path / "killed.rec"
    tool, out, err = _start("execve", "--json", "--bpftrace", engine, "--record", str(rec),
                            "--", sys.executable, "-c", helper)
    out.wait_for(lambda line: '"bpx-19"' in line)
    os.kill(bpftrace_of(tool.pid), signal.SIGKILL)
    assert tool.wait(timeout=60) == 1, err.text()
    records = json_records(out.text())
    assert _markers(records) == list(range(20))
    assert records[-1] == {**records[-1], "event": "end", "kernel_execs": None,
                           "missing_execs": None}
    stderr = err.text()
    assert "killed by signal 9 while tracing" in stderr
    assert "how many execs the kernel saw is unknown" in stderr
    assert "Traceback" not in stderr
    # its replay says what the live run said, at the time it said it (within the moment
    # between the recording's end and the end line)
    replayed = run_tool("--replay", str(rec), "--json")
    assert replayed.returncode == 0, replayed.stderr
    end = replayed.records[-1]
    assert end == {**records[-1], "time": end["time"]}
    assert 0 <= (_ns(records[-1]["time"]) - _ns(end["time"])) < 10**9
    assert "how many execs the kernel saw is unknown (bpftrace was killed)" in \
        replayed.stderr
    # the command it followed (sleeping for 600 s) was ended with it: nothing_left_running



# fork+exec of /bin/true by the exec_cases workload (the runs filter on its name): their
# records outgrow every buffer on the way (bpftrace's at --buffer-pages 8, the pipes)
BURST = 8000


def _lossy_run(engine: str, burst: str, *args: str) -> tuple[subprocess.Popen[str], Lines]:
    tool = subprocess.Popen(tool_command("execve", "--comm", Path(burst).name, "--buffer-pages",
                                         "8", "--bpftrace", engine, *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert tool.stderr is not None
    err = Lines(tool.stderr)
    err.wait_for(lambda line: line.startswith("Tracing"))
    return tool, err


MEMORY_BOUND_MB = 200  # the tool alone takes about 40


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    [line] = [ln for ln in status.splitlines() if ln.startswith("VmHWM:")]
    return int(line.split()[1]) / 1024


@pytest.fixture
def burst(exec_cases: str, tmp_path: Path) -> str:
    """The workload under a name of this test's own, which the run follows by: what
    another run of exec_cases on the host execs meanwhile is not counted."""
    own = tmp_path / f"burst{os.getpid() % 10**9}"
    shutil.copy(exec_cases, own)
    return str(own)


def _burst(burst: str) -> None:
    subprocess.run([burst, "storm", str(BURST), "2"], check=True, timeout=600)


def test_a_reader_that_stops_reading_gets_the_loss_counted_exactly(engine: str, burst: str,
                                                                  nothing_left_running: None
                                                                  ) -> None:
    tool, err = _lossy_run(engine, burst, "--json")
    _burst(burst)  # while nobody reads the tool's output
    assert tool.poll() is None, err.text()  # blocked on its output, not gone
    assert _peak_rss_mb(tool.pid) < MEMORY_BOUND_MB  # and not holding the burst in memory
    assert tool.stdout is not None
    out = Lines(tool.stdout)
    tool.send_signal(signal.SIGINT)
    assert tool.wait(timeout=120) == 0, err.text()
    records = json_records(out.text())
    end = records[-1]
    shown = sum(r.get("event") == "exec" for r in records)
    assert end["execs"] == shown and end["kernel_execs"] == BURST, err.text()
    assert end["missing_execs"] == BURST - shown > 0
    assert end["lost_events"] > 0
    assert f"the kernel reported {BURST}: {BURST - shown} execs were lost" in err.text()


def test_a_tool_stopped_during_a_burst_counts_the_loss_exactly(engine: str, burst: str,
                                                              nothing_left_running: None
                                                              ) -> None:
    tool, err = _lossy_run(engine, burst)
    assert tool.stdout is not None
    out = Lines(tool.stdout)
    out.wait_for(lambda line: line.lstrip().startswith("TIME"))
    os.kill(tool.pid, signal.SIGSTOP)
    try:
        _burst(burst)
    finally:
        os.kill(tool.pid, signal.SIGCONT)
    tool.send_signal(signal.SIGINT)
    assert tool.wait(timeout=120) == 0, err.text()
    rows = out.text().splitlines()[1:]  # under the header; incomplete rows count too
    missing = BURST - len(rows)
    assert missing > 0
    assert f"the kernel reported {BURST}: {missing} execs were lost on the way" in err.text()


def test_a_thread_killed_inside_its_exec_shows_killed_not_an_errno(engine: str,
                                                                   exec_cases: str,
                                                                   tmp_path: Path,
                                                                   nothing_left_running: None
                                                                   ) -> None:
    """Two threads exec at once, 2,000 times: the loser dies in its execve, whose return
    value (ERESTARTNOINTR, E2BIG...) no one sees. strace shows `= ?`; so must this."""
    out = tmp_path / "events.jsonl"
    recording = tmp_path / "race.rec"
    run = run_tool("execve", "--json", "-o", str(out), "--record", str(recording),
                   "--bpftrace", engine, "--", exec_cases, "exec-race", "2000", output=out)
    assert run.returncode == 0, run.stderr
    races = [e for e in run.execs() if e["argv"][:1] == ["/bin/true"]]  # type: ignore[index]
    won = [e for e in races if e["ret"] == 0]
    killed = [e for e in races if e["killed"]]
    assert len(won) == 2000 and killed
    assert all(e["ret"] is None and e["errno"] is None for e in killed)
    assert len(won) + len(killed) == len(races), [e for e in races if e not in won + killed]
    table = run_tool("--replay", str(recording), "--columns", "pid,result,argv")
    rows = [line.split() for line in table.stdout.splitlines()[1:]]
    assert sum(row[1] == "killed" for row in rows) == len(killed)


def test_arguments_that_could_not_be_read_are_flagged_not_shown_empty(
        engine: str, exec_cases: str, tmp_path: Path, nothing_left_running: None) -> None:
    """A failed exec whose arguments lie in a page that is not present (a file mapping
    the caller never touched; the kernel fails on the path before copying them): a
    tracer reads zeros there. They are flagged, never passed off as empty arguments."""
    out = tmp_path / "events.jsonl"
    run = run_tool("execve", "--json", "-o", str(out), "--bpftrace", engine,
                   "--", exec_cases, "unreadable-argv", output=out)
    assert run.returncode == 0, run.stderr
    [failed] = [e for e in run.execs() if e["filename"] == "/nonexistent/bpx-unreadable"]
    assert failed["errno"] == "ENOENT" and failed["argv"] == ["", ""]
    assert failed["unreadable"] == ["/argv/0", "/argv/1"]
    assert all(e["unreadable"] == [] for e in run.execs() if e is not failed)


def test_a_bpftrace_past_its_grace_is_killed_and_waited_for(
        engine: str, monkeypatch: pytest.MonkeyPatch, nothing_left_running: None) -> None:
    """A bpftrace that does not end within the grace for its stop is killed; the kernel
    still detaches its probes before it is gone, and the run waits for that: how it ended
    is known (the signal), and nothing is left behind."""
    from bptrace_exec.run import session as session_module
    from bptrace_exec.run.engine import find_engine

    monkeypatch.setattr(session_module, "STOP_GRACE_S", 0.0)  # killed at once
    text = (Path(__file__).parent / "golden" / "paths-cwd-exe.bt").read_text()
    strlen = re.search(r"BPFTRACE_STRLEN=(\d+)", text)
    assert strlen
    session = session_module.Session(text, find_engine(engine), buffer_pages=64,
                                     strlen=int(strlen.group(1)))
    session.deadline = time.monotonic() + 60
    lines = session.lines()
    try:
        for line in lines:
            if line and b'"ready\\n"' in line:
                break
    finally:
        lines.close()
        finished = session.close()
    assert finished.forced, finished
    assert finished.engine_status is not None and finished.engine_status < 0, finished
    assert not session.child.isalive()


def _ns(iso: object) -> int:
    """An ISO time as --json writes it, in ns since the epoch."""
    from datetime import datetime

    moment = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def test_a_bpftrace_that_never_attaches_is_stopped_in_a_run_given_a_duration(
        engine: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        nothing_left_running: None) -> None:
    """--duration counts from the moment every probe is attached: a bpftrace that never
    gets there is stopped a while after that moment would have come (a minute; a second
    here), a failure that says so, and the run ends."""
    from bptrace_exec import api, pipeline
    from bptrace_exec.errors import EXIT_RUNTIME, EngineFailure

    hangs = tmp_path / "hanging-bpftrace"
    hangs.write_text(f'#!/bin/sh\ncase "$1" in --version|-V) exec {engine} "$@";; esac\n'
                     "exec sleep 600\n")
    hangs.chmod(0o755)
    monkeypatch.setattr(pipeline, "START_WAIT_S", 1.0)
    with pytest.raises(EngineFailure) as failure, \
            api.trace("execve", duration=1, bpftrace=str(hangs)) as run:
        assert list(run) == []
    assert failure.value.exit_status == EXIT_RUNTIME
    assert "bpftrace had not attached its probes 2 s after it was started" in str(failure.value)
