"""What a run shows: its events as rows or JSON lines, its process tree, its summary and
notes at the end, its exports."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from bptrace_exec import api
from bptrace_exec.cli.output import Output, stderr
from bptrace_exec.event import Event
from bptrace_exec.output import timeline, tree
from bptrace_exec.output.export import (
    NO_LABELS,
    to_dict,
    write_export,
    write_text,
)
from bptrace_exec.output.render import Renderer, Terminal
from bptrace_exec.output.report import on, render_report
from bptrace_exec.output.rows import Row, Rows, can_fold
from bptrace_exec.output.tally import Stats
from bptrace_exec.output.text import iso_time, json_line
from bptrace_exec.pipeline import Summary
from bptrace_exec.spec import Profile

if TYPE_CHECKING:  # prometheus_client takes 80 ms to import: only metrics need it
    from bptrace_exec.output.metrics import Keys, RunState

def rows_for(profile: Profile, *, all_attempts: bool) -> Rows:
    """Where a run's events wait to be shown in order; the table folds a PATH search
    (JSON lines keep every attempt: a reader of them sees each call)."""
    as_json = profile.output_format == "json"
    return Rows(fold=not (all_attempts or as_json) and can_fold(profile.filters))


def show_events(trace: api.Trace, out: Output, hooks: api.Hooks, rows: Rows, *,
                 wide: bool, color: str, header: bool = True,
                 also: Callable[[Event], None] | None = None) -> None:
    """The events as table rows or JSON lines, by time of call; `header`: the table's (not
    again after a restart); `also` sees each event too."""
    render = Renderer(trace.profile, terminal(out, wide=wide, color=color), trace.host)
    events: Iterable[Event] = trace if also is None else _seen(trace, also)
    as_json = trace.profile.output_format == "json"

    def line(row: Row) -> str:
        return (json_line(render.to_dict(row.event)) if as_json
                else render.row(row.event, row.tried))

    def show(ready: list[Row], *, flush: bool = True) -> None:
        for row in ready:
            out.write(line(row), flush=False)
        if flush:  # at each batch's end: a write per row is most of a storm's cost
            out.flush()
        if out.closed:
            trace.stop()

    def ready(status: str) -> None:
        hooks.say(status)
        if header and not as_json:
            out.write(render.header())
    trace.run.on_ready = ready
    wall_offset_ns = trace.run.source.wall_offset_ns  # the clock the calls' times are on

    def tick() -> None:
        show(rows.ready(time.monotonic_ns() + wall_offset_ns))
        if out.reader_left():
            trace.stop()
    trace.run.on_tick = tick
    try:
        for event in events:
            show(rows.add(event), flush=False)
    finally:  # bpftrace failing still shows what it traced before
        show(rows.flush())


def _seen(events: Iterable[Event], see: Callable[[Event], None]) -> Iterator[Event]:
    for event in events:
        see(event)
        yield event


def show_tree(trace: api.Trace, out: Output, hooks: api.Hooks, processes: tree.Tree, *,
               wide: bool) -> None:
    """The process tree, once the trace ends (or its bpftrace fails: what it traced)."""
    trace.run.on_ready = hooks.say
    try:
        for event in trace:
            processes.add(event)
    finally:
        write_tree(out, processes, as_json=trace.profile.output_format == "json",
                   time_ns=trace.run.wall_ns(), host=trace.host, wide=wide)


def write_tree(out: Output, processes: tree.Tree, *, as_json: bool, time_ns: int,
               host: str | None, wide: bool) -> None:
    """The tree as text, or as one JSON line made at `time_ns`."""
    roots = processes.roots()
    if as_json:
        out.write(json_line({"event": "tree", "time": iso_time(time_ns), **host_field(host),
                             "processes": tree.to_dicts(roots)}))
        return
    width = terminal(out, wide=wide, color="never").width
    for line in tree.lines(roots, width):
        out.write(line, flush=False)
    out.flush()


def draw_timeline(path: str, processes: tree.Tree, host: str | None) -> None:
    """--timeline's picture of the processes, if there are any."""
    if not processes.procs:
        stderr(f"bptrace-exec: no process traced: {path} not written")
        return
    write_text(path, timeline.svg(processes.roots(), processes.first_ns, processes.last_ns,
                                  f"bptrace-exec timeline{on(host)}"), "the timeline",
               "what was traced is above; free space or choose another --timeline path")


