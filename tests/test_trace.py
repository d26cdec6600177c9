"""Integration: the real tool, real bpftrace (every installed version), real execs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bptrace_exec.limits import FILTER_STRING_BYTES, FILTER_VALUES
from bptrace_exec.spec.model import ARGV_BYTES_RANGE
from bptrace_exec.spec.types import STR_FILTER_MAX
from conftest import ROOT, bpftrace_of, run_tool, tool_command, wait_until
from expectations import as_bytes, check_all, check_hidden_argv

pytestmark = pytest.mark.root
DRIVER = str(ROOT / "tests" / "workloads" / "exec_driver.py")


def test_every_hard_case_is_exact(engine: str, exec_cases: str, tmp_path: Path,
                                  nothing_left_running: None) -> None:
    out = tmp_path / "events.jsonl"
    run = run_tool("execve", "--json", "-o", str(out), "--bpftrace", engine,
                   "--", sys.executable, DRIVER, str(tmp_path), exec_cases, output=out)
    assert run.returncode == 0, run.stderr
    events = run.execs()
    assert events[0]["argv"][:2] == [sys.executable, DRIVER], "the command's exec comes first"
    check_all(events, str(tmp_path))
    check_hidden_argv(events)
    assert not (Path("/tmp/pwned")).exists()


AT_FDCWD, AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH = -100, 0x100, 0x1000


def test_execveat_shows_its_dirfd_flags_and_the_kernels_name(engine: str, exec_cases: str,
                                                             tmp_path: Path,
                                                             nothing_left_running: None
                                                             ) -> None:
    """execveat relative to a directory's fd, and fexecve (AT_EMPTY_PATH), each succeeding
    and failing: a failure's name is what the kernel names the program when it runs
    (/dev/fd/N/NAME, /dev/fd/N), as a success shows it; dirfd and flags as passed."""
    noexec = tmp_path / "not-executable"
    noexec.write_text("#!/bin/sh\n")
    noexec.chmod(0o644)
    missing = "bpx-no-such-program"
    cases = [  # exec_cases opens PATH as fd DIRFD: (PATH, DIRFD, NAME, FLAGS), then the row
        (("/usr/bin", 9, "true", AT_SYMLINK_NOFOLLOW), ("/dev/fd/9/true", None)),
        (("/usr/bin", 9, missing, 0), (f"/dev/fd/9/{missing}", "ENOENT")),
        (("/usr/bin/true", 10, "", AT_EMPTY_PATH), ("/dev/fd/10", None)),
        ((str(noexec), 10, "", AT_EMPTY_PATH), ("/dev/fd/10", "EACCES")),
        (("-", AT_FDCWD, missing, 0), (missing, "ENOENT")),
        (("/usr/bin", 9, "/usr/bin/true", 0), ("/usr/bin/true", None)),
    ]
    commands = [[exec_cases, "execveat", path, str(fd), name, str(flags), "bpx-at", f"case-{i}"]
                for i, ((path, fd, name, flags), _) in enumerate(cases)]
    script = ("import json, subprocess, sys\n"
              "for argv in json.loads(sys.argv[1]): subprocess.run(argv, check=True)\n")
    rec = tmp_path / "run.rec"
    run = run_tool("--json", "--record", str(rec), "--bpftrace", engine, "--",
                   sys.executable, "-c", script, json.dumps(commands))
    assert run.returncode == 0, run.stderr
    rows = [(e["syscall"], e["dirfd"], e["flags"], e["filename"], e["argv"], e["errno"])
            for e in run.execs() if e["argv"][:1] == ["bpx-at"]]
    assert rows == [("execveat", fd, flags, filename, ["bpx-at", f"case-{i}"], errno)
                    for i, ((_, fd, _, flags), (filename, errno)) in enumerate(cases)]
    execves = [e for e in run.execs() if e["argv"][:2] == [exec_cases, "execveat"]]
    assert len(execves) == len(cases)
    assert all((e["syscall"], e["dirfd"], e["flags"]) == ("execve", None, None)
               for e in execves)
    table = subprocess.run(tool_command("--replay", str(rec), "--columns",
                                        "syscall,dirfd,flags,result,filename,argv"),
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert table[0].split() == ["SYSCALL", "DIRFD", "FLAGS", "RET", "PROGRAM", "ARGS"]
    assert [ln.split()[:5] for ln in table if ln.split()[5:6] == ["bpx-at"]] == [
        ["execveat", "9", "AT_SYMLINK_NOFOLLOW", "0", "/dev/fd/9/true"],
        ["execveat", "9", "0", "ENOENT", f"/dev/fd/9/{missing}"],
        ["execveat", "10", "AT_EMPTY_PATH", "0", "/dev/fd/10"],
        ["execveat", "10", "AT_EMPTY_PATH", "EACCES", "/dev/fd/10"],
        ["execveat", "AT_FDCWD", "0", "ENOENT", missing],
        ["execveat", "9", "0", "0", "/usr/bin/true"]]


def _path_of_length(top: bytes, length: int, name: bytes) -> bytes:
    """A symlink to /bin/true at a path of exactly `length` bytes under `top`, its last
    name ending in `name`."""
    base = top + b"/"
    names, left = [], length - len(base)
    while left > 200 + len(name):
        names.append(b"d" * 199)
        left -= 200
    path = base + b"/".join([*names, b"p" * (left - len(name)) + name])
    fds = [os.open(top, os.O_DIRECTORY)]  # a name at a time: the path may pass PATH_MAX
    try:
        for directory in names:
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory, dir_fd=fds[-1])
            fds.append(os.open(directory, os.O_DIRECTORY, dir_fd=fds[-1]))
        os.symlink(b"/bin/true", os.path.basename(path), dir_fd=fds[-1])
    finally:
        for fd in fds:
            os.close(fd)
    assert len(path) == length
    return path


@pytest.fixture
def short_dir() -> Iterator[bytes]:
    """A directory of a short path, for paths of exact lengths from 24 bytes."""
    made = tempfile.mkdtemp(prefix="bpx", dir="/tmp").encode()
    try:
        yield made
    finally:
        shutil.rmtree(made)


def test_the_programs_path_is_exact_at_every_length(engine: str, exec_cases: str,
                                                    short_dir: bytes,
                                                    nothing_left_running: None) -> None:
    """The new image's path, read up to where exec laid it and not past it: at the edges
    of its 80-byte reads, at its longest, with bytes that are not UTF-8, with no
    environment (nothing then between argv and the path); and an execveat's through a
    directory's fd, whose name passes 4095 bytes (/dev/fd/N/ and a name of 4090)."""
    lengths = [24, 79, 80, 81, 159, 160, 161, 240, 1000, 4095]
    paths = [_path_of_length(short_dir, n, b"\xff\xfe-%d" % i) for i, n in enumerate(lengths)]
    relative = _path_of_length(short_dir, len(short_dir) + 1 + 4090, b"-at")
    fd = 9  # exec_cases opens the directory as this fd
    script = ("import os, subprocess, sys\n"
              "at = sys.argv.index('--at')\n"
              "for env in ({}, {'A': 'b'}):\n"
              "    for path in sys.argv[1:at]:\n"
              "        subprocess.run([path, 'bpx-len'], env=env, check=True)\n"
              "subprocess.run(sys.argv[at + 1:], check=True)\n")
    execveat = [exec_cases, "execveat", short_dir, str(fd), relative[len(short_dir) + 1:],
                "0", "at", "bpx-len"]
    out = short_dir.decode() + "/events.jsonl"
    # argv of the longest path, then bpx-len: 4,104 bytes, past the default 4,096 shown
    run = run_tool("--json", "-o", out, "--argv-bytes", "4200", "--bpftrace", engine, "--",
                   sys.executable, "-c", script,
                   *map(os.fsdecode, [*paths, "--at", *execveat]), output=Path(out))
    assert run.returncode == 0, run.stderr
    shown = [(as_bytes(e["filename"]), e["filename_truncated"], e["incomplete"])
             for e in run.execs() if e["argv"][1:] == ["bpx-len"]]
    at = b"/dev/fd/%d/" % fd + relative[len(short_dir) + 1:]
    assert len(at) > 4095
    # in the order their records arrive, which each CPU's buffer keeps, not across them
    assert sorted(shown) == sorted([(p, False, False) for p in paths] * 2 + [(at, False, False)])


