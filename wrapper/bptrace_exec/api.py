"""The library: trace(), stats() and replay(), which the command line is a thin layer on.

    import bptrace_exec
    for event in bptrace_exec.trace("execve", command=["sh", "-c", "ls /; ./missing"]):
        print(event.pid, event["argv"], event.errno)

A Trace is an iterator of Events; it stops bpftrace when it is closed, when the loop
over it ends or is left (break, an exception), and when it is garbage collected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bptrace_exec.codegen import Program, counts_in_kernel, generate
from bptrace_exec.errors import EngineFailure, StoppedStarting, UsageError, UserError
from bptrace_exec.event import Event
from bptrace_exec.output.report import title_for
from bptrace_exec.output.tally import (
    NO_VALUE,
    Stats,
    Tally,
    event_kind,
    event_text,
    from_json_events,
    from_maps,
    writes,
)
from bptrace_exec.output.text import exact_strings
from bptrace_exec.pipeline import Run, Source, Summary
from bptrace_exec.records import STATS_BY_CPU, TOTAL_PRINTED
from bptrace_exec.run.cgroups import cgroup_names, check_cgroups
from bptrace_exec.run.engine import find_engine
from bptrace_exec.run.gate import GatedCommand
from bptrace_exec.run.kerneltypes import with_kernel_types
from bptrace_exec.run.prestart import Early
from bptrace_exec.run.recording import (
    Recorder,
    Recording,
    ReplaySource,
    is_header,
    read_recording,
)
from bptrace_exec.run.session import (
    Finished,
    Session,
    boot_id,
    check_environment,
    explain_failure,
)
from bptrace_exec.spec import (
    PROCESS_EXIT,
    ProbeKind,
    Profile,
    available_profiles,
    load_profile,
    with_overrides,
)

Say = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


class Trace:
    """One run's events. Iterate it once; `summary` says how it went once it has ended."""

    def __init__(self, profile: Profile, source: Source, hooks: Hooks, *,
                 session: Session | None = None, program: Program | None = None,
                 duration: float | None = None, recorder: Recorder | None = None,
                 kernel_counts: bool | None = None, host: str | None = None,
                 defined_lines: int = 0) -> None:
        self.profile, self.session, self.program = profile, session, program
        self.defined_lines = defined_lines  # put before the program's probes as it ran
        self.host = host  # where the events happened, if known
        # whether its program counts in kernel maps (a recording's: as it was made)
        self.kernel_counts = (counts_in_kernel(profile) if kernel_counts is None
                              else kernel_counts)
        self.warn, self.recorder = hooks.warn, recorder
        self.run = Run(profile, source, duration=duration, recorder=recorder,
                       on_ready=hooks.say, on_lost=hooks.on_lost,
                       on_snapshot=hooks.on_snapshot, on_tick=hooks.on_tick)
        self.finished: Finished | None = None
        self._closed = self._ended = False

    @property
    def summary(self) -> Summary:
        return self.run.summary

    def __iter__(self) -> Iterator[Event]:
        try:
            yield from self.run
            self._ended = True
        finally:
            self.close()
        finished = self.finished
        if finished is not None and finished.requested and self.run.start_timed_out:
            waited = round((self.run.start_deadline or 0) - self.run.started)
            raise EngineFailure(f"bpftrace had not attached its probes {waited:g} s after it "
                                "was started (--duration, and a minute to start): stopped",
                                hint="see how long it takes to start without --duration "
                                     "(Ctrl-C ends it)")
        if finished is not None and finished.requested and not self.run.ready:
            raise StoppedStarting()
        if finished is not None and (not finished.requested or finished.killed is not None):
            assert self.program is not None
            raise explain_failure(finished, self.program.text, tracing=self.run.ready,
                                  defined_lines=self.defined_lines,
                                  counting=self.profile.stats.enabled)

    def close(self) -> Finished | None:
        """Stop bpftrace (if it runs) and say how it ended. Safe to call twice."""
        if self._closed:
            return self.finished
        self._closed = True
        if self.session is not None:
            try:
                self.finished = self.session.close(early=not self._ended)
            finally:
                if self.recorder is not None:
                    self.recorder.elapsed_s = self.run.elapsed
                    self.recorder.counted = self.finished is not None and \
                        self.finished.killed is None
                    self.recorder.close()
            if self.finished.resumed:
                self.warn("bptrace-exec: bpftrace had been stopped by a signal and was "
                          "continued to end the trace; what its buffer could not hold "
                          "meanwhile is counted as lost")
            self._account(counted=self.finished.killed is None)
        elif isinstance(self.run.source, ReplaySource):
            self._account_replay(self.run.source.recording)
        return self.finished

    def _account(self, *, counted: bool) -> None:
        """A bpftrace that ended as asked printed its count of calls (none: it saw none);
        one that was killed did not, and how many it saw is unknown."""
        summary = self.summary
        summary.counted = counted
        if summary.counted and summary.kernel_total is None and not self.kernel_counts:
            summary.kernel_total = 0

    def _account_replay(self, recording: Recording) -> None:
        """As the live run said: its trailer says if bpftrace was killed; in one made
        before it did, or cut short, no count came although events did."""
        summary = self.summary
        counted = recording.counted
        if counted is None:
            counted = summary.kernel_total is not None or self.kernel_counts or \
                not summary.events + summary.dropped or recording.version < TOTAL_PRINTED
        self._account(counted=counted)
        # cut short, or made before its end was kept: it ended after its last call
        summary.ended_ns = recording.ended_ns or self.run.wall_ns()

    def counts(self, on_report: Callable[[Stats], None] | None = None) -> Stats:
        """Run to the end counting, instead of giving events: in the kernel for an exec
        profile's stats program, else as the events go by. `on_report` gets the counts
        since the start every `interval` seconds of the profile's stats."""
        counter = _Counter(self, on_report)
        self.run.on_snapshot, self.run.on_tick = counter.snapshot, counter.tick
        for event in self:
            counter.add(event)
        return counter.final()

    def stop(self) -> None:
        """Ask the run to end: the events already made still come, then the iteration ends."""
        self.run.source.request_stop()

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def profile_of(profile: str | os.PathLike[str] | Profile, **changes: Any) -> Profile:
    """A shipped name, a path, or a Profile; with the command line's changes (filters:
    comm, uid, pid, ppid, failed, succeeded, cgroup, in_container; parents, context;
    max_args, argv_bytes; stats, top, interval; output_format)."""
    base = profile if isinstance(profile, Profile) else load_profile(profile)
    return with_overrides(base, **changes) if changes else base


