"""A command to trace (`-- COMMAND`), forked first and held at a gate until the probes are
attached, so that its own exec is the first thing traced: its PID is the program's $2.

Light, on the standard library's bare modules: a command is also forked before the rest of
the tool has loaded, with the start of bpftrace that names it (run.prestart).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time

from bptrace_exec.errors import EXIT_CANNOT_RUN, EnvironmentProblem, UsageError, not_a_program
from bptrace_exec.run.spawn import CHILD_DEFAULTS

COMMAND_GRACE_S = 3.0  # how long a COMMAND still running at the end has after SIGTERM


class GatedCommand:
    """A command forked now and exec'd only when released."""

    def __init__(self, argv: list[str], *, stdout_to_stderr: bool,
                 output: str | None = None) -> None:
        import shutil  # here: the early start (run.prestart) imports this module first

        self.argv, self.stdout_to_stderr, self.output = list(argv), stdout_to_stderr, output
        path = shutil.which(argv[0])
        if path is None:
            raise UsageError(f"command not found: {argv[0]}{not_a_program(argv[0])}",
                             hint="give a program on PATH or a path to one after --")
        try:  # the command's stdout and stderr, apart from what the tracer writes
            out_fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                             0o644) if output else -1
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror}",
                             hint="--command-output names a file to create") from None
        fds = [out_fd] if out_fd >= 0 else []
        try:
            read_end, self._gate = os.pipe()
            fds += [read_end, self._gate]
            self.pid = os.fork()
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            raise EnvironmentProblem(f"cannot start {argv[0]}: {exc.strerror}") from None
        if self.pid == 0:  # the child: wait at the gate, then become the command
            said = 2  # where an exec failure is said: the tracer's stderr
            try:
                os.close(self._gate)
                for sig in CHILD_DEFAULTS:
                    signal.signal(sig, signal.SIG_DFL)
                if out_fd >= 0:
                    said = os.dup(2)  # closed by the exec
                    os.dup2(out_fd, 1)
                    os.dup2(out_fd, 2)
                elif stdout_to_stderr:
                    os.dup2(2, 1)
                if os.read(read_end, 1) == b"":
                    os._exit(127)  # the tracer gave up before starting it
                os.close(read_end)
                os.execv(path, argv)
            except OSError as exc:
                os.write(said, f"bptrace-exec: cannot run {argv[0]}: {exc.strerror}\n".encode())
                os._exit(EXIT_CANNOT_RUN)
            finally:
                os._exit(127)
        os.close(read_end)
        if out_fd >= 0:
            os.close(out_fd)
        try:  # readable once it has ended: a reader waiting for records sees that at once
            self.pidfd = os.pidfd_open(self.pid)
        except OSError:
            self.pidfd = -1
        self.status: int | None = None  # once it has ended on its own, shell style
        self.released = False
        self._reaped = False

    def release(self) -> None:
        if self._gate >= 0:
            with contextlib.suppress(BrokenPipeError):  # it died at the gate: poll() says so
                os.write(self._gate, b"go")
            self.released = True
            self._close_gate()

    def poll(self) -> int | None:
        if not self._reaped:
            pid, raw = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reaped, self.status = True, shell_status(raw)
        return self.status

    def end(self) -> None:
        """The trace is over: a command never released exits at the closed gate; one
        still running gets SIGTERM with every process below it, as under timeout(1),
        which signals the command's process group (a build's jobs, a pipeline's stages
        would go on untraced), and SIGKILL after COMMAND_GRACE_S, all that are left. Its
        status stays None then: it did not end on its own, and the run's exit status is
        the tracer's. Safe to call twice."""
        self._close_gate()
        try:
            if self._reaped or not self.released or self.poll() is not None:
                if not self._reaped:
                    self._reaped, self.status = True, shell_status(os.waitpid(self.pid, 0)[1])
                return
            if self.pidfd < 0:
                self.pidfd = os.pidfd_open(self.pid)
            below = _pidfds(descendants(self.pid))
            try:
                everyone = [self.pidfd, *below]
                _signal(everyone, signal.SIGTERM)
                deadline = time.monotonic() + COMMAND_GRACE_S
                while left := [fd for fd in everyone if not _ended(fd)]:
                    if not select.select(left, [], [], max(0.0, deadline - time.monotonic()))[0]:
                        _signal(left, signal.SIGKILL)
                        break
            finally:
                for fd in below:
                    os.close(fd)
            os.waitpid(self.pid, 0)
            self._reaped = True
        finally:
            if self.pidfd >= 0:
                os.close(self.pidfd)
                self.pidfd = -1

    def _close_gate(self) -> None:
        if self._gate >= 0:
            os.close(self._gate)
            self._gate = -1

    def same(self, argv: list[str], *, stdout_to_stderr: bool, output: str | None) -> bool:
        """Whether it is the command these would fork, and still at its gate."""
        return (self._gate >= 0 and not self._reaped and self.argv == list(argv)
                and self.stdout_to_stderr == stdout_to_stderr and self.output == output)


def descendants(pid: int) -> list[tuple[int, bytes]]:
    """The processes below `pid` now, by their parents in /proc, each with its start time
    (which tells it from a later process given the same PID)."""
    below: dict[int, list[tuple[int, bytes]]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := _stat(int(name))) is not None:
            below.setdefault(int(stat[1]), []).append((int(name), stat[19]))
    found, todo = [], [pid]
    while todo:
        children = below.get(todo.pop(), [])
        found += children
        todo += [child for child, _ in children]
    return found


def _stat(pid: int) -> list[bytes] | None:
    """/proc/PID/stat's fields after the command's name: [state, ppid, ...]."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _pidfds(processes: list[tuple[int, bytes]]) -> list[int]:
    """A pidfd for each process still the one found (gone: none)."""
    fds = []
    for pid, started in processes:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        if (stat := _stat(pid)) is not None and stat[19] == started:
            fds.append(fd)
        else:
            os.close(fd)
    return fds


def _signal(pidfds: list[int], sig: int) -> None:
    for fd in pidfds:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(fd, sig)


def _ended(pidfd: int) -> bool:
    return bool(select.select([pidfd], [], [], 0)[0])


def shell_status(raw: int) -> int:
    return 128 + os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)
