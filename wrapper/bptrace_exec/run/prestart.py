"""bpftrace started while the tool loads: loading takes about 0.1 s, a tenth of which is
needed to start bpftrace the way the last run of the same command line did.

A live run keeps its start (run.spawn.Start: program, bpftrace, environment) under its
command line, folder, $BPFTRACE and $PATH. The next run of that command line makes the
same start at once, on the standard library alone (`bptrace_exec.__main__`); when the
tool has loaded, the run makes its own Start as always, and takes the early process only
if the two are equal. Else the early one is killed by its PID, unread, and the run starts
its own: what a run reads always comes from the program it generated.

A run that follows a COMMAND keeps its start under its options alone: bpftrace's start
names the command only by its PID ($2). The next run with those options forks its own
COMMAND at once, held at its gate (run.gate), and starts bpftrace on that PID; the run
takes the command if it would fork the same (else the command exits at its closed gate,
never exec'd). A run whose command writes to a file of its own (--command-output) keeps
no start: that file is opened when the command is forked, not before the tool has
checked its command line.

The kept start is only read from the user's own cache (run.cache), and only a bpftrace
binary that no one but root or the user can write to is started from it; nothing is
started early where tracefs is not mounted yet (the run mounts it first). A start that
cannot be made is no start, never an error: the run starts bpftrace as it always did.
"""

from __future__ import annotations

import json
import os
import stat
import zlib

from bptrace_exec import __version__
from bptrace_exec.run.cache import CacheDir
from bptrace_exec.run.gate import GatedCommand
from bptrace_exec.run.spawn import TRACEFS_PREFIX, Spawned, Start, spawn

KEPT_STARTS = 16  # command lines whose start is kept
TRACEFS_EVENTS = (TRACEFS_PREFIX + "tracing/events", TRACEFS_PREFIX + "debug/tracing/events")


class Early:
    """A command line's start: the kept one, and its process if it was started, with its
    COMMAND if it follows one."""

    def __init__(self, cache: CacheDir, key: str, start: Start | None,
                 spawned: Spawned | None) -> None:
        self.cache, self.key, self.start, self.spawned = cache, key, start, spawned
        self.gate: GatedCommand | None = None

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

    def gated(self, argv: list[str], *, stdout_to_stderr: bool,
              output: str | None) -> GatedCommand | None:
        """The early COMMAND if it is the one these would fork; else it is ended, and so is
        the early bpftrace, which names it. Once."""
        gate, self.gate = self.gate, None
        if gate is not None and not gate.same(argv, stdout_to_stderr=stdout_to_stderr,
                                              output=output):
            gate.end()  # never released: it exits at its closed gate
            if self.spawned is not None:
                self.spawned.end()
                self.spawned = None
            return None
        return gate

    def keep(self, start: Start, command: GatedCommand | None = None) -> None:
        """For the next run of this command line (of these options, with a COMMAND, and
        how the command's output goes); written again when it is the same, so that the
        starts kept are those of the command lines last run."""
        if command is not None and command.output is not None:
            return
        gate = "" if command is None else "\n" + json.dumps(
            {"stdout_to_stderr": command.stdout_to_stderr})
        if self.cache.write(self.name, f"{self.key}\n{start.to_text()}{gate}"):
            self.cache.keep_newest(KEPT_STARTS)
        self.start = start

    def discard(self) -> None:
        """The early processes ended, if no run took them; and the start forgotten, for a
        command line that started none."""
        if self.gate is not None:
            self.gate.end()
            self.gate = None
        if self.spawned is not None:
            self.spawned.end()
            self.spawned = None
            self.cache.write(self.name, "")


def prestart(argv: list[str], cache: CacheDir | None = None) -> Early | None:
    """The start kept for this command line, made now; None where none may be kept (no
    COMMAND after --, a folder that is gone)."""
    options, command = argv, None
    if "--" in argv:  # as the command line is read: the first one
        split = argv.index("--")
        options, command = argv[:split], argv[split + 1:]
        if not command:
            return None
    try:
        key = json.dumps([__version__, os.getcwd(), os.environ.get("BPFTRACE"),
                          os.environ.get("PATH"), *options,
                          *([] if command is None else ["--"])])  # on one line
    except OSError:
        return None
    early = Early(cache or CacheDir.default("starts"), key, None, None)
    try:
        kept_key, _, kept = (early.cache.read(early.name) or "").partition("\n")
        text, _, gate = kept.partition("\n")
        start = Start.from_text(text, os.getpid()) if kept_key == key else None
        if start is not None and _startable(start.engine):
            if command is not None:
                early.gate = GatedCommand(command, output=None, stdout_to_stderr=json.loads(
                    gate)["stdout_to_stderr"] is True)
                start.command = early.gate.pid
            early.spawned, early.start = spawn(start), start
    except Exception:  # an optimization only: the run starts bpftrace as it always did
        early.discard()
    return early


def _startable(engine: str) -> bool:
    """A binary that only root or this user can change, where tracefs is mounted."""
    st = os.stat(engine)
    return (stat.S_ISREG(st.st_mode) and st.st_uid in (0, os.geteuid())
            and not st.st_mode & 0o022 and any(map(os.path.isdir, TRACEFS_EVENTS)))
