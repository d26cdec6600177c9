"""Events -> text: aligned table rows for people (output.columns), JSON lines for
programs. Numbers stay numbers in JSON, strings are exact (\\udcXX for bytes that are
not UTF-8), flags and signals are named; an exec's and an exit's arguments are fields of
their own, a syscall's are under "args"."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bptrace_exec.event import KILLED, Event, Identity
from bptrace_exec.output.columns import LOST, UNREADABLE, columns_for, privilege
from bptrace_exec.output.text import decode_text, fit, iso_time, pad
from bptrace_exec.spec import types
from bptrace_exec.spec.captures import carried, paths_read
from bptrace_exec.spec.model import Arg, ProbeKind, Profile, kind_of

RED, PLAIN = "\x1b[31m", "\x1b[0m"
CUT_MARK = "\u2026"  # a row cut to the terminal's width


@dataclass(frozen=True)
class Terminal:
    """What a table on a terminal does: a failed call's RET in red, rows cut to width."""

    colour: bool = False
    width: int | None = None  # None: rows whole


class Renderer:
    """The table and JSON forms of one profile's events."""

    def __init__(self, profile: Profile, terminal: Terminal = Terminal(),
                 host: str | None = None) -> None:
        self.profile = profile
        self.host = {"host": host} if host else {}  # a field of every JSON line
        self.terminal = terminal
        self.columns = columns_for(profile)
        self.shapes = {p: _Shape.of(profile, p) for p in profile.probes}
        self.paths = paths_read(profile)

    def header(self) -> str:
        return self._line([c.title for c in self.columns], failed=False)

    def row(self, event: Event, tried: int = 0) -> str:
        """The table row; `tried`: failed attempts of the same PATH search before it."""
        cells = [c.cell(event) for c in self.columns]
        if event.incomplete:
            cells[-1] += " " + LOST
        if event.unreadable:
            cells[-1] += " " + UNREADABLE
        if tried:
            cells[-1] += f" [tried {tried}]"
        if raised := privilege(event):
            cells[-1] += f" [{raised}]"
        kind = self.shapes[event.syscall].kind
        if self.profile.exits and kind.attach == "process_end":
            cells[-1] += f" [{ended(event)}]"
        return self._line(cells, failed=event.killed or kind.failed(event.ret))

    def _line(self, cells: list[str], *, failed: bool) -> str:
        out = []
        for column, cell in zip(self.columns, cells, strict=True):
            out.append(pad(cell, column.width, right=column.right))
        line = " ".join(out).rstrip()
        line = fit(line, self.terminal.width, CUT_MARK)
        if failed and self.terminal.colour and self._result is not None:
            # where RET stands in this row: cells wider than their column push it on
            start = sum(len(cell) + 1 for cell in out[:self._result])
            end = start + len(out[self._result].rstrip())
            if start < len(line):
                line = line[:start] + RED + line[start:end] + PLAIN + line[end:]
        return line

    @functools.cached_property
    def _result(self) -> int | None:
        """The place of the RET column, if shown."""
        return next((i for i, c in enumerate(self.columns) if c.name == "result"), None)

    def to_dict(self, e: Event) -> dict[str, object]:
        shape = self.shapes[e.syscall]
        out: dict[str, object] = {
            "event": shape.kind.event, "time": iso_time(e.time_ns), **self.host,
            "syscall": e.syscall,
            "pid": e.pid, "ppid": e.ppid, "uid": e.uid, "tid": e.tid, **_who(e.who),
            "comm": e.comm.decode("utf-8", "surrogateescape")}
        for which in self.paths:  # the kernel's d_path's form, exact
            path = getattr(e, which)
            out[which] = None if path is None else decode_text(path)
            out[f"{which}_truncated"] = which in e.truncated
        if self.profile.context.env:
            out["env"] = None if e.env is None else _env(e.env)
            out["env_truncated"] = "env" in e.truncated
        values, cut = e.values, e.truncated
        if shape.kind.args_at_top:  # an exec's: fields of their own
            for name, cut_key, form in shape.args:
                value = values[name]
                out[name] = None if value is None else form(value)
                if cut_key:
                    out[cut_key] = name in cut
        else:
            out["args"] = {name: None if values[name] is None else form(values[name])
                           for name, _, form in shape.args}
            out["truncated"] = [name for name, _, _ in shape.args if name in cut]
        out["ret"] = None if e.killed else e.ret  # it returned nothing anyone saw
        out["errno"] = e.errno
        out[KILLED] = e.killed
        out[shape.latency_key] = e.latency_ns
        out["incomplete"] = e.incomplete
        # JSON Pointers, as b64's are: the strings shown as "" that could not be read
        pointer = "/" if shape.kind.args_at_top else "/args/"
        out["unreadable"] = [pointer + where for where in e.unreadable]
        out["exec_id"] = e.who.exec_id if e.who else None
        out["parent_exec_id"] = e.who.parent_exec_id if e.who else None
        if self.profile.context.parents:
            out["parents"] = [{"pid": pid, "comm": decode_text(comm)} for pid, comm in e.parents]
        if e.context:
            out["context"] = e.context.to_dict()
        return out