@dataclass(frozen=True)
class Live:
    """How a live run goes: what it follows, how long, with which bpftrace."""

    # run it, follow it and its descendants, end with it (SIGTERM if it outlives the trace)
    command: Sequence[str] | None = None
    duration: float | None = None  # seconds, from the moment every probe is attached
    bpftrace: str | None = None  # the binary (default: $BPFTRACE, then PATH)
    buffer_pages: int | None = None  # bpftrace's event buffer, in pages (a power of 2)
    record: str | None = None  # a file to keep the raw transcript in (--record)
    command_stdout_to_stderr: bool = False  # keep the command's output off stdout
    command_output: str | None = None  # a file for the command's stdout and stderr
    handle_signals: bool = False  # SIGINT, SIGTERM, SIGHUP end the run cleanly (the CLI's)
    host: str | None = None  # the name of this host in what is written (default: hostname)
    prestarted: Early | None = None  # bpftrace started before the tool loaded (run.prestart)


@dataclass(frozen=True)
class Hooks:
    """What a run says besides its events."""

    say: Say = _quiet  # the status: tracing has started, one line
    warn: Say = _quiet  # what went wrong without stopping the run, one line each
    on_lost: Callable[[int], None] | None = None  # bpftrace lost records (its buffer)
    on_snapshot: Callable[[dict[str, object]], None] | None = None  # a stats program's maps
    on_tick: Callable[[], None] | None = None  # now and then, between lines


