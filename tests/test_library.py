"""The library under the command line: the README's example, run as it is, and bpftrace
stopped however a caller leaves a Trace (the end, a break, an exception, garbage)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import io
import os
import re
import sys
import threading
import time
from pathlib import Path

import pytest

import bptrace_exec
from conftest import ROOT

pytestmark = pytest.mark.root


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- library-example: begin -->\n```python\n(.*?)```", text, re.S)
    assert match, "the README shows the library's example"
    return match.group(1)


def test_the_readme_example_runs(engine: str, monkeypatch: pytest.MonkeyPatch,
                                 nothing_left_running: None) -> None:
    monkeypatch.setenv("BPFTRACE", engine)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(readme_example(), "README.md", "exec"), {})  # noqa: S102
    lines = out.getvalue().splitlines()
    assert any("(b'ls', b'/')" in line and line.endswith("None") for line in lines), lines
    assert any("(b'./missing',)" in line and line.endswith("ENOENT") for line in lines), lines


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _bpftrace_of(trace: bptrace_exec.Trace) -> int:
    assert trace.session is not None
    return int(trace.session.child.pid)


LOOP = ["sh", "-c", "while :; do /bin/true; done"]  # execs until it is stopped


def test_leaving_the_loop_stops_bpftrace(engine: str, nothing_left_running: None) -> None:
    trace = bptrace_exec.trace("execve", command=LOOP, bpftrace=engine)
    for _event in trace:
        break
    assert not _alive(_bpftrace_of(trace))
    assert trace.session is not None and trace.session.command is not None
    assert not _alive(trace.session.command.pid)  # the command it started is ended too
    assert trace.finished is not None and trace.finished.requested


def test_an_exception_in_the_loop_stops_bpftrace(engine: str, nothing_left_running: None
                                                 ) -> None:
    trace = bptrace_exec.trace("execve", command=LOOP, bpftrace=engine)
    with pytest.raises(RuntimeError, match="the caller's"):
        for _event in trace:
            raise RuntimeError("the caller's")
    assert not _alive(_bpftrace_of(trace))


def test_a_trace_dropped_unread_stops_bpftrace(engine: str, nothing_left_running: None) -> None:
    trace = bptrace_exec.trace("execve", command=LOOP, bpftrace=engine)
    pid = _bpftrace_of(trace)
    assert _alive(pid)
    del trace
    gc.collect()
    assert not _alive(pid)


def test_a_trace_that_ends_leaves_bpftrace_to_end_on_its_own(engine: str,
                                                             nothing_left_running: None
                                                             ) -> None:
    """Once every CPU's mark is read, so are the counts bpftrace would print at exit:
    the trace ends there, and bpftrace, asked to stop, detaches its probes and is reaped
    in the background."""
    trace = bptrace_exec.trace("execve", command=["/bin/true", "bpx-drained"],
                               bpftrace=engine)
    assert [e["argv"] for e in trace] == [(b"/bin/true", b"bpx-drained")]
    assert trace.finished is not None and trace.finished.drained
    assert trace.finished.engine_status is None  # not waited for
    assert trace.summary.kernel_total == 1 and trace.summary.missing == 0
    _ends(_bpftrace_of(trace))


def test_stats_in_the_kernel_end_with_their_last_report(engine: str,
                                                        nothing_left_running: None) -> None:
    """Asked for the end, a stats program prints its counts at once: the run takes them,
    not the ones bpftrace prints as it exits, after detaching every probe."""
    with bptrace_exec.trace("execve", command=["sh", "-c", "/bin/true; /nope; :"],
                            bpftrace=engine, stats=True) as trace:
        stats = trace.counts()
    assert stats.count == 3 and stats.failed == 1
    assert trace.finished is not None and trace.finished.drained
    _ends(_bpftrace_of(trace))


def test_the_end_is_the_main_thread_s_rename_whichever_thread_asks(
        engine: str, nothing_left_running: None) -> None:
    """A thread of the tracer that names itself (Python 3.14 names each one it starts)
    leaves the program reporting; a stop asked from another thread ends the trace, its
    records and counts drained."""
    trace = bptrace_exec.trace("execve", command=LOOP, bpftrace=engine, duration=60)
    renamed, reported_after, events = 0, False, iter(trace)
    for event in events:
        if not renamed:
            namer = threading.Thread(target=_name_this_thread)
            namer.start()
            namer.join()
            renamed = time.time_ns()
        elif event.time_ns > renamed:  # made after the rename: still reported
            reported_after = True
            threading.Thread(target=trace.stop).start()
            break
    for _event in events:  # the rest, up to the end the other thread asked for
        pass
    assert reported_after, "the thread's rename ended the program's reports"
    assert trace.finished is not None and trace.finished.drained
    assert trace.summary.missing == 0


def _name_this_thread() -> None:
    ctypes.CDLL(None).prctl(15, b"bpx-named", 0, 0, 0)  # PR_SET_NAME


def _ends(pid: int) -> None:
    """bpftrace, left to end on its own, does."""
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_stats_and_replay(engine: str, tmp_path: Path, nothing_left_running: None) -> None:
    record = str(tmp_path / "run.rec")
    stats = bptrace_exec.stats("execve", command=["sh", "-c", "/bin/true; /nope; :"],
                               bpftrace=engine, record=record)
    assert stats.count == 3 and stats.failed == 1 and stats.unit == "execs"
    assert dict(stats.breakdowns["errno"]) == {"ENOENT": 1}
    events = list(bptrace_exec.trace("openat", command=[sys.executable, "-c",
                                                        "open('/nonexistent/x')"],
                                     bpftrace=engine, record=record))
    assert any(e["path"] == b"/nonexistent/x" and e.errno == "ENOENT" for e in events)
    replayed = list(bptrace_exec.replay(record))
    assert [(e.time_ns, e.values) for e in replayed] == [(e.time_ns, e.values) for e in events]
    assert os.path.getsize(record) > 0


def test_a_replay_refuses_what_only_recording_could_change(tmp_path: Path) -> None:
    from test_record import recording

    path, _ = recording(tmp_path)
    with pytest.raises(bptrace_exec.UserError, match="a replay cannot change comm, parents"):
        bptrace_exec.replay(str(path), comm=["sh"], parents=2)
    shown = bptrace_exec.replay(str(path), columns="pid,comm")
    assert shown.profile.columns == ("pid", "comm") and len(list(shown)) > 0


def test_an_option_not_known_is_named() -> None:
    with pytest.raises(bptrace_exec.UserError, match="no such option: colour") as error:
        bptrace_exec.trace("execve", colour=None)
    assert error.value.exit_status == 2 and "help(bptrace_exec.trace)" in str(error.value.hint)
    profile = bptrace_exec.profile_of("execve", comm=["sh"], context=True)
    assert profile.filters.comm == ("sh",) and profile.context.container
