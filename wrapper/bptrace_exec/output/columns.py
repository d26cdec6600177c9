"""The table's columns: each declared once (title, width, how a cell is made from an
Event), so that every profile's table is only the list of columns it shows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bptrace_exec.event import Event, Identity, ProcContext, Value
from bptrace_exec.output.text import (
    cut_path,
    local_time,
    parent_chain,
    safe_str,
    safe_text,
    shell_quote,
)
from bptrace_exec.spec import types
from bptrace_exec.spec.model import Arg, Profile

CUT, LOST, UNREADABLE, NONE = "[...]", "[records lost]", "[unreadable]", "-"
NULL = "NULL"  # a string argument's NULL pointer, as strace shows it


@dataclass(frozen=True)
class Column:
    name: str
    title: str
    width: int  # 0: as wide as its text (the last column)
    right: bool
    cell: Callable[[Event], str]


def _context(read: Callable[[ProcContext], str]) -> Callable[[Event], str]:
    return lambda e: safe_str(read(e.context)) if e.context else NONE


def _who(read: Callable[[Identity], object]) -> Callable[[Event], str]:
    def cell(e: Event) -> str:
        value = read(e.who) if e.who else None
        return NONE if value is None else str(value)
    return cell


def _path(read: Callable[[Event], bytes | None], name: str) -> Callable[[Event], str]:
    def cell(e: Event) -> str:
        path = read(e)
        if path is None:
            return NONE
        return cut_path(safe_text(path), name in e.truncated)
    return cell


def _env(e: Event) -> str:
    """NAME=value of each variable shown, as bash would read them back."""
    if e.env is None:
        return NONE
    return " ".join([shell_quote(name + b"=" + value) for name, value in e.env]
                    + ([CUT] if "env" in e.truncated else []))


def privilege(e: Event) -> str:
    """The effective ids that differ from the real ones (a setuid or setgid program):
    "euid 0", "euid 0 egid 42"; "" when none do."""
    who = e.who
    if who is None:
        return ""
    return " ".join([f"euid {who.euid}"] * (who.euid != e.uid)
                    + [f"egid {who.egid}"] * (who.egid != who.gid))


def result_cell(result: str) -> Callable[[Event], str]:
    """RET: the errno's name when the call failed, else the value as `result` says."""
    def cell(e: Event) -> str:
        if e.ret < 0 or e.killed:
            return e.outcome or str(e.ret)
        return hex(e.ret) if result == "hex" else str(e.ret)
    return cell


def _base(profile: Profile) -> dict[str, Column]:
    latency = "LIFE(ms)" if profile.kind.latency == "lifetime" else "LAT(ms)"
    return {c.name: c for c in (
        Column("time", "TIME", 12, False, lambda e: local_time(e.time_ns)),
        Column("pid", "PID", 7, True, lambda e: str(e.pid)),
        Column("tid", "TID", 7, True, lambda e: str(e.tid)),
        Column("ppid", "PPID", 7, True, lambda e: str(e.ppid)),
        Column("uid", "UID", 5, True, lambda e: str(e.uid)),
        Column("comm", "COMM", 15, False, lambda e: safe_text(e.comm)),
        Column("syscall", "SYSCALL", 12, False, lambda e: e.syscall),  # process_exit
        Column("result", "RET", 12, False, result_cell(profile.result)),
        Column("latency", latency, 8, True, lambda e: f"{e.latency_ns / 1e6:.3f}"),
        Column("container", "CONTAINER", 12, False, _context(ProcContext.short)),
        Column("cgroup", "CGROUP", 24, False, _context(lambda c: c.path or c.cgroup or "/")),
        Column("hostname", "HOSTNAME", 16, False, _context(lambda c: c.hostname)),
        Column("pidns", "PIDNS", 10, False, _context(lambda c: str(c.pidns))),
        Column("mntns", "MNTNS", 10, False, _context(lambda c: str(c.mntns))),
        Column("parents", "PARENTS", 40, False, lambda e: parent_chain(e.parents)),
        Column("gid", "GID", 5, True, _who(lambda w: w.gid)),
        Column("euid", "EUID", 5, True, _who(lambda w: w.euid)),
        Column("egid", "EGID", 5, True, _who(lambda w: w.egid)),
        Column("loginuid", "AUID", 5, True, _who(lambda w: w.loginuid)),
        Column("sessionid", "SES", 5, True, _who(lambda w: w.sessionid)),
        Column("tty", "TTY", 7, False, _who(lambda w: w.tty)),
        Column("exec_id", "EXEC_ID", 36, False, _who(lambda w: w.exec_id)),
        Column("cwd", "CWD", 24, False, _path(lambda e: e.cwd, "cwd")),
        Column("exe", "EXE", 24, False, _path(lambda e: e.exe, "exe")),
        Column("env", "ENV", 30, False, _env),
    )}


def _shown(arg: Arg) -> Callable[[Value, bool], str]:
    """An argument's cell: shown by its type, traced text escaped, a cut one marked."""
    read, show = types.of(arg.type).read, types.of(arg.type).show

    def cell(value: Value, cut: bool) -> str:
        if value is None:
            return NULL if read == "str" else NONE
        if read == "argv":
            assert isinstance(value, tuple)
            return " ".join([shell_quote(a) for a in value] + ([CUT] if cut else []))
        if read in ("str", "exec_path"):
            assert isinstance(value, bytes)
            return safe_text(value) + (f" {CUT}" if cut else "")
        return show(value)
    return cell


def _arg_column(arg: Arg) -> Column:
    arg_type, shown, name = types.of(arg.type), _shown(arg), arg.name
    return Column(name, arg_type.title or name.upper(), arg_type.width, False,
                  lambda e: shown(e.values[name], name in e.truncated))


def columns_for(profile: Profile) -> tuple[Column, ...]:
    """The profile's columns, in its order; the last one as wide as its text."""
    known = _base(profile) | {a.name: _arg_column(a) for a in profile.args}
    chosen = [known[name] for name in profile.columns]
    if chosen:
        last = chosen[-1]
        chosen[-1] = Column(last.name, last.title, 0, False, last.cell)
    return tuple(chosen)