def test_argv_is_exact_at_every_length(engine: str, tmp_path: Path,
                                      nothing_left_running: None) -> None:
    """A successful exec's argv block at every size through its first three 80-byte
    reads: each word read is masked to the block's end, where the environment starts
    (here a variable that must never show); the block's last byte not UTF-8."""
    sizes = range(2, 245)  # of the block: argv[0] alone, its NUL included
    script = ("import subprocess, sys\n"
              "for n in range(int(sys.argv[1]), int(sys.argv[2])):\n"
              "    subprocess.run([b'x' * (n - 2) + b'\\xfe'], executable='/bin/true',\n"
              "                   env={'LEAK': 'y' * 99}, check=True)\n")
    out = tmp_path / "events.jsonl"
    run = run_tool("--json", "-o", str(out), "--bpftrace", engine, "--", sys.executable,
                   "-c", script, str(sizes.start), str(sizes.stop), output=out)
    assert run.returncode == 0, run.stderr
    shown = sorted((len(as_bytes(e["argv"][0])) + 1, as_bytes(e["argv"][0]),
                    len(e["argv"]), e["argv_truncated"], e["incomplete"])
                   for e in run.execs() if e["argv"][0].startswith(("x", "\udcfe")))
    assert shown == [(n, b"x" * (n - 2) + b"\xfe", 1, False, False) for n in sizes]


