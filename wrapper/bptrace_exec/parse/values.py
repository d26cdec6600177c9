"""The parts of a call -> its arguments' values, each the way its type is read
(codegen.readers says how each was printed).

Strings come in chunks, each with the byte after it: a full chunk followed by a non-NUL
byte was cut. An exec's argv is the new image's argv block when it succeeded, which is
the authority: every argument the kernel copied is shown, exactly; only a `#!` script's
argv[0], which the kernel replaced, is the caller's, and only when the caller's count is
sure and the image has the script's layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bptrace_exec.event import Value
from bptrace_exec.records import (
    ARGC_COUNT_LIMIT,
    ARGC_UNSURE,
    INTS,
    NULL_NEXT,
    UNREADABLE_NEXT,
    Closing,
    Who,
)
from bptrace_exec.spec import types
from bptrace_exec.spec.captures import carried
from bptrace_exec.spec.model import Profile

NONE_CUT: frozenset[str] = frozenset()
DIRFD = "exec_dirfd"  # the type of the number an exec's path is relative to (execveat's)


@dataclass(slots=True)  # one per call in flight, made on the hot path
class Parts:
    """What has come of one call so far, by argument slot where it is an argument's."""

    tid: int
    entry_ns: int
    first_seen_ns: int
    received: int = 0
    closing: Closing | None = None
    closed_ns: int = 0
    comm: bytes = b""
    firsts: dict[int, tuple[bytes, int]] = field(default_factory=dict)  # (text, next byte)
    pieces: dict[int, dict[int, tuple[bytes, int]]] = field(default_factory=dict)  # by chunk
    # by item, then chunk
    elems: dict[int, dict[int, dict[int, tuple[bytes, int]]]] = field(default_factory=dict)
    blocks: dict[int, dict[int, bytes]] = field(default_factory=dict)  # by offset
    ancestors: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # by depth
    cgroup: tuple[int, int, int, bytes] | None = None  # id, pidns, mntns, name
    hostname: bytes | None = None
    who: Who | None = None
    # a path's names by depth, each by offset; and how its walk ended (records.PathEnd)
    paths: dict[int, dict[int, dict[int, bytes]]] = field(default_factory=dict)
    path_flags: dict[int, int] = field(default_factory=dict)
    env: dict[int, bytes] = field(default_factory=dict)  # the environment block, by offset
    env_size: int = 0


def ints_per_probe(profile: Profile) -> list[int]:
    """How many numbers each probe's closing record has (records.INTS)."""
    return [sum(INTS.get(types.of(a.type).read, 0) for a in profile.args if carried(a, p))
            for p in profile.probes]


