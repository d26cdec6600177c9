"""The process tree of a run (--tree): each process once, under its parent, with the
program it ran last, how long it lived and how it ended; built from exec and exit events
tied by their exec ids (a process is its exec_id less the exec count)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bptrace_exec.event import Event
from bptrace_exec.output.render import CUT_MARK
from bptrace_exec.output.text import decode_text, safe_text, shell_quote
from bptrace_exec.spec.model import PROCESS_EXIT
from bptrace_exec.spec.types import signal_name

LAST = "\u2514\u2500 "  # the last child's branch
HEADER = f"{'PID':>7} {'LIFE(ms)':>10} {'END':<12}   COMMAND"  # after a 2-column mark


@dataclass
class Proc:
    """One process of the run, as its events told it."""

    key: str  # BOOT:PID:START
    pid: int
    comm: bytes
    parent: str  # its parent's key
    argv: tuple[bytes, ...] | None = None  # what it ran last; None: no exec traced
    exec_id: str = ""  # of that program (or its forked image)
    lifetime_ns: int | None = None  # None: no end traced (running at the end)
    status: int | None = None
    signal: int = 0
    failed_execs: int = 0
    # wall clock, ns: its first program traced started (else: the process did), it ended
    began_ns: int | None = None
    ended_ns: int | None = None
    children: list[Proc] = field(default_factory=list)

    @property
    def start(self) -> int:
        return int(self.key.rsplit(":", 1)[1])

    @property
    def failed(self) -> bool:
        return bool(self.signal or self.status or self.failed_execs)

    def end(self) -> str:
        if self.signal:
            return signal_name(self.signal)
        return "running" if self.status is None else f"exit {self.status}"


def process_of(exec_id: str) -> str:
    return exec_id.rsplit(":", 1)[0]


class Tree:
    """Events in, as they come; the tree out at the end. Memory grows with the processes,
    not the events. Events without identity (recorded before it was read) are not
    placed. A process first seen at its end is placed under the parent it had then (the
    one it was reparented to, if its own had ended)."""

    def __init__(self) -> None:
        self.procs: dict[str, Proc] = {}
        self.first_ns = self.last_ns = 0  # the events' times: the run as traced

    def add(self, e: Event) -> None:
        if e.who is None:
            return
        self.first_ns = min(self.first_ns or e.time_ns, e.time_ns)
        self.last_ns = max(self.last_ns, e.time_ns)
        key = process_of(e.who.exec_id)
        proc = self.procs.get(key)
        if proc is None:
            proc = self.procs[key] = Proc(key, e.pid, e.comm,
                                          process_of(e.who.parent_exec_id),
                                          exec_id=e.who.exec_id)
        if e.syscall == PROCESS_EXIT:
            proc.lifetime_ns, proc.comm = e.latency_ns, e.comm
            proc.ended_ns = e.time_ns
            if proc.began_ns is None:
                proc.began_ns = e.time_ns - e.latency_ns
            status, signal = e.values.get("status"), e.values.get("signal")
            proc.status = status if isinstance(status, int) else None
            proc.signal = signal if isinstance(signal, int) else 0
        elif e.ret == 0 and not e.killed:
            argv = e.values.get("argv")
            proc.argv = argv if isinstance(argv, tuple) else proc.argv
            proc.exec_id = e.who.exec_id
            if proc.began_ns is None:
                proc.began_ns = e.time_ns
            proc.failed_execs = 0  # the attempts of a PATH search that found its program
        else:
            proc.failed_execs += 1

    def roots(self) -> list[Proc]:
        """Processes whose parent is not among them, each one's children in the order
        they started."""
        for proc in self.procs.values():
            proc.children = []
        roots: list[Proc] = []
        for proc in sorted(self.procs.values(), key=lambda p: p.start):
            parent = self.procs.get(proc.parent)
            (parent.children if parent is not None and parent is not proc else roots
             ).append(proc)
        return roots


def build(events: Iterable[Event]) -> list[Proc]:
    tree = Tree()
    for e in events:
        tree.add(e)
    return tree.roots()


def lines(roots: list[Proc], width: int | None = None) -> list[str]:
    """The tree as text: one line per process, its command indented under its parent's,
    cut to `width` (None: whole). A failure (a status, a signal, a failed exec) is
    marked with ✗."""
    def cut(line: str) -> str:
        return line[:width - 1] + CUT_MARK if width and len(line) > width else line
    out = [cut(HEADER)]

    def walk(proc: Proc, lead: str, branch: str) -> None:
        life = "-" if proc.lifetime_ns is None else f"{proc.lifetime_ns / 1e6:.1f}"
        command = (" ".join(shell_quote(a) for a in proc.argv) if proc.argv is not None
                   else f"({safe_text(proc.comm)})")
        if proc.failed_execs:
            command += f" [{proc.failed_execs} failed exec{'s' * (proc.failed_execs > 1)}]"
        mark = "\u2717 " if proc.failed else "  "
        out.append(cut(f"{proc.pid:>7} {life:>10} {proc.end():<12} {mark}{lead}{branch}"
                       f"{command}"))
        below = lead + {"": "", LAST: "   "}.get(branch, "\u2502  ")
        for i, child in enumerate(proc.children):
            walk(child, below, LAST if i == len(proc.children) - 1 else "\u251c\u2500 ")
    for root in roots:
        walk(root, "", "")
    return out


def to_dicts(roots: list[Proc]) -> list[dict[str, object]]:
    """The tree as JSON: each process with its children, nested."""
    return [{"pid": p.pid, "exec_id": p.exec_id, "comm": decode_text(p.comm),
             "argv": None if p.argv is None else [decode_text(a) for a in p.argv],
             "lifetime_ns": p.lifetime_ns, "status": p.status,
             "signal": signal_name(p.signal) if p.signal else None,
             "failed_execs": p.failed_execs, "children": to_dicts(p.children)}
            for p in roots]
