"""bpftrace started while the tool loads (run.prestart): a command line's start is kept
by its run, made at once by the next run of it, and taken only if it is the start that
run makes; else ended by its PID. Counted by a bpftrace that logs each of its starts.
A run that follows a COMMAND keeps its start under its options: the next forks its own
command at its gate (run.gate) and starts bpftrace on that PID."""

from __future__ import annotations

import errno
import json
import os
import select
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from bptrace_exec.run.cache import CacheDir
from bptrace_exec.run.gate import GatedCommand
from bptrace_exec.run.prestart import prestart
from bptrace_exec.run.spawn import Listing, Start, spawn
from conftest import children, run_tool, started, tool_command

PROBES = Path(__file__).parent.parent / "probes"


class Runs:
    """Runs of one command line, each until it has shown an exec of the marker."""

    def __init__(self, engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log = tmp_path / "starts.log"
        self.log.touch()
        self.bpftrace = tmp_path / "bpftrace"
        self.bpftrace.write_text(f'#!/bin/sh\necho "$*" >> {self.log}\nexec {engine} "$@"\n')
        self.bpftrace.chmod(0o755)
        self.marker = tmp_path / f"pre{os.getpid()}"
        shutil.copy("/bin/true", self.marker)
        self.profile = tmp_path / "exec.yaml"
        shutil.copy(PROBES / "execve.yaml", self.profile)
        self.out = tmp_path / "out.jsonl"
        self.kept = tmp_path / "cache" / "bptrace-exec" / "starts"
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        self.argv = [str(self.profile), "--json", "--bpftrace", str(self.bpftrace),
                     "-o", str(self.out)]

    def starts(self) -> int:
        """Of a program (not of `bpftrace --version`)."""
        return sum(" -f json " in line for line in self.log.read_text().splitlines())

    def followed(self, *command: str) -> int:
        """How many times bpftrace was started for one run of `-- COMMAND`, which traced
        the command's exec, once."""
        before = self.starts()
        done = run_tool(*self.argv, "--", *command, output=self.out)
        assert done.returncode == 0, done.stderr
        assert [(e["argv"], e["ret"]) for e in done.execs()] == [(list(command), 0)]
        return self.starts() - before

    def traced(self) -> int:
        """How many times bpftrace was started for one run, which traced the marker."""
        before = self.starts()
        with started(tool_command(*self.argv)) as run:
            run.lines.wait_for(lambda line: line.startswith("Tracing"))
            subprocess.run([self.marker], check=True)
        assert run.proc.returncode == 0, run.lines.text()
        rows = [json.loads(line) for line in self.out.read_text().splitlines()]
        assert [r["ret"] for r in rows if r.get("filename") == str(self.marker)] == [0]
        return self.starts() - before


@pytest.mark.root
def test_a_command_line_run_again_takes_its_early_start_only_if_it_is_this_run_s(
        engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        nothing_left_running: None) -> None:
    runs = Runs(engine, tmp_path, monkeypatch)
    assert runs.traced() == 1  # nothing kept: started once, when the tool had loaded
    assert len(list(runs.kept.iterdir())) == 1
    # a new description changes the program's header, not the command line: the early
    # start is not this run's, so it is ended and the run starts its own
    runs.profile.write_text(runs.profile.read_text().replace(
        "description: Trace", "description: Follow"))
    assert runs.traced() == 2
    # that run kept its own start: the next takes it (an early start not taken would be
    # ended, and a second one made, as above)
    assert runs.traced() == 1
    [kept] = [Start.from_text(f.read_text().partition("\n")[2], 0) for f in runs.kept.iterdir()]
    assert kept is not None and "Follow every execve" in kept.program


@pytest.mark.root
def test_an_early_start_no_run_takes_is_ended_and_forgotten(
        engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        nothing_left_running: None) -> None:
    runs = Runs(engine, tmp_path, monkeypatch)
    assert runs.traced() == 1
    good = runs.profile.read_text()
    runs.profile.write_text(good.replace("version: 1", "version: 7"))
    failed = subprocess.run(tool_command(*runs.argv), capture_output=True, text=True,
                            timeout=120)
    assert failed.returncode == 2 and "version" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr
    assert runs.starts() == 2  # the early start, ended by the run that failed
    assert [f.read_text() for f in runs.kept.iterdir()] == [""]  # forgotten
    runs.profile.write_text(good)
    assert runs.traced() == 1  # no early start: none was kept


def test_a_kept_start_is_made_at_once_and_taken_as_it_is(tmp_path: Path) -> None:
    """With a bpftrace stand-in that waits for input: the early process, with its
    program and BTF in memory."""
    cache = CacheDir(tmp_path, "starts")
    argv = ["execve", "--json"]
    early = prestart(argv, cache)
    assert early is not None and early.spawned is None  # nothing kept yet
    start = Start("/bin/sh", ["-c", "read -r _"], {"BPFTRACE_PRESTART": "1"}, PROGRAM,
                  b"\x9f\xeb", None, os.getpid(), None)
    early.keep(start)
    again = prestart(argv, cache)
    try:
        assert again is not None and again.spawned is not None and again.start == start
        pid = again.spawned.pid
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[:3] == [b"/bin/sh", b"-c", b"read -r _"]
        assert cmdline[-2:] == [str(os.getpid()).encode(), b""]  # the tracer's PID: this one
        program = Path(f"/proc/{pid}/fd/{again.spawned.program_fd}").read_text()
        assert program == PROGRAM
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"BPFTRACE_PRESTART=1" in environ
        assert any(e.startswith(b"BPFTRACE_BTF=/dev/fd/") for e in environ)
        other = Start(start.engine, start.flags, {"BPFTRACE_PRESTART": "2"}, PROGRAM,
                      start.btf, None, os.getpid(), None)
        assert again.take(other) is None  # not this start: ended, and not taken again
        assert not Path(f"/proc/{pid}").exists()
        assert again.take(start) is None
    finally:
        if again is not None:
            again.discard()
    early.keep(start)  # (the discard above forgot it)
    third = prestart(argv, cache)
    assert third is not None
    taken = third.take(start)
    assert taken is not None and taken.pid != pid
    taken.end()
    assert not Path(f"/proc/{taken.pid}").exists()
    assert prestart([*argv, "--"], cache) is None  # no COMMAND after --: an error to come


PROGRAM = 'BEGIN { printf("ready\\n"); }\n'


@pytest.mark.root
def test_a_command_run_with_the_same_options_takes_the_early_start_with_its_own_command(
        engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        nothing_left_running: None) -> None:
    runs = Runs(engine, tmp_path, monkeypatch)
    assert runs.followed(str(runs.marker)) == 1  # nothing kept
    assert runs.followed(str(runs.marker), "another", "command") == 1  # the early start
    runs.profile.write_text(runs.profile.read_text().replace(
        "description: Trace", "description: Follow"))
    # the early bpftrace is not this run's, ended; the early command is, taken
    assert runs.followed(str(runs.marker), "x") == 2
    # a run that fails never releases the command forked for it: it is never exec'd
    runs.profile.write_text(runs.profile.read_text().replace("version: 1", "version: 7"))
    never = tmp_path / "never"
    before = runs.starts()
    failed = run_tool(*runs.argv, "--", "/usr/bin/touch", str(never))
    assert failed.returncode == 2 and "version" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr and not never.exists()
    assert runs.starts() == before + 1  # the early start was made, with its command


def test_a_command_s_kept_start_forks_its_command_at_the_gate_and_names_its_pid(
        tmp_path: Path) -> None:
    """With a bpftrace stand-in that waits for input: the start is kept under the options
    alone, with how the command's output goes; the next run with those options forks its
    own command, held at its gate, and the early process has its PID as $2. A command
    that is not the run's own is ended at its gate, never exec'd."""
    cache = CacheDir(tmp_path, "starts")
    options = ["execve", "--json"]
    first = prestart([*options, "--", "make"], cache)
    assert first is not None and first.gate is None and first.spawned is None
    start = Start("/bin/sh", ["-c", "read -r _"], {}, PROGRAM, None, None, os.getpid(), 1)
    kept = GatedCommand(["/bin/true"], stdout_to_stderr=True)
    kept.end()  # never released
    first.keep(start, kept)
    done = tmp_path / "done"
    touch = ["/usr/bin/touch", str(done)]
    again = prestart([*options, "--", *touch], cache)
    try:
        assert again is not None and again.gate is not None and again.spawned is not None
        gate = again.gate.pid
        assert again.gate.argv == touch and again.gate.stdout_to_stderr
        engine = again.spawned.pid
        cmdline = Path(f"/proc/{engine}/cmdline").read_bytes().split(b"\0")
        assert cmdline[-3:] == [str(os.getpid()).encode(), str(gate).encode(), b""]
        assert again.gated(touch, stdout_to_stderr=False, output=None) is None  # not it
        assert not Path(f"/proc/{gate}").exists() and not done.exists()
        # nor the bpftrace that names it: the run's own start cannot be that one
        assert again.spawned is None and not Path(f"/proc/{engine}").exists()
        assert again.gated(touch, stdout_to_stderr=True, output=None) is None  # once
    finally:
        if again is not None:
            again.discard()  # nothing left of it to end: the start stays kept
    third = prestart([*options, "--", *touch], cache)
    try:
        assert third is not None and third.spawned is not None
        command = third.gated(touch, stdout_to_stderr=True, output=None)
        assert command is not None
        command.release()
        assert select.select([command.pidfd], [], [], 30)[0]  # it has ended
        assert command.poll() == 0 and done.exists()
        command.end()
    finally:
        if third is not None:
            third.discard()
    assert not children(os.getpid())
    # a command writing to a file of its own keeps no start: the file is opened as the
    # command is forked, which the next run would do before checking its command line
    other = prestart([*options, "--command-output", "out", "--", "make"], cache)
    assert other is not None
    writes = GatedCommand(["/bin/true"], stdout_to_stderr=True, output=str(tmp_path / "out"))
    writes.end()
    other.keep(start, writes)
    assert not cache.read(other.name)


def test_a_kept_start_that_could_do_harm_or_is_not_one_is_not_made(tmp_path: Path) -> None:
    """What a start sets and runs is checked before it is made; whatever the kept file
    holds, no error: the run starts bpftrace itself."""
    cache = CacheDir(tmp_path, "starts")
    argv = ["openat"]
    writable = tmp_path / "sh"
    shutil.copy("/bin/sh", writable)
    writable.chmod(0o777)
    harmful = [
        Start("/bin/sh", ["-c", "read -r _"], {"LD_PRELOAD": "/tmp/x.so"}, PROGRAM, None,
              None, 0, None),  # a variable that is not bpftrace's
        Start(str(writable), ["-c", "read -r _"], {}, PROGRAM, None, None, 0,
              None),  # a binary others may change
        Start("sh", ["-c", "read -r _"], {}, PROGRAM, None, None, 0, None),  # not a path
        Start("/bin/sh", ["-c", "read -r _"], {}, PROGRAM, None,
              Listing("/etc/hostname", 1, 2, ("/etc/passwd",)), 0, None),  # bound elsewhere
        Start("/bin/sh", ["-c", "read -r _"], {}, PROGRAM, None,
              Listing("/x", 1, 2, ("/sys/kernel/\udcff/available_events",)), 0,
              None),  # a name that is no bytes
    ]
    early = prestart(argv, cache)
    assert early is not None
    for start in harmful:
        early.keep(start)
        made = prestart(argv, cache)
        assert made is not None and made.spawned is None, start.to_text()
    name = early.name
    for text in ("{", "[]", '{"engine": 1}', early.key + "\n{", early.key + "\n[]"):
        assert cache.write(name, text)
        made = prestart(argv, cache)
        assert made is not None and made.spawned is None, text
    gone = tmp_path / "gone"
    gone.mkdir()
    here = os.getcwd()
    os.chdir(gone)
    try:
        gone.rmdir()
        assert prestart(argv, cache) is None  # a folder that is gone: no key for it
    finally:
        os.chdir(here)


def test_a_start_that_cannot_exec_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OSError) as failed:
        spawn(Start(str(tmp_path / "nothing"), [], {}, PROGRAM, None, None, 0, None))
    assert failed.value.errno == errno.ENOENT
    assert failed.value.strerror == "No such file or directory"
    assert not children(os.getpid())  # reaped


def test_a_gated_command_runs_with_default_signals_and_may_die_at_its_gate(
        tmp_path: Path) -> None:
    """Python ignores SIGPIPE: a command forked from it would inherit that across exec,
    and a shell loop writing into `head -1` would never end. A command that died before
    its release (Ctrl-C reaches the whole terminal's group) is released without error,
    its end reported."""
    out = tmp_path / "out"
    command = GatedCommand(["/bin/sh", "-c", "grep SigIgn /proc/self/status"],
                           stdout_to_stderr=False, output=str(out))
    command.release()
    assert select.select([command.pidfd], [], [], 30)[0]
    assert command.poll() == 0
    ignored = int(out.read_text().split()[1], 16)
    assert not ignored & (1 << (13 - 1) | 1 << (25 - 1)), out.read_text()  # SIGPIPE, SIGXFSZ
    command.end()
    dead = GatedCommand(["/bin/true"], stdout_to_stderr=True)
    os.kill(dead.pid, signal.SIGKILL)
    assert select.select([dead.pidfd], [], [], 30)[0]
    dead.release()  # no BrokenPipeError
    assert dead.poll() == 128 + signal.SIGKILL
    dead.end()
    assert not children(os.getpid())

