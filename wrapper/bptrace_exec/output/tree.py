"""The process tree of a run (--tree): each process once, under its parent, with the
program it ran last, how long it lived and how it ended; built from exec and exit events
tied by their exec ids (a process is its exec_id less the exec count)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bptrace_exec.event import Event
from bptrace_exec.output.columns import CUT
from bptrace_exec.output.render import CUT_MARK
from bptrace_exec.output.text import decode_text, fit, safe_text, shell_quote
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
    argv_cut: bool = False  # that argv was cut by the limits (--max-args, --argv-bytes)
    exec_id: str = ""  # of that program (or its forked image)
    lifetime_ns: int | None = None  # None: no end traced (running at the end)
    status: int | None = None
    signal: int = 0
    core: bool = False  # it dumped core as the signal killed it
    failed_execs: int = 0
    # wall clock, ns: its first program traced started (else: the process did), it ended
    began_ns: int | None = None
    ended_ns: int | None = None
    children: list[Proc] = field(default_factory=list)
    forked_comm: bytes = b""  # its name when first seen: its parent's, unless it exec'd
    parent_image: int = 0  # the N of its parent's exec_id, when it was forked
    ends_kept: bool = True  # False: the run's filters may have dropped its end
    # the N of each exec_id it had, and the name it had then (b"": not known)
    images: dict[int, bytes] = field(default_factory=dict)

    @property
    def boot(self) -> str:
        return self.key.split(":", 1)[0]

    @property
    def start(self) -> int:
        return int(self.key.rsplit(":", 1)[1])

    @property
    def failed(self) -> bool:
        return bool(self.signal or self.status or self.failed_execs)

    def end(self) -> str:
        if self.signal:
            return signal_name(self.signal) + " core" * self.core
        if self.status is None:
            return "running" if self.ends_kept else "unknown"
        return f"exit {self.status}"


def command_line(p: Proc) -> str:
    """What the process ran last, as bash reads it back (marked when cut), else its
    name."""
    if p.argv is None:
        return f"({safe_text(p.comm)})"
    return " ".join([shell_quote(a) for a in p.argv] + ([CUT] if p.argv_cut else []))


def process_of(exec_id: str) -> str:
    return exec_id.rsplit(":", 1)[0]


def image_of(exec_id: str) -> int:
    return int(exec_id.rsplit(":", 1)[1])


def _comm_of(filename: object) -> bytes:
    """The name the kernel gives a program it execs: its path's last part, cut."""
    return filename.rsplit(b"/", 1)[-1][:15] if isinstance(filename, bytes) else b""


class Tree:
    """Events in, as they come; the tree out at the end. Memory grows with the processes,
    not the events. Events without identity (recorded before it was read) are not
    placed. A process first seen at its end is placed under the parent it had then (the
    one it was reparented to, if its own had ended)."""

    def __init__(self, filtered: bool = False) -> None:
        self.filtered = filtered  # a process's end may be filtered out, not just untraced
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
                                          forked_comm=e.comm,
                                          parent_image=image_of(e.who.parent_exec_id),
                                          exec_id=e.who.exec_id,
                                          ends_kept=not self.filtered)
        proc.images.setdefault(image_of(e.who.exec_id), b"")
        if e.syscall == PROCESS_EXIT:
            proc.lifetime_ns, proc.comm = e.latency_ns, e.comm
            proc.ended_ns = e.time_ns
            proc.images[image_of(e.who.exec_id)] = e.comm
            if proc.began_ns is None:
                proc.began_ns = e.time_ns - e.latency_ns
            status, signal = e.values.get("status"), e.values.get("signal")
            proc.status = status if isinstance(status, int) else None
            proc.signal = signal if isinstance(signal, int) else 0
            proc.core = bool(e.values.get("core"))
        elif e.ret == 0 and not e.killed:
            argv = e.values.get("argv")
            proc.argv = argv if isinstance(argv, tuple) else proc.argv
            proc.argv_cut = "argv" in e.truncated
            proc.exec_id = e.who.exec_id
            name = _comm_of(e.values.get("filename"))
            proc.images[image_of(e.who.exec_id)] = name
            proc.comm = name or proc.comm  # the new program's, not its caller's
            if proc.began_ns is None:
                proc.began_ns = e.time_ns
            proc.failed_execs = 0  # the attempts of a PATH search that found its program
        else:
            proc.failed_execs += 1
            proc.images[image_of(e.who.exec_id)] = e.comm

    def roots(self) -> list[Proc]:
        """Processes whose parent is not among them, each one's children in the order
        they started."""
        procs = with_unseen_parents(self.procs)
        for proc in procs.values():
            proc.children = []
        roots: list[Proc] = []
        for proc in sorted(procs.values(), key=lambda p: p.start):
            parent = procs.get(proc.parent)
            (parent.children if parent is not None and parent is not proc else roots
             ).append(proc)
        return roots


def with_unseen_parents(procs: dict[str, Proc]) -> dict[str, Proc]:
    """`procs` and the processes that forked some of them but neither exec'd nor ended
    while traced (a subshell still running at the end: `sh -c '(sleep 9; true) &'`),
    each as `(comm)` under the nearest process it must descend from: it ran the program
    of its parent's exec_id, so it descends from one of the processes started before it
    that had that program (by the same name, if known): it goes under the one all of
    those are under. A parent that none of them can have forked (bptrace-exec, a
    COMMAND's) stays out."""
    known = dict(procs)
    by_image: dict[tuple[str, int], list[Proc]] = {}  # who had each program, by boot
    for proc in procs.values():
        for image in proc.images:
            by_image.setdefault((proc.boot, image), []).append(proc)
    unseen = {p.parent: p for p in sorted(procs.values(), key=lambda p: -p.start)
              if p.parent not in procs}  # each by its first child
    for key, child in sorted(unseen.items(), key=lambda kv: int(kv[0].rsplit(":", 1)[1])):
        image = child.parent_image
        proc = Proc(key, int(key.split(":")[1]), child.forked_comm, "",
                    exec_id=f"{key}:{image}", ends_kept=child.ends_kept,
                    images={image: child.forked_comm})
        could = [p for p in by_image.get((proc.boot, image), [])
                 if p.start < proc.start and p.images[image] in (b"", proc.comm)]
        if (parent := _nearest_common(could, known)) is not None:
            proc.parent = parent.key
            known[key] = proc
            by_image.setdefault((proc.boot, image), []).append(proc)
    return known


def _nearest_common(procs: list[Proc], known: dict[str, Proc]) -> Proc | None:
    """The deepest process that each of `procs` is or is under."""
    def line(p: Proc) -> dict[str, None]:  # itself, then its ancestors, in order
        up: dict[str, None] = {}
        while p.key not in up:
            up[p.key] = None
            if (parent := known.get(p.parent)) is None:
                break
            p = parent
        return up
    if not procs:
        return None
    others = [line(q) for q in procs[1:]]
    return next((known[k] for k in line(procs[0]) if all(k in o for o in others)), None)


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
        return fit(line, width, CUT_MARK)
    out = [cut(HEADER)]

    def walk(proc: Proc, lead: str, branch: str) -> None:
        life = "-" if proc.lifetime_ns is None else f"{proc.lifetime_ns / 1e6:.1f}"
        command = command_line(proc)
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
             "argv_truncated": p.argv_cut,
             "lifetime_ns": p.lifetime_ns, "status": p.status,
             "signal": signal_name(p.signal) if p.signal else None, "core": p.core,
             "failed_execs": p.failed_execs, "children": to_dicts(p.children)}
            for p in roots]
