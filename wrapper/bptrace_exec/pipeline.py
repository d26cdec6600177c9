"""One tracing run, end to end: bpftrace's lines -> records -> rows or a stats report.

EventRun prints one row (or JSON line) per exec as it completes; StatsRun gathers the
@stat_* maps bpftrace prints and renders them as a report. Both share the loop, the
status line, lost-event accounting and the end-of-run summary.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from bptrace_exec.assemble import Assembler
from bptrace_exec.assemble_calls import CallAssembler
from bptrace_exec.cgroups import CgroupPaths, cgroup_names
from bptrace_exec.codegen import READY_RECORD
from bptrace_exec.codegen.stats import SNAPSHOT_END
from bptrace_exec.decode import Attached, Lost, MapData, Note, Printf, Record, decode_line
from bptrace_exec.engine import Engine
from bptrace_exec.events import ExecEvent
from bptrace_exec.export import to_dict
from bptrace_exec.record import Recorder, ReplaySource
from bptrace_exec.render import (
    columns_for,
    event_to_dict,
    iso_time,
    json_line,
    table_header,
    table_row,
)
from bptrace_exec.render_calls import CallRenderer
from bptrace_exec.report import render_report
from bptrace_exec.runner import GatedCommand
from bptrace_exec.spec import Profile
from bptrace_exec.stats import Stats, Tally, from_maps


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class ExecRenderer:
    def __init__(self, profile: Profile | None = None) -> None:
        context = profile.context if profile else None
        self.columns = columns_for(bool(context and context.parents),
                                   bool(context and context.container))

    def header(self) -> str:
        return table_header(self.columns)

    def row(self, event: ExecEvent) -> str:
        return table_row(event, self.columns)

    def to_dict(self, event: ExecEvent) -> dict[str, object]:
        return event_to_dict(event)


def renderer_for(profile: Profile) -> Renderer:
    return CallRenderer(profile) if profile.kind == "call" else ExecRenderer(profile)


class Renderer(Protocol):
    def header(self) -> str: ...
    def row(self, event: Any) -> str: ...
    def to_dict(self, event: Any) -> dict[str, object]: ...


class Sink:
    """Where output goes; a closed reader (`| head`) ends the run cleanly, once."""

    collected: list[dict[str, object]] | None = None  # set: events are kept, not written

    def __init__(self, stream: TextIO, as_json: bool,
                 renderer: Renderer | None = None) -> None:
        self.stream, self.as_json, self.closed = stream, as_json, False
        self.renderer: Renderer = renderer or ExecRenderer()

    def write(self, text: str) -> None:
        if self.closed:
            return
        try:
            self.stream.write(text if text.endswith("\n") else text + "\n")
            self.stream.flush()
        except BrokenPipeError:
            self.closed = True

    def event(self, event: Any) -> None:
        if self.collected is not None:
            self.collected.append(self.renderer.to_dict(event))
        elif self.as_json:
            self.write(json_line(self.renderer.to_dict(event)))
        else:
            self.write(self.renderer.row(event))


@dataclass
class RunOptions:
    duration: float | None = None
    quiet: bool = False
    recorder: Recorder | None = None
    # wall clock minus the monotonic clock bpftrace's nsecs counts on; taken once
    wall_offset_ns: int = field(default_factory=lambda: time.time_ns() - time.monotonic_ns())


class Source(Protocol):
    """Where lines come from: a live Session, or a recording played back."""

    engine: Engine
    deadline: float | None

    @property
    def command(self) -> GatedCommand | None: ...

    def lines(self) -> Iterator[bytes | None]: ...
    def request_stop(self) -> None: ...
    def release_command(self) -> None: ...


class Run:
    """The loop shared by both kinds of run; subclasses say what records mean."""

    def title(self) -> str:
        """A report's title: what was traced, and when it was reported."""
        f = self.profile.filters
        only = " (failed only)" if f.failed else " (successful only)" if f.succeeded else ""
        return (f"bptrace-exec stats: {', '.join(self.profile.probes)}{only}, "
                f"{iso_time(time.time_ns())[:19].replace('T', ' ')} UTC")

    def __init__(self, session: Source, profile: Profile, sink: Sink,
                 opts: RunOptions) -> None:
        self.session, self.profile, self.sink, self.opts = session, profile, sink, opts
        self.say: Callable[[str], None] = (lambda _m: None) if opts.quiet else stderr
        self.lost = self.probes = 0
        self.notes = 0  # records bpftrace printed that the tracer does not use
        self.first_note = ""
        self.ready = False
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        if isinstance(self.session, ReplaySource) and self.session.recorded_elapsed:
            return self.session.recorded_elapsed
        return time.monotonic() - self.started

    def trace(self) -> None:
        recorder = self.opts.recorder
        for line in self.session.lines():
            now = time.monotonic_ns()
            if recorder and line is not None:
                recorder.write(line)
            if line is None:
                self.on_tick(now)
            else:
                self.on_record(decode_line(line), now)
            if self.sink.closed:
                self.session.request_stop()
        self.on_end()

    def on_record(self, record: Record | None, now: int) -> None:
        if isinstance(record, Printf):
            if record.text == READY_RECORD and not self.ready:
                self.on_ready()
            else:
                self.on_printf(record.text, now)
        elif isinstance(record, MapData):
            self.on_map(record)
        elif isinstance(record, Attached):
            self.probes = record.probes
        elif isinstance(record, Lost):
            self.on_lost(record.count)
        elif isinstance(record, Note):
            self.notes += 1  # a count, not a list: some bpftrace versions print one per event
            self.first_note = self.first_note or f"{record.kind}: {record.detail}"

    def on_ready(self) -> None:
        self.ready = True
        self.started = time.monotonic()
        if self.opts.duration:
            self.session.deadline = self.started + self.opts.duration
        end = "Running the command." if self.session.command else "Hit Ctrl-C to end."
        if isinstance(self.session, ReplaySource):
            rec = self.session.recording
            self.say(f"Replaying {rec.path}: {', '.join(self.profile.probes)} traced with "
                     f"bpftrace {self.session.engine.version_text} from {rec.started}.")
        else:
            self.say(f"Tracing {', '.join(self.profile.probes)} with bpftrace "
                     f"{self.session.engine.version_text} ({self.probes} probes). {end}")
        self.on_started()
        self.session.release_command()

    def on_lost(self, count: int) -> None:
        self.lost += count
        stderr(f"bptrace-exec: bpftrace lost {count} events (its buffer was full); "
               "raise --buffer-pages")

    def report_notes(self) -> None:
        if self.notes:
            stderr(f"bptrace-exec: bpftrace also printed {self.notes} record(s) that "
                   f"bptrace-exec does not use; the first: {self.first_note}")

    # what differs between the two kinds of run
    def on_started(self) -> None: ...
    def on_printf(self, text: bytes, now: int) -> None: ...
    def on_map(self, record: MapData) -> None: ...
    def on_tick(self, now: int) -> None: ...
    def on_end(self) -> None: ...
    def summary(self) -> None: ...


