"""printf records -> ExecEvents, joined by (tid, entry time) whatever order they arrive in.

The records of one exec come from up to three probes, which can run on different CPUs
(exec migrates the task); bpftrace 0.17 reads one buffer per CPU, so they interleave
with other execs' records and may even arrive after the closing `exec` record. The
`exec` record says how many records the exec produced, which is when it is complete.
See codegen for the record layout.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bptrace_exec.codegen import ARGC_COUNT_LIMIT, READY_RECORD, TEXT_CHUNK
from bptrace_exec.context import ProcContext
from bptrace_exec.events import ExecEvent, syscall_name

COMPLETE_WAIT_NS = 1_000_000_000  # how long a summary waits for its missing records
ORPHAN_WAIT_NS = 60_000_000_000  # records with no summary (lost, or exec never returned)
MAX_PENDING = 65536
COMM_LEN = 16


class MalformedRecord(ValueError):
    """A printf record that does not have the shape codegen gives it."""


@dataclass
class _Summary:
    ret: int
    latency_ns: int
    pid: int
    ppid: int
    uid: int
    caller_argc: int
    argc: int
    more: bool
    size: int
    records: int
    syscall: str


@dataclass
class _Parts:
    tid: int
    entry_ns: int
    first_seen_ns: int
    received: int = 0
    comm: bytes = b""
    argv0: tuple[bytes, int] | None = None  # (text, next byte)
    chunks: dict[int, bytes] = field(default_factory=dict)  # argv block, by offset
    path: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    args: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    summary: _Summary | None = None
    summary_seen_ns: int = 0
    ancestors: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # by depth
    cgroup: tuple[int, int, int, bytes] | None = None  # id, pidns, mntns, name
    hostname: bytes | None = None


@dataclass
class AssemblyStats:
    malformed: int = 0  # records that did not parse (reported, not dropped silently)
    incomplete: int = 0  # execs shown with records missing
    orphaned: int = 0  # records of execs whose summary never came
    unknown: int = 0  # printf records of a kind this version does not know


class Assembler:
    """Feed it printf texts; it returns ExecEvents as each exec becomes complete."""

    def __init__(self, *, wall_offset_ns: int, max_args: int) -> None:
        self.wall_offset_ns = wall_offset_ns
        self.max_args = max_args
        self.pending: dict[tuple[bytes, bytes], _Parts] = {}
        self.stats = AssemblyStats()

    def feed(self, text: bytes, now_ns: int) -> list[ExecEvent]:
        """The execs this record completes (usually none, at most one)."""
        if text == READY_RECORD:
            return []  # the program's start mark: the run acts on it, not the assembler
        # The final newline stays on the last field: each handler drops it.
        fields = text.split(b" ", 3) if text[-1:] == b"\n" else []
        handler = _HANDLERS.get(fields[0]) if len(fields) == 4 else None
        if handler is None:
            if fields and fields[0] not in _HANDLERS:
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
                parts = self.pending[key] = _Parts(int(tid_s), int(id_s), now_ns)
            handler(parts, body)
        except (ValueError, IndexError):
            self.stats.malformed += 1
            return []
        parts.received += 1
        if kind == b"exec":
            parts.summary_seen_ns = now_ns
        if parts.summary is not None and parts.received >= parts.summary.records:
            del self.pending[key]
            return [self._build(parts, incomplete=False)]
        return []

    def expire(self, now_ns: int) -> Iterator[ExecEvent]:
        """Execs whose missing records are not coming any more (lost events)."""
        for key, parts in list(self.pending.items()):
            if parts.summary is not None and now_ns - parts.summary_seen_ns > COMPLETE_WAIT_NS:
                del self.pending[key]
                yield self._build(parts, incomplete=True)
            elif parts.summary is None and now_ns - parts.first_seen_ns > ORPHAN_WAIT_NS:
                del self.pending[key]
                self.stats.orphaned += 1

    def flush(self) -> Iterator[ExecEvent]:
        """At the end of a run: everything with a summary is shown, flagged if incomplete."""
        for parts in sorted(self.pending.values(), key=lambda p: p.entry_ns):
            if parts.summary is not None:
                yield self._build(parts, incomplete=parts.received < parts.summary.records)
            else:
                self.stats.orphaned += 1
        self.pending.clear()

    def _evict_oldest(self) -> None:
        oldest = min(self.pending, key=lambda k: self.pending[k].first_seen_ns)
        del self.pending[oldest]
        self.stats.orphaned += 1

    def _build(self, parts: _Parts, *, incomplete: bool) -> ExecEvent:
        s = parts.summary
        assert s is not None
        if incomplete:
            self.stats.incomplete += 1
        if s.ret == 0:
            argv, argv_cut = _success_argv(parts, s)
        else:
            argv, argv_cut = _failure_argv(parts, s)
        if len(argv) > self.max_args:
            argv, argv_cut = argv[: self.max_args], True
        filename, filename_cut = _join_text(parts.path)
        context = None
        if parts.cgroup is not None or parts.hostname is not None:
            cgroup_id, pidns, mntns, name = parts.cgroup or (0, 0, 0, b"")
            context = ProcContext(cgroup_id, name.decode("utf-8", "surrogateescape"), pidns,
                                  mntns, (parts.hostname or b"").decode("utf-8",
                                                                         "surrogateescape"))
        return ExecEvent(
            time_ns=parts.entry_ns + self.wall_offset_ns,
            pid=s.pid, ppid=s.ppid, uid=s.uid, tid=parts.tid,
            comm=parts.comm,
            filename=filename, filename_truncated=filename_cut,
            argv=tuple(argv), argv_truncated=argv_cut,
            ret=s.ret, latency_ns=s.latency_ns, syscall=s.syscall,
            incomplete=incomplete,
            ancestors=tuple(parts.ancestors[d] for d in sorted(parts.ancestors)),
            context=context,
        )


# --- record handlers: each parses the part of a record after "KIND TID ID " -------------

def _fields(body: bytes, count: int) -> list[bytes]:
    """count space-separated fields, then the rest: traced text, which may itself hold
    spaces and newlines, or be empty. The record's final newline is taken off the rest."""
    out = body.split(b" ", count)
    if len(out) != count + 1:
        raise ValueError("record with too few fields")
    out[-1] = out[-1][:-1]
    return out


