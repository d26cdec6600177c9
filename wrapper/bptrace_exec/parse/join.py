"""printf records -> Events, joined by (tid, entry time) whatever order they arrive in.

The records of one call can come from several probes on several CPUs (an exec migrates
the task), and bpftrace 0.17 reads one buffer per CPU, so they interleave with other
calls' records and may even arrive after the closing one, which says how many records
the call has: that is when it is complete. What each record says: bptrace_exec.records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bptrace_exec.event import UNSET, Event, Identity, ProcContext, tty_name
from bptrace_exec.parse.layouts import Parser, parsers
from bptrace_exec.parse.values import Decoder, Parts, ints_per_probe
from bptrace_exec.records import (
    DROP,
    KILLED_RET,
    PATH_CUT,
    PATH_DELETED,
    PATH_NONE,
    PATH_UNKNOWN,
    READY,
    VERSION,
    Closing,
    Who,
)
from bptrace_exec.spec.captures import as_recorded, string_read
from bptrace_exec.spec.model import PATHS, PROCESS_EXIT, Profile

COMPLETE_WAIT_NS = 1_000_000_000  # how long a closed call waits for its missing records
ORPHAN_WAIT_NS = 60_000_000_000  # records with no closing one (lost, or still in the call)
MAX_PENDING = 65536
READY_RECORD = READY.encode()
DROP_PREFIX = DROP.kind.encode() + b" "
DELETED = b" (deleted)"  # as the kernel's d_path marks an unlinked file
NO_PATHS: dict[str, bytes | None] = dict.fromkeys(PATHS)


@dataclass
class JoinStats:
    malformed: int = 0  # records that did not parse (reported, not dropped silently)
    incomplete: int = 0  # events shown with records missing
    unfinished: int = 0  # calls whose closing record never came (still in the call at
    # the end, a thread killed inside it, or a closing record lost: that one is counted
    # by the kernel's total)
    unknown: int = 0  # printf records of a kind this version does not know


class Assembler:
    """Feed it printf texts; it returns Events as each call becomes complete."""

    def __init__(self, profile: Profile, *, wall_offset_ns: int, version: int = VERSION,
                 boot_id: str | None = None) -> None:
        self.profile = profile
        self.wall_offset_ns = wall_offset_ns
        self.boot = exec_boot(boot_id)
        captured = as_recorded(profile, version)  # a recording's: what its records carry
        self.parsers: dict[bytes, Parser] = parsers(
            version, profile.probes, ints_per_probe(captured), STORE,
            {"_Parts": Parts, "_full": MAX_PENDING, "_evict": self._evict_oldest,
             "_closing": closing, "_Who": Who})
        self.decoder = Decoder(captured, string_read(profile, version))
        self.env_names = {n.encode("utf-8", "surrogateescape") for n in profile.context.env}
        # the probes whose success starts a program (not a process's end: no environment)
        self.starts = {i for i, name in enumerate(profile.probes) if name != PROCESS_EXIT}
        self.pending: dict[tuple[bytes, bytes], Parts] = {}
        self.dropped: dict[tuple[bytes, bytes], int] = {}  # drops that came first, by time
        self.stats = JoinStats()

    def feed(self, text: bytes, now_ns: int) -> list[Event]:
        """The events this record completes (usually none, at most one). `text` is what
        a printf printed, less its final newline (parse.decode)."""
        if text == READY_RECORD:
            return []  # the program's start mark: the run acts on it, not the assembler
        parser = self.parsers.get(text[:text.find(b" ")])
        if parser is None:
            if text.startswith(DROP_PREFIX):
                tid, _, ident = text[len(DROP_PREFIX):].partition(b" ")
                if self.pending.pop((tid, ident), None) is None:
                    self.dropped[(tid, ident)] = now_ns  # its records may come after it
                return []
            if b" " in text:
                self.stats.unknown += 1
            else:
                self.stats.malformed += 1
            return []
        try:  # keyed by TID and ID as printed: bpftrace prints an integer one way only
            key, parts = parser(text, self.pending, now_ns)
        except (ValueError, IndexError, KeyError, TypeError):
            self.stats.malformed += 1
            return []
        parts.received += 1
        closing = parts.closing
        if closing is not None:
            if not parts.closed_ns:
                parts.closed_ns = now_ns
            if parts.received >= closing.records:
                del self.pending[key]
                return self._built(parts, closing, incomplete=False)
        return []

    def expire(self, now_ns: int) -> Iterator[Event]:
        """Calls whose missing records are not coming any more (lost events)."""
        self._forget_dropped(now_ns - COMPLETE_WAIT_NS)
        for key, parts in list(self.pending.items()):
            if parts.closing is not None and now_ns - parts.closed_ns > COMPLETE_WAIT_NS:
                del self.pending[key]
                yield from self._built(parts, parts.closing, incomplete=True)
            elif parts.closing is None and now_ns - parts.first_seen_ns > ORPHAN_WAIT_NS:
                del self.pending[key]
                self.stats.unfinished += 1

    def flush(self) -> Iterator[Event]:
        """At the end of a run: every closed call is shown, flagged if incomplete."""
        self._forget_dropped(1 << 63)
        for parts in sorted(self.pending.values(), key=lambda p: p.entry_ns):
            if parts.closing is not None:
                yield from self._built(parts, parts.closing, incomplete=True)
            elif not entered_only(parts):
                self.stats.unfinished += 1
        self.pending.clear()

    def _built(self, parts: Parts, closing: Closing, *, incomplete: bool) -> list[Event]:
        """The event, or none if its records do not make one (counted as malformed)."""
        try:
            event = self.build(parts, closing, incomplete=incomplete)
        except (ValueError, IndexError, KeyError, TypeError):
            self.stats.malformed += 1
            return []
        self.stats.incomplete += incomplete
        return [event]

    def build(self, p: Parts, c: Closing, *, incomplete: bool) -> Event:
        values, truncated, unreadable = self.decoder.values(p, c)
        context = None
        if p.cgroup is not None or p.hostname is not None:
            cgroup_id, pidns, mntns, name = p.cgroup or (0, 0, 0, b"")
            context = ProcContext(cgroup_id, name.decode("utf-8", "surrogateescape"), pidns,
                                  mntns, (p.hostname or b"").decode("utf-8", "surrogateescape"))
        parents = tuple(p.ancestors[d] for d in sorted(p.ancestors)) if p.ancestors else ()
        paths: dict[str, bytes | None] = NO_PATHS
        if p.paths or p.path_flags:  # walked
            paths = {}
            for which, path_name in enumerate(PATHS):
                paths[path_name], cut = path_of(p.paths.get(which), p.path_flags.get(which))
                if cut:
                    truncated |= {path_name}
        env = None
        if self.env_names and c.ret == 0 and c.probe in self.starts:  # its block, or none
            env, cut = environment(p.env, p.env_size, self.env_names)
            if cut:
                truncated |= {"env"}
        # In field order, not by keyword: keywords make the call slower, on the hot path.
        return Event(p.entry_ns + self.wall_offset_ns, self.profile.probes[c.probe], c.pid,
                     p.tid, c.ppid, c.uid, c.comm if c.comm is not None else p.comm, c.ret,
                     c.latency, values, truncated, incomplete, parents, context,
                     c.ret == KILLED_RET, unreadable,
                     identity(p.who, c.pid, c.ppid, self.boot) if p.who else None,
                     paths["cwd"], paths["exe"], env)

    def _forget_dropped(self, before_ns: int) -> None:
        """Records of dropped calls that came after their drop go too; drops seen before
        `before_ns` are not waited for any more."""
        for key, seen_ns in list(self.dropped.items()):
            parts = self.pending.get(key)
            if parts is not None and parts.closing is None:
                del self.pending[key]
            if seen_ns < before_ns:
                del self.dropped[key]

    def _evict_oldest(self) -> None:
        oldest = min(self.pending, key=lambda k: self.pending[k].first_seen_ns)
        del self.pending[oldest]
        self.stats.unfinished += 1


# --- what each part adds to the call --------------------------------------------------
# One statement per part of records.PARTS, over its fields: the layouts' parsers are
# compiled with them (parse.layouts), so that a record costs one call.
STORE = {
    "first": "parts.firsts[{slot}] = ({text}, {next})",
    "str": "parts.pieces.setdefault({slot}, {{}})[{chunk}] = ({text}, {next})",
    "elem": "parts.elems.setdefault({slot}, {{}}).setdefault({item}, {{}})[{chunk}] = "
            "({text}, {next})",
    "bytes": "parts.blocks.setdefault({slot}, {{}})[{offset}] = {data}",
    "call": "parts.closing = _closing({probe}, {records}, {ret}, {latency}, {pid}, {ppid}, "
            "{uid}, {ints}, {comm})",
    "who": "parts.who = _Who(" + ", ".join(f"{{{name}}}" for name in Who._fields) + ")",
    "seg": "parts.paths.setdefault({which}, {{}}).setdefault({depth}, {{}})[{offset}] = {text}",
    "path": "parts.path_flags[{which}] = {flags}",
    "env": "parts.env[{offset}] = {data}; parts.env_size = {size}",
    "comm": "parts.comm = {comm}",
    "anc": "parts.ancestors[{depth}] = ({pid}, {comm})",
    "cgrp": "parts.cgroup = ({cgroup_id}, {pidns}, {mntns}, {name})",
    "uts": "parts.hostname = {hostname}",
}


CWD = PATHS.index("cwd")


def entered_only(p: Parts) -> bool:
    """Whether a call has only the records its entry prints (an exec's working directory):
    one still in its call as the trace stopped, which its return would not have shown."""
    cwd = sum(len(pieces) for pieces in p.paths.get(CWD, {}).values())
    return p.received == cwd + (CWD in p.path_flags) and p.paths.keys() <= {CWD}


def path_of(names: dict[int, dict[int, bytes]] | None, flags: int | None
            ) -> tuple[bytes | None, bool]:
    """A walked path and whether it was cut (its top is missing: it is not absolute
    then); None when it was not walked (no record of it) or there was none."""
    if names is None and flags is None:
        return None, False
    flags = flags or 0
    if flags & PATH_NONE:
        return None, False
    path = b"/".join(b"".join(pieces[o] for o in sorted(pieces))
                     for _, pieces in sorted((names or {}).items(), reverse=True))
    cut = bool(flags & (PATH_CUT | PATH_UNKNOWN))
    return (path if cut else b"/" + path) + (DELETED if flags & PATH_DELETED else b""), cut


def environment(blocks: dict[int, bytes], size: int, names: set[bytes]
                ) -> tuple[tuple[tuple[bytes, bytes], ...], bool]:
    """The variables asked for (b"*": all) of an environment block, in its order, and
    whether the block was cut (its last variable may be cut short then)."""
    data = b"".join(blocks[o] for o in sorted(blocks))
    every = b"*" in names
    out = []
    for item in data.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep and (every or name in names):
            out.append((name, value))
    return tuple(out), size > len(data)


def identity(w: Who, pid: int, ppid: int, boot: str) -> Identity:
    """The record's identity; `boot`: the host's (exec_boot)."""
    return Identity(w.gid, w.euid, w.egid, None if w.loginuid == UNSET else w.loginuid,
                    None if w.sessionid == UNSET else w.sessionid, tty_name(w.tty),
                    f"{boot}:{pid}:{w.started}:{w.execs}",
                    f"{boot}:{ppid}:{w.parent_started}:{w.parent_execs}")


def exec_boot(boot_id: str | None) -> str:
    """The part of an exec_id that names the boot: the boot id's first 8 hex digits; "0"
    when it is unknown (a kernel without it), unique for one boot only then."""
    return (boot_id or "").replace("-", "")[:8] or "0"


def closing(*fields: Any) -> Closing:
    part = Closing._make(fields)
    if part.probe < 0 or part.records < 1:
        raise ValueError("a closing record out of range")
    return part
