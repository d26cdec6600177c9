"""--emit oneliner: one POSIX shell line, safe to paste for any value, that plain bpftrace
runs (tested live on every installed version)."""

from __future__ import annotations

import dataclasses
import shlex
import signal
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptrace_exec.codegen.oneliner import compact, exec_text_program, oneliner
from bptrace_exec.spec import Filters, Profile, parse_profile
from conftest import Lines
from test_injection import HARMLESS_ONELINE, comm_values, skeleton

BASE = parse_profile("version: 1\ndescription: d\n", source="probes/execve.yaml", name="execve")
GOLDEN = Path(__file__).parent / "golden" / "oneliner-comm-sh.txt"


def with_comm(comm: str) -> Profile:
    return dataclasses.replace(BASE, filters=Filters(comm=(comm,)))


def test_golden(request: pytest.FixtureRequest) -> None:
    line = oneliner(with_comm("sh"))
    if request.config.getoption("--update-goldens"):
        GOLDEN.write_text(line + "\n")
    assert line + "\n" == GOLDEN.read_text()
    assert "\n" not in line and line.startswith("bpftrace -e '")


@settings(deadline=None)
@given(comm_values(), st.sampled_from(["bpftrace", "/opt/bpf trace/bpftrace", "it's"]))
def test_shell_reads_back_exactly_the_program(comm: str, binary: str) -> None:
    words = shlex.split(oneliner(with_comm(comm), binary))  # POSIX shell word splitting
    assert words[:2] == [binary, "-e"] and len(words) == 3
    assert skeleton(words[2])[0] == HARMLESS_ONELINE


@settings(max_examples=300, deadline=None)
@given(comm_values())
def test_a_real_shell_agrees(comm: str) -> None:
    line = oneliner(with_comm(comm))
    out = subprocess.run(["sh", "-c", f"set -- {line}; printf '%s\\0' \"$@\""],
                         capture_output=True, check=True).stdout
    assert out.split(b"\0")[:-1] == [w.encode() for w in shlex.split(line)]


def test_compact_keeps_literals_whole() -> None:
    program = 'x  =  "a  b // not a comment"; // a comment\n/* block */ y'
    assert compact(program) == 'x = "a  b // not a comment"; y'
    assert "//" not in compact(exec_text_program(BASE)).replace('"//', "")


# one process named bpx-one: an exec that fails, then one that succeeds
FAIL_THEN_ECHO = ("import ctypes,os; ctypes.CDLL(None).prctl(15, b'bpx-one', 0, 0, 0)\n"
                  "try: os.execv('/nonexistent/bpx', ['bpx'])\n"
                  "except OSError: pass\n"
                  "os.execv('/bin/echo', ['/bin/echo', 'one two'])")


@pytest.mark.root
@pytest.mark.parametrize("result", ["any", "failed", "succeeded"])
def test_plain_bpftrace_runs_it(engine: str, result: str, nothing_left_running: None) -> None:
    profile = with_comm("bpx-one")
    if result != "any":
        profile = dataclasses.replace(profile, filters=dataclasses.replace(
            profile.filters, **{result: True}))
    line = oneliner(profile, engine)
    # exec: the shell becomes bpftrace, so the pid below is bpftrace's own
    proc = subprocess.Popen(["sh", "-c", f"exec {line}"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        lines = Lines(proc.stdout)
        # the header is printed by BEGIN, once every probe is attached
        lines.wait_for(lambda ln: "PROGRAM ARGS" in ln)
        subprocess.run(["python3", "-c", FAIL_THEN_ECHO], stdout=subprocess.DEVNULL,
                       check=True)
        last = "/nonexistent/bpx" if result == "failed" else "/bin/echo"  # made last
        lines.wait_for(lambda ln: last in ln)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:  # 0.17 now and then misses a SIGINT
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = lines.text()
    echo = [ln for ln in out.splitlines() if "/bin/echo" in ln]
    failed = [ln for ln in out.splitlines() if "/nonexistent/bpx" in ln]
    assert len(echo) == (result != "failed") and len(failed) == (result != "succeeded"), out
    assert all("/bin/echo\\x00one two\\x00" in row for row in echo)
    assert all(row.split()[3] == "-2" for row in failed)  # RET: ENOENT
