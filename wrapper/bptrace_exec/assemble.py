"""printf records -> ExecEvents, joined by (tid, entry time) whatever order they arrive in.

The records of one exec come from up to three probes, which can run on different CPUs
(exec migrates the task); bpftrace 0.17 reads one buffer per CPU, so they interleave
with other execs' records and may even arrive after the closing `exec` record. The
`exec` record says how many records the exec produced, which is when it is complete.
See codegen for the record layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bptrace_exec.codegen import ARGC_COUNT_LIMIT, ARGC_UNSURE, TEXT_CHUNK
from bptrace_exec.events import ExecEvent, syscall_name
from bptrace_exec.joiner import COMM_LEN, Joiner, Pending, comm_from_hex, join_chunks


class MalformedRecord(ValueError):
    """A printf record that does not have the shape codegen gives it."""


@dataclass(slots=True)
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


@dataclass(slots=True)
class _Parts(Pending):
    comm: bytes = b""
    argv0: tuple[bytes, int] | None = None  # (text, next byte)
    chunks: dict[int, bytes] = field(default_factory=dict)  # argv block, by offset
    path: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    args: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    summary: _Summary | None = None


class Assembler(Joiner[_Parts, ExecEvent]):
    """Feed it printf texts; it returns ExecEvents as each exec becomes complete."""

    summary_kind = b"exec"

    def __init__(self, *, wall_offset_ns: int, max_args: int) -> None:
        super().__init__(_HANDLERS)
        self.wall_offset_ns = wall_offset_ns
        self.max_args = max_args

    def new(self, tid: int, entry_ns: int, now_ns: int) -> _Parts:
        return _Parts(tid, entry_ns, now_ns)

    def build(self, parts: _Parts, *, incomplete: bool) -> ExecEvent:
        s = parts.summary
        assert s is not None
        if s.ret == 0:
            argv, argv_cut = _success_argv(parts, s)
        else:
            argv, argv_cut = _failure_argv(parts, s)
        if len(argv) > self.max_args:
            argv, argv_cut = argv[: self.max_args], True
        filename, filename_cut = join_chunks(parts.path, TEXT_CHUNK)
        # In field order, not by keyword: 16 keywords make the call three times as slow
        # (0.45 us of the 7 us an exec takes from its records to a JSON line).
        return ExecEvent(
            parts.entry_ns + self.wall_offset_ns,  # time_ns
            s.pid, s.ppid, s.uid, parts.tid, parts.comm,
            filename, filename_cut, tuple(argv), argv_cut,
            s.ret, s.latency_ns, s.syscall, incomplete,
            parts.parents() if parts.ancestors else (),
            parts.context() if parts.cgroup or parts.hostname else None,
        )


# --- record handlers: each parses the part of a record after "KIND TID ID " -------------

_COMM_HEX_LEN = 3 * COMM_LEN - 1

def _on_enter(p: _Parts, body: bytes) -> None:
    _argc, next_s, rest = body.split(b" ", 2)
    # The comm is 16 hex bytes with a space between each: sliced, not split and rejoined.
    if rest[_COMM_HEX_LEN:_COMM_HEX_LEN + 1] != b" ":
        raise ValueError("enter record with a short comm")
    p.comm = comm_from_hex(rest[:_COMM_HEX_LEN])
    p.argv0 = (rest[_COMM_HEX_LEN + 1:-1], int(next_s))


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
    values = list(map(int, body.split()))
    if len(values) != 11:
        raise ValueError("exec record with a wrong number of fields")
    ret, lat, pid, ppid, uid, caller_argc, argc, more, size, records, nr = values
    p.summary = _Summary(ret, lat, pid, ppid, uid, caller_argc, argc, bool(more), size,
                         records, syscall_name(nr))
    p.expected = records


_HANDLERS = {
    b"enter": _on_enter, b"argv": _on_argv, b"file": _on_file,
    b"arg": _on_arg, b"comm": _on_comm, b"exec": _on_exec,
}


# --- argv reconstruction -----------------------------------------------------------------

def _read_cut(text: bytes, next_byte: int) -> bool:
    """A 199-byte read followed by a non-NUL byte was cut; a shorter one is whole."""
    return len(text) >= TEXT_CHUNK and next_byte != 0


def _success_argv(p: _Parts, s: _Summary) -> tuple[list[bytes], bool]:
    """The new image's argv is the authority: all of it is shown, except that for a `#!`
    script the caller's argv[0] replaces what the kernel put in its place, when the
    caller's count is sure and the image has the script's layout."""
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
    sure = s.caller_argc < ARGC_COUNT_LIMIT
    caller_argc = s.caller_argc % ARGC_UNSURE
    if caller_argc == 0 and s.argc == 1 and new_argv == [b""]:
        return [], cut  # Linux puts "" in argv[0] of an exec with an empty argv
    # A #! script: the kernel replaced argv[0] with the interpreter, its optional
    # argument and the script's path, then the caller's argv[1:] unchanged.
    inserted = s.argc - caller_argc
    if p.argv0 is None or not (sure and caller_argc > 0 and inserted in (1, 2) and
                               len(new_argv) == s.argc and new_argv[inserted] == _path(p)):
        return new_argv, cut
    argv0, next_byte = p.argv0
    return [argv0, *new_argv[inserted + 1:]], cut or _read_cut(argv0, next_byte)


def _path(p: _Parts) -> bytes:
    return join_chunks(p.path, TEXT_CHUNK)[0]


def _failure_argv(p: _Parts, s: _Summary) -> tuple[list[bytes], bool]:
    argv: list[bytes] = []
    # an entry count that is not sure may hide arguments the return could not read
    cut = s.more or s.caller_argc > s.argc
    for i in range(s.argc):
        if i not in p.args:
            return argv, True
        text, next_byte = p.args[i]
        argv.append(text)
        cut = cut or _read_cut(text, next_byte)
    return argv, cut