def trace(profile: str | os.PathLike[str] | Profile = "execve", *, live: Live = Live(),
          hooks: Hooks = Hooks(), **changes: Any) -> Trace:
    """A live run of a profile: bpftrace runs its program until `live.duration` passes,
    `live.command` exits, or the Trace is closed. Options are the command line's, with _
    for -: Live's fields (command, duration, bpftrace, record, ...) and profile_of's (comm,
    failed, parents, context, stats, interval, ...): trace("execve", command=[...],
    comm=["sh"], duration=5)."""
    live = dataclasses.replace(live, **{k: changes.pop(k) for k in _LIVE if k in changes})
    return _live(profile_of(profile, **changes), live, hooks)


_LIVE = tuple(f.name for f in dataclasses.fields(Live))
MAX_DURATION_S = 10 ** 7


def _live(profile: Profile, live: Live, hooks: Hooks) -> Trace:
    if live.duration is not None and not 0 < live.duration <= MAX_DURATION_S:
        raise UsageError(f"--duration must be a positive number of seconds, at most "
                         f"{MAX_DURATION_S:,} (about 115 days)",
                         hint="leave it out to trace until Ctrl-C")
    check_environment()
    check_cgroups(profile.filters.cgroup)
    engine = find_engine(live.bpftrace)
    pages = engine.buffer_pages if live.buffer_pages is None else live.buffer_pages
    if pages < 1 or pages & (pages - 1) or pages > 1 << 16:
        raise UsageError(f"--buffer-pages {pages} is not a power of 2 between 1 and 65536")
    program = generate(profile, engine.version_text, follow=bool(live.command))
    with contextlib.ExitStack() as undo:  # whatever was started, if a later step fails
        gated = None
        if live.command:
            argv, out = list(live.command), live.command_output
            to_stderr = live.command_stdout_to_stderr
            if live.prestarted is not None:  # forked as the tool started, if it is this one
                gated = live.prestarted.gated(argv, stdout_to_stderr=to_stderr, output=out)
            gated = gated or GatedCommand(argv, stdout_to_stderr=to_stderr, output=out)
            undo.callback(gated.end)
        text, defined_lines = with_kernel_types(program.text, boot_id())
        session = Session(text, engine, buffer_pages=pages, strlen=program.strlen,
                          command=gated, drains=True,
                          handle_signals=live.handle_signals, own_types=defined_lines > 0,
                          prestarted=live.prestarted)
        undo.callback(session.close)
        host = live.host or socket.gethostname()
        recorder = (Recorder(live.record, profile, engine, session.wall_offset_ns, host,
                             session.boot_id)
                    if live.record else None)
        run = Trace(profile, session, hooks, session=session, program=program,
                    defined_lines=defined_lines,
                    duration=live.duration, recorder=recorder, host=host)
        undo.pop_all()
    return run


REPLAY_CHANGES = ("stats", "top", "output_format", "columns")  # how it is shown


def replay(path: str, *, hooks: Hooks = Hooks(), **changes: Any) -> Trace:
    """A recording (--record) played back: the same events as the live run, record for
    record; no root, no bpftrace. `changes` as trace()'s (top=5, stats=True, ...)."""
    fixed = sorted(k for k, v in changes.items() if v is not None and k not in REPLAY_CHANGES)
    if fixed:
        raise UsageError(f"a replay cannot change {', '.join(fixed)}: filters, limits and "
                         "context were applied when recording",
                         hint=f"a replay takes {', '.join(REPLAY_CHANGES)}")
    recording = read_recording(path)
    if recording.elapsed_s is None:
        hooks.warn(f"bptrace-exec: warning: {path} was cut short; replaying it up to its "
                   "last whole line")
    profile = with_overrides(recording.profile, **changes) if changes else recording.profile
    return Trace(profile, ReplaySource(recording), hooks,
                 kernel_counts=counts_in_kernel(recording.profile), host=recording.host)


