"""What the tool is given to work with, gone wrong: an output that is an input, a closed
stdout, a path the system refuses, a recording's disk full, SIGCHLD ignored by whoever
started it, a library trace started in a passing thread. A clear error and its exit
status, never a traceback, and what was traced kept."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import run_tool, tool_command
from test_record import recording


def test_an_output_that_is_an_input_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"event": "exec"}\n')
    for reads, writes in ((["--replay", str(source), "--json"], "-o"),
                          (["--replay", str(source), "--json"], "--summary"),
                          (["--replay", str(source)], "--export"),
                          (["--stats", "--from", str(source)], "-o"),
                          (["--stats", "--from", str(source)], "--export")):
        run = run_tool(*reads, writes, str(source))
        assert run.returncode == 2, run.stderr
        assert "would write over" in run.stderr and "Traceback" not in run.stderr
        assert source.read_text() == '{"event": "exec"}\n'  # untouched


def test_a_closed_stdout_is_an_output_error(tmp_path: Path) -> None:
    for args in (["execve", "--emit", "script"], ["--print-completion", "bash"]):
        run = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *tool_command(*args)],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 4, run.stderr
        assert "stdout is closed" in run.stderr and "Traceback" not in run.stderr
    # with -o FILE, stdout is not needed
    out = tmp_path / "script.bt"
    run = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh",
                          *tool_command("execve", "--emit", "script", "-o", str(out))],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert out.read_text().startswith("#!/usr/bin/env bpftrace")


def test_paths_the_system_refuses_are_errors(tmp_path: Path) -> None:
    loop = tmp_path / "a.csv"
    loop.symlink_to(tmp_path / "b.csv")
    (tmp_path / "b.csv").symlink_to(loop)
    empty = tmp_path / "none.jsonl"
    empty.write_text("")
    long_name = "a" * 300
    for args, status, said in (
            (["--stats", "--from", str(empty), "--export", str(loop)], 4, "cannot write"),
            (["--stats", "--from", str(empty), "--export", f"{tmp_path}/{long_name}.csv"], 4,
             "File name too long"),
            ([f"{tmp_path}/{long_name}.yaml", "--emit", "script"], 2, "File name too long"),
            ([long_name, "--emit", "script"], 2, "File name too long"),
            ([str(tmp_path), "--emit", "script"], 2, "is a folder"),
            (["--replay", str(tmp_path / "none.jsonl"), "-o", str(tmp_path)], 4,
             "cannot write")):
        run = run_tool(*args)
        assert run.returncode == status, (args, run.stderr)
        assert said in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_a_recording_nested_beyond_reason_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.rec"
    deep.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    run = run_tool("--replay", str(deep))
    assert run.returncode == 2 and "not a bptrace-exec recording" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.root
def test_a_recording_that_cannot_be_written_is_an_output_error(
        engine: str, tmp_path: Path, nothing_left_running: None) -> None:
    run = run_tool("execve", "--bpftrace", engine, "--record", "/dev/full", "--", "true")
    assert run.returncode == 4, run.stderr  # its first line: nothing is traced
    assert "cannot write the recording /dev/full" in run.stderr
    assert "nothing was recorded" in run.stderr and "replays" not in run.stderr
    assert "Traceback" not in run.stderr
    # its disk full as the run goes (a file-size limit past the program's size): the
    # recording ends there, every exec is still shown, and the summary is said
    record = tmp_path / "run.rec"

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))

    execs = 400
    run = run_tool("execve", "--bpftrace", engine, "--json", "--record", str(record), "--",
                   "sh", "-c", f"for i in $(seq {execs}); do /bin/true bpx-full; done",
                   preexec_fn=limited)
    assert run.returncode == 4, run.stderr
    assert f"cannot write the recording {record}" in run.stderr, run.stderr
    shown = [r for r in run.records if r.get("argv") == ["/bin/true", "bpx-full"]]
    assert len(shown) == execs, run.stderr
    assert run.records[-1]["event"] == "end", run.stdout[-500:]
    replayed = run_tool("--replay", str(record), "--json")
    kept = [r for r in replayed.records if r.get("argv") == ["/bin/true", "bpx-full"]]
    assert len(kept) < execs and "cut short" in replayed.stderr, replayed.stderr


IGNORING_SIGCHLD = """
import os, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # inherited through exec
os.execv(sys.argv[1], sys.argv[1:])
"""


@pytest.mark.root
def test_a_command_run_with_sigchld_ignored_gives_its_status(
        engine: str, nothing_left_running: None) -> None:
    run = subprocess.run([sys.executable, "-c", IGNORING_SIGCHLD,
                          *tool_command("execve", "--bpftrace", engine, "-q", "--",
                                        "sh", "-c", "exit 3")],
                         capture_output=True, text=True, timeout=120, start_new_session=True)
    assert run.returncode == 3, run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.root
def test_a_library_trace_started_in_a_passing_thread_lives_on(
        engine: str, nothing_left_running: None) -> None:
    from bptrace_exec import api

    started: list[api.Trace] = []
    thread = threading.Thread(target=lambda: started.append(
        api.trace("execve", live=api.Live(bpftrace=engine, duration=2))))
    thread.start()
    thread.join()  # the thread that forked bpftrace is gone
    with started[0] as trace:
        for _ in trace:  # raised EngineFailure when bpftrace died with that thread
            pass
    finished = trace.finished
    assert finished is not None and finished.requested, finished  # its duration ended it
    assert finished.killed != signal.SIGKILL, finished


def test_a_stderr_whose_reader_is_gone_costs_no_traceback(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # every write to stderr fails (EPIPE)
    try:
        run = subprocess.run(tool_command("--replay", str(tmp_path / "none.rec")),
                             stderr=write, stdout=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert run.returncode == 2  # the error's status, not a traceback's 1


@pytest.mark.root
def test_a_program_larger_than_the_file_size_limit_is_never_cut(
        engine: str, nothing_left_running: None) -> None:
    def limited() -> None:  # in the tool's process: its files, bpftrace's program too
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    run = subprocess.run(tool_command("execve", "--bpftrace", engine, "--duration", "1"),
                         capture_output=True, text=True, timeout=120, preexec_fn=limited)
    assert run.returncode == 3, run.stderr  # where it was cut, bpftrace refused it (1)
    assert "File too large" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.root
def test_root_without_the_capabilities_to_trace_is_told_so(
        engine: str, nothing_left_running: None) -> None:
    """As in a container that is not privileged: root, but no CAP_SYS_ADMIN (nor CAP_BPF
    and CAP_PERFMON); bpftrace's own error was status 1 and a bug report asked for."""
    dropped = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"]
    run = subprocess.run([*dropped, *tool_command("execve", "--bpftrace", engine,
                                                  "--duration", "1")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 3, run.stderr
    assert "CAP_BPF" in run.stderr and "Traceback" not in run.stderr
    kept = ["setpriv", "--bounding-set=-all,+bpf,+perfmon", "--inh-caps=-all", "--"]
    run = subprocess.run([*kept, *tool_command("execve", "--bpftrace", engine,
                                               "--duration", "1", "-q")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr  # those two are enough


@pytest.mark.root
def test_values_that_name_the_wrong_thing_say_what_it_is(tmp_path: Path,
                                                         nothing_left_running: None) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\n")  # not executable
    for args, status, said in (
            (["--bpftrace", str(tmp_path)], 3, f"{tmp_path} is a folder"),
            (["--bpftrace", str(script)], 3, f"{script} is not executable"),
            (["--", str(tmp_path)], 2, f"{tmp_path} is a folder"),
            (["--", str(script)], 2, f"{script} is not executable"),
            (["--buffer-pages", "0"], 2, "not a power of 2 between 1 and 65536"),
            (["--duration", "1e18"], 2, "at most 10,000,000")):
        run = run_tool("execve", *args)
        assert run.returncode == status, (args, run.stderr)
        assert said in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_an_empty_name_is_refused_not_taken_for_none() -> None:
    """`-o ''` wrote to stdout, `--bpftrace ''` ran PATH's bpftrace: as if not given."""
    for option in ("-o", "--bpftrace", "--replay", "--record", "--timeline"):
        run = run_tool("execve", option, "")
        assert run.returncode == 2, (option, run.stderr)
        assert f"{option} was given an empty name" in run.stderr, run.stderr


def test_a_full_disk_names_the_option_that_named_the_file(tmp_path: Path) -> None:
    rec, _ = recording(tmp_path)
    for option in ("-o", "--summary"):
        run = run_tool("--replay", str(rec), "--json", option, "/dev/full")
        assert run.returncode == 4, run.stderr
        assert f"write elsewhere with {option} FILE" in run.stderr, run.stderr
