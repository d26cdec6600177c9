"""CallEvents -> text: the profile's columns for people, JSON lines for programs.

Arguments are shown by their type (flags and signals by name, addresses as ip:port);
in JSON, numbers stay numbers, strings are exact (\\udcXX for bytes that are not UTF-8).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bptrace_exec import argtypes
from bptrace_exec.callspec import PROCESS_EXIT
from bptrace_exec.context import ProcContext, parent_chain
from bptrace_exec.events import CallEvent
from bptrace_exec.render import decode_text, iso_time, safe_text
from bptrace_exec.spec import Profile

_NUMBERS = ("int", "long", "uint", "pid", "fd")
_WIDTHS = {"time": 12, "pid": 7, "tid": 7, "ppid": 7, "uid": 5, "comm": 15, "syscall": 10,
           "result": 12, "latency": 8, "container": 12, "cgroup": 24, "hostname": 16,
           "pidns": 10, "mntns": 10, "parents": 40}
_TYPE_WIDTHS = {"int": 6, "long": 8, "uint": 8, "pid": 7, "fd": 8, "errno": 8, "signal": 9,
                "hex": 14, "octal": 6, "open_flags": 24, "clone_flags": 30, "str": 28,
                "sockaddr": 24}
_RIGHT = ("pid", "tid", "ppid", "uid", "latency")
_TITLES = {"latency": "LAT(ms)", "result": "RET"}


class CallRenderer:
    """The table and JSON forms of one profile's calls."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.index = {a.name: i for i, a in enumerate(profile.args)}
        self.columns = profile.columns
        self.exits = profile.probes == (PROCESS_EXIT,)  # latency is a lifetime there
        last = self.columns[-1] if self.columns else ""
        self.widths = [0 if c == last else _WIDTHS.get(c) or
                       _TYPE_WIDTHS[profile.args[self.index[c]].type] for c in self.columns]

    def header(self) -> str:
        titles = dict(_TITLES, latency="LIFE(ms)") if self.exits else _TITLES
        return self._line([titles.get(c, c.upper()) for c in self.columns])

    def row(self, event: CallEvent) -> str:
        cells = [self._cell(c, event) for c in self.columns]
        if event.incomplete:
            cells[-1] += " [records lost]"
        return self._line(cells)

    def _line(self, cells: list[str]) -> str:
        out = []
        for col, width, cell in zip(self.columns, self.widths, cells, strict=True):
            out.append(cell.rjust(width) if col in _RIGHT else cell.ljust(width))
        return " ".join(out).rstrip()

    def _cell(self, column: str, e: CallEvent) -> str:
        if column in self.index:
            arg = self.profile.args[self.index[column]]
            value = e.values[self.index[column]]
            if value is None:
                return "-"
            text = argtypes.TYPES[arg.type].show(value)
            if arg.read == "str":
                text = safe_text(value if isinstance(value, bytes) else b"")
                if arg.name in e.truncated:
                    text += " [...]"
            return text
        return _BASE_CELLS[column](e, self.profile)

    def breakdown_values(self, e: CallEvent) -> dict[str, object]:
        """What stats count an event under: each argument as the table shows it."""
        out: dict[str, object] = {
            "syscall": e.syscall, "comm": decode_text(e.comm), "uid": e.uid,
            "ppid": e.ppid, "errno": e.errno_name}
        if e.context:
            found = e.context.container
            out.update(container=found[1][:12] if found else "(none)",
                       cgroup=e.context.path or e.context.cgroup or "/",
                       hostname=e.context.hostname)
        for arg, value in zip(self.profile.args, e.values, strict=True):
            if value is not None:
                out[arg.name] = (decode_text(value) if arg.read == "str" and
                                 isinstance(value, bytes) else
                                 argtypes.TYPES[arg.type].show(value))
        return out

    def to_dict(self, e: CallEvent) -> dict[str, object]:
        args: dict[str, object] = {}
        for arg, value in zip(self.profile.args, e.values, strict=True):
            args[arg.name] = None if value is None else json_value(arg.type, value)
        return {
            "event": "call", "time": iso_time(e.time_ns), "syscall": e.syscall,
            "pid": e.pid, "ppid": e.ppid, "uid": e.uid, "tid": e.tid,
            "comm": decode_text(e.comm), "args": args, "truncated": list(e.truncated),
            "ret": e.ret, "errno": e.errno_name,
            ("lifetime_ns" if self.exits else "latency_ns"): e.latency_ns,
            "incomplete": e.incomplete,
            **({"parents": [{"pid": pid, "comm": decode_text(comm)}
                            for pid, comm in e.ancestors]}
               if self.profile.context.parents else {}),
            **({"context": e.context.to_dict()} if e.context else {}),
        }


def json_value(type_name: str, value: int | bytes) -> object:
    arg_type = argtypes.TYPES[type_name]
    if isinstance(value, bytes):
        if arg_type.read == "sockaddr":
            return argtypes.sockaddr_parts(value)
        return decode_text(value)
    if type_name in _NUMBERS:
        return argtypes.signed(value, arg_type.signed_bits) if arg_type.signed_bits else value
    return arg_type.show(value)


def result_text(e: CallEvent, profile: Profile) -> str:
    if e.ret < 0:
        return e.errno_name or str(e.ret)
    return hex(e.ret) if profile.result == "hex" else str(e.ret)


def _local_time(e: CallEvent, _p: Profile) -> str:
    local = time.localtime(e.time_ns // 1_000_000_000)
    return time.strftime("%H:%M:%S", local) + f".{e.time_ns // 1_000_000 % 1000:03d}"


def _context_cell(read: Callable[[ProcContext], str]) -> Callable[[CallEvent, Profile], str]:
    return lambda e, _p: safe_text(read(e.context).encode("utf-8", "surrogateescape")) \
        if e.context else "-"


_BASE_CELLS: dict[str, Callable[[CallEvent, Profile], str]] = {
    "parents": lambda e, _p: parent_chain(e.ancestors, safe_text),
    "container": _context_cell(ProcContext.short),
    "cgroup": _context_cell(lambda c: c.path or c.cgroup or "/"),
    "hostname": _context_cell(lambda c: c.hostname),
    "pidns": _context_cell(lambda c: str(c.pidns)),
    "mntns": _context_cell(lambda c: str(c.mntns)),
    "time": _local_time,
    "pid": lambda e, _p: str(e.pid),
    "tid": lambda e, _p: str(e.tid),
    "ppid": lambda e, _p: str(e.ppid),
    "uid": lambda e, _p: str(e.uid),
    "comm": lambda e, _p: safe_text(e.comm),
    "syscall": lambda e, _p: e.syscall,
    "result": result_text,
    "latency": lambda e, _p: f"{e.latency_ns / 1e6:.3f}",
}
