"""A run asked for on the command line: the profile with its overrides, then one
bpftrace, several with --restart, an --emit, a replay, or --from's files (cli.fromfiles)."""

from __future__ import annotations

import argparse
import contextlib
import socket
import time
from typing import TYPE_CHECKING

from bptrace_exec import __version__, api
from bptrace_exec.cli import fromfiles
from bptrace_exec.cli.output import Output, stderr, summary_output
from bptrace_exec.cli.profile import profile_asked
from bptrace_exec.cli.show import (
    draw_timeline,
    export_all,
    host_field,
    lost,
    report,
    rows_for,
    say_notes,
    say_summary,
    show_events,
    show_tree,
)
from bptrace_exec.errors import (
    EXIT_OK,
    EngineFailure,
    EnvironmentProblem,
    ExportError,
    StoppedStarting,
    UsageError,
    UserError,
)
from bptrace_exec.output import tree
from bptrace_exec.output.export import (
    check_writable,
    format_for,
)
from bptrace_exec.output.report import on
from bptrace_exec.output.serve import Serving, parse_address
from bptrace_exec.output.tally import Stats, merged
from bptrace_exec.output.text import json_line
from bptrace_exec.pipeline import Summary
from bptrace_exec.restarts import Restarts
from bptrace_exec.spec import Profile
from bptrace_exec.spec.model import Filters

if TYPE_CHECKING:  # prometheus_client takes 80 ms to import: only metrics need it
    from bptrace_exec.output.metrics import RunState
    from bptrace_exec.run.prestart import Early


def run(args: argparse.Namespace, command: list[str],
        prestarted: Early | None = None) -> int:
    # a replay's profile is the recording's, and --from's with none named its events';
    # the command line only says how it is shown
    profile = None if args.replay or _from_events(args) else profile_asked(args)
    exports = [(path, format_for(path, args.export_format)) for path in args.export or []]
    for path in [*(p for p, _ in exports), *([args.timeline] if args.timeline else [])]:
        check_writable(path)
    address = parse_address(args.serve) if args.serve else None
    with contextlib.ExitStack() as stack:
        serving = None
        # before bpftrace starts and -o empties its file: a port taken, an address not of
        # this host, end the run before it begins
        if address:
            assert profile is not None
            serving = Serving(address, profile, args.host or socket.gethostname())
            stack.callback(serving.close)
        out = stack.enter_context(Output(args.output))
        summary = stack.enter_context(summary_output(args.summary, out))
        if args.from_file:
            return (fromfiles.draw_files(args, out) if args.tree or args.timeline
                    else fromfiles.report_files(args, profile, out, exports))
        stack.callback(Output.reopen_on_signal())
        if address and serving and (not args.quiet or not address.port):
            stderr(f"bptrace-exec: serving metrics on {serving.url}")  # a kernel's port: always
        return _Runs(args, profile, command, out, summary, serving, exports,
                     prestarted).run()