@dataclass(frozen=True)
class _Shape:
    """How the events of one probe are written: its kind, and its arguments with the
    field saying each was cut and its JSON form."""

    kind: ProbeKind
    args: list[tuple[str, str, Callable[[Any], object]]]
    latency_key: str

    @classmethod
    def of(cls, profile: Profile, probe: str) -> _Shape:
        kind = kind_of(probe)
        return cls(kind, [(a.name, _cut_key(a), _json_form(a)) for a in profile.args
                          if carried(a, probe)], f"{kind.latency}_ns")


def ended(e: Event) -> str:
    """How a process ended, for its row: "exit 3", "killed by SIGKILL", "killed by
    SIGSEGV, core dumped" (as a shell says it)."""
    signal, status = e.values.get("signal"), e.values.get("status")
    if isinstance(signal, int) and signal:
        return f"killed by {types.signal_name(signal)}" + (
            ", core dumped" if e.values.get("core") else "")
    return f"exit {status if isinstance(status, int) else '?'}"


WHO_FIELDS = ("gid", "euid", "egid", "loginuid", "sessionid", "tty")
_NO_WHO = dict.fromkeys(WHO_FIELDS)


def _who(who: Identity | None) -> dict[str, object]:
    """The identity's fields beside uid; null in a recording that did not read them."""
    if who is None:
        return _NO_WHO
    return {"gid": who.gid, "euid": who.euid, "egid": who.egid, "loginuid": who.loginuid,
            "sessionid": who.sessionid, "tty": who.tty}


def _env(variables: tuple[tuple[bytes, bytes], ...]) -> dict[str, str]:
    """A name given twice keeps its first value, as getenv(3) finds it."""
    out: dict[str, str] = {}
    for name, value in variables:
        out.setdefault(decode_text(name), decode_text(value))
    return out


def _cut_key(arg: Arg) -> str:
    """The field that says an exec's argument was cut ("" for a number, never cut)."""
    return "" if types.of(arg.type).read == "int" else f"{arg.name}_truncated"


def _json_form(arg: Arg) -> Callable[[Any], object]:
    """How an argument's value is written in JSON: numbers stay numbers, strings exact."""
    arg_type = types.of(arg.type)
    if arg_type.read == "argv":
        return lambda v: [a.decode("utf-8", "surrogateescape") for a in v]
    if arg_type.read == "sockaddr":
        return types.sockaddr_parts
    if arg_type.read in ("str", "exec_path"):
        return decode_text
    if arg_type.json_number:
        bits = arg_type.signed_bits
        return (lambda v: types.signed(v, bits)) if bits else (lambda v: v)
    return arg_type.show