class EventRun(Run):
    """One row per exec, streaming."""

    def __init__(self, session: Source, profile: Profile, sink: Sink,
                 opts: RunOptions) -> None:
        super().__init__(session, profile, sink, opts)
        offset = (session.wall_offset_ns if isinstance(session, ReplaySource)
                  else opts.wall_offset_ns)
        self.assembler: Assembler | CallAssembler
        if profile.kind == "call":
            self.assembler = CallAssembler(profile, wall_offset_ns=offset)
            self.unit, self.total_map = "calls", "call_total"
        else:
            self.assembler = Assembler(wall_offset_ns=offset,
                                       max_args=self.profile.limits.max_args)
            self.unit, self.total_map = "execs", "exec_total"
        self.execs = 0
        self.kernel_execs: int | None = None  # from @exec_total/@call_total, printed at exit
        self.cgroup_paths = CgroupPaths()

    def show(self, events: Iterable[Any]) -> None:
        for event in events:
            self.add_cgroup_path(event)
            self.sink.event(event)
            self.execs += 1

    def add_cgroup_path(self, event: Any) -> None:
        """The kernel gives a cgroup's id and last name; its path is looked up here."""
        if event.context is not None:
            event.context = dataclasses.replace(
                event.context, path=self.cgroup_paths.path(event.context.cgroup_id))

    def on_started(self) -> None:
        if not self.sink.as_json and self.sink.collected is None:
            self.sink.write(self.sink.renderer.header())

    def on_printf(self, text: bytes, now: int) -> None:
        self.show(self.assembler.feed(text, now))

    def on_tick(self, now: int) -> None:
        self.show(self.assembler.expire(now))

    def on_lost(self, count: int) -> None:
        super().on_lost(count)
        if self.sink.as_json:
            self.sink.write(json_line({"event": "lost", "time": iso_time(time.time_ns()),
                                       "count": count}))

    def on_map(self, record: MapData) -> None:
        if record.name == self.total_map and isinstance(record.value, dict):
            self.kernel_execs = sum(v for v in record.value.values() if isinstance(v, int))

    def on_end(self) -> None:
        self.show(self.assembler.flush())

    @property
    def missing(self) -> int:
        """Execs the kernel reported that never reached a row (complete or not)."""
        return max(0, (self.kernel_execs or 0) - self.execs)

    def summary(self) -> None:
        stats = self.assembler.stats
        if self.sink.as_json:
            unit = self.unit
            self.sink.write(json_line({"event": "end", "time": iso_time(time.time_ns()),
                                       unit: self.execs, f"kernel_{unit}": self.kernel_execs,
                                       f"missing_{unit}": self.missing,
                                       "lost_events": self.lost}))
        text = f"{self.execs} {self.unit} traced in {self.elapsed:.1f} s"
        if self.missing:
            text += (f"; the kernel reported {self.kernel_execs}: {self.missing} {self.unit} "
                     "were lost on the way")
        if self.lost:
            text += f"; bpftrace lost {self.lost} events"
        if stats.incomplete:
            text += f"; {stats.incomplete} shown incomplete ([records lost])"
        if stats.orphaned:
            text += f"; {stats.orphaned} partial {self.unit} dropped (no return record)"
        if stats.malformed or stats.unknown:
            text += f"; {stats.malformed + stats.unknown} unreadable records"
        self.say(f"bptrace-exec: {text}.")
        self.report_notes()


