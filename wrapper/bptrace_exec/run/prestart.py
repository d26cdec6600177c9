"""bpftrace started while the tool loads: loading takes about 0.1 s, a tenth of which is
needed to start bpftrace the way the last run of the same command line did.

A live run keeps its start (run.spawn.Start: program, bpftrace, environment) under its
command line, folder, $BPFTRACE and $PATH. The next run of that command line makes the
same start at once, on the standard library alone (`bptrace_exec.__main__`); when the
tool has loaded, the run makes its own Start as always, and takes the early process only
if the two are equal. Else the early one is killed by its PID, unread, and the run starts
its own: what a run reads always comes from the program it generated.

The kept start is only read from the user's own cache (run.cache), and only a bpftrace
binary that no one but root or the user can write to is started from it; nothing is
started early where tracefs is not mounted yet (the run mounts it first). A run that
follows a COMMAND is not started early: its start names the command's PID. A start that
cannot be made is no start, never an error: the run starts bpftrace as it always did.
"""

from __future__ import annotations

import json
import os
import stat
import zlib

from bptrace_exec import __version__
from bptrace_exec.run.cache import CacheDir
from bptrace_exec.run.spawn import TRACEFS_PREFIX, Spawned, Start, spawn

KEPT_STARTS = 16  # command lines whose start is kept
TRACEFS_EVENTS = (TRACEFS_PREFIX + "tracing/events", TRACEFS_PREFIX + "debug/tracing/events")


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
        """For the next run of this command line; written again when it is the same, so
        that the starts kept are those of the command lines last run."""
        if start.command is None:
            if self.cache.write(self.name, f"{self.key}\n{start.to_text()}"):
                self.cache.keep_newest(KEPT_STARTS)
            self.start = start

    def discard(self) -> None:
        """The early process ended, if no run took it; and forgotten, for a command line
        that started none."""
        if self.spawned is not None:
            self.spawned.end()
            self.spawned = None
            self.cache.write(self.name, "")


def prestart(argv: list[str], cache: CacheDir | None = None) -> Early | None:
    """The start kept for this command line, made now; None where none may be kept (a
    run that follows a COMMAND, a folder that is gone)."""
    if "--" in argv:
        return None
    try:
        key = json.dumps([__version__, os.getcwd(), os.environ.get("BPFTRACE"),
                          os.environ.get("PATH"), *argv])  # on one line
    except OSError:
        return None
    early = Early(cache or CacheDir.default("starts"), key, None, None)
    try:
        kept = (early.cache.read(early.name) or "").partition("\n")
        start = Start.from_text(kept[2], os.getpid()) if kept[0] == key else None
        if start is not None and _startable(start.engine):
            early.spawned, early.start = spawn(start), start
    except Exception:  # an optimization only: the run starts bpftrace as it always did
        if early.spawned is not None:
            early.spawned.end()
        early.spawned = None
    return early


def _startable(engine: str) -> bool:
    """A binary that only root or this user can change, where tracefs is mounted."""
    st = os.stat(engine)
    return (stat.S_ISREG(st.st_mode) and st.st_uid in (0, os.geteuid())
            and not st.st_mode & 0o022 and any(map(os.path.isdir, TRACEFS_EVENTS)))