def test_a_failed_exec_prints_nothing_past_its_strings(engine: str, tmp_path: Path,
                                                        nothing_left_running: None) -> None:
    """A failed exec's strings are read from the caller up to their NULs: what follows
    (here env's own environment, after the argv it passes on) reaches no record, and no
    recording keeps it."""
    out, recording = tmp_path / "execs.jsonl", tmp_path / "run.rec"
    secret = "bpx-secret-" + "s" * 60
    run = run_tool("execve", "--json", "-o", str(out), "--record", str(recording),
                   "--bpftrace", engine, "--", "env", "/nonexistent-bpx-prog", "last",
                   output=out, env=dict(os.environ, BPX_SECRET=secret))
    assert run.returncode == 127, run.stderr
    [failed] = [e for e in run.execs() if e["filename"] == "/nonexistent-bpx-prog"]
    assert failed["argv"] == ["/nonexistent-bpx-prog", "last"] and failed["errno"] == "ENOENT"
    printed = [json.loads(line)["data"] for line in recording.read_text().splitlines()
               if re.search(r'"data": "(elem|str) ', line)]
    assert sorted(p.split()[-1] for p in printed) == ["/nonexistent-bpx-prog",
                                                      "/nonexistent-bpx-prog", "last"]
    assert secret[:20] not in recording.read_text()


def test_burst_of_2000_execs_loses_none(engine: str, exec_cases: str, tmp_path: Path,
                                        nothing_left_running: None) -> None:
    out = tmp_path / "events.jsonl"
    run = run_tool("--json", "-o", str(out), "--bpftrace", engine,
                   "--", exec_cases, "storm", "2000", "2", output=out)
    assert run.returncode == 0, run.stderr
    trues = [e for e in run.execs() if e["filename"] == "/bin/true"]
    assert len(trues) == 2000
    assert all(e["ret"] == 0 and e["argv"] == ["/bin/true"] for e in trues)
    assert not [r for r in run.records if r.get("event") == "lost"]


def test_command_exit_status_and_output_kept_apart(engine: str, tmp_path: Path,
                                                   nothing_left_running: None) -> None:
    run = run_tool("--json", "--bpftrace", engine, "--", "sh", "-c", "echo out; exit 7")
    assert run.returncode == 7
    assert "out" in run.stderr.splitlines()  # the command's stdout: not in the records
    assert all(line.startswith("{") for line in run.stdout.splitlines())
    assert [e["argv"] for e in run.execs()] == [["sh", "-c", "echo out; exit 7"]]
    assert "bptrace-exec: 1 exec traced in " in run.stderr, run.stderr


def test_a_command_that_cannot_be_run(engine: str, tmp_path: Path,
                                     nothing_left_running: None) -> None:
    """An executable file the kernel cannot run (no #! line): its exec fails once traced,
    the status is a shell's 126, and --help's table of statuses says so."""
    script = tmp_path / "no-interpreter"
    script.write_text("echo hi\n")
    script.chmod(0o755)
    run = run_tool("--json", "--bpftrace", engine, "--", str(script))
    assert run.returncode == 126, run.stderr
    assert f"cannot run {script}: Exec format error" in run.stderr
    assert [e["errno"] for e in run.execs()] == ["ENOEXEC"]
    statuses = run_tool("--help").stdout.split("exit status:")[1]
    assert "126 if it could not be run" in " ".join(statuses.split())


def test_only_descendants_of_the_command_are_traced(engine: str, tmp_path: Path,
                                                    nothing_left_running: None) -> None:
    outsider = subprocess.Popen(["sh", "-c", "for i in $(seq 200); do /bin/true outsider; "
                                 "sleep 0.02; done"])
    try:
        run = run_tool("--json", "--bpftrace", engine, "--", "sh", "-c",
                       "sleep 1; (/bin/true inside)")
    finally:
        outsider.kill()
        outsider.wait()
    argvs = [e["argv"] for e in run.execs()]
    assert ["/bin/true", "inside"] in argvs
    assert ["/bin/true", "outsider"] not in argvs


