"""What the pipeline produces: one ExecEvent per exec, with the traced bytes kept exact."""

from __future__ import annotations

import errno
import platform
from dataclasses import dataclass

from bptrace_exec.context import ProcContext

# __syscall_nr of the exit tracepoint -> name, for the architectures Debian ships bpftrace on
_SYSCALL_NAMES = {
    "x86_64": {59: "execve", 322: "execveat"},
    "aarch64": {221: "execve", 281: "execveat"},
}.get(platform.machine(), {})


@dataclass(slots=True)
class ExecEvent:
    """One exec, entry and return joined. Not frozen: built once per exec on the hot path,
    where a frozen dataclass's per-field object.__setattr__ costs more than the rest."""

    time_ns: int  # wall clock (UTC, ns since the epoch) when execve was entered
    pid: int
    ppid: int
    uid: int
    tid: int
    comm: bytes  # the caller's command name
    filename: bytes
    filename_truncated: bool
    argv: tuple[bytes, ...]
    argv_truncated: bool
    ret: int
    latency_ns: int
    syscall: str
    incomplete: bool = False  # some of its records were lost; fields may be empty
    ancestors: tuple[tuple[int, bytes], ...] = ()  # (pid, comm), nearest first
    context: ProcContext | None = None  # with the profile's context.container

    @property
    def errno_name(self) -> str | None:
        return errno_name(self.ret)


def errno_name(ret: int) -> str | None:
    """ENOENT for -2; None for a call that did not fail."""
    return None if ret >= 0 else errno.errorcode.get(-ret, f"E{-ret}")


def syscall_name(nr: int) -> str:
    return _SYSCALL_NAMES.get(nr, f"syscall_{nr}")


@dataclass(slots=True)
class CallEvent:
    """One call of a syscall profile: its arguments in the profile's order, each an int,
    bytes (a string or a socket address), or None where this syscall has no such one."""

    time_ns: int
    pid: int
    ppid: int
    uid: int
    tid: int
    comm: bytes
    syscall: str
    values: tuple[int | bytes | None, ...]
    truncated: tuple[str, ...]  # names of string arguments cut by the limits
    ret: int
    latency_ns: int
    incomplete: bool = False
    ancestors: tuple[tuple[int, bytes], ...] = ()  # (pid, comm), nearest first
    context: ProcContext | None = None  # with the profile's context.container

    @property
    def errno_name(self) -> str | None:
        return errno_name(self.ret)
