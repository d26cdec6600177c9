"""One run, end to end: a source's lines -> records -> Events, and the run's accounting.

A Source is a live bpftrace (run.session.Session) or a recording played back
(run.recording.ReplaySource); the Run asks it only what both can answer. Iterate a Run
for its events; what is not an event (the start, lost records, a stats program's maps,
the ticks between lines) reaches the callbacks the Run is given.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from bptrace_exec.event import Event
from bptrace_exec.output.tree import process_of
from bptrace_exec.parse.decode import Attached, Lost, MapData, Note, Printf, decode_line
from bptrace_exec.parse.join import READY_RECORD, Assembler
from bptrace_exec.records import (
    LAST_SNAPSHOT_END,
    LEGACY_TOTAL_MAPS,
    SNAPSHOT_END,
    TOTAL_MAP,
)
from bptrace_exec.run.cgroups import CgroupPaths
from bptrace_exec.run.engine import Engine
from bptrace_exec.run.recording import Recorder, ReplaySource
from bptrace_exec.spec.model import PATHS, PROCESS_EXIT, Profile
from bptrace_exec.spec.parse import argv_patterns, run_here

SNAPSHOT_RECORD = SNAPSHOT_END.encode()
LAST_SNAPSHOT_RECORD = LAST_SNAPSHOT_END.encode()
# --duration counts from the moment every probe is attached; a bpftrace that has not got
# there this long after that time would have passed is stopped, so that a run given a
# duration ends (a compile takes seconds, on a busy machine tens)
START_WAIT_S = 60.0


class Source(Protocol):
    """Where a run's lines come from."""

    engine: Engine
    wall_offset_ns: int  # wall clock minus the monotonic clock bpftrace's nsecs counts on
    version: int  # of the record layouts (bptrace_exec.records)
    boot_id: str | None  # the traced host's (None: a recording that did not keep it)
    recorded_elapsed: float | None  # a recording's own length; None: measured as it goes
    names_cgroups: bool  # cgroup ids can be named on this machine
    deadline: float | None  # monotonic time to stop at

    def lines(self) -> Iterator[bytes | None]:
        """bpftrace's lines; None between them, now and then (a tick)."""

    def ready(self) -> None:
        """Every probe is attached: a command to follow may start."""

    def request_stop(self) -> None: ...

    def status(self, probes: str, attached: int) -> str:
        """The line that says tracing has started."""


@dataclass
class Summary:
    """How the run went: what was shown, what the kernel reported, what was lost."""

    unit: str  # execs, calls or exits
    events: int = 0
    dropped: int = 0  # events a filter that runs here did not keep (argv)
    exits: int | None = None  # of the events, ends of processes (None: not traced)
    kernel_total: int | None = None  # the calls the program reported (its @total)
    lost_records: int = 0  # records bpftrace said it lost (its buffer was full)
    incomplete: int = 0  # events shown with records missing
    unfinished: int = 0  # calls with no closing record: still in the call at the end
    unreadable: int = 0  # records that did not parse, or of an unknown kind
    notes: int = 0  # records bpftrace printed that are of no use here
    first_note: str = ""
    elapsed_s: float = 0.0
    # bpftrace ended as asked and printed its counts; False: it was killed, and how many
    # calls the kernel saw is unknown
    counted: bool = True
    ended_ns: int | None = None  # when it ended, wall clock; None: now (a replay: recorded)

    @property
    def missing(self) -> int | None:
        """Calls the kernel reported that never reached an event (complete or not); None
        when that is unknown."""
        return (max(0, (self.kernel_total or 0) - self.events - self.dropped) if self.counted
                else None)

    def plus(self, later: Summary) -> Summary:
        """Two bpftrace runs of one trace (--restart) as one: what either did not count
        is unknown for both."""
        both = self.counted and later.counted
        return Summary(
            unit=self.unit, events=self.events + later.events,
            dropped=self.dropped + later.dropped,
            exits=None if self.exits is None else self.exits + (later.exits or 0),
            kernel_total=(self.kernel_total or 0) + (later.kernel_total or 0) if both
            else None,
            lost_records=self.lost_records + later.lost_records,
            incomplete=self.incomplete + later.incomplete,
            unfinished=self.unfinished + later.unfinished,
            unreadable=self.unreadable + later.unreadable, notes=self.notes + later.notes,
            first_note=self.first_note or later.first_note,
            elapsed_s=self.elapsed_s + later.elapsed_s, counted=both,
            ended_ns=later.ended_ns)


