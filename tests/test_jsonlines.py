"""JSON lines read back into Events (--from's tree and timeline), no root: every exec line
of a replay of each record version is the line its Event writes again."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bptrace_exec import api
from bptrace_exec.output.jsonlines import NotAnEvent, event_of
from bptrace_exec.output.render import Renderer
from bptrace_exec.output.text import json_line
from conftest import tool_command
from test_record import VERSIONS, recording


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_a_line_reads_back_into_the_event_that_wrote_it(tmp_path: Path, version: int) -> None:
    path, _ = recording(tmp_path, version)
    with api.replay(str(path)) as trace:
        renderer = Renderer(trace.profile)
    lines = subprocess.run(tool_command("--replay", str(path), "--json", "-q"),
                           capture_output=True, text=True, check=True).stdout.splitlines()
    execs = [line for line in lines if line.startswith('{"event":"exec"')]
    assert len(execs) > 20 and any('"b64"' in line for line in execs)  # bytes not UTF-8
    for line in execs:
        event = event_of(json.loads(line))
        assert event is not None and json_line(renderer.to_dict(event)) == line


def test_an_end_reads_back_with_its_signal_and_status() -> None:
    line = {"event": "exit", "time": "2026-12-07T22:33:32.007709Z", "syscall": "process_exit",
            "pid": 6846, "ppid": 6845, "uid": 0, "tid": 6846, "gid": 0, "euid": 0, "egid": 0,
            "loginuid": None, "sessionid": None, "tty": "pts/1", "comm": "sh", "status": 0,
            "signal": "SIGSEGV", "core": 1, "cpu_user_ns": 0, "cpu_system_ns": 5, "ret": 139,
            "errno": None, "killed": False, "lifetime_ns": 6618391, "incomplete": False,
            "unreadable": [], "exec_id": "b4d6:6846:786:6", "parent_exec_id": "b4d6:6845:785:5"}
    event = event_of(line)
    assert event is not None and event.who is not None
    assert (event.values["signal"], event.values["status"], event.values["core"]) == (11, 0, 1)
    assert (event.latency_ns, event.who.tty, event.time_ns % 10**9) == (6618391, "pts/1",
                                                                         7709000)


@pytest.mark.parametrize("line", [{"event": "end", "time": "x"}, {"event": "lost", "count": 1},
                                  {"event": "call", "syscall": "openat"}, {"recording": "x"}])
def test_other_lines_are_no_event(line: dict[str, object]) -> None:
    assert event_of(line) is None


@pytest.mark.parametrize("change,said", [({"pid": "6846"}, "a number where '6846' is"),
                                         ({"time": "noon"}, "noon"),
                                         ({"time": "2026-12-07T22:33:32"}, "zone"),
                                         ({"event": "exit", "signal": "SIGNOPE"}, "SIGNOPE"),
                                         ({"argv": "sh"}, "a list"),
                                         ({"time": "9999-12-31T23:59:59-01:00"}, "since 1970"),
                                         ({"exec_id": "b:7:x:2"}, "an exec id"),
                                         ({"exec_id": "b:7:9:2", "parent_exec_id": ""},
                                          "an exec id")])
def test_a_line_that_only_looks_like_one_says_what_is_wrong(change: dict[str, object],
                                                            said: str) -> None:
    line: dict[str, object] = {
        "event": "exec", "time": "2026-12-07T22:33:31.998405Z", "syscall": "execve",
        "pid": 6846, "ppid": 6845, "uid": 0, "tid": 6846, "comm": "sh", "filename": "/bin/sh",
        "argv": ["sh"], "ret": 0, "killed": False, "latency_ns": 5, "lifetime_ns": 9,
        "exec_id": None, "gid": 0, "euid": 0, "egid": 0}
    assert event_of(line) is not None
    with pytest.raises(NotAnEvent, match=said):
        event_of({**line, **change})
    missing = {k: v for k, v in line.items() if k != "comm"}
    with pytest.raises(NotAnEvent, match="'comm'"):
        event_of(missing)


def test_from_draws_only_what_holds_the_ends_of_processes(tmp_path: Path) -> None:
    """--from --tree needs lines written with the ends of processes; a recording is
    drawn with --replay; lines that are not events are skipped, and said to be."""
    path, _ = recording(tmp_path)
    lines = tmp_path / "execs.jsonl"
    subprocess.run(tool_command("--replay", str(path), "--json", "-q", "-o", str(lines)),
                   check=True)
    execs_only = subprocess.run(tool_command("--from", str(lines), "--tree"),
                                capture_output=True, text=True)
    assert execs_only.returncode == 2 and "no ends of processes" in execs_only.stderr
    assert "--exits" in execs_only.stderr and "Traceback" not in execs_only.stderr
    recorded = subprocess.run(tool_command("--from", str(path), "--timeline",
                                           str(tmp_path / "t.svg")), capture_output=True,
                              text=True)
    assert recorded.returncode == 2 and f"--replay {path}" in recorded.stderr
    end = {"event": "exit", "time": "2026-12-07T22:33:32.007709Z", "syscall": "process_exit",
           "pid": 7, "ppid": 1, "uid": 0, "tid": 7, "comm": "sh", "status": 3, "signal": "0",
           "core": 0, "ret": 3, "killed": False, "lifetime_ns": 5, "exec_id": "b:7:9:2",
           "parent_exec_id": "b:1:1:1", "gid": 0, "euid": 0, "egid": 0, "loginuid": None,
           "sessionid": None, "tty": None}
    call = {"event": "call", "syscall": "openat"}
    lines.write_text(f"{json.dumps(end)}\nnot json\n{json.dumps({**end, 'pid': 'x'})}\n"
                     f"{json.dumps(call)}\n" + '{"event": "end", "time": "x"}\n')
    drawn = subprocess.run(tool_command("--from", str(lines), "--tree"),
                           capture_output=True, text=True)
    assert drawn.returncode == 0 and "exit 3" in drawn.stdout
    assert "3 line(s)" in drawn.stderr and "skipped" in drawn.stderr
