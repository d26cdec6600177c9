"""--env NAME: variables of each new program's environment, read from the new image in
the kernel, exact, checked against /proc/PID/environ of the same processes while they
run, on every bpftrace version; the block's limit; refusals."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bptrace_exec.errors import SpecError
from bptrace_exec.records import ENV_BYTES
from bptrace_exec.spec import load_profile, with_overrides
from conftest import json_records, run_tool, started, tool_command, wait_until
from expectations import as_bytes

WANTED = {b"PATH": b"/opt/x:/usr/bin", b"LD_PRELOAD": b"", b"SUDO_USER": b"alice",
          b"ODD": b"new\nline \xff\xfe not utf-8", b"SECRET": b"hunter2"}


def proc_environ(pid: int) -> dict[bytes, bytes]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.partition(b"=")[::2] for p in pairs if p)


def exact(env: dict[str, str]) -> dict[bytes, bytes]:
    return {as_bytes(k): as_bytes(v) for k, v in env.items()}


@pytest.mark.root
def test_env_matches_proc_environ(engine: str, tmp_path: Path, markers: Path,
                                  nothing_left_running: None) -> None:
    waiter = markers / "waits-with-an-env"
    shutil.copy("/bin/sleep", waiter)
    out = tmp_path / "execs.jsonl"
    big = {b"BIG%d" % i: b"v" * 100 for i in range(ENV_BYTES // 100 + 5)}
    with started(tool_command("--json", "-o", str(out), "--env", "*", "--bpftrace", engine,
                              "--duration", "300")) as (_, lines):
        lines.wait_for(lambda line: line.startswith("Tracing"))
        small = subprocess.Popen([str(waiter), "300"], env=WANTED)
        large = subprocess.Popen([str(waiter), "301"], env={**WANTED, **big})
        try:
            def execs() -> dict[int, dict[str, object]]:
                found = {e["pid"]: e for e in json_records(out.read_text())
                         if e.get("filename") == str(waiter)}
                return found if {small.pid, large.pid} <= set(found) else {}
            found = wait_until(execs, "both programs' execs")
            environ = {p.pid: proc_environ(p.pid) for p in (small, large)}
        finally:
            for p in (small, large):
                p.kill()
                p.wait(timeout=30)
    assert exact(found[small.pid]["env"]) == environ[small.pid] == WANTED  # type: ignore[arg-type]
    assert found[small.pid]["env_truncated"] is False
    cut = exact(found[large.pid]["env"])  # type: ignore[arg-type]
    assert found[large.pid]["env_truncated"] is True
    assert len(b"".join(k + b"=" + v + b"\0" for k, v in cut.items())) <= ENV_BYTES + 100
    whole = [k for k, v in cut.items() if environ[large.pid].get(k) == v]
    assert len(whole) >= len(cut) - 1, "only the last variable read may be cut short"


@pytest.mark.root
def test_only_the_names_asked_for(engine: str, tmp_path: Path,
                                  nothing_left_running: None) -> None:
    out, recording = tmp_path / "execs.jsonl", tmp_path / "run.rec"
    run = run_tool("execve", "--env", "PATH", "--env", "LD_PRELOAD", "--env", "NONE",
                   "--json", "-o", str(out), "--record", str(recording), "--bpftrace", engine,
                   "--", "env", "-i",
                   "PATH=/a:/b", "LD_PRELOAD=", "SECRET=s", "/bin/sh", "-c",
                   "/bin/true; /nonexistent-program; exit 0", output=out)
    assert run.returncode == 0, run.stderr
    by_program = {str(e["filename"]): e for e in run.execs()}
    assert by_program["/bin/true"]["env"] == {"PATH": "/a:/b", "LD_PRELOAD": ""}
    assert by_program["/nonexistent-program"]["env"] is None  # it started no program
    replayed = run_tool("--replay", str(recording), "--json")
    assert [e["env"] for e in replayed.execs()] == [e["env"] for e in run.execs()]
    table = run_tool("execve", "--env", "PATH", "--bpftrace", engine, "--", "env", "-i",
                     "PATH=/a:/b", "SECRET=s", "/bin/true", "table")
    [row] = [line for line in table.stdout.splitlines()
             if line.endswith("/bin/true table") and "env -i" not in line]
    assert " PATH=/a:/b " in row and "SECRET" not in row  # (it is in env's argv)
    assert "ENV" in table.stdout.splitlines()[0]


@pytest.mark.root
def test_the_end_of_a_process_has_no_environment(engine: str,
                                                 nothing_left_running: None) -> None:
    """--exits: an exit line starts no program, whatever its status: env is null, as a
    failed exec's is (an empty object would say the program had none of the names)."""
    run = run_tool("process", "--env", "A", "--json", "--bpftrace", engine, "--",
                   "env", "-i", "A=1", "/bin/sh", "-c", "/bin/false; exit 0")
    assert run.returncode == 0, run.stderr
    ends = [r for r in run.records if r["event"] == "exit"]
    assert len(ends) == 2 and all(e["env"] is None for e in ends), ends
    [sh] = [e for e in run.execs() if e["filename"] == "/bin/sh"]
    assert sh["env"] == {"A": "1"}


def test_env_is_for_the_programs_an_exec_starts() -> None:
    with pytest.raises(SpecError, match="the program an exec"):
        with_overrides(load_profile("openat"), env=["PATH"])
    with pytest.raises(SpecError, match="the program an exec"):
        with_overrides(load_profile("execve"), env=["PATH"], failed=True)
    with pytest.raises(SpecError, match="not an environment variable's name"):
        with_overrides(load_profile("execve"), env=["A=B"])
    assert with_overrides(load_profile("execve"), env=["*"]).context.env == ("*",)
    assert os.environ.get("PATH")  # the tests' own environment is not what they check