@pytest.mark.parametrize("option,value,keep,drop", [
    ("--comm", "bpx-kept", "bpx-kept", "bpx-dropped"),
    ("--comm", "bpx-k*", "bpx-kept", "bpx-dropped"),
    ("--where", "comm=bpx-ke*", "bpx-kept", "bpx-k"),
])
def test_comm_filter(engine: str, tmp_path: Path, option: str, value: str, keep: str,
                     drop: str, nothing_left_running: None) -> None:
    """The filter runs in the kernel: the dropped caller's exec never reaches the parser."""
    script = ("import ctypes,os,sys,time\n"
              "libc=ctypes.CDLL(None)\n"
              "for name in sys.argv[1:]:\n"
              "    pid=os.fork()\n"
              "    if pid==0:\n"
              "        libc.prctl(15, name.encode(), 0, 0, 0)\n"
              "        os.execv('/bin/true', ['/bin/true', name])\n"
              "    os.waitpid(pid,0)\n")
    run = run_tool("--json", "--bpftrace", engine, option, value, "--",
                   sys.executable, "-c", script, keep, drop)
    argvs = [e["argv"] for e in run.execs()]
    assert argvs == [["/bin/true", keep]]
    assert run.execs()[0]["comm"] == keep


def test_a_callers_name_keeps_its_spaces_and_bytes(engine: str, nothing_left_running: None
                                                   ) -> None:
    """A successful exec's record carries the caller's name padded, both ways."""
    names = [" lead", "trail ", " a  b ", "x" * 15, "caf\xe9\t"]
    script = ("import ctypes,os,sys\n"
              "libc=ctypes.CDLL(None)\n"
              "for name in sys.argv[1:]:\n"
              "    pid=os.fork()\n"
              "    if pid==0:\n"
              "        libc.prctl(15, name.encode('latin-1'), 0, 0, 0)\n"
              "        os.execv('/bin/true', ['/bin/true', 'bpx-name'])\n"
              "    os.waitpid(pid,0)\n")
    run = run_tool("--json", "--bpftrace", engine, "--", sys.executable, "-c", script, *names)
    comms = [e["comm"].encode("utf-8", "surrogateescape") for e in run.execs()
             if e["argv"] == ["/bin/true", "bpx-name"]]
    assert comms == [n.encode("latin-1") for n in names]


@pytest.mark.parametrize("result", ["--failed", "--succeeded"])
def test_uid_and_result_filters(engine: str, result: str, nothing_left_running: None) -> None:
    script = ("import os\n"
              "def run(uid, path):\n"
              "    pid=os.fork()\n"
              "    if pid==0:\n"
              "        os.setuid(uid)\n"
              "        try: os.execv(path, [path, 'uid%d' % uid])\n"
              "        except OSError: os._exit(1)\n"
              "    os.waitpid(pid,0)\n"
              "run(4242, '/bin/true'); run(4242, '/nonexistent'); run(4343, '/nonexistent')\n")
    run = run_tool("--json", "--bpftrace", engine, "--uid", "4242", result, "--",
                   sys.executable, "-c", script)
    events = run.execs()
    assert [(e["uid"], e["errno"], e["argv"]) for e in events] == [
        (4242, "ENOENT", ["/nonexistent", "uid4242"]) if result == "--failed"
        else (4242, None, ["/bin/true", "uid4242"])]
    assert "lost" not in run.stderr and "incomplete" not in run.stderr
    end = run.end()  # a call filtered out after its entry printed records is not "partial"
    assert (end["execs"], end["partial_execs"], end["incomplete_execs"]) == (1, 0, 0)
    assert "partial" not in run.stderr


def test_pid_and_ppid_filters_are_in_the_program(tmp_path: Path) -> None:
    text = subprocess.run(tool_command("--pid", "4321", "--ppid", "1", "--emit", "script"),
                          capture_output=True, text=True, check=True).stdout
    assert "/curtask->tgid == 4321 && curtask->real_parent->tgid == 1 && " in text


def exec_as(comm: str, *argv: str) -> None:
    """Exec argv from a process named comm (the filters' test subject)."""
    subprocess.run([sys.executable, "-c",
                    "import ctypes,os,sys; ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0,"
                    " 0, 0); os.execv(sys.argv[2], sys.argv[2:])", comm, *argv], check=True)


