"""Shared fixtures. Tests marked `root` load real probes with real bpftrace binaries:
every binary named in $BPTRACE_EXEC_TEST_ENGINES (colon-separated), else the system's
bpftrace and, when installed, Debian 13's under /opt/bpftrace-trixie. Under CI they must
run: a missing engine or missing root fails instead of skipping."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

import pytest
from hypothesis import settings

from bptrace_exec.output.text import exact_strings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TRIXIE = Path("/opt/bpftrace-trixie/bpftrace")
IN_CI = os.environ.get("CI") == "true"
# Property tests: 10,000 examples each under CI, a few hundred for a developer's run.
settings.register_profile("ci", max_examples=10_000)
settings.register_profile("dev", max_examples=300)
settings.load_profile("ci" if IN_CI else "dev")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true",
                     help="rewrite tests/golden/* from the current code generator")


def engine_paths() -> list[str]:
    listed = [p for p in os.environ.get("BPTRACE_EXEC_TEST_ENGINES", "").split(":") if p]
    if listed:
        return listed
    found = [p for p in [shutil.which("bpftrace")] if p]
    if TRIXIE.exists():
        found.append(str(TRIXIE))
    return found


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0 and (Path("/sys/kernel/tracing/events").is_dir()):
        return
    if IN_CI:
        raise pytest.UsageError("CI must run the tracing tests: run as root with tracefs")
    skip = pytest.mark.skip(reason="needs root and tracefs")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames:
        paths = engine_paths()
        metafunc.parametrize("engine", paths, ids=[_engine_id(p) for p in paths],
                             scope="module")


def _engine_id(path: str) -> str:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip().replace("bpftrace ", "") or path


@pytest.fixture(scope="session")
def exec_cases(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The C workload, built once per run."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.fail("a C compiler is needed to build tests/workloads/exec_cases.c")
    out = tmp_path_factory.mktemp("bin") / "exec_cases"
    subprocess.run([gcc, "-O2", "-pthread", "-o", str(out),
                    str(HERE / "workloads" / "exec_cases.c")], check=True)
    return str(out)


@dataclass
class ToolRun:
    returncode: int
    stdout: str
    stderr: str
    records: list[dict[str, object]]

    def execs(self) -> list[dict[str, object]]:
        return [r for r in self.records if r.get("event") == "exec"]

    def end(self) -> dict[str, object]:
        [end] = [r for r in self.records if r.get("event") == "end"]
        return end


def tool_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bptrace_exec", *args]


def run_tool(*args: str, timeout: float = 120, output: Path | None = None,
             **popen: object) -> ToolRun:
    """Run bptrace-exec to its end; killed (with its bpftrace) if it overruns."""
    proc = subprocess.Popen(tool_command(*args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **popen)  # type: ignore[call-overload]
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"bptrace-exec overran {timeout}s:\n{stderr}")
    text = output.read_text() if output else stdout
    return ToolRun(proc.returncode, stdout, stderr, json_records(text))


def children(pid: int) -> list[int]:
    """A process's children, those of each of its threads."""
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
            for c in (task / "children").read_text().split()]


def bpftrace_of(tool: int) -> int:
    """The bpftrace the tool started: its child running bpftrace -f json (the other
    child, if any, is the command it follows)."""
    [engine] = [c for c in children(tool)
                if b"\0-f\0json\0" in Path(f"/proc/{c}/cmdline").read_bytes()]
    return engine


def json_records(text: str) -> list[dict[str, Any]]:
    """JSON lines as written, with the exact bytes of text that is not UTF-8 (b64) put
    back in place, as surrogateescape strings."""
    return [exact_strings(json.loads(line)) for line in text.splitlines()
            if line.startswith("{")]


class Lines:
    """A pipe's lines as they come, read by a thread, to wait on: a test waits for the
    line it needs (with a deadline), never for a sleep to be long enough."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self._more = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            with self._more:
                self.lines.append(line)
                self._more.notify_all()
        with self._more:
            self.lines.append("")  # the end
            self._more.notify_all()

    def wait_for(self, wanted: Callable[[str], bool], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._more:
            while True:
                for line in self.lines[seen:]:
                    if line == "":
                        pytest.fail(f"the pipe ended before the line awaited: {self.so_far()}")
                    if wanted(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no line awaited came in {timeout}s: {self.so_far()[-2000:]}")
                self._more.wait(left)

    def so_far(self) -> str:
        return "".join(self.lines)

    def text(self) -> str:
        """Everything, once the pipe has ended."""
        self._thread.join(timeout=60)
        return self.so_far()


@pytest.fixture(scope="session", autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The runs of a test session keep what they cache in a folder of its own: each
    starts from nothing, whatever earlier runs left."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture
def nothing_left_running() -> Iterator[None]:
    """Fails a test that leaves a process of its own behind (a bpftrace, a traced
    command). Its own: every process the test starts carries a mark in its environment,
    which their children inherit; processes without it (another user's, another test
    run's) are never looked at, let alone signalled. One still exiting may take a while."""
    mark = f"{os.getpid()}-{uuid.uuid4().hex}"
    os.environ[TEST_MARK] = mark
    try:
        yield
    finally:
        del os.environ[TEST_MARK]
    deadline = time.monotonic() + 10
    while (left := marked_processes(mark)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"left running: {left}"


TEST_MARK = "BPTRACE_EXEC_TEST_MARK"


def marked_processes(mark: str) -> dict[int, str]:
    """Live processes whose environment carries this test's mark: pid -> command line."""
    found = {}
    want = f"{TEST_MARK}={mark}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone, or a kernel thread
        if want in environ and state != "Z":
            found[int(proc.name)] = argv
    return found


@pytest.fixture
def markers() -> Iterator[Path]:
    """A folder other users can run programs from (pytest's own is root's only)."""
    folder = Path(tempfile.mkdtemp(prefix="bptrace-exec-markers-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def exec_as(uid: int, program: Path, numbers: range) -> None:
    """Runs `program N` as `uid`, for each N: one exec by that uid each."""
    for n in numbers:
        subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                        str(program), str(n)], check=True, timeout=30)


class Started(NamedTuple):
    proc: subprocess.Popen[str]
    lines: Lines  # its stderr


@contextlib.contextmanager
def started(command: list[str], *, end: int = signal.SIGINT) -> Iterator[Started]:
    """A process of the test's own (a server, a traced run), its stderr read as it comes;
    ended by its pid with `end` if it still runs, then its group killed if it lingers."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        yield Started(proc, Lines(proc.stderr))  # type: ignore[arg-type]
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, end)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


T = TypeVar("T")


def wait_until(check: Callable[[], T], what: str, timeout: float = 90) -> T:
    """Polls until `check` gives something true (a server's answer, a file's lines): the
    thing itself, never a sleep long enough. OSError and ValueError count as not yet."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            last = check()
            if last:
                return last
        time.sleep(0.05)
    pytest.fail(f"{what}: not in {timeout}s (last: {last!r})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def numbered(path: Path, program: Path) -> list[int]:
    """The N of each `program N` exec in a file of JSON lines, from its whole lines (it
    may be mid-write)."""
    text = path.read_text(errors="surrogateescape") if path.exists() else ""
    return [int(r["argv"][1]) for r in json_records(text[:text.rfind("\n") + 1])
            if r.get("filename") == str(program)]
