"""bpftrace's view of tracefs' `available_events`, narrowed to its program's tracepoints.

bpftrace reads that list (2,300 lines here, which the kernel formats at every read) each
time it checks a tracepoint of the program: 0.17 about 250 times for an exec profile's
program, 0.23 about 80. Here that was 0.17 s of 0.85 until the first exec was shown on
0.17, 0.06 s of 1.2 on 0.23. In a mount namespace of its own, bpftrace finds instead a
file that lists the program's tracepoints alone. Everything else it sees is the host's,
and the command a run follows is not in that namespace.

It is an optimization only: where a step cannot be taken (no cache to keep the list in,
no right to make a namespace, a program with a tracepoint named by a pattern) bpftrace
reads the kernel's list as it otherwise would.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from bptrace_exec.run.cache import CacheDir
from bptrace_exec.spec.tracepoint import TRACEFS_ROOTS

_LITERAL = re.compile(r"^tracepoint:(\w+):(\w+)\s*[,{/\n]", re.M)
_NAMED = re.compile(r"\b(?:tracepoint|tp):")
KEPT = 32  # lists kept

_CLONE_NEWNS = 0x20000
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_SLAVE = 1 << 19


def listing(program_text: str) -> str | None:
    """The program's tracepoints as `available_events` lists them; None when one of them
    is not named literally at the start of a line."""
    found = _LITERAL.findall(program_text)
    if not found or len(found) != len(_NAMED.findall(program_text)):
        return None
    return "".join(f"{group}:{event}\n" for group, event in dict.fromkeys(found))


@dataclass(frozen=True)
class Kept:
    """A listing kept in the cache: where, and which file it is (as checked there)."""

    path: Path
    device: int
    inode: int


def kept_listing(program_text: str, cache: CacheDir | None = None) -> Kept | None:
    """The program's listing, written once to the cache, or None."""
    text = listing(program_text)
    if text is None:
        return None
    cache = cache or CacheDir.default("events")
    name = hashlib.sha256(text.encode()).hexdigest()[:32]
    if cache.read(name) != text:
        if not cache.write(name, text):
            return None
        cache.keep_newest(KEPT)
    found = cache.located(name)
    return Kept(*found) if found else None


class Narrow:
    """What bpftrace's process does before it execs: its own mount namespace, where every
    tracefs list of events is the program's. Set up here, so that after the fork nothing
    is loaded or looked up; a step that fails leaves the host's list in view."""

    def __init__(self, kept: Kept, libc: ctypes.CDLL) -> None:
        self.kept = kept
        self._unshare, self._mount = libc.unshare, libc.mount
        self._targets = [bytes(root / "available_events") for root in TRACEFS_ROOTS]

    def __call__(self) -> None:
        if self._unshare(_CLONE_NEWNS) != 0:
            return
        # a slave: the host's mounts and unmounts still reach it, its own reach no one
        if self._mount(None, b"/", None, _MS_REC | _MS_SLAVE, None) != 0:
            return
        # opened in this namespace: a bind mount takes only a source that is in it
        try:
            fd = os.open(self.kept.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                         | os.O_CLOEXEC)
        except OSError:
            return
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (self.kept.device, self.kept.inode):
                return  # not the file that was checked
            source = f"/proc/self/fd/{fd}".encode()
            for target in self._targets:
                if os.path.exists(target):
                    self._mount(source, target, None, _MS_BIND, None)
        finally:
            os.close(fd)