def _start(engine: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(tool_command("--bpftrace", engine, *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and "Tracing" not in line:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
    assert "Tracing" in line, f"no status line; rc={proc.poll()}"
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signals_stop_cleanly_and_keep_records(engine: str, sig: signal.Signals,
                                               nothing_left_running: None) -> None:
    proc = _start(engine, "--json", "--comm", "bpx-sig")
    exec_as("bpx-sig", "/bin/true", "before-signal")  # returned before the stop: kept
    started = time.monotonic()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 0, stderr
    assert '"before-signal"' in stdout
    assert "Traceback" not in stderr


def test_duration_stops_by_itself(engine: str, nothing_left_running: None) -> None:
    started = time.monotonic()
    run = run_tool("--bpftrace", engine, "--duration", "2", "--comm", "bpx-none", timeout=90)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("TIME ")
    assert "0 execs traced" in run.stderr
    assert time.monotonic() - started < 60


def test_a_command_outliving_the_trace_is_ended(engine: str,
                                                nothing_left_running: None) -> None:
    """As under timeout(1): SIGTERM at the end of the trace; the status is the tracer's."""
    run = run_tool("--bpftrace", engine, "--duration", "2", "--json", "--", "sh", "-c",
                   "trap 'echo got-term >&2; exit 7' TERM; "
                   "while :; do /bin/true; done", timeout=90)
    assert run.returncode == 0, run.stderr
    assert "got-term" in run.stderr
    assert any(r.get("argv") == ["/bin/true"] for r in run.records)


def test_what_a_command_started_ends_with_it(engine: str,
                                            nothing_left_running: None) -> None:
    """A command still running at the end takes what it started with it, as under
    timeout(1), which signals the command's process group: a job in the background, and
    one that ignores SIGTERM (SIGKILL after the grace)."""
    run = run_tool("--bpftrace", engine, "--duration", "2", "--json", "--", "sh", "-c",
                   "sleep 300 & (trap '' TERM; exec sleep 301) & wait", timeout=90)
    jobs = [int(r["pid"]) for r in run.execs() if r["argv"][0] == "sleep" and r["ret"] == 0]
    try:
        assert run.returncode == 0, run.stderr
        assert len(jobs) == 2, run.records
        wait_until(lambda: not any(map(_running, jobs)), "the command's jobs ended")
    finally:
        for pid in filter(_running, jobs):
            os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Alive, not a zombie left for its new parent to reap."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_the_commands_lifetime_counts_from_its_gate(engine: str,
                                                    nothing_left_running: None) -> None:
    """The command is forked before bpftrace starts and held at its gate: its lifetime
    counts from its exec as the gate opens, not from that fork (it measured the tool's
    start-up with it)."""
    run = run_tool("process", "--json", "--bpftrace", engine, "--", "sh", "-c", "sleep 0.1")
    [made] = [r for r in run.execs() if r["argv"][:1] == ["sh"]]
    ends = {r["pid"]: r for r in run.records if r.get("event") == "exit"}
    [slept] = [r for r in run.execs() if r["argv"][:1] == ["sleep"]]
    ran = datetime.fromisoformat(ends[made["pid"]]["time"]) - datetime.fromisoformat(
        made["time"])  # its exec's entry to its end: microseconds
    assert ends[slept["pid"]]["lifetime_ns"] < ends[made["pid"]]["lifetime_ns"] <= \
        ran / timedelta(microseconds=1) * 1000 + 1000, (made, ends)


def test_closed_pipe_ends_the_run(engine: str, nothing_left_running: None) -> None:
    tool = subprocess.Popen(tool_command("--bpftrace", engine, "--json", "--", "sh", "-c",
                                         "for i in $(seq 300); do /bin/true; done"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert tool.stdout is not None
    head = subprocess.run(["head", "-3"], stdin=tool.stdout, capture_output=True, timeout=60)
    tool.stdout.close()
    _, stderr = tool.communicate(timeout=60)
    assert len(head.stdout.splitlines()) == 3
    assert b"Traceback" not in stderr and b"BrokenPipe" not in stderr


def test_a_reader_gone_ends_the_run_with_nothing_to_write(engine: str,
                                                         nothing_left_running: None) -> None:
    """`| head -3` leaves while the command sleeps, with no row to write that would find
    it gone: the run ends (0) and ends the command, which would else exit 5 in its time."""
    tool = subprocess.Popen(tool_command("--bpftrace", engine, "-q", "--", "sh", "-c",
                                         "for i in 1 2 3 4; do /bin/true; done; "
                                         "sleep 300; exit 5"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert tool.stdout is not None
    try:
        head = subprocess.run(["head", "-3"], stdin=tool.stdout, capture_output=True,
                              timeout=60)
        tool.stdout.close()
        _, stderr = tool.communicate(timeout=120)
    finally:
        if tool.poll() is None:  # it missed the reader's end: SIGTERM ends its command
            tool.terminate()
            tool.wait(timeout=60)
    assert len(head.stdout.splitlines()) == 3
    assert tool.returncode == 0, stderr


def test_killed_tool_takes_bpftrace_with_it(engine: str, nothing_left_running: None) -> None:
    proc = _start(engine, "--comm", "bpx-none")
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                              text=True, check=False).stdout.split()
    assert children
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
        time.sleep(0.1)
    assert not any(_alive(int(c)) for c in children)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    return state != "Z"


GOLDENS = sorted((ROOT / "tests" / "golden").glob("*.bt"))


@pytest.mark.parametrize("golden", GOLDENS, ids=[g.stem for g in GOLDENS])
def test_golden_programs_load_and_run(engine: str, golden: Path,
                                      nothing_left_running: None) -> None:
    """Every golden file, run as it is by the real bpftrace: attached, BEGIN ran, clean exit."""
    from bptrace_exec.run.engine import find_engine
    from bptrace_exec.run.gate import GatedCommand
    from bptrace_exec.run.session import Session

    command = GatedCommand(["/bin/true"], stdout_to_stderr=True) \
        if "COMMAND_PID" in golden.read_text() else None
    text = golden.read_text()
    strlen = re.search(r"BPFTRACE_STRLEN=(\d+)", text)  # the header's USAGE line says it
    assert strlen, "the header gives the string size"
    session = Session(text, find_engine(engine), buffer_pages=64, command=command,
                      strlen=int(strlen.group(1)))
    session.deadline = time.monotonic() + 60
    seen = []
    try:
        for line in session.lines():
            if line and b'"ready\\n"' in line:
                seen.append(line)
                session.ready()
                session.request_stop()
    finally:
        finished = session.close()
    assert seen, finished.diagnostics
    assert finished.engine_status == 0, finished.diagnostics


def test_lost_events_are_never_hidden(engine: str, exec_cases: str, tmp_path: Path,
                                      nothing_left_running: None) -> None:
    """A one-page buffer under a 4-worker storm: the kernel counts what it reported, and
    the tool says exactly how many execs did not arrive, in JSON and on stderr."""
    out = tmp_path / "events.jsonl"
    run = run_tool("--json", "-o", str(out), "--bpftrace", engine, "--buffer-pages", "1",
                   "--", exec_cases, "storm", "4000", "4", output=out)
    assert run.returncode == 0, run.stderr
    end = run.end()
    performed = 4000 + 1  # the storm's own exec, then its children's
    assert end["kernel_execs"] == performed
    assert end["missing_execs"] == performed - len(run.execs()) == end["kernel_execs"] - \
        end["execs"]
    lost = sum(int(r["count"]) for r in run.records if r.get("event") == "lost")  # type: ignore[call-overload]
    assert end["lost_events"] == lost
    if end["missing_execs"]:
        assert lost > 0 and f"{end['missing_execs']} execs were lost" in run.stderr


def test_bpftrace_dying_mid_run_is_explained_and_rows_kept(engine: str,
                                                           nothing_left_running: None) -> None:
    proc = _start(engine, "--json", "--comm", "bpx-die")
    exec_as("bpx-die", "/bin/true", "before-death")
    time.sleep(1)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                              text=True, check=False).stdout.split()
    for child in children:
        os.kill(int(child), signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "bpftrace was killed by signal 9" in stderr and "Traceback" not in stderr
    assert '"before-death"' in stdout


def test_bpftrace_dying_in_a_stats_run_says_what_is_lost(engine: str,
                                                        nothing_left_running: None) -> None:
    """The counts were in its maps: no row above holds them, and no end line says null."""
    proc = _start(engine, "--stats", "--comm", "bpx-die")
    os.kill(bpftrace_of(proc.pid), signal.SIGKILL)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "the counts it held since its last report are lost" in stderr, stderr
    assert "shown above" not in stderr and "Traceback" not in stderr


def test_a_stats_run_reports_on_sigterm(engine: str, nothing_left_running: None) -> None:
    proc = _start(engine, "--stats", "--comm", "bpx-stat")
    for _ in range(3):
        exec_as("bpx-stat", "/bin/true")
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "execs 3 (" in stdout and "/bin/true" in stdout


@pytest.mark.parametrize("comm", ['x";system("id', '\\"*/BEGIN{', "$(touch /tmp/bx",
                                  "a\nb", "ü\\x41%s"])
def test_hostile_comm_compiles_and_matches_only_itself(engine: str, comm: str,
                                                       nothing_left_running: None) -> None:
    run = run_tool("--json", "--bpftrace", engine, "--comm", comm, "--", sys.executable,
                   "-c", "import ctypes,os,sys; ctypes.CDLL(None).prctl(15, "
                   "sys.argv[1].encode(), 0, 0, 0); os.execv('/bin/true', ['/bin/true'])",
                   comm)
    assert run.returncode == 0, run.stderr
    assert [e["comm"] for e in run.execs()] == [comm]
    assert not Path("/tmp/bx").exists()


def test_replay_equals_the_live_run(engine: str, exec_cases: str, tmp_path: Path,
                                    nothing_left_running: None) -> None:
    live, rec = tmp_path / "live.jsonl", tmp_path / "run.rec"
    run = run_tool("--json", "-o", str(live), "--record", str(rec), "--bpftrace", engine,
                   "--", sys.executable, DRIVER, str(tmp_path), exec_cases, output=live)
    assert run.returncode == 0, run.stderr
    replay = subprocess.run(tool_command("--replay", str(rec), "--json"), capture_output=True,
                            text=True, check=True)
    drop_end = lambda text: [ln for ln in text.splitlines() if '"event":"end"' not in ln]  # noqa: E731
    assert drop_end(replay.stdout) == drop_end(live.read_text())
    assert len(drop_end(replay.stdout)) > 20
    stats_rec = tmp_path / "stats.rec"
    live_stats = run_tool("--stats", "--json", "--record", str(stats_rec), "--bpftrace", engine,
                          "--", "/bin/true")
    replayed = subprocess.run(tool_command("--replay", str(stats_rec), "--json"),
                              capture_output=True, text=True, check=True)
    a, b = json.loads(live_stats.stdout), json.loads(replayed.stdout)
    assert a["breakdowns"] == b["breakdowns"] and a["execs"] == b["execs"] == 1


def test_stops_even_when_started_with_sigint_ignored(engine: str,
                                                     nothing_left_running: None) -> None:
    """A background job of a non-interactive shell starts with SIGINT ignored, and a
    bpftrace that inherits an ignored SIGINT keeps ignoring it (measured): the tool must
    still stop it at once."""
    proc = subprocess.Popen(["sh", "-c", 'trap "" INT; exec "$@"', "sh",
                             *tool_command("--bpftrace", engine, "--comm", "bpx-ign")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    while "Tracing" not in proc.stderr.readline():
        assert proc.poll() is None
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert time.monotonic() - started < 3, "bpftrace did not take SIGINT"
    assert "did not stop" not in stderr


def _fullest_profile(probe: str) -> str:
    """A profile at the limits: every filter list full and, for a syscall, its arguments'
    filters too, their strings as many bytes as allowed."""
    from bptrace_exec.run.cgroups import cgroup2_mount

    most = FILTER_VALUES.most

    def full(values: list[str]) -> str:
        assert len(values) == most
        return "[" + ", ".join(values) + "]"

    cgroup = cgroup2_mount()
    numbers = full([str(n) for n in range(most)])
    lists = {"comm": full([f"bpx-limit-{n}" for n in range(most)]), "uid": numbers,
             "pid": full([str(n + 1) for n in range(most)]), "ppid": numbers,
             **({"cgroup": full([str(cgroup)] * most)} if cgroup else {})}
    text = "version: 1\nfilters:\n" + "".join(f"  {k}: {v}\n" for k, v in lists.items())
    if probe == "execve":
        return text
    paths = [f"/{n}" + "x" * (STR_FILTER_MAX - 1 - len(str(n))) for n in range(8)]
    paths.append("/" + "y" * (FILTER_STRING_BYTES.most - len("".join(paths)) - 1))
    assert len("".join(paths)) == FILTER_STRING_BYTES.most
    flags = ["O_WRONLY", "O_CREAT", "O_TRUNC", "O_APPEND"] * (most // 4)
    return (f"{text}  args:\n    path: [{', '.join(paths)}]\n    dfd: {numbers}\n"
            f"    flags: {full(flags)}\n    mode: {numbers}\n"
            "probes: [openat]\nargs:\n  path: {type: str, from: filename}\n  dfd: fd\n"
            "  flags: open_flags\n  mode: octal\n")


@pytest.mark.parametrize("probe", ["execve", "openat"])
def test_filters_at_their_limits_load(engine: str, probe: str, tmp_path: Path,
                                      nothing_left_running: None) -> None:
    """What the limits allow, bpftrace loads: a program at every filter's limit is
    attached (the command runs, its status comes back) on every version."""
    profile = tmp_path / f"{probe}-limits.yaml"
    profile.write_text(_fullest_profile(probe))
    run = run_tool(str(profile), "--json", "--bpftrace", engine, "--", "sh", "-c", "exit 7")
    assert run.returncode == 7, run.stderr


@pytest.mark.parametrize("argv_bytes", [str(n) for n in ARGV_BYTES_RANGE])
def test_argv_bytes_at_its_documented_extremes_loads(engine: str, argv_bytes: str,
                                                     nothing_left_running: None) -> None:
    """Every documented value loads on every version: the ends of the range are run; a
    cut argv shows as many bytes as asked for, though they are read 80 at a time."""
    words = ["x" * 49] * 100  # 5,000 bytes: within the largest read, beyond the smallest
    run = run_tool("--json", "--argv-bytes", argv_bytes, "--max-args", "256",
                   "--bpftrace", engine, "--", "/bin/echo", *words)
    assert run.returncode == 0, run.stderr
    [echo] = run.execs()
    whole = int(argv_bytes) >= 5_100
    assert (echo["argv"] == ["/bin/echo", *words]) == whole
    assert echo["argv_truncated"] is not whole
    if not whole:
        assert len("\0".join(echo["argv"])) == int(argv_bytes), echo["argv"][-1]


def test_a_path_search_is_one_row(engine: str, nothing_left_running: None) -> None:
    """dash tries each PATH directory with its own execve: the table shows the exec that
    ended the search, with the attempts before it counted, and so does its summary (the
    count of execs is the kernel's); --all-attempts and JSON show each one."""
    script = "PATH=/nonexistent1:/nonexistent2:/usr/bin:/bin; exec true bpx-search"
    args = ("--bpftrace", engine, "--", "sh", "-c", script)
    run = run_tool(*args)
    folded = [ln for ln in run.stdout.splitlines() if "bpx-search" in ln]
    assert len(folded) == 2 and folded[1].endswith("true bpx-search [tried 2]"), folded
    assert "4 execs (2 of them failed tries of a PATH search, as [tried N]) traced" in \
        run.stderr, run.stderr
    each = run_tool("--all-attempts", *args)
    every = [ln for ln in each.stdout.splitlines() if ln.endswith(" bpx-search")]
    assert [ln.split()[5] for ln in every] == ["ENOENT", "ENOENT", "0"], every
    assert "4 execs traced" in each.stderr, each.stderr
    assert len(run_tool("--json", *args).execs()) == 4


def test_a_search_whose_end_is_filtered_out_is_not_folded(engine: str,
                                                          nothing_left_running: None) -> None:
    """--failed drops the exec that ended the search, not the attempts before: folded,
    the last attempt said `ENOENT ... [tried 1]`, as a program not found says."""
    script = "PATH=/nonexistent1:/nonexistent2:/usr/bin:/bin; exec true bpx-search"
    run = run_tool("--failed", "-q", "--bpftrace", engine, "--", "sh", "-c", script)
    rows = [ln for ln in run.stdout.splitlines() if ln.endswith(" bpx-search")]
    assert [ln.split()[5] for ln in rows] == ["ENOENT", "ENOENT"], run.stdout


def test_command_output_kept_apart(engine: str, tmp_path: Path,
                                   nothing_left_running: None) -> None:
    out = tmp_path / "command.txt"
    run = run_tool("--bpftrace", engine, "--command-output", str(out), "--",
                   "sh", "-c", "printf '<%s>\\n' out; printf '<%s>\\n' err >&2; "
                   "/bin/true bpx-apart")
    assert run.returncode == 0, run.stderr
    assert out.read_text() == "<out>\n<err>\n"
    assert "<out>" not in run.stdout + run.stderr and "<err>" not in run.stdout + run.stderr
    assert any(ln.endswith("/bin/true bpx-apart") for ln in run.stdout.splitlines())
    refused = run_tool("--command-output", "/nonexistent/dir/x", "--", "true")
    assert refused.returncode == 2 and "cannot write /nonexistent/dir/x" in refused.stderr