def _globs(patterns: tuple[str, ...]) -> list[re.Pattern[bytes]]:
    """Shell globs (fnmatch, case and bytes exact) as byte patterns: fnmatch translates
    text, each byte as the latin-1 character of its value, and back."""
    return [re.compile(fnmatch.translate(
        p.encode("utf-8", "surrogateescape").decode("latin-1")).encode("latin-1"))
        for p in patterns]


def _paths(patterns: tuple[str, ...]) -> list[tuple[bytes, bool]]:
    """Paths as (bytes, whether a prefix): /usr/bin/make, /tmp/*."""
    return [(p.removesuffix("*").encode("utf-8", "surrogateescape"), p.endswith("*"))
            for p in patterns]


DROPPED_MAX = 65536


class Kept:
    """The filters that run here, not in the kernel (spec.parse.run_here): an exec with an
    argument that matches one of the globs; a working directory or program file that is
    one of the paths (a prefix ending in *). An event they cannot judge is kept: its
    records lost (shown incomplete), its path cut (its top unknown). The end of a process
    goes as its last program went: dropped when that exec was, else kept (a process
    whose exec was not traced included)."""

    @classmethod
    def of(cls, profile: Profile) -> Kept | None:
        return cls(profile) if run_here(profile) else None

    def __init__(self, profile: Profile) -> None:
        f = profile.filters
        self.argv = _globs(argv_patterns(profile))
        self.paths = [(which, _paths(getattr(f, which))) for which in PATHS
                      if getattr(f, which)]
        # processes (exec ids less the count) whose last program was dropped, until they
        # end, in the order they were (the oldest forgotten past DROPPED_MAX: a filter in
        # the kernel may keep an exit from coming); kept only with exits to decide
        self.dropped: dict[str, None] | None = {} if profile.exits else None

    def __call__(self, event: Event) -> bool:
        process = process_of(event.who.exec_id) if event.who else None
        if event.syscall == PROCESS_EXIT:
            if self.dropped is None or process not in self.dropped:
                return True
            del self.dropped[process]
            return False
        kept = event.incomplete or self._matches(event)
        if self.dropped is not None and process is not None and event.ret == 0:
            self.dropped.pop(process, None)
            if not kept:
                self.dropped[process] = None
                if len(self.dropped) > DROPPED_MAX:
                    del self.dropped[next(iter(self.dropped))]
        return kept

    def _matches(self, event: Event) -> bool:
        for which, paths in self.paths:
            path = getattr(event, which)
            if which not in event.truncated and (path is None or not any(
                    path.startswith(p) if prefix else path == p for p, prefix in paths)):
                return False
        argv = event.values.get("argv")
        return not self.argv or isinstance(argv, tuple) and any(
            g.match(a) for g in self.argv for a in argv)