def stats(profile: str | os.PathLike[str] | Profile = "execve", *, live: Live = Live(),
          hooks: Hooks = Hooks(), on_report: Callable[[Stats], None] | None = None,
          **changes: Any) -> Stats:
    """Counts of a live run, as trace() takes it (see Trace.counts)."""
    with trace(profile, live=live, hooks=hooks, stats=True, **changes) as run:
        return run.counts(on_report)


class _Counter:
    """The one tally, fed from wherever the counts are: kernel maps or events."""

    def __init__(self, trace: Trace, on_report: Callable[[Stats], None] | None) -> None:
        self.trace, self.profile, self.on_report = trace, trace.profile, on_report
        self.kernel = trace.kernel_counts
        self.tally = Tally(trace.profile.stats.by, trace.profile.kind.unit)
        self.next_report = 0.0

    def add(self, event: Event) -> None:
        self.tally.add_event(self.profile, event)

    def tick(self) -> None:
        interval = self.profile.stats.interval
        if self.kernel or not interval or not self.trace.run.ready:
            return
        elapsed = self.trace.run.elapsed
        if not self.next_report:
            self.next_report = interval
        if elapsed >= self.next_report:
            self.next_report += interval
            self._report(self.tally.result(elapsed))

    def snapshot(self, maps: dict[str, object]) -> None:
        self._report(self._from_maps(maps))

    def _report(self, stats: Stats) -> None:
        if self.on_report:
            self.on_report(self._counted(stats))

    def _counted(self, stats: Stats) -> Stats:
        # a profile of successful calls only does not count failures: unknown, not 0
        return dataclasses.replace(stats, failed=None) if self.profile.filters.succeeded \
            else stats

    def _from_maps(self, maps: dict[str, object]) -> Stats:
        run, source = self.trace.run, self.trace.run.source
        return from_maps(maps, by=self.profile.stats.by, duration_s=run.elapsed,
                         double_escaped_keys=source.engine.double_escapes_map_keys,
                         by_cpu=source.version >= STATS_BY_CPU,
                         cgroup_names=cgroup_names if source.names_cgroups else None)

    def final(self) -> Stats:
        return self._counted(self._from_maps(self.trace.run.maps) if self.kernel
                             else self.tally.result(self.trace.run.elapsed))


