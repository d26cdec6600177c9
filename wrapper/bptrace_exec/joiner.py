"""Records that share a key -> one event, whatever order and CPU they come from.

Every record starts with KIND TID ID; the closing one (the summary) says how many records
the event has, which is when it is complete. What each kind means is the subclass's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bptrace_exec.codegen import READY_RECORD
from bptrace_exec.context import ProcContext

COMPLETE_WAIT_NS = 1_000_000_000  # how long a summary waits for its missing records
ORPHAN_WAIT_NS = 60_000_000_000  # records with no summary (lost, or the call never returned)
MAX_PENDING = 65536
COMM_LEN = 16


@dataclass
class AssemblyStats:
    malformed: int = 0  # records that did not parse (reported, not dropped silently)
    incomplete: int = 0  # events shown with records missing
    orphaned: int = 0  # records of events whose summary never came
    unknown: int = 0  # printf records of a kind this version does not know


@dataclass(slots=True)  # one per event in flight, made on the hot path
class Pending:
    """What has come of one event so far."""

    tid: int
    entry_ns: int
    first_seen_ns: int
    received: int = 0
    expected: int = 0  # from the summary; 0 until it comes
    summary_seen_ns: int = 0
    ancestors: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # by depth
    cgroup: tuple[int, int, int, bytes] | None = None  # id, pidns, mntns, name
    hostname: bytes | None = None

    def context(self) -> ProcContext | None:
        if self.cgroup is None and self.hostname is None:
            return None
        cgroup_id, pidns, mntns, name = self.cgroup or (0, 0, 0, b"")
        return ProcContext(cgroup_id, name.decode("utf-8", "surrogateescape"), pidns, mntns,
                           (self.hostname or b"").decode("utf-8", "surrogateescape"))

    def parents(self) -> tuple[tuple[int, bytes], ...]:
        return tuple(self.ancestors[d] for d in sorted(self.ancestors))


P = TypeVar("P", bound=Pending)
E = TypeVar("E")


class Joiner(Generic[P, E]):
    """Feed it printf texts; it returns events as each one becomes complete."""

    summary_kind: bytes

    def __init__(self, handlers: Mapping[bytes, Callable[[P, bytes], None]]) -> None:
        self.handlers: dict[bytes, Callable[[P, bytes], None]] = {**CONTEXT_HANDLERS,
                                                                   **handlers}
        self.pending: dict[tuple[bytes, bytes], P] = {}
        self.stats = AssemblyStats()

    def new(self, tid: int, entry_ns: int, now_ns: int) -> P:
        raise NotImplementedError

    def build(self, parts: P, *, incomplete: bool) -> E:
        raise NotImplementedError

    def feed(self, text: bytes, now_ns: int) -> list[E]:
        """The events this record completes (usually none, at most one)."""
        if text == READY_RECORD:
            return []  # the program's start mark: the run acts on it, not the assembler
        # The final newline stays on the last field: each handler drops it.
        fields = text.split(b" ", 3) if text[-1:] == b"\n" else []
        handler = self.handlers.get(fields[0]) if len(fields) == 4 else None
        if handler is None:
            if fields and fields[0] not in self.handlers:
                self.stats.unknown += 1
            else:
                self.stats.malformed += 1
            return []
        kind, tid_s, id_s, body = fields
        key = (tid_s, id_s)  # bpftrace prints integers one way only: the bytes are the key
        try:
            parts = self.pending.get(key)
            if parts is None:
                if len(self.pending) >= MAX_PENDING:
                    self._evict_oldest()
                parts = self.pending[key] = self.new(int(tid_s), int(id_s), now_ns)
            handler(parts, body)
        except (ValueError, IndexError, KeyError):
            self.stats.malformed += 1
            return []
        parts.received += 1
        if kind == self.summary_kind:
            parts.summary_seen_ns = now_ns
        if parts.expected and parts.received >= parts.expected:
            del self.pending[key]
            return [self.build(parts, incomplete=False)]
        return []

    def expire(self, now_ns: int) -> Iterator[E]:
        """Events whose missing records are not coming any more (lost events)."""
        for key, parts in list(self.pending.items()):
            if parts.expected and now_ns - parts.summary_seen_ns > COMPLETE_WAIT_NS:
                del self.pending[key]
                yield self._built(parts, incomplete=True)
            elif not parts.expected and now_ns - parts.first_seen_ns > ORPHAN_WAIT_NS:
                del self.pending[key]
                self.stats.orphaned += 1

    def flush(self) -> Iterator[E]:
        """At the end of a run: everything with a summary is shown, flagged if incomplete."""
        for parts in sorted(self.pending.values(), key=lambda p: p.entry_ns):
            if parts.expected:
                yield self._built(parts, incomplete=parts.received < parts.expected)
            else:
                self.stats.orphaned += 1
        self.pending.clear()

    def _built(self, parts: P, *, incomplete: bool) -> E:
        if incomplete:
            self.stats.incomplete += 1
        return self.build(parts, incomplete=incomplete)

    def _evict_oldest(self) -> None:
        oldest = min(self.pending, key=lambda k: self.pending[k].first_seen_ns)
        del self.pending[oldest]
        self.stats.orphaned += 1


def join_chunks(chunks: dict[int, tuple[bytes, int]], chunk: int,
                limit: int | None = None) -> tuple[bytes, bool]:
    """A string read `chunk` bytes at a time -> (text, cut). Each chunk comes with the byte
    after it: a full chunk followed by a non-NUL byte was cut. The kernel may read past a
    string's end (it cannot see the NUL inside a chunk): the first short chunk ends it."""
    out, cut = b"", False
    for i in range(len(chunks)):
        if i not in chunks:
            return out, True
        text, next_byte = chunks[i]
        out += text
        if len(text) < chunk:
            cut = False
            break
        cut = next_byte != 0
    if limit is not None and len(out) > limit:
        return out[:limit], True
    return out, cut


def comm_from_hex(hex_tokens: bytes) -> bytes:
    raw = bytes.fromhex(hex_tokens.decode("ascii"))
    if len(raw) != COMM_LEN:
        raise ValueError("comm is not 16 bytes")
    return raw.split(b"\0", 1)[0]


# --- the process context records (codegen.context), the same for every kind of event ---

def _on_ancestor(p: Pending, body: bytes) -> None:
    depth_s, pid_s, hex_tokens = body.split(b" ", 2)
    p.ancestors[int(depth_s)] = (int(pid_s), comm_from_hex(hex_tokens[:-1]))


def _on_cgroup(p: Pending, body: bytes) -> None:
    id_s, pidns_s, mntns_s, name = body.split(b" ", 3)
    p.cgroup = (int(id_s), int(pidns_s), int(mntns_s), name[:-1])


def _on_hostname(p: Pending, body: bytes) -> None:
    p.hostname = body[:-1]


CONTEXT_HANDLERS: dict[bytes, Callable[[Any, bytes], None]] = {
    b"anc": _on_ancestor, b"cgrp": _on_cgroup, b"uts": _on_hostname}