def lost(count: int, out: Output | None, trace: api.Trace) -> None:
    """bpftrace's report of records lost: on stderr, and among JSON rows."""
    stderr(f"bptrace-exec: bpftrace lost {count} events (its buffer was full); "
           "raise --buffer-pages")
    profile = trace.profile
    if out is not None and profile.output_format == "json" and not profile.stats.enabled:
        out.write(json_line({"event": "lost", "time": iso_time(trace.run.wall_ns()),
                             **host_field(trace.host), "count": count}))


def host_field(host: str | None) -> dict[str, str]:
    return {"host": host} if host else {}


def say_summary(s: Summary, host: str | None, json_out: Output | None,
                 hooks: api.Hooks, folded: int = 0) -> None:
    """The run's summary at its end; also when its bpftrace died while tracing (what it
    traced, and what is unknown), not when it was refused before tracing. `folded`:
    the table's PATH-search attempts shown in the row of their search's last."""
    # with the ends of processes in the stream, the accounting is of both: "events"
    unit = s.unit if s.exits is None else "events"
    shown = {s.unit: s.events} if s.exits is None else {s.unit: s.events - s.exits,
                                                        "exits": s.exits}
    if json_out is not None:
        ended_ns = s.ended_ns if s.ended_ns is not None else time.time_ns()
        json_out.write(json_line({"event": "end", "time": iso_time(ended_ns),
                                  **host_field(host), **shown, f"dropped_{unit}": s.dropped,
                                  f"kernel_{unit}": s.kernel_total,
                                  f"missing_{unit}": s.missing, "lost_events": s.lost_records,
                                  f"incomplete_{unit}": s.incomplete,
                                  f"partial_{unit}": s.unfinished}))
    said = [f"{n} {name if n != 1 else name[:-1]}" for name, n in shown.items()]
    if folded:  # else the count looks too high for the rows
        said[0] += f" ({folded} of them failed tries of a PATH search, as [tried N])"
    text = " and ".join(said) + f" traced in {s.elapsed_s:.1f} s"
    if s.dropped:
        text += f" ({s.dropped} more not matching the filters run here)"
    if s.missing is None:
        text += f"; how many {unit} the kernel saw is unknown (bpftrace was killed)"
    elif s.missing:
        text += (f"; the kernel reported {s.kernel_total}: {s.missing} {unit} were lost on "
                 "the way")
    if s.lost_records:
        text += f"; bpftrace lost {s.lost_records} events"
    if s.incomplete:
        text += f"; {s.incomplete} shown incomplete ([records lost])"
    if s.unfinished:
        text += f"; {s.unfinished} partial {unit} dropped (no return record)"
    if s.unreadable:
        text += f"; {s.unreadable} unreadable records"
    hooks.say(f"bptrace-exec: {text}.")
    say_notes(s, hooks.warn)


def say_notes(s: Summary, warn: api.Say) -> None:
    if s.notes:
        warn(f"bptrace-exec: bpftrace also printed {s.notes} record(s) that bptrace-exec "
             f"does not use; the first: {s.first_note}")


def export_all(exports: list[tuple[str, str]], stats: Stats, profile: Profile, title: str,
            labels: Mapping[str, str] = NO_LABELS, run: RunState | None = None,
            keys: Keys | None = None) -> None:
    for path, fmt in exports:
        write_export(stats, path, fmt, top=profile.stats.top, title=title, labels=labels,
                     run=run, keys=keys)


def terminal(out: Output, *, wide: bool, color: str) -> Terminal:
    """On a terminal, a table colours failures (unless $NO_COLOR) and fits its width."""
    tty = out.stream.isatty()
    colour = color == "always" or (color == "auto" and tty and not os.environ.get("NO_COLOR"))
    return Terminal(colour=colour, width=shutil.get_terminal_size().columns
                    if tty and not wide else None)


REPORT_JSON = json.JSONEncoder(ensure_ascii=False)  # a report per line, as json.dumps writes


def report(out: Output, stats: Stats, profile: Profile, title: str,
           labels: Mapping[str, str] = NO_LABELS) -> None:
    top = profile.stats.top
    out.write(json_line(to_dict(stats, top=top, title=title, labels=labels), REPORT_JSON)
              if profile.output_format == "json" else render_report(stats, top=top, title=title))