class StatsRun(Run):
    """Counting in the kernel; a report at every interval mark and at the end."""

    def __init__(self, session: Source, profile: Profile, sink: Sink,
                 opts: RunOptions) -> None:
        super().__init__(session, profile, sink, opts)
        self.maps: dict[str, object] = {}
        self.final: Stats | None = None

    def snapshot(self) -> Stats:
        names = {}
        cgroups = self.maps.get("stat_cgroup")
        if isinstance(cgroups, dict) and not isinstance(self.session, ReplaySource):
            names = cgroup_names({int(k) for k in cgroups if str(k).isdigit()})
        return from_maps(self.maps, by=self.profile.stats.by, duration_s=self.elapsed,
                         double_escaped_keys=self.session.engine.double_escapes_map_keys,
                         cgroup_names=names)

    def on_map(self, record: MapData) -> None:
        self.maps[record.name] = record.value

    def show(self, stats: Stats) -> None:
        top, title = self.profile.stats.top, self.title()
        if self.sink.as_json:
            self.sink.write(json.dumps(to_dict(stats, top=top, title=title),
                                       ensure_ascii=False))
        else:
            self.sink.write(render_report(stats, top=top, title=title))

    def on_printf(self, text: bytes, now: int) -> None:
        if text == f"{SNAPSHOT_END}\n".encode():
            self.show(self.snapshot())
            self.maps = {}

    def on_end(self) -> None:
        if not self.ready:
            return  # bpftrace never started: there is nothing to report
        # After SIGINT bpftrace prints every non-empty map: the final, cumulative counts.
        self.final = self.snapshot()
        self.show(self.final)

    def summary(self) -> None:
        self.report_notes()


class CallStatsRun(EventRun):
    """Stats of a syscall profile: the event program, counted here as calls go by."""

    def __init__(self, session: Source, profile: Profile, sink: Sink,
                 opts: RunOptions) -> None:
        super().__init__(session, profile, sink, opts)
        self.final: Stats | None = None
        self.renderer = CallRenderer(profile)
        self.tally = Tally(profile.stats.by, "exits" if self.renderer.exits else "calls")

    def show(self, events: Iterable[Any]) -> None:
        for event in events:
            self.execs += 1
            self.add_cgroup_path(event)
            # a process's end "fails" with a non-zero status; a syscall with an error
            failed = event.ret != 0 if self.renderer.exits else event.ret < 0
            self.tally.add(self.renderer.breakdown_values(event), failed=failed,
                           latency_ns=event.latency_ns)

    def on_started(self) -> None:
        pass

    def on_end(self) -> None:
        super().on_end()
        if not self.ready:
            return
        self.final = self.tally.result(self.elapsed)
        top, title = self.profile.stats.top, self.title()
        if self.sink.as_json:
            self.sink.write(json.dumps(to_dict(self.final, top=top, title=title),
                                       ensure_ascii=False))
        else:
            self.sink.write(render_report(self.final, top=top, title=title))

    def summary(self) -> None:
        self.report_notes()