class _Runs:
    """One trace, made of one bpftrace run, or several with --restart: their events,
    counts and accounting as one."""

    def __init__(self, args: argparse.Namespace, profile: Profile | None,
                 command: list[str], out: Output, summary: Output | None,
                 serving: Serving | None, exports: list[tuple[str, str]],
                 prestarted: Early | None) -> None:
        self.args, self.profile, self.command = args, profile, command
        self.prestarted = prestarted  # taken by the first start, if it is that start
        self.out, self.summary, self.serving, self.exports = out, summary, serving, exports
        self.restarts = Restarts(restarting(args, command), stderr)
        if (args.tree or args.timeline) and self.restarts.enabled:
            raise UsageError(f"--{'tree' if args.tree else 'timeline'} draws the processes "
                             "of one run: not with --restart")
        self.ended: Summary | None = None  # of the bpftrace runs that died
        self.base: Stats | None = None  # their counts, as last reported
        self.last: Stats | None = None  # this bpftrace's, as last reported
        self.folded = 0  # failed attempts of PATH searches the table showed as [tried N]
        self.tracing_since: float | None = None
        self.hooks = api.Hooks(say=self._ready, warn=stderr,
                               on_lost=lambda n: lost(n, summary, self.trace))
        # what is said at the end (not a start: no gap closes)
        self.plain = api.Hooks(say=(lambda _m: None) if args.quiet else stderr, warn=stderr)

    def run(self) -> int:
        with self.restarts.between_runs():
            return self._run()

    def _run(self) -> int:
        while True:
            try:
                trace = self._start()
            except (EngineFailure, EnvironmentProblem) as exc:
                if self.restarts.gap is None:  # the first start: a mistake to report
                    raise
                if self._again(exc, tracing=False, lasted_s=0.0):  # not yet startable
                    continue
                return self._end(exc)
            self.trace, self.dead = trace, False
            if self.restarts.stopped:  # asked as it was being started
                trace.stop()
            try:
                with trace:
                    self._counts() if trace.profile.stats.enabled else self._events()
            except EngineFailure as exc:
                run, finished = trace.run, trace.finished
                self.ended = self.summary_now() if run.ready else self.ended
                self.dead = True  # its accounting is in `ended` now
                self.base, self.last = merged(self.base, self.last) if self.last else \
                    self.base, None
                asked = finished is not None and finished.requested  # ending anyway
                if not asked and self._again(exc, tracing=run.ready, lasted_s=run.elapsed):
                    continue
                return self._end(exc)
            break
        if not self.trace.profile.stats.enabled:
            say_summary(self.summary_now(), self.trace.host, self._json_out(), self.plain,
                        self.folded)
        if self.trace.recorder is not None and self.trace.recorder.failed is not None:
            raise self.trace.recorder.failed  # what it traced was shown, and said
        finished = self.trace.finished
        if finished is not None and finished.command_status is not None:
            return finished.command_status
        return EXIT_OK

    def _again(self, failure: UserError, *, tracing: bool, lasted_s: float) -> bool:
        """Whether to start bpftrace again, after the wait (not if asked to stop)."""
        delay = self.restarts.plan(failure, tracing, lasted_s, self._left())
        if delay is None:
            return False
        if self.serving is not None:
            self.serving.update(run=self._state(up=False))
        return self.restarts.wait(delay)

    def _end(self, failure: UserError) -> int:
        """No bpftrace runs and none will: what was traced is said, then the run ends as
        usual if it was asked to stop between bpftraces, else with the failure."""
        if self.trace.profile.stats.enabled:
            if self.restarts.enabled and self.base is not None:
                self._counted(self.base)
        elif self.ended is not None:
            say_summary(self.summary_now(), self.trace.host, self._json_out(), self.plain,
                        self.folded)
        if self.restarts.stopped or (isinstance(failure, StoppedStarting)
                                     and self.restarts.gap is not None):
            return EXIT_OK  # asked to stop between bpftraces, or as a later one started
        raise failure

    def summary_now(self) -> Summary:
        """Of every bpftrace run so far."""
        if self.ended is None:
            return self.trace.summary
        return self.ended if self.dead else self.ended.plus(self.trace.summary)

    def _start(self) -> api.Trace:
        args = self.args
        if args.replay:
            # how it is shown is this command line's choice, not the recorded one's
            trace = api.replay(args.replay, hooks=self.hooks, top=args.top,
                               columns=args.columns,
                               stats=True if args.stats or args.export else None,
                               output_format="json" if args.json else "table")
            trace.host = args.host or trace.host
            return trace
        assert self.profile is not None
        return api.trace(self.profile, hooks=self.hooks, live=api.Live(
            command=self.command or None, duration=self._left(), bpftrace=args.bpftrace,
            buffer_pages=args.buffer_pages, record=args.record,
            command_stdout_to_stderr=not args.output, command_output=args.command_output,
            handle_signals=True, host=args.host, prestarted=self.prestarted))

    def _left(self) -> float | None:
        """Of --duration (counted from the first start of tracing), for the next bpftrace."""
        duration: float | None = self.args.duration
        if duration is None or self.tracing_since is None:
            return duration
        return max(0.001, duration - (time.monotonic() - self.tracing_since))

    def _ready(self, status: str) -> None:
        self.tracing_since = self.tracing_since or time.monotonic()
        if self.args.duration is not None:  # from the first start, whatever came between
            self.trace.run.source.deadline = self.tracing_since + self.args.duration
        gap = self.restarts.resumed()
        if gap is not None:
            now = time.time_ns()
            stderr(f"bptrace-exec: tracing again after a gap of "
                   f"{(now - gap.since_ns) / 1e9:.1f} s")
            json_out = self._json_out()
            if json_out is not None and not self.trace.profile.stats.enabled:
                json_out.write(json_line(gap.record(now, host_field(self.trace.host))))
        if self.serving is not None:
            self.serving.update(run=self._state(up=True))
        if not self.args.quiet:
            stderr(status)

    def _json_out(self) -> Output | None:
        return self.summary if self.trace.profile.output_format == "json" else None

    def _state(self, *, up: bool) -> RunState:
        from bptrace_exec.output.metrics import RunState

        s = self.summary_now()
        return RunState(lost=s.lost_records, missing=s.missing or 0, up=up,
                        bpftrace=self.trace.run.source.engine.version_text,
                        version=__version__, restarts=self.restarts.count)

    def _counts(self) -> None:
        def refreshed(stats: Stats) -> None:
            self.last = stats
            total = merged(self.base, stats)
            if self.serving is not None:
                self.serving.update(total, self._state(up=True))
            elif not getattr(self.args, "silent_refresh", False):
                report(self.out, total, self.trace.profile, self._title(), self._labels())
            if self.exports:  # a textfile collector reads them while the run goes on
                try:
                    export_all(self.exports, total, self.trace.profile, self._title(),
                               self._labels(), self._state(up=True),
                               self.serving.keys if self.serving is not None else None)
                except ExportError as exc:  # the end tries again, and fails the run then
                    stderr(f"bptrace-exec: {exc.message}; tracing goes on, and the next "
                           "refresh writes it again")
        self._counted(merged(self.base, self.trace.counts(refreshed)))

    def _counted(self, stats: Stats) -> None:
        """The counts of the whole run, at its end."""
        shown, serving = self.trace.profile, self.serving
        if serving is not None:
            serving.update(stats, self._state(up=False))
        report(self.out, stats, shown, self._title(), self._labels())
        say_notes(self.summary_now(), self.plain.warn)
        export_all(self.exports, stats, shown, self._title(), self._labels(),
                self._state(up=False), serving.keys if serving is not None else None)

    def _labels(self) -> dict[str, str]:
        return {**host_field(self.trace.host), "profile": self.trace.profile.name}

    def _title(self) -> str:  # a live report says when it was made
        host = self.trace.host
        return f"bptrace-exec stats: {self.args.replay}{on(host)}" if self.args.replay \
            else api.title(self.trace.profile, host)

    def _events(self) -> None:
        args = self.args
        if (args.tree or args.timeline) and not self.trace.profile.exits:  # a recording's
            raise UsageError(f"--{'tree' if args.tree else 'timeline'} needs the ends of "
                             f"processes, which {args.replay} does not hold",
                             hint="record with the process profile (or --exits)")
        # a filter may drop a process's end and keep its exec (--comm: the name changes)
        processes = tree.Tree(filtered=self.trace.profile.filters != Filters())
        rows = rows_for(self.trace.profile, all_attempts=args.all_attempts)
        try:
            if args.tree:
                show_tree(self.trace, self.out, self.hooks, processes, wide=args.wide)
            else:
                show_events(self.trace, self.out, self.hooks, rows, wide=args.wide,
                             color=args.color, header=not self.restarts.count,
                             also=processes.add if args.timeline else None)
        except BaseException:  # bpftrace failing still draws what it traced, if it can
            if args.timeline:
                with contextlib.suppress(UserError):
                    draw_timeline(self.args.timeline, processes, self.trace.host)
            raise
        finally:
            self.folded += rows.folded
        if args.timeline:
            draw_timeline(self.args.timeline, processes, self.trace.host)


def restarting(args: argparse.Namespace, command: list[str]) -> bool:
    """--restart, or --serve on a run of its own (a COMMAND or a recording is one
    bpftrace's)."""
    return bool(args.restart or args.serve and not command and not args.record
                and not args.replay)


def _from_events(args: argparse.Namespace) -> bool:
    """`--stats --from FILE` with no profile named: the events choose it."""
    return bool(args.from_file) and args.profile is None and not args.syscall