def stats_from_json(lines: Iterable[str], *, profile: Profile | None = None,
                    shipped: Callable[[str], Profile] = load_profile,
                    where: Callable[[], tuple[str, int]] = lambda: ("", 0),
                    ) -> tuple[Stats, Profile | None, int]:
    """Counts from JSON lines written earlier with --json, under `profile`'s breakdowns,
    or (None) the shipped profile's that writes their events (`shipped`: one by its name,
    as the caller would change it); the profile counted by (None: there were no events);
    and how many lines were not events (the end and lost lines --json writes beside them
    are not counted as such). Each line is counted as it is read: memory grows with the
    distinct keys, not the lines. `where`: the file and line number being read, which
    the errors name. A recording, and events no one profile writes together (execs and
    calls, calls of two profiles), are UsageErrors: a report counts one trace's kind."""
    skipped = 0
    chosen = profile
    first: tuple[Mapping[str, object], str] | None = None  # the first event, and where

    def events() -> Iterator[dict[str, object]]:
        nonlocal skipped
        for line in lines:
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError):  # not JSON, or nested beyond reason
                skipped += bool(line.strip())
                continue
            if (isinstance(obj, dict) and (obj.get("event", "exec") == "exec" and "argv" in obj
                                          or obj.get("event") in ("call", "exit"))
                    and _numbers_are(obj)):
                checked(obj)
                yield exact_strings(obj)
            elif is_header(obj):
                path, number = where()
                raise UsageError(f"{path}:{number}: a recording (made with --record), not "
                                 "the JSON lines --json writes",
                                 hint=f"report on it with --replay {path} --stats")
            elif not (isinstance(obj, dict) and obj.get("event") in ("lost", "gap", "end")):
                skipped += 1

    def checked(e: Mapping[str, object]) -> None:
        """That `e` is of the profile reported: when none was given, the one that writes
        the first event but an exit (which a stream of execs holds too)."""
        nonlocal chosen, first
        path, number = where()
        here = f"{path}:{number}"
        if first is None:
            first = (e, here)
        if chosen is None and event_kind(e).name != PROCESS_EXIT:
            chosen = _profile_writing(e, shipped, here)
            if not writes(chosen, first[0]):  # exits came first, which it does not write
                raise _mixed(e, here, *first)
        if chosen is None or writes(chosen, e):
            return
        if profile is not None:
            raise UsageError(f"{here}: {event_text(e)}, which profile {profile.name} does "
                             "not trace", hint="name the profile that traced it before "
                             "--from, or none: then its events choose it")
        raise _mixed(e, here, *first)

    def by_kind(kind: ProbeKind) -> tuple[str, ...]:
        counted = chosen if chosen is not None and (
            kind.name != PROCESS_EXIT or chosen.kind.name == PROCESS_EXIT) else \
            shipped("exit")  # exits so far: counted if nothing else comes
        by = counted.stats.by
        return (*by, *(() if "host" in by else ("host",)))

    # and by host, when the lines name theirs (--host): several hosts' files merged
    stats = from_json_events(events(), by_kind=by_kind)
    if chosen is None and first is not None:  # exits only
        chosen = shipped("exit")
    if chosen is not None and stats.unit != chosen.kind.unit:  # an exec profile's, of exits
        stats = Tally((), chosen.kind.unit).result(stats.duration_s)  # none of its own
    if _no_host_named(stats) and chosen is not None:
        stats = dataclasses.replace(stats, breakdowns={
            k: v for k, v in stats.breakdowns.items() if k != "host" or k in chosen.stats.by})
    return stats, chosen, skipped  # read to the end: `skipped` is known


def _no_host_named(stats: Stats) -> bool:
    """Whether no line named its host: then a report is not by host."""
    return all(key == NO_VALUE for key, _ in stats.breakdowns.get("host", []))


def _mixed(e: Mapping[str, object], where: str, first: Mapping[str, object],
           first_where: str) -> UsageError:
    return UsageError(f"{where}: {event_text(e)}, after {event_text(first)} at "
                      f"{first_where}: a report counts the events of one profile, and no "
                      "profile traces both", hint="report on each profile's files apart")


def _profile_writing(e: Mapping[str, object], shipped: Callable[[str], Profile],
                     where: str) -> Profile:
    """The shipped profile that writes event `e`: execve an exec's (process and
    exec-counts write them too), else the first by name that traces its call."""
    kind = event_kind(e)
    if kind.new_image:
        return shipped("execve")
    if kind.name == PROCESS_EXIT:
        return shipped("exit")
    for name in available_profiles():
        with contextlib.suppress(UserError):  # one of $BPTRACE_EXEC_PATH that is broken
            found = shipped(name)
            if writes(found, e):
                return found
    raise UsageError(f"{where}: {event_text(e)}, which no shipped profile traces: which "
                     "profile wrote it is not known",
                     hint=f"name the profile before --from (ad hoc: --syscall "
                          f"{e.get('syscall')} --arg ...)")


def _numbers_are(obj: dict[str, object]) -> bool:
    """Whether an event line's numbers are numbers (else it is skipped, and counted)."""
    return all(isinstance(v, int) and not isinstance(v, bool) for k, v in obj.items()
               if k in ("ret", "pid", "ppid", "uid", "tid") or k.endswith("_ns"))


def title(profile: Profile, host: str | None = None) -> str:
    return title_for(profile.probes, profile.filters.failed, profile.filters.succeeded,
                     time.time_ns(), host)


__all__ = ["Hooks", "Live", "Trace", "profile_of", "replay", "stats", "stats_from_json",
           "title", "trace"]
