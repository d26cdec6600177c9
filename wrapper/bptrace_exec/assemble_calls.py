"""printf records of a syscall profile -> CallEvents, joined by (tid, entry time).

The `call` record closes a call and says how many records it has; `str` and `addr`
records may come before or after it (another CPU's buffer). See codegen.calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from bptrace_exec.assemble import (
    COMPLETE_WAIT_NS,
    CONTEXT_HANDLERS,
    MAX_PENDING,
    ORPHAN_WAIT_NS,
    AssemblyStats,
    comm_from_hex,
)
from bptrace_exec.codegen import READY_RECORD
from bptrace_exec.codegen.calls import CHUNK
from bptrace_exec.context import ProcContext
from bptrace_exec.events import CallEvent
from bptrace_exec.spec import Profile

_COMM_TOKENS = 16
_KINDS = (b"call", b"str", b"addr", b"anc", b"cgrp", b"uts")
_HEAD = 7  # RECORDS SYSCALL RET LAT PID PPID UID, then the comm's 16 hex tokens, then ints


@dataclass
class _Call:
    tid: int
    entry_ns: int
    first_seen_ns: int
    received: int = 0
    strings: dict[int, dict[int, tuple[bytes, int]]] = field(default_factory=dict)
    addrs: dict[int, bytes] = field(default_factory=dict)
    summary: list[int] | None = None  # RECORDS SYSCALL RET LAT PID PPID UID INT...
    ancestors: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # by depth
    cgroup: tuple[int, int, int, bytes] | None = None  # id, pidns, mntns, name
    hostname: bytes | None = None
    comm: bytes = b""
    summary_seen_ns: int = 0


class CallAssembler:
    """Feed it printf texts; it returns CallEvents as each call becomes complete."""

    def __init__(self, profile: Profile, *, wall_offset_ns: int) -> None:
        self.profile = profile
        self.wall_offset_ns = wall_offset_ns
        self.limit = profile.limits.string_bytes
        self.pending: dict[tuple[bytes, bytes], _Call] = {}
        self.stats = AssemblyStats()
        # per syscall: the profile's argument numbers, in the order the ints come
        self.int_slots = [[i for i, a in enumerate(profile.args)
                           if a.read == "int" and a.source(s) is not None]
                          for s in profile.probes]

    def feed(self, text: bytes, now_ns: int) -> list[CallEvent]:
        if text == READY_RECORD:
            return []
        fields = text.split(b" ", 3) if text[-1:] == b"\n" else []
        kind = fields[0] if len(fields) == 4 else None
        if kind not in _KINDS:
            if fields and fields[0] not in _KINDS:
                self.stats.unknown += 1
            else:
                self.stats.malformed += 1
            return []
        _, tid_s, id_s, body = fields
        key = (tid_s, id_s)
        try:
            call = self.pending.get(key)
            if call is None:
                if len(self.pending) >= MAX_PENDING:
                    self._evict_oldest()
                call = self.pending[key] = _Call(int(tid_s), int(id_s), now_ns)
            if kind == b"call":
                self._on_call(call, body)
                call.summary_seen_ns = now_ns
            elif kind == b"str":
                slot_s, chunk_s, next_s, rest = body.split(b" ", 3)
                call.strings.setdefault(int(slot_s), {})[int(chunk_s)] = (rest[:-1],
                                                                          int(next_s))
            elif kind == b"addr":
                slot_s, hex_tokens = body.split(b" ", 1)
                call.addrs[int(slot_s)] = bytes.fromhex(hex_tokens.decode("ascii"))
            else:
                CONTEXT_HANDLERS[kind](call, body)
        except (ValueError, IndexError):
            self.stats.malformed += 1
            return []
        call.received += 1
        if call.summary is not None and call.received >= call.summary[0]:
            del self.pending[key]
            return [self._build(call, incomplete=False)]
        return []

    def _on_call(self, call: _Call, body: bytes) -> None:
        tokens = body.split()
        head = _HEAD
        if len(tokens) < head + _COMM_TOKENS:
            raise ValueError("call record too short")
        numbers = [int(t) for t in tokens[:head]] + [int(t) for t in
                                                     tokens[head + _COMM_TOKENS:]]
        syscall = numbers[1]
        if not 0 <= syscall < len(self.int_slots) or \
                len(numbers) != head + len(self.int_slots[syscall]):
            raise ValueError("call record with a wrong number of fields")
        call.comm = comm_from_hex(b" ".join(tokens[head:head + _COMM_TOKENS]))
        call.summary = numbers

    def expire(self, now_ns: int) -> Iterator[CallEvent]:
        for key, call in list(self.pending.items()):
            if call.summary is not None and now_ns - call.summary_seen_ns > COMPLETE_WAIT_NS:
                del self.pending[key]
                yield self._build(call, incomplete=True)
            elif call.summary is None and now_ns - call.first_seen_ns > ORPHAN_WAIT_NS:
                del self.pending[key]
                self.stats.orphaned += 1

    def flush(self) -> Iterator[CallEvent]:
        for call in sorted(self.pending.values(), key=lambda c: c.entry_ns):
            if call.summary is not None:
                yield self._build(call, incomplete=call.received < call.summary[0])
            else:
                self.stats.orphaned += 1
        self.pending.clear()

    def _evict_oldest(self) -> None:
        oldest = min(self.pending, key=lambda k: self.pending[k].first_seen_ns)
        del self.pending[oldest]
        self.stats.orphaned += 1

    def _build(self, call: _Call, *, incomplete: bool) -> CallEvent:
        s = call.summary
        assert s is not None
        if incomplete:
            self.stats.incomplete += 1
        _records, index, ret, latency, pid, ppid, uid = s[:7]
        syscall = self.profile.probes[index]
        ints = dict(zip(self.int_slots[index], s[7:]))
        values: list[int | bytes | None] = []
        cut: list[str] = []
        for number, arg in enumerate(self.profile.args):
            if arg.source(syscall) is None:
                values.append(None)
            elif arg.read == "int":
                values.append(ints[number])
            elif arg.read == "sockaddr":
                values.append(call.addrs.get(number, b""))
            else:
                text, was_cut = join_chunks(call.strings.get(number, {}), self.limit)
                values.append(text)
                if was_cut:
                    cut.append(arg.name)
        context = None
        if self.profile.context.container:
            cgroup_id, pidns, mntns, name = call.cgroup or (0, 0, 0, b"")
            context = ProcContext(cgroup_id, name.decode("utf-8", "surrogateescape"), pidns,
                                  mntns, (call.hostname or b"").decode("utf-8",
                                                                        "surrogateescape"))
        ancestors = tuple(call.ancestors[d] for d in sorted(call.ancestors))
        return CallEvent(
            time_ns=call.entry_ns + self.wall_offset_ns, pid=pid, ppid=ppid, uid=uid,
            tid=call.tid, comm=call.comm, syscall=syscall, values=tuple(values),
            truncated=tuple(cut), ret=ret, latency_ns=latency, incomplete=incomplete,
            ancestors=ancestors, context=context)


def join_chunks(chunks: dict[int, tuple[bytes, int]], limit: int) -> tuple[bytes, bool]:
    """Chunks of one string -> (text, cut). The kernel may read past the string's end
    (it cannot see where a chunk's NUL is): the first short chunk ends it."""
    out, cut = b"", False
    for i in range(len(chunks)):
        if i not in chunks:
            return out, True
        text, next_byte = chunks[i]
        out += text
        if len(text) < CHUNK:
            cut = False
            break
        cut = next_byte != 0
    if len(out) > limit:
        return out[:limit], True
    return out, cut
