"""bpftrace started while the tool loads: loading takes about 0.08 s, a tenth of which
is needed to start bpftrace the way the last run of the same command line did.

A live run keeps its start (run.spawn.Start: program, bpftrace, environment) under its
command line and folder. The next run of that command line makes the same start at
once, on the standard library alone (`bptrace_exec.__main__`); when the tool has
loaded, the run makes its own Start as always, and takes the early process only if the
two are equal. Else the early one is killed by its PID, unread, and the run starts its
own: what a run reads always comes from the program it generated.
A run that follows a COMMAND is not started early: its start names the command's PID.
"""

from __future__ import annotations

import json
import os
import zlib

from bptrace_exec import __version__
from bptrace_exec.run.cache import CacheDir
from bptrace_exec.run.spawn import Spawned, Start, spawn

KEPT = 16  # command lines whose start is kept


class Early:
    """A command line's start: the kept one, and its process if it was started."""

    def __init__(self, cache: CacheDir, key: str, start: Start | None,
                 spawned: Spawned | None) -> None:
        self.cache, self.key, self.start, self.spawned = cache, key, start, spawned

    @property
    def name(self) -> str:
        """Of the file kept: a checksum of the key, which the file holds to be compared."""
        return f"{zlib.crc32(self.key.encode()):08x}"

    def take(self, start: Start) -> Spawned | None:
        """The early process if it is that start; else it is ended. Once only."""
        spawned, self.spawned = self.spawned, None
        if spawned is not None and start != self.start:
            spawned.end()
            return None
        return spawned

    def keep(self, start: Start) -> None:
        """For the next run of this command line."""
        if start.command is None and start != self.start:
            if self.cache.write(self.name, f"{self.key}\n{start.to_text()}"):
                self.cache.keep_newest(KEPT)
            self.start = start

    def discard(self) -> None:
        """The early process ended, if no run took it; and forgotten, for a command line
        that started none."""
        if self.spawned is not None:
            self.spawned.end()
            self.spawned = None
            self.cache.write(self.name, "")


def prestart(argv: list[str], cache: CacheDir | None = None) -> Early | None:
    """The start kept for this command line, made now; None for one that would follow a
    command."""
    if "--" in argv:
        return None
    cache = cache or CacheDir.default("starts")
    key = json.dumps([__version__, os.getcwd(), *argv])  # on one line
    early = Early(cache, key, None, None)
    kept = (cache.read(early.name) or "").partition("\n")
    if kept[0] != key or not kept[2]:
        return early
    early.start = Start.from_text(kept[2], os.getpid())
    if early.start is not None:
        try:
            early.spawned = spawn(early.start)
        except OSError:
            early.start = None
    return early