def comm_from_hex(hex_tokens: bytes) -> bytes:
    raw = bytes.fromhex(hex_tokens.decode("ascii"))
    if len(raw) != COMM_LEN:
        raise ValueError("comm is not 16 bytes")
    return raw.split(b"\0", 1)[0]


def _on_enter(p: _Parts, body: bytes) -> None:
    fields = _fields(body, 2 + COMM_LEN)
    p.comm = comm_from_hex(b" ".join(fields[2:-1]))
    p.argv0 = (fields[-1], int(fields[1]))


def _on_argv(p: _Parts, body: bytes) -> None:
    offset_s, hex_tokens = body.split(b" ", 1)  # fromhex skips the final newline
    p.chunks[int(offset_s)] = bytes.fromhex(hex_tokens.decode("ascii"))


def _on_file(p: _Parts, body: bytes) -> None:
    chunk_s, next_s, text = body.split(b" ", 2)
    p.path[int(chunk_s)] = (text[:-1], int(next_s))


def _on_arg(p: _Parts, body: bytes) -> None:
    index_s, next_s, text = body.split(b" ", 2)
    p.args[int(index_s)] = (text[:-1], int(next_s))


def _on_comm(p: _Parts, body: bytes) -> None:
    p.comm = comm_from_hex(body[:-1])


def _on_exec(p: _Parts, body: bytes) -> None:
    values = [int(v) for v in body.split()]
    if len(values) != 11:
        raise ValueError("exec record with a wrong number of fields")
    ret, lat, pid, ppid, uid, caller_argc, argc, more, size, records, nr = values
    p.summary = _Summary(ret, lat, pid, ppid, uid, caller_argc, argc, bool(more), size,
                         records, syscall_name(nr))


def on_ancestor(p: _Parts | Any, body: bytes) -> None:
    depth_s, pid_s, hex_tokens = body.split(b" ", 2)
    p.ancestors[int(depth_s)] = (int(pid_s), comm_from_hex(hex_tokens[:-1]))


def on_cgroup(p: _Parts | Any, body: bytes) -> None:
    id_s, pidns_s, mntns_s, name = body.split(b" ", 3)
    p.cgroup = (int(id_s), int(pidns_s), int(mntns_s), name[:-1])


def on_hostname(p: _Parts | Any, body: bytes) -> None:
    p.hostname = body[:-1]


# the process context records (codegen.context), shared with assemble_calls
CONTEXT_HANDLERS = {b"anc": on_ancestor, b"cgrp": on_cgroup, b"uts": on_hostname}
_HANDLERS = {
    b"enter": _on_enter, b"argv": _on_argv, b"file": _on_file,
    b"arg": _on_arg, b"comm": _on_comm, b"exec": _on_exec, **CONTEXT_HANDLERS,
}


# --- argv reconstruction -----------------------------------------------------------------

def _read_cut(text: bytes, next_byte: int) -> bool:
    """A 199-byte read followed by a non-NUL byte was cut; a shorter one is whole."""
    return len(text) >= TEXT_CHUNK and next_byte != 0


def _join_text(chunks: dict[int, tuple[bytes, int]]) -> tuple[bytes, bool]:
    out, cut = b"", False
    for i in range(len(chunks)):
        if i not in chunks:
            return out, True
        text, next_byte = chunks[i]
        out += text
        cut = _read_cut(text, next_byte)
        if len(text) < TEXT_CHUNK:
            break
    return out, cut


def _success_argv(p: _Parts, s: _Summary) -> tuple[list[bytes], bool]:
    block = b""
    while len(block) in p.chunks:
        piece = p.chunks[len(block)]
        if not piece:
            break
        block += piece
    whole = len(block) >= s.size
    new_argv = block[: s.size].split(b"\0")
    if whole:
        new_argv = new_argv[:-1]  # the block ends with the last argument's NUL
    cut = not whole
    if s.caller_argc == s.argc or s.caller_argc >= ARGC_COUNT_LIMIT or p.argv0 is None:
        return new_argv, cut
    if s.caller_argc == 0:
        # Linux puts "" in argv[0] of an exec with an empty argv; anything else means
        # the caller's array could not be read at entry, and the new image is all we have.
        return ([] if s.argc == 1 and new_argv == [b""] else new_argv), cut
    if s.argc > s.caller_argc:
        # A #! script: the kernel replaced argv[0] with the interpreter, its optional
        # argument and the script's path; the caller's argv[1:] follow unchanged.
        argv0, next_byte = p.argv0
        skip = s.argc - s.caller_argc + 1
        return [argv0, *new_argv[skip:]], cut or _read_cut(argv0, next_byte)
    return new_argv, cut


def _failure_argv(p: _Parts, s: _Summary) -> tuple[list[bytes], bool]:
    argv: list[bytes] = []
    cut = s.more or s.caller_argc > s.argc
    for i in range(s.argc):
        if i not in p.args:
            return argv, True
        text, next_byte = p.args[i]
        argv.append(text)
        cut = cut or _read_cut(text, next_byte)
    return argv, cut