class Run:
    def __init__(self, profile: Profile, source: Source, *, duration: float | None = None,
                 recorder: Recorder | None = None,
                 on_ready: Callable[[str], None] | None = None,
                 on_lost: Callable[[int], None] | None = None,
                 on_snapshot: Callable[[dict[str, object]], None] | None = None,
                 on_tick: Callable[[], None] | None = None) -> None:
        self.profile, self.source, self.duration = profile, source, duration
        self.recorder = recorder
        self.on_ready, self.on_lost = on_ready, on_lost
        self.on_snapshot, self.on_tick = on_snapshot, on_tick
        self.assembler = Assembler(profile, wall_offset_ns=source.wall_offset_ns,
                                   version=source.version, boot_id=source.boot_id)
        self.summary = Summary(profile.kind.unit, exits=0 if profile.exits else None)
        self.maps: dict[str, object] = {}  # a stats program's maps, as last printed
        self.ready = False
        self.attached = 0  # probes bpftrace attached
        self.started = time.monotonic()
        # the time by which bpftrace must be ready (None: whenever)
        self.start_deadline = self.started + duration + START_WAIT_S if duration else None
        self.source.deadline = self.start_deadline
        self.cgroup_paths = CgroupPaths() if source.names_cgroups else None
        self.kept = Kept.of(profile)
        self.last_ns: int | None = None  # when the last call given was made, wall clock

    @property
    def start_timed_out(self) -> bool:
        """Whether bpftrace, not ready, was stopped for --duration's sake."""
        return (not self.ready and self.start_deadline is not None
                and time.monotonic() >= self.start_deadline)

    def wall_ns(self) -> int:
        """Now, on the wall clock; in a replay, whose lines keep no time of their own,
        its recorded end, or before it when the last call it gave was made (or the run
        started)."""
        if not isinstance(self.source, ReplaySource):
            return time.time_ns()
        return (self.summary.ended_ns or self.last_ns or self.source.recording.started_ns
                or 0)

    @property
    def elapsed(self) -> float:
        if self.source.recorded_elapsed is not None:
            return self.source.recorded_elapsed
        return time.monotonic() - self.started

    def __iter__(self) -> Iterator[Event]:
        try:
            for line in self.source.lines():
                now = time.monotonic_ns()
                if line is None:
                    yield from self._shown(self.assembler.expire(now))
                    if self.on_tick:
                        self.on_tick()
                    continue
                if self.recorder:
                    self.recorder.write(line)
                record = decode_line(line)
                if isinstance(record, Printf):
                    yield from self._shown(self._printf(record.text, now))
                elif isinstance(record, MapData):
                    self._map(record)
                elif isinstance(record, Attached):
                    self.attached = record.probes
                elif isinstance(record, Lost):
                    self.summary.lost_records += record.count
                    if self.on_lost:
                        self.on_lost(record.count)
                elif isinstance(record, Note):  # a count: some versions print one per event
                    self.summary.notes += 1
                    self.summary.first_note = (self.summary.first_note
                                               or f"{record.kind}: {record.detail}")
            yield from self._shown(self.assembler.flush())
        finally:
            self._account()

    def _printf(self, text: bytes, now: int) -> list[Event]:
        if text == READY_RECORD:
            if not self.ready:
                self._on_ready()
            return []
        if text == SNAPSHOT_RECORD:
            # kept: the maps are cumulative, and 0.23's one buffer may put an interval's
            # report in the middle of the last one
            if self.on_snapshot:
                self.on_snapshot(dict(self.maps))
            return []
        if text == LAST_SNAPSHOT_RECORD:  # the maps are the last report's (any at exit too)
            return []
        return self.assembler.feed(text, now)

    def _on_ready(self) -> None:
        self.ready = True
        self.started = time.monotonic()
        if self.duration:
            self.source.deadline = self.started + self.duration
        if self.on_ready:
            self.on_ready(self.source.status(", ".join(self.profile.probes), self.attached))
        self.source.ready()

    def _map(self, record: MapData) -> None:
        if record.name in (TOTAL_MAP, *LEGACY_TOTAL_MAPS) and isinstance(record.value, dict):
            self.summary.kernel_total = sum(v for v in record.value.values()
                                            if isinstance(v, int))
        else:
            self.maps[record.name] = record.value

    def _shown(self, events: Iterable[Event]) -> Iterator[Event]:
        for event in events:
            if self.kept and not self.kept(event):
                self.summary.dropped += 1
                continue
            if event.context is not None and self.cgroup_paths is not None:
                # the kernel gives a cgroup's id and last name; its path is looked up here
                event.context = dataclasses.replace(
                    event.context, path=self.cgroup_paths.path(event.context.cgroup_id))
            self.summary.events += 1
            self.last_ns = event.time_ns
            if event.syscall == PROCESS_EXIT and self.summary.exits is not None:
                self.summary.exits += 1
            yield event

    def _account(self) -> None:
        stats, s = self.assembler.stats, self.summary
        s.incomplete, s.unfinished = stats.incomplete, stats.unfinished
        s.unreadable = stats.malformed + stats.unknown
        s.elapsed_s = self.elapsed
