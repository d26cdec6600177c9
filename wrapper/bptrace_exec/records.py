"""Every record a generated program prints, declared once: codegen writes each printf
from these layouts and the parser reads the records back by the same declarations.

A record is one printf line: its kind, then, for a record of a call, TID and ID (the
calling thread's id and the entry time, which join the records of one call whatever CPU
each came from), then its fields. At most one field takes the rest of the line (a text,
or bytes in hex), and it comes last; a field before it has a width the record says
(bytes as many as `length`, a comm). Each record fills a part of a call (`PARTS`), a
closing one several (who made the call, the first bytes of a string or an address); the
closing one says how many records the call has, which is when it is complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

# How a field is printed, and read back.
FORMATS = {
    "u64": "%lu",
    "s64": "%ld",
    "u8": "%u",
    "u64*": "%lu",  # as many numbers as the probe has (the closing record's captures)
    "text": "%s",  # the rest of the line, bytes as they are
    "hex": "%rh",  # the rest of the line, bytes as hex pairs
    "hexlen": "%rh",  # as many bytes as the field `length` says, as hex pairs
    "comm16": "%rh",  # 16 bytes as hex pairs (recordings made before version 2)
    # A comm padded to 16 bytes on the right, then on the left: 32 bytes that say its
    # spaces (the one gives leading ones, the other trailing ones), at the cost of two
    # strings where bpftrace formats a hex field ten times slower.
    "comm32": "%-16s%16s",
    "nr": "%lu",  # a syscall number (recordings made before version 2)
    # Two numbers of 32 bits in one, the first in the low half (a field named "a/b"):
    # 0.17's 512-byte stack holds a record's fields, and bpftrace formats a number for
    # little more than nothing, a record for much.
    "u32x2": "%lu",
    # The closing record's numbers, two in each number printed (as u32x2), each read back
    # as the 64 bits its 32 say as a signed value (a dirfd of -100 as before: 2**64 - 100).
    "i32x2*": "%lu",
    "words": "%lu",  # bytes as WORDS numbers (below), as many as the field `length` says
    "cwords": "%lu",  # a string as WORDS numbers: the bytes before the first NUL, if any
}
PACKED = {"u32x2": 32, "i32x2*": 32}  # the bits of each number packed, by type
# A buf() read: 0.17 caps it at its string size (spec.model: 81), of which 0.23 keeps 4
# for the length. The `bytes` records of recordings before version 10 carry so many
# (an exec's argv and environment before version 9, a socket address's before 10).
BUF_CHUNK = 77
# Bytes as little-endian words of 8, each a number: bpftrace formats a hex field (%rh) in
# as long as the rest of a record (it builds a std::regex for each), and a string takes
# its size twice on the stack; numbers cost almost nothing. Ten: a chunk of argv
# (ARGV_CHUNK), or a string read of the exec kind (80 bytes).
WORDS = 10
ARGV_CHUNK = 8 * WORDS  # bytes of argv in the exec record, and in each `bytesw` record
REST = ("text", "hex")
ARITY = {"comm32": 2}  # fields printed from one value more than once


@dataclass(frozen=True)
class Field:
    name: str  # "a/b": the names of numbers packed in one (PACKED)
    type: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.name.split("/"))


@dataclass(frozen=True)
class Layout:
    kind: str
    parts: tuple[str, ...]  # which parts of a call it fills: keys of PARTS
    fields: tuple[Field, ...]
    keyed: bool = True  # starts with TID ID
    # part fields it implies, by name, or as PART.NAME for one part's only
    constants: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rest = [i for i, f in enumerate(self.fields) if f.type in REST]
        assert not rest or rest == [len(self.fields) - 1], f"{self.kind}: rest not last"

    def names(self) -> tuple[str, ...]:
        return tuple(name for f in self.fields for name in f.names)


# --- the parts of a call: what the records say, whatever layout said it -----------------

class First(NamedTuple):
    """At entry: the first string of a list capture as the caller passed it (argv[0])."""

    slot: int  # the capture's place in the profile
    next: int  # the byte after a full read: non-zero means it was cut
    text: bytes


class Piece(NamedTuple):
    """A piece of a string capture, read a string size at a time."""

    slot: int
    chunk: int
    next: int
    text: bytes


class Element(NamedTuple):
    """A piece of one string of a list capture (a failed exec's argv, from the caller),
    read a string size at a time."""

    slot: int
    item: int  # its place in the list
    chunk: int
    next: int
    text: bytes


class Block(NamedTuple):
    """Bytes of a capture from an offset (argv from the new image, a socket address)."""

    slot: int
    offset: int
    data: bytes


class Closing(NamedTuple):
    """The record that closes a call."""

    probe: int  # the index of the probe in the profile
    records: int  # how many records the call has, this one included
    ret: int
    latency: int
    pid: int
    ppid: int
    uid: int
    ints: tuple[int, ...]  # the captures' numbers, in the profile's order
    comm: bytes | None  # None: in another record (recordings made before version 2)


class Who(NamedTuple):
    """Who the caller is, and which process image: its credentials and audit identity
    (after the exec, for one that succeeded), its process's start time and exec count
    (task->self_exec_id, one more at each exec), and those of its parent."""

    gid: int
    euid: int
    egid: int
    loginuid: int  # 2**32 - 1: never set
    sessionid: int  # 2**32 - 1: none
    tty: int  # the controlling terminal, as MKDEV(major, minor); 0: none
    started: int  # the process's start, nsecs (CLOCK_MONOTONIC)
    execs: int
    parent_started: int
    parent_execs: int


class Segment(NamedTuple):
    """A piece of one name of a path walked in the kernel from its end up (`which`: the
    working directory or the program's file, spec.model.PATHS), up to a string read long."""

    which: int
    depth: int  # the walk's step: 1 for the last name, more up the path (mounts take steps)
    offset: int
    text: bytes


class PathEnd(NamedTuple):
    """How a walk ended (PATH_CUT...), printed when not at a root as expected, or when
    it found no name (0: the root itself). A path walked has at least one record."""

    which: int
    flags: int


class EnvBlock(NamedTuple):
    """Bytes of the new image's environment block from an offset, and the block's size."""

    offset: int
    size: int
    data: bytes


class Comm(NamedTuple):
    comm: bytes


class Ancestor(NamedTuple):
    depth: int
    pid: int
    comm: bytes


class Cgroup(NamedTuple):
    cgroup_id: int
    pidns: int
    mntns: int
    name: bytes


class Hostname(NamedTuple):
    hostname: bytes


class Mark(NamedTuple):
    """Where a CPU's records end, once the reader has asked the program to stop."""

    cpu: int
    total: int  # the calls its probes reported (TOTAL_MAP's count for it), final by then
    time: int  # nsecs: a mark made after the reader had one of every CPU came in a later
    # read of bpftrace's buffers, after the losses it counted before (0.23 prints them
    # between reads)


PARTS: dict[str, type[tuple]] = {  # type: ignore[type-arg]
    "first": First, "str": Piece, "elem": Element, "bytes": Block, "call": Closing,
    "who": Who, "seg": Segment, "path": PathEnd, "env": EnvBlock, "comm": Comm, "anc": Ancestor,
    "cgrp": Cgroup, "uts": Hostname, "mark": Mark,
}


def _f(spec: str) -> tuple[Field, ...]:
    """"slot:u64 next:u8 text:text" -> Fields."""
    return tuple(Field(*item.split(":")) for item in spec.split())


# --- what this version's programs print (VERSION) ------------------------------------

FIRST = Layout("first", ("first",), _f("slot:u64 next:u8 text:text"))
STR = Layout("str", ("str",), _f("slot:u64 chunk:u64 next:u8 text:text"))
ELEM = Layout("elem", ("elem",), _f("slot:u64 item:u64 chunk:u64 next:u8 text:text"))
BYTES = Layout("bytes", ("bytes",), _f("slot:u64 offset:u64 data:hex"))
# The new image's argv block after the `exec` record's bytes, or a socket address's
# bytes after those a closing record holds (CALL_ADDR), ARGV_CHUNK bytes a record as
# words: bpftrace formats a hex field in as long as the rest of a record. (BYTES:
# recordings before version 10.)
BYTES_WORDS = Layout("bytesw", ("bytes",), _f("slot:u64 offset:u64 length:u64 data:words"))
CALL = Layout("call", ("call",), _f("probe:u64 records:u64 ret:s64 latency:u64 pid:u64 ppid:u64 "
                                 "uid:u64 ints:u64* comm:text"))
# An exec that succeeded, whole in one record when its path and argv fit: the closing
# record with the caller's name (padded, last: its spaces are its own), the argv block's
# first bytes (BYTES from offset 0) and the path's first chunk (STR chunk 0), both as
# words. The image's records say the rest (codegen.readers).
EXEC_PATH_SLOT, EXEC_ARGV_SLOT = 0, 1  # spec.model.EXEC_ARGS
_EXEC_PARTS = {"ret": 0, "str.slot": EXEC_PATH_SLOT, "str.chunk": 0,
               "bytes.slot": EXEC_ARGV_SLOT, "bytes.offset": 0}
# ... and who runs the new program (a `who` record's numbers, packed; the others too, for
# 0.17's stack): one record for most execs, where bpftrace spends more on each record
# than on all its numbers. Every number packed fits its 32 bits (an exec count, the
# kernel's u64, counts the execs of one line of processes).
_CALLER = ("started:u64 parent_started:u64 pid/ppid:u32x2 uid/gid:u32x2 euid/egid:u32x2 "
           "loginuid/sessionid:u32x2 execs/parent_execs:u32x2 records/tty:u32x2 ")
EXEC = Layout("exec", ("call", "str", "bytes", "who"),
              _f("probe:u64 latency:u64 " + _CALLER + "length/next:u32x2 ints:i32x2* "
                 "data:words text:cwords comm:comm32"),
              constants=_EXEC_PARTS)
# Every other call's closing record (a syscall's, a process's end; not a failed exec's:
# 0.17's stack has no room for who beside its strings), with who made it, packed as in
# the `exec` record: one record for a call of numbers. The caller's name is the rest.
CALL_WHO = Layout("callw", ("call", "who"),
                  _f("probe:u64 ret:s64 latency:u64 " + _CALLER + "ints:u64* comm:text"))
# ... with the first chunk of the one string a call reads (STR chunk 0: one record for
# most such calls; codegen.events says which calls have room for it), the caller's name
# padded before it (FORMATS["comm32"]).
CALL_STR = Layout("calls", ("call", "who", "str"),
                  _f("probe:u64 ret:s64 latency:u64 " + _CALLER
                     + "slot/next:u32x2 ints:u64* comm:comm32 text:text"),
                  constants={"str.chunk": 0})
# ... with the first ARGV_CHUNK bytes of the one address a call reads (BYTES_WORDS from
# offset 0: one record for an IPv4 or IPv6 address).
CALL_ADDR = Layout("calla", ("call", "who", "bytes"),
                   _f("probe:u64 ret:s64 latency:u64 " + _CALLER
                      + "slot/length:u32x2 ints:u64* data:words comm:text"),
                   constants={"bytes.offset": 0})
# The closing record's numbers, argument by argument in the profile's order: one for a
# number argument; for argv, these four.
ARGV_INTS = ("caller_argc", "argc", "more", "size")
INTS = {"int": 1, "argv": len(ARGV_INTS)}
# A failed exec's (the others' are in their closing record): 0.17's stack has no room for
# it in its call record, beside the strings it reads.
WHO = Layout("who", ("who",), tuple(Field(name, "u64") for name in Who._fields))
SEG = Layout("seg", ("seg",), _f("which:u64 depth:u64 offset:u64 text:text"))
PATH = Layout("path", ("path",), _f("which:u64 flags:u64"))
# A walk's flags: it stopped at its step limit (the path's top is missing); its last
# name was unlinked (shown as the kernel's d_path shows it: " (deleted)"); a mount that
# is not laid out as expected (a kernel whose struct mount differs: the path stops there);
# no path at all (a kernel thread's program, a failed exec's).
PATH_CUT, PATH_DELETED, PATH_UNKNOWN, PATH_NONE = 1, 2, 4, 8
ENV = Layout("env", ("env",), _f("offset:u64 size:u64 data:hex"))
# ... as words, ARGV_CHUNK bytes a record, as BYTES_WORDS
ENV_WORDS = Layout("envw", ("env",), _f("offset:u64 size:u64 length:u64 data:words"))
ENV_BYTES = 4096  # of the environment block read (context.env)
ANC = Layout("anc", ("anc",), _f("depth:u64 pid:u64 comm:text"))
CGRP = Layout("cgrp", ("cgrp",), _f("cgroup_id:u64 pidns:u64 mntns:u64 name:text"))
UTS = Layout("uts", ("uts",), _f("hostname:text"))
MARK = Layout("mark", ("mark",), _f("cpu:u64 total:u64 time:u64"), keyed=False)
LAYOUTS9 = (FIRST, STR, ELEM, BYTES, BYTES_WORDS, CALL, EXEC, WHO, SEG, PATH, ENV_WORDS, ANC,
            CGRP, UTS)
LAYOUTS = (*(layout for layout in LAYOUTS9 if layout is not BYTES), CALL_WHO, CALL_STR,
           CALL_ADDR)
# A string's `next` byte when it could not be read: it and the 24 bytes around it read as
# zeros, as memory whose page is not present does (bpftrace shows a failed read as zeros).
# A real "" has neighbours: the string before it, an allocation's header. No byte is 256.
UNREADABLE_NEXT = 256
# A string's `next` byte when its pointer is NULL (strace's NULL): no string at all.
NULL_NEXT = 512
# An exec's caller_argc: counted at entry up to ARGC_COUNT_LIMIT, plus ARGC_UNSURE when
# the NULL that ended the count was read where a page not present reads as zeros.
ARGC_COUNT_LIMIT = 1024
ARGC_UNSURE = 4096
# The closing record's ret when the caller was being killed as its call failed (SIGKILL
# pending: a signal, or a sibling thread's exec): what the kernel had, often a restart
# code, reached no one. No call returns it (errors are -1..-4095).
KILLED_RET = -(1 << 32)
# A call that printed records at entry and is not shown after all (a failed exec when
# only successful ones are asked for): its records are forgotten, not left to look lost.
DROP = Layout("drop", (), ())

# Records that are not part of a call: the program's start, the end of a stats snapshot,
# and of the last one, printed when the reader asks for the end (so its counts need not
# wait for bpftrace's exit, after it has detached every probe).
READY = "ready"
SNAPSHOT_END = "stats"
LAST_SNAPSHOT_END = "last"
# @total: the calls the program reported, by CPU: printed at exit, and in the marks
TOTAL_MAP = "total"
TOTAL_PRINTED = 2  # the first version whose every program prints it at exit (1's: some)
# The stats program's latency histogram: its buckets, counted per CPU (codegen.stats),
# since STATS_BY_CPU; hist()'s before, and in a one-liner
LATENCY_LOG2_MAP, LATENCY_HIST_MAP = "stat_latency_log2_us", "stat_latency_us"

# --- version 1: recordings made before, by exec and syscall programs of their own --------
# In exec programs the filename was capture 0 and argv capture 1.

LEGACY = (
    Layout("enter", ("first", "comm"), _f("caller_argc:u64 next:u8 comm:comm16 text:text"),
           constants={"slot": 1}),
    Layout("argv", ("bytes",), _f("offset:u64 data:hex"), constants={"slot": 1}),
    Layout("file", ("str",), _f("chunk:u64 next:u8 text:text"), constants={"slot": 0}),
    Layout("arg", ("elem",), _f("item:u64 next:u8 text:text"),
           constants={"slot": 1, "chunk": 0}),
    Layout("comm", ("comm",), _f("comm:comm16")),
    Layout("exec", ("call",), _f("ret:s64 latency:u64 pid:u64 ppid:u64 uid:u64 ints:u64 ints:u64 "
                              "ints:u64 ints:u64 records:u64 probe:nr")),
    STR,
    Layout("addr", ("bytes",), _f("slot:u64 data:hex"), constants={"offset": 0}),
    Layout("call", ("call",), _f("records:u64 probe:u64 ret:s64 latency:u64 pid:u64 ppid:u64 "
                              "uid:u64 comm:comm16 ints:u64*")),
    Layout("anc", ("anc",), _f("depth:u64 pid:u64 comm:comm16")),
    CGRP,
    UTS,
)
LEGACY_TOTAL_MAPS = ("exec_total", "call_total")

# --- versions 2 and 3: one `elem` record per string, no `exec` record; version 3's
# execveat closes its calls with two numbers more, dirfd and flags (spec.model.EXEC_ARGS:
# `since`). A recording of version 2 is read with the captures its programs had.
ELEM3 = Layout("elem", ("elem",), _f("slot:u64 item:u64 next:u8 text:text"),
               constants={"chunk": 0})
LAYOUTS3 = (FIRST, STR, ELEM3, BYTES, CALL, ANC, CGRP, UTS)
# --- versions 4 to 8: an exec's argv after the exec record's bytes, and the new
# program's environment, in hex (no BYTES_WORDS, ENV_WORDS)
LAYOUTS8 = tuple(ENV if layout is ENV_WORDS else layout for layout in LAYOUTS9
                 if layout is not BYTES_WORDS)
# --- versions 4 to 6: an exec record without who (5 and 6: a `who` record said it),
# its argv bytes in hex and its path a string
EXEC6 = Layout("exec", ("call", "str", "bytes"),
               _f("probe:u64 records:u64 latency:u64 pid:u64 ppid:u64 uid:u64 ints:u64* "
                  "length:u64 next:u8 comm:comm32 data:hexlen text:text"),
               constants=_EXEC_PARTS)
LAYOUTS6 = tuple(EXEC6 if layout is EXEC else layout for layout in LAYOUTS8)
LAYOUTS5 = tuple(layout for layout in LAYOUTS6 if layout not in (SEG, PATH, ENV))  # neither yet
LAYOUTS4 = tuple(layout for layout in LAYOUTS5 if layout is not WHO)  # no `who` yet
# --- version 8: the records of 7; the stats' @stat_execs keyed FAILED | CPU << 1
# (codegen.stats.PER_CPU), which a reader of 7 would take for failures on CPU 0 alone
# --- version 9: an exec's argv and environment as words (BYTES_WORDS, ENV_WORDS),
# ARGV_CHUNK bytes a record (BUF_CHUNK before); the stats' breakdowns
# keyed (VALUE, CPU), and the latency's buckets in LATENCY_LOG2_MAP
STATS_BY_CPU = 9
# --- version 10: other calls than execs close with who (CALL_WHO, CALL_STR,
# CALL_ADDR); a socket address is words (BYTES_WORDS), not hex (BYTES)
VERSIONS = {1: LEGACY, 2: LAYOUTS3, 3: LAYOUTS3, 4: LAYOUTS4, 5: LAYOUTS5, 6: LAYOUTS6,
            7: LAYOUTS8, 8: LAYOUTS8, 9: LAYOUTS9, 10: LAYOUTS}
VERSION = 10