class Decoder:
    """A profile's arguments from the parts of one of its calls; what to read for each
    probe is worked out once."""

    def __init__(self, profile: Profile, chunk: int) -> None:
        self.profile = profile
        self.chunk = chunk
        self.plans = [self._plan(probe) for probe in profile.probes]
        self.dirfds = [self._dirfd(plan) for plan in self.plans]

    def _plan(self, probe: str) -> list[tuple[str, str, int, int]]:
        """For each argument: its name, how it is read ("" when this probe has none), its
        slot and where its numbers start among the closing record's (a padded one's
        are there, and not read)."""
        plan, at = [], 0
        for slot, arg in enumerate(self.profile.args):
            read = types.of(arg.type).read if arg.source(probe) else ""
            plan.append((arg.name, read, slot, at))
            at += INTS.get(types.of(arg.type).read, 0) if carried(arg, probe) else 0
        return plan

    def _dirfd(self, plan: list[tuple[str, str, int, int]]) -> int | None:
        """Where the probe's dirfd is among the closing record's numbers, if it has one."""
        return next((at for _, read, slot, at in plan
                     if read and self.profile.args[slot].type == DIRFD), None)

    def values(self, p: Parts, closing: Closing
               ) -> tuple[dict[str, Value], frozenset[str], tuple[str, ...]]:
        """The arguments' values, those cut by the limits, and where strings could not be
        read ("filename", "argv/1"): shown as "", which they may not be."""
        values: dict[str, Value] = {}
        cut = []
        unreadable: list[str] = []
        for name, read, slot, at in self.plans[closing.probe]:
            value: Value
            was_cut = False
            if read == "int":
                value = closing.ints[at]
            elif read == "str":
                chunks = p.pieces.get(slot, {})
                value, was_cut = join_chunks(chunks, self.chunk,
                                             self.profile.limits.string_bytes)
                if first_next(chunks) == NULL_NEXT:
                    value = None  # a NULL pointer
            elif read == "exec_path":
                chunks = p.pieces.get(slot, {})
                value, was_cut = join_chunks(chunks, self.chunk)
                if first_next(chunks) == UNREADABLE_NEXT:
                    unreadable.append(name)
                dirfd = self.dirfds[closing.probe]
                if closing.ret != 0 and dirfd is not None:  # the caller's name, not the image's
                    value = exec_name(value, closing.ints[dirfd])
            elif read == "sockaddr":
                value = _block(p.blocks.get(slot, {}))
            elif read == "argv":
                value, was_cut = self._argv(p, closing, slot, closing.ints[at:at + 4], values)
                unreadable += [f"{name}/{i}" for i, chunks in sorted(p.elems.get(slot, {}).items())
                               if first_next(chunks) == UNREADABLE_NEXT
                               and closing.ret != 0]
            else:
                value = None  # this probe has no such argument
            values[name] = value
            if was_cut:
                cut.append(name)
        return values, frozenset(cut) if cut else NONE_CUT, tuple(unreadable)

    def _argv(self, p: Parts, closing: Closing, slot: int, counts: tuple[int, ...],
              so_far: dict[str, Value]) -> tuple[Value, bool]:
        caller_argc, argc, more, size = counts  # records.ARGV_INTS, in that order
        if closing.ret == 0:
            argv, cut = self._new_image_argv(p, slot, caller_argc, argc, size,
                                             so_far.get("filename"))
        else:
            argv, cut = self._caller_argv(p, slot, caller_argc, argc, more)
        limit = self.profile.limits.max_args
        if len(argv) > limit:
            argv, cut = argv[:limit], True
        return tuple(argv), cut

    def _new_image_argv(self, p: Parts, slot: int, caller_argc: int, argc: int, size: int,
                        path: Value) -> tuple[list[bytes], bool]:
        # read a record at a time: what is past the limit asked for is not shown
        block = _block(p.blocks.get(slot, {}))[:self.profile.limits.argv_bytes]
        whole = len(block) >= size
        argv = block[:size].split(b"\0")
        if whole:
            argv = argv[:-1]  # the block ends with the last argument's NUL
        cut = not whole
        sure = caller_argc < ARGC_COUNT_LIMIT
        caller_argc %= ARGC_UNSURE
        if caller_argc == 0 and argc == 1 and argv == [b""]:
            return [], cut  # Linux puts "" in argv[0] of an exec with an empty argv
        # A #! script: the kernel replaced argv[0] with the interpreter, its optional
        # argument and the script's path, then the caller's argv[1:] unchanged.
        inserted = argc - caller_argc
        first = p.firsts.get(slot)
        if first is None or not (sure and caller_argc > 0 and inserted in (1, 2) and
                                 len(argv) == argc and argv[inserted] == path):
            return argv, cut
        argv0, next_byte = first
        if next_byte == UNREADABLE_NEXT:  # the image's argv, whole, rather than a guess
            return argv, cut
        return [argv0, *argv[inserted + 1:]], cut or self._read_cut(argv0, next_byte)

    def _caller_argv(self, p: Parts, slot: int, caller_argc: int, argc: int,
                     more: int) -> tuple[list[bytes], bool]:
        argv: list[bytes] = []
        elems = p.elems.get(slot, {})
        # an entry count that is not sure may hide arguments the return could not read
        cut = bool(more) or caller_argc > argc
        for i in range(argc):
            if i not in elems:
                return argv, True
            text, was_cut = join_chunks(elems[i], self.chunk)
            argv.append(text)
            cut = cut or was_cut
        return argv, cut

    def _read_cut(self, text: bytes, next_byte: int) -> bool:
        """A full read followed by a non-NUL byte was cut; a shorter one is whole."""
        return len(text) >= self.chunk and next_byte != 0


def exec_name(name: bytes, dirfd: int) -> bytes:
    """The name the kernel gives the program an execveat runs (fs/exec.c, alloc_bprm()),
    which a successful exec shows (the kernel's copy, in the new image); a failed one is
    shown the same way from the name its caller passed. AT_FDCWD or an absolute name: the
    name as given; else the fd under /dev/fd, and the name under it unless it is empty
    (AT_EMPTY_PATH: the fd is the program's own)."""
    fd = types.signed(dirfd, 32)  # the kernel's int, whatever the register's upper half
    if fd == types.AT_FDCWD or name.startswith(b"/"):
        return name
    return b"/dev/fd/%d/%s" % (fd, name) if name else b"/dev/fd/%d" % fd


def first_next(chunks: dict[int, tuple[bytes, int]]) -> int:
    """The `next` of a string's first chunk (0 when it did not come), where the program
    marks a string it could not read (UNREADABLE_NEXT) or a NULL pointer (NULL_NEXT)."""
    return chunks[0][1] if 0 in chunks else 0


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


def _block(pieces: dict[int, bytes]) -> bytes:
    """Bytes printed from offsets -> the bytes up to the first gap."""
    block = b""
    while len(block) in pieces:
        piece = pieces[len(block)]
        if not piece:
            break
        block += piece
    return block
