"""The command line: options in, a profile with overrides, then the library (api) run
for it, its events or report written out."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, NoReturn, TextIO

from bptrace_exec import __version__, api
from bptrace_exec.codegen import generate
from bptrace_exec.codegen.oneliner import oneliner
from bptrace_exec.completion import SHELLS, completion
from bptrace_exec.errors import (
    COMMAND_STATUS,
    EXIT_ENVIRONMENT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STATUSES,
    EngineFailure,
    EnvironmentProblem,
    OutputError,
    UsageError,
    UserError,
)
from bptrace_exec.event import Event
from bptrace_exec.limits import FILTER_VALUES, JSON_LINE_BYTES, bounded_lines, out_of_memory
from bptrace_exec.options import SUMMARY_PLACES, check_options
from bptrace_exec.output import timeline, tree
from bptrace_exec.output.export import (
    FORMATS,
    NO_LABELS,
    check_writable,
    format_for,
    to_dict,
    write_export,
    write_text,
)
from bptrace_exec.output.render import Renderer, Terminal
from bptrace_exec.output.report import on, render_report
from bptrace_exec.output.rows import Row, Rows
from bptrace_exec.output.serve import DEFAULT_REFRESH_S, Serving, parse_address
from bptrace_exec.output.tally import Stats, merged
from bptrace_exec.output.text import iso_time, json_line
from bptrace_exec.pipeline import Summary
from bptrace_exec.restarts import Restarts
from bptrace_exec.run.cgroups import container_cgroups
from bptrace_exec.run.engine import find_engine
from bptrace_exec.spec import Profile, available_profiles, load_profile, with_overrides
from bptrace_exec.spec.overrides import adhoc_profile, apply_where
from bptrace_exec.spec.parse import ARGV_BYTES_RANGE, MAX_ARGS_RANGE, TOP_RANGE
from bptrace_exec.spec.profiles import PROFILE_SUFFIXES
from bptrace_exec.spec.tracepoint import UNKNOWN, syscall_fields
from bptrace_exec.spec.types import RESULT_TYPES, TYPES

if TYPE_CHECKING:  # prometheus_client takes 80 ms to import: only metrics need it
    from bptrace_exec.output.metrics import Keys, RunState

EXAMPLES_TEXT = """\
examples:
  bptrace-exec execve                    # every exec on the host, as a live table
  bptrace-exec execve --json             # one JSON object per exec, per line
  bptrace-exec execve --comm bash --comm sh   # only execs made by bash or sh
  bptrace-exec execve --uid 1000         # only execs by uid 1000
  bptrace-exec execve --ppid 812         # only execs by children of pid 812
  bptrace-exec execve --failed           # only execs that returned an error
  bptrace-exec execve --succeeded        # only execs that started a program
  bptrace-exec execve --where euid=0     # programs that run as root, setuid ones too
  bptrace-exec execve --where filename='/tmp/*'   # programs run from /tmp
  bptrace-exec execve --where argv='*.c'  # execs with an argument ending in .c
  bptrace-exec execve --cwd --exe --where cwd='/srv/*'   # what runs under /srv, which file
  bptrace-exec execve --duration 30      # stop by itself after 30 seconds
  bptrace-exec execve -o execs.jsonl --json   # write records to a file
  bptrace-exec execve --max-args 8       # keep at most 8 arguments per exec
  bptrace-exec execve --emit script      # print the bpftrace program and exit
  bptrace-exec execve --comm sh --emit oneliner   # a bpftrace -e line to paste
  bptrace-exec execve --stats --duration 60   # counts and latency, reported after 60 s
  bptrace-exec execve --stats --top 5 --interval 10   # a top-5 report every 10 s
  bptrace-exec execve --export execs.prom --duration 60   # Prometheus textfile
  bptrace-exec exec-counts --duration 60 # programs started, counted at the lowest cost
  bptrace-exec --stats --from execs.jsonl   # report on JSON lines written earlier
  bptrace-exec execve --record run.rec   # trace, and keep the raw transcript
  bptrace-exec --replay run.rec --json   # render a recording again, as JSON lines
  bptrace-exec ./my-profile.yaml         # a profile of your own
  bptrace-exec -- make -j2               # run make, trace it and its descendants
  bptrace-exec process -- make -j2       # its execs and how each process ended
  bptrace-exec --tree -- make -j2        # the processes it ran, as a tree
  bptrace-exec openat --where path='/etc/*'   # files opened under /etc
  bptrace-exec connect --json            # outgoing connections, as JSON lines
  bptrace-exec kill --where signal=SIGKILL   # who sends SIGKILL to whom
  bptrace-exec clone --stats -- make -j2  # processes and threads make creates, counted
  bptrace-exec --syscall unlinkat --arg pathname:str --where comm=rm   # ad hoc
  bptrace-exec --syscall openat --arg filename:str --emit oneliner     # to paste
  bptrace-exec --syscall dup2 --arg oldfd:fd --arg newfd:fd --result fd   # typed result
  bptrace-exec openat --columns time,comm,path,result   # only these columns
  bptrace-exec connect --on-host         # only callers in the host's pid namespace
  bptrace-exec clone --parents 4         # with each caller's ancestors: bash(812) > ...
  bptrace-exec connect --context --in-container   # containerised callers, with their
                                         # container id, cgroup, namespaces and hostname
  bptrace-exec openat --container 3f2a9c # only what that container opens
  bptrace-exec execve --cgroup /sys/fs/cgroup/system.slice/cron.service   # one unit

{exit_statuses}
fields (table): TIME local time of the call, PID/PPID/UID of the caller, COMM the
caller's name, RET 0 or the errno name, LAT(ms) entry-to-return latency measured in the
kernel, PROGRAM the path passed to exec, ARGS argv quoted as bash reads it back
([...] marks arguments cut by the limits). Syscall profiles show their own columns:
the captured arguments by type (flags and signals by name, addresses as ip:port) and RET,
the return value or its errno name.
"""
EXAMPLES = EXAMPLES_TEXT.format(exit_statuses="exit status:\n" + "".join(
    f"  {status:<4} {meaning}\n" for status, meaning in EXIT_STATUSES)
    + f"  N    {COMMAND_STATUS}\n")


class _Parser(argparse.ArgumentParser):
    """argparse, with a suggestion for an option mistyped."""

    def error(self, message: str) -> NoReturn:
        unknown = message.partition("unrecognized arguments: ")[2].split()
        known = [o for a in self._actions for o in a.option_strings]
        for word in unknown:
            close = difflib.get_close_matches(word.split("=")[0], known, n=1, cutoff=0.75)
            if close:
                message += f" (did you mean {close[0]}?)"
                break
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="bptrace-exec",
        description="Trace execve/execveat, or any other syscall, with bpftrace, from a "
                    "YAML profile or --syscall. Profiles shipped: "
                    f"{', '.join(available_profiles()) or 'none'}.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s [PROFILE] [options] [-- COMMAND [ARGS...]]",
    )
    p.add_argument("profile", nargs="?", default=None, metavar="PROFILE",
                   help="a YAML profile, or the name of a shipped one (default: execve)")
    f = p.add_argument_group("filters (in the kernel; each replaces the profile's; "
                             f"{FILTER_VALUES.most} values at most per filter)")
    f.add_argument("--comm", action="append", metavar="NAME",
                   help="caller's command name, exact or a prefix ending in * (repeatable)")
    f.add_argument("--uid", action="append", type=int, metavar="N",
                   help="caller's uid (repeatable)")
    f.add_argument("--pid", action="append", type=int, metavar="N",
                   help="caller's pid (repeatable)")
    f.add_argument("--ppid", action="append", type=int, metavar="N",
                   help="caller's parent pid (repeatable)")
    result = f.add_mutually_exclusive_group()
    result.add_argument("--failed", action="store_true", default=None,
                        help="only calls that returned an error")
    result.add_argument("--succeeded", action="store_true", default=None,
                        help="only calls that did not return an error")
    f.add_argument("--where", action="append", metavar="NAME=VALUE",
                   help="keep calls where NAME (comm, uid, euid, pid, ppid, cwd, exe or a "
                        "captured argument: an exec's filename, or argv, any argument "
                        "matching a glob) is VALUE; a string ending in * is a prefix "
                        "(repeatable: values of one NAME are OR'ed; argv, cwd and exe are "
                        "matched in bptrace-exec)")
    f.add_argument("--cgroup", action="append", metavar="PATH",
                   help="only callers in this cgroup v2 directory, exact (repeatable)")
    f.add_argument("--container", action="append", metavar="ID",
                   help="only callers in the container whose id starts with ID (docker, "
                        "containerd, CRI-O, podman); its cgroup is found at start")
    where = f.add_mutually_exclusive_group()
    where.add_argument("--in-container", dest="in_container", action="store_true",
                       default=None, help="only callers in a pid namespace of their own")
    where.add_argument("--on-host", dest="in_container", action="store_false",
                       help="only callers in the host's pid namespace")
    c = p.add_argument_group("process context")
    c.add_argument("--tree", action="store_true",
                   help="with an exec profile: at the end, the tree of the processes that ran "
                        "instead of rows (implies --exits; with --json, as one object)")
    c.add_argument("--timeline", metavar="FILE.svg",
                   help="with an exec profile: at the end, the run as a picture, one bar per "
                        "process from its program to its end (implies --exits)")
    c.add_argument("--exits", action="store_true",
                   help="with an exec profile: the end of every process too, in the same "
                        "stream (its status or signal, its lifetime, the exec_id of the last "
                        "program it ran)")
    c.add_argument("--parents", type=int, metavar="N",
                   help="show N ancestors of each caller, pid and comm, nearest first (0-16)")
    c.add_argument("--context", dest="show_context", action="store_true", default=None,
                   help="show the caller's cgroup, container id, pid and mount namespaces "
                        "and hostname")
    c.add_argument("--cwd", action="store_true", default=None,
                   help="show the caller's working directory, walked in the kernel")
    c.add_argument("--env", action="append", metavar="NAME",
                   help="with an exec profile: this variable of each new program's "
                        "environment (repeatable; * for all, up to 4096 bytes). "
                        "Environments hold secrets: off by default")
    c.add_argument("--exe", action="store_true", default=None,
                   help="show the file the process runs (after an exec: the new program's, "
                        "a script's interpreter)")
    a = p.add_argument_group("ad-hoc syscall profile (instead of PROFILE)")
    a.add_argument("--syscall", action="append", metavar="NAME",
                   help="trace this syscall, e.g. openat (repeatable)")
    a.add_argument("--arg", action="append", metavar="NAME:TYPE[:FIELD]",
                   help="capture an argument: its tracepoint field (FIELD, default NAME) "
                        "read as TYPE, one of: " + ", ".join(TYPES))
    a.add_argument("--result", choices=RESULT_TYPES,
                   help="how a non-negative return value is shown (default int)")
    a.add_argument("--columns", metavar="A,B,...",
                   help="the table's columns (any profile): time, pid, tid, ppid, uid, comm, "
                        "syscall, result, latency, the arguments' names, and who: gid, euid, "
                        "egid, loginuid, sessionid, tty, exec_id")
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="JSON lines instead of the table")
    o.add_argument("-o", "--output", metavar="FILE", help="write records to FILE, not stdout")
    o.add_argument("--summary", metavar="WHERE", default="stream",
                   help="with --json: where the lost and end lines go: stream (among the "
                        "events, default), stderr, none, or a FILE; apart, the events load "
                        "into tables as they are")
    o.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="a failed call's RET in red: on a terminal unless $NO_COLOR is set "
                        "(auto), always, or never")
    o.add_argument("--wide", action="store_true",
                   help="on a terminal, rows whole (else cut to its width, marked \u2026)")
    o.add_argument("--all-attempts", action="store_true",
                   help="a row for each failed attempt of a PATH search (the table folds "
                        "them into the exec that ends the search: [tried N])")
    o.add_argument("--emit", choices=["script", "oneliner"],
                   help="print the generated bpftrace program (script), or a `bpftrace -e` "
                        "line that shows the same execs as text (oneliner), and exit; no "
                        "root needed")
    o.add_argument("--host", metavar="NAME",
                   help="the name of this host, a field of every JSON line and report and a "
                        "label of every metric (default: the hostname; a replay: the name "
                        "it was recorded with)")
    o.add_argument("-q", "--quiet", action="store_true",
                   help="no status line and no end-of-run summary on stderr")
    s = p.add_argument_group("stats (count in the kernel, report at the end)")
    s.add_argument("--stats", action="store_true", help="a report instead of one row per exec")
    s.add_argument("--top", type=int, metavar="N",
                   help=f"rows per table in the report ({TOP_RANGE[0]}-{TOP_RANGE[1]}, "
                        "default 10)")
    s.add_argument("--interval", type=int, metavar="SECONDS",
                   help="also report every SECONDS, counts since the start (1-86400)")
    s.add_argument("--export", action="append", metavar="PATH",
                   help="write the report to PATH too (implies --stats; repeatable); the "
                        "format comes from the extension: " + ", ".join(FORMATS))
    s.add_argument("--export-format", choices=sorted(set(FORMATS.values())),
                   help="the export format, whatever PATH's extension")
    s.add_argument("--serve", metavar="[ADDR:]PORT",
                   help="serve the counts since the start to Prometheus, at "
                        "http://ADDR:PORT/metrics (implies --stats; ADDR 127.0.0.1 unless "
                        f"given; PORT 0: any free one), refreshed every --interval "
                        f"(default {DEFAULT_REFRESH_S} s); the report is printed at the end")
    s.add_argument("--from", dest="from_file", metavar="FILE", nargs="+",
                   help="report on JSON lines written earlier with --json, one file or "
                        "several (merged, by host when they name theirs; no root needed; "
                        f"a line of {JSON_LINE_BYTES.text} at most)")
    rr = p.add_argument_group("record and replay")
    rr.add_argument("--record", metavar="FILE",
                    help="keep the raw transcript of the run in FILE")
    rr.add_argument("--replay", metavar="FILE",
                    help="render a recording again (table, --json, --stats, --export); no "
                         "root, no bpftrace")
    r = p.add_argument_group("run")
    r.add_argument("--duration", type=float, metavar="SECONDS", help="stop after SECONDS")
    r.add_argument("--restart", action="store_true",
                   help="if bpftrace dies, start it again (after 1 s, doubling up to 60 s) and "
                        "go on, the gap reported; --serve does it unless a COMMAND or "
                        "--record makes the run one bpftrace's")
    r.add_argument("--command-output", metavar="FILE",
                   help="the COMMAND's stdout and stderr go to FILE, apart from the rows "
                        "(default: its stdout to stderr, unless -o)")
    r.add_argument("--max-args", type=int, metavar="N",
                   help=f"arguments kept per exec ({MAX_ARGS_RANGE[0]}-{MAX_ARGS_RANGE[1]}, "
                        "profile default 64)")
    r.add_argument("--argv-bytes", type=int, metavar="N",
                   help=f"bytes of argv read per successful exec ({ARGV_BYTES_RANGE[0]}-"
                        f"{ARGV_BYTES_RANGE[1]}, profile default 4096)")
    r.add_argument("--buffer-pages", type=int, default=None, metavar="N",
                   help="bpftrace event buffer in pages, a power of 2 (default 1024 per "
                        "CPU on 0.17; 4096 shared on 0.23+)")
    r.add_argument("--bpftrace", metavar="PATH",
                   help="the bpftrace binary (default: $BPFTRACE, then PATH)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--print-completion", choices=SHELLS, metavar="SHELL",
                   help="print the completion script of bash or zsh (options and shipped "
                        "profiles) and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in args_in:
        split = args_in.index("--")
        args_in, command = args_in[:split], args_in[split + 1:]
        if not command:
            build_parser().error("nothing after --: give the COMMAND to run and trace")
    parser = build_parser()
    args = parser.parse_args(args_in)
    if args.print_completion:
        sys.stdout.write(completion(parser, args.print_completion))
        return EXIT_OK
    files = args.from_file or []
    if args.profile is None and len(files) > 1 and (
            files[-1].endswith(PROFILE_SUFFIXES)
            or (files[-1] in available_profiles() and not os.path.exists(files[-1]))):
        args.profile = files.pop()  # `--from a.jsonl PROFILE`: --from took it as a file
    try:
        check_options(args, parser, command)
        return _run(args, command)
    except UserError as exc:
        print(f"bptrace-exec: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("bptrace-exec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:  # where input is read, the error says which; elsewhere, this
        print(f"bptrace-exec: {out_of_memory()}", file=sys.stderr)
        return EXIT_ENVIRONMENT


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _profile(args: argparse.Namespace) -> Profile:
    if args.syscall:
        if args.profile is not None:
            raise UsageError(f"give either a PROFILE ({args.profile}) or --syscall, not both")
        profile = adhoc_profile(args.syscall, args.arg or [], result=args.result)
    elif args.arg or args.result:
        raise UsageError("--arg and --result describe an ad-hoc profile",
                         hint="add --syscall NAME, or put them in the profile's YAML")
    else:
        profile = load_profile(args.profile or "execve")
    if args.where:
        profile = apply_where(profile, args.where)
    cgroups = list(args.cgroup or [])
    for container in args.container or []:
        cgroups += container_cgroups(container)
    if not args.replay and any(syscall_fields(p) == UNKNOWN for p in profile.probes
                               if profile.kind.attach == "syscall" and
                               not profile.kind.given_args):
        stderr("bptrace-exec: warning: the syscalls' tracepoint formats cannot be read here "
               "(/sys/kernel/tracing needs root): the profile's syscalls and arguments were "
               "not checked against this kernel")
    profile = with_overrides(profile, **_changes(args, cgroups))
    # served, or to carry counts across a restart: refreshed, though no report is asked
    args.silent_refresh = not profile.stats.interval and profile.stats.enabled and bool(
        args.serve or args.restart)
    if args.silent_refresh:
        profile = with_overrides(profile, interval=DEFAULT_REFRESH_S)
    return profile


def _changes(args: argparse.Namespace, cgroups: list[str] | None = None) -> dict[str, object]:
    """What the command line changes of a profile; None: not given."""
    return dict(
        comm=args.comm, uid=args.uid, pid=args.pid, ppid=args.ppid, failed=args.failed,
        succeeded=args.succeeded, cgroup=cgroups or None, in_container=args.in_container,
        parents=args.parents, context=args.show_context, cwd=args.cwd, exe=args.exe, env=args.env,
        columns=args.columns,
        exits=args.exits or ((args.tree or args.timeline) and not args.replay) or None,
        max_args=args.max_args, argv_bytes=args.argv_bytes,
        stats=True if args.stats or args.from_file or args.export or args.serve else None,
        top=args.top, interval=args.interval,
        output_format="json" if args.json else None)


def _run(args: argparse.Namespace, command: list[str]) -> int:
    # a replay's profile is the recording's; the command line only says how it is shown
    profile = None if args.replay else _profile(args)
    exports = [(path, format_for(path, args.export_format)) for path in args.export or []]
    for path in [*(p for p, _ in exports), *([args.timeline] if args.timeline else [])]:
        check_writable(path)
    address = parse_address(args.serve) if args.serve else None
    with Output(args.output) as out, _summary_output(args.summary, out) as summary, \
            contextlib.ExitStack() as stack:
        if profile is not None and args.emit:  # neither goes with --replay (options)
            return _emit(args, profile, command, out)
        if profile is not None and args.from_file:
            return _stats_from_file(args, profile, out, exports)
        stack.callback(Output.reopen_on_signal())
        serving = None
        if address:  # before bpftrace starts: a port taken ends the run before it begins
            assert profile is not None
            serving = Serving(address, profile, args.host or socket.gethostname())
            stack.callback(serving.close)
            if not args.quiet:
                stderr(f"bptrace-exec: serving metrics on {serving.url}")
        return _Runs(args, profile, command, out, summary, serving, exports).run()


class _Runs:
    """One trace, made of one bpftrace run, or several with --restart: their events,
    counts and accounting as one."""

    def __init__(self, args: argparse.Namespace, profile: Profile | None,
                 command: list[str], out: Output, summary: Output | None,
                 serving: Serving | None, exports: list[tuple[str, str]]) -> None:
        self.args, self.profile, self.command = args, profile, command
        self.out, self.summary, self.serving, self.exports = out, summary, serving, exports
        self.restarts = Restarts(restarting(args, command), stderr)
        if (args.tree or args.timeline) and self.restarts.enabled:
            raise UsageError(f"--{'tree' if args.tree else 'timeline'} draws the processes "
                             "of one run: not with --restart")
        self.ended: Summary | None = None  # of the bpftrace runs that died
        self.base: Stats | None = None  # their counts, as last reported
        self.last: Stats | None = None  # this bpftrace's, as last reported
        self.tracing_since: float | None = None
        self.hooks = api.Hooks(say=self._ready, warn=stderr,
                               on_lost=lambda n: _lost(n, summary, self.trace))
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
            _say_summary(self.summary_now(), self.trace.host, self._json_out(), self.plain)
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
            _say_summary(self.summary_now(), self.trace.host, self._json_out(), self.plain)
        if self.restarts.stopped:
            return EXIT_OK
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
            handle_signals=True, host=args.host))

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
                json_out.write(json_line(gap.record(now, _host(self.trace.host))))
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
        def report(stats: Stats) -> None:
            self.last = stats
            total = merged(self.base, stats)
            if self.serving is not None:
                self.serving.update(total, self._state(up=True))
            elif not getattr(self.args, "silent_refresh", False):
                self.out.report(total, self.trace.profile, self._title(), self._labels())
        self._counted(merged(self.base, self.trace.counts(report)))

    def _counted(self, stats: Stats) -> None:
        """The counts of the whole run, at its end."""
        shown, serving = self.trace.profile, self.serving
        if serving is not None:
            serving.update(stats, self._state(up=False))
        self.out.report(stats, shown, self._title(), self._labels())
        _say_notes(self.summary_now(), self.plain.warn)
        _export(self.exports, stats, shown, self._title(), self._labels(),
                self._state(up=False), serving.keys if serving is not None else None)

    def _labels(self) -> dict[str, str]:
        return {**_host(self.trace.host), "profile": self.trace.profile.name}

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
        processes = tree.Tree()
        try:
            if args.tree:
                _show_tree(self.trace, self.out, self.hooks, processes, wide=args.wide)
            else:
                _show_events(self.trace, self.out, self.hooks, all_attempts=args.all_attempts,
                             wide=args.wide, color=args.color, header=not self.restarts.count,
                             also=processes.add if args.timeline else None)
        except BaseException:  # bpftrace failing still draws what it traced, if it can
            if args.timeline:
                with contextlib.suppress(UserError):
                    self._draw(processes)
            raise
        if args.timeline:
            self._draw(processes)

    def _draw(self, processes: tree.Tree) -> None:
        """--timeline's picture of what was traced, if anything was."""
        if not processes.procs:
            stderr(f"bptrace-exec: no process traced: {self.args.timeline} not written")
            return
        write_text(self.args.timeline, timeline.svg(
            processes.roots(), processes.first_ns, processes.last_ns,
            f"bptrace-exec timeline{on(self.trace.host)}"), "the timeline",
            "what was traced is above; free space or choose another --timeline path")


def restarting(args: argparse.Namespace, command: list[str]) -> bool:
    """--restart, or --serve on a run of its own (a COMMAND or a recording is one
    bpftrace's)."""
    return bool(args.restart or args.serve and not command and not args.record
                and not args.replay)


def _emit(args: argparse.Namespace, profile: Profile, command: list[str], out: Output
          ) -> int:
    if args.emit == "oneliner":
        if args.parents or args.show_context:
            raise UsageError("a one-liner shows no process context",
                             hint="use --emit script, or drop --parents and --context")
        out.write(oneliner(profile, args.bpftrace or "bpftrace"))
        return EXIT_OK
    version = None
    with contextlib.suppress(UserError):  # the program is the same for every version;
        version = find_engine(args.bpftrace).version_text  # its header names the one found
    out.write(generate(profile, version, follow=bool(command)).text)
    return EXIT_OK


REPORT_JSON = json.JSONEncoder(ensure_ascii=False)  # a report per line, as json.dumps writes


class Output:
    """Where records go (-o FILE, else stdout); a closed reader (`| head`) ends the run
    cleanly, once."""

    def __init__(self, path: str | None, stream: TextIO | None = None) -> None:
        self.path = path
        self.stream: TextIO = stream or sys.stdout
        self.closed = False

    def __enter__(self) -> Output:
        if self.path:
            self.stream = self._open("w")
            Output.files.append(self)
        return self

    files: list[Output] = []  # written to a path: opened again on SIGUSR1

    def _open(self, mode: Literal["w", "a"]) -> TextIO:
        assert self.path
        try:
            return open(self.path, mode, encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot write {self.path}: {exc.strerror}") from None

    @classmethod
    def reopen_on_signal(cls) -> Callable[[], object]:
        """SIGUSR1 (logrotate's postrotate): each file is opened again at its path before
        the next write; what was written before goes to the file moved away, whole.
        Gives what puts the previous handler back."""
        def asked(_signum: int, _frame: object) -> None:
            for out in cls.files:
                out.reopen = True
        before = signal.signal(signal.SIGUSR1, asked)
        return lambda: signal.signal(signal.SIGUSR1, before)

    reopen = False

    def _reopened(self) -> None:
        self.reopen = False
        try:
            self.stream.close()
            self.stream = open(self.path or "", "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise self._failed(exc) from None

    def __exit__(self, *_exc: object) -> None:
        try:
            if self.path:
                Output.files.remove(self)
                self.stream.close()
            elif not self.closed:
                self.stream.flush()
        except BrokenPipeError:
            self.closed = True
        except OSError as exc:
            raise self._failed(exc) from None

    def terminal(self, *, wide: bool, color: str) -> Terminal:
        """On a terminal, a table colours failures (unless $NO_COLOR) and fits its width."""
        tty = self.stream.isatty()
        colour = color == "always" or (color == "auto" and tty
                                       and not os.environ.get("NO_COLOR"))
        return Terminal(colour=colour, width=shutil.get_terminal_size().columns
                        if tty and not wide else None)

    def write(self, text: str, *, flush: bool = True) -> None:
        """One line; `flush=False` leaves it buffered until the next flush(), which the
        event loop calls after each batch of records (a write per row is most of the
        output's cost in a storm)."""
        if self.closed:
            return
        if self.reopen:
            self._reopened()
        try:
            self.stream.write(text if text.endswith("\n") else text + "\n")
            if flush:
                self.stream.flush()
        except BrokenPipeError:
            self.closed = True
        except OSError as exc:
            raise self._failed(exc) from None

    def flush(self) -> None:
        if self.closed:
            return
        if self.reopen:
            self._reopened()
        try:
            self.stream.flush()
        except BrokenPipeError:
            self.closed = True
        except OSError as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> OutputError:
        self.closed = True
        return OutputError(f"cannot write {self.path or 'the output'}: {exc.strerror or exc}",
                           hint="free space, or write elsewhere with -o FILE")

    def report(self, stats: Stats, profile: Profile, title: str,
               labels: Mapping[str, str] = NO_LABELS) -> None:
        top = profile.stats.top
        self.write(json_line(to_dict(stats, top=top, title=title, labels=labels), REPORT_JSON)
                   if profile.output_format == "json" else
                   render_report(stats, top=top, title=title))


def _show_events(trace: api.Trace, out: Output, hooks: api.Hooks, *, all_attempts: bool,
                 wide: bool, color: str, header: bool = True,
                 also: Callable[[Event], None] | None = None) -> None:
    """The events as rows; `header`: the table's (not again after a restart); `also`
    sees each event too."""
    render = Renderer(trace.profile, out.terminal(wide=wide, color=color), trace.host)
    events: Iterable[Event] = trace if also is None else _seen(trace, also)
    if trace.profile.output_format == "json":
        def flush() -> None:
            out.flush()
            if out.closed:
                trace.stop()
        trace.run.on_tick = flush
        try:
            for event in events:
                out.write(json_line(render.to_dict(event)), flush=False)
        finally:
            flush()
        return
    rows = Rows(fold=not all_attempts)

    def show(ready: list[Row]) -> None:
        for row in ready:
            out.write(render.row(row.event, row.tried), flush=False)
        out.flush()
        if out.closed:
            trace.stop()

    def ready(status: str) -> None:
        hooks.say(status)
        if header:
            out.write(render.header())
    trace.run.on_ready = ready
    wall_offset_ns = trace.run.source.wall_offset_ns  # the clock the calls' times are on
    trace.run.on_tick = lambda: show(rows.ready(time.monotonic_ns() + wall_offset_ns))
    try:
        for event in events:
            show(rows.add(event))
    finally:  # bpftrace failing still shows what it traced before
        show(rows.flush())


def _seen(events: Iterable[Event], see: Callable[[Event], None]) -> Iterator[Event]:
    for event in events:
        see(event)
        yield event


def _show_tree(trace: api.Trace, out: Output, hooks: api.Hooks, processes: tree.Tree, *,
               wide: bool) -> None:
    """The process tree, once the trace ends (or its bpftrace fails: what it traced)."""
    trace.run.on_ready = hooks.say
    try:
        for event in trace:
            processes.add(event)
    finally:
        roots = processes.roots()
        if trace.profile.output_format == "json":
            out.write(json_line({"event": "tree", "time": iso_time(time.time_ns()),
                                 **_host(trace.host), "processes": tree.to_dicts(roots)}))
        else:
            width = out.terminal(wide=wide, color="never").width
            for line in tree.lines(roots, width):
                out.write(line, flush=False)
            out.flush()


@contextlib.contextmanager
def _summary_output(where: str, out: Output) -> Iterator[Output | None]:
    """Where --json's lost and end lines go (--summary)."""
    if where in SUMMARY_PLACES and where != "stderr":
        yield out if where == "stream" else None
        return
    with Output(None if where == "stderr" else where,
                sys.stderr if where == "stderr" else None) as summary:
        yield summary


def _lost(count: int, out: Output | None, trace: api.Trace) -> None:
    """bpftrace's report of records lost: on stderr, and among JSON rows."""
    stderr(f"bptrace-exec: bpftrace lost {count} events (its buffer was full); "
           "raise --buffer-pages")
    profile = trace.profile
    if out is not None and profile.output_format == "json" and not profile.stats.enabled:
        out.write(json_line({"event": "lost", "time": iso_time(time.time_ns()),
                             **_host(trace.host), "count": count}))


def _host(host: str | None) -> dict[str, str]:
    return {"host": host} if host else {}


def _say_summary(s: Summary, host: str | None, json_out: Output | None,
                 hooks: api.Hooks) -> None:
    """The run's summary at its end; also when its bpftrace died while tracing (what it
    traced, and what is unknown), not when it was refused before tracing."""
    # with the ends of processes in the stream, the accounting is of both: "events"
    unit = s.unit if s.exits is None else "events"
    shown = {s.unit: s.events} if s.exits is None else {s.unit: s.events - s.exits,
                                                        "exits": s.exits}
    if json_out is not None:
        json_out.write(json_line({"event": "end", "time": iso_time(time.time_ns()),
                                  **_host(host), **shown, f"dropped_{unit}": s.dropped,
                                  f"kernel_{unit}": s.kernel_total,
                                  f"missing_{unit}": s.missing, "lost_events": s.lost_records,
                                  f"incomplete_{unit}": s.incomplete,
                                  f"partial_{unit}": s.unfinished}))
    text = " and ".join(f"{n} {name}" for name, n in shown.items()) + \
        f" traced in {s.elapsed_s:.1f} s"
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
    _say_notes(s, hooks.warn)


def _say_notes(s: Summary, warn: api.Say) -> None:
    if s.notes:
        warn(f"bptrace-exec: bpftrace also printed {s.notes} record(s) that bptrace-exec "
             f"does not use; the first: {s.first_note}")


def _export(exports: list[tuple[str, str]], stats: Stats, profile: Profile, title: str,
            labels: Mapping[str, str] = NO_LABELS, run: RunState | None = None,
            keys: Keys | None = None) -> None:
    for path, fmt in exports:
        write_export(stats, path, fmt, top=profile.stats.top, title=title, labels=labels,
                     run=run, keys=keys)


def _stats_from_file(args: argparse.Namespace, profile: Profile, out: Output,
                     exports: list[tuple[str, str]]) -> int:
    """`--stats --from FILE...`: one report from JSON lines written earlier, by one host or
    many (then with a host breakdown); no root needed."""
    files = args.from_file
    reading = ""

    def lines() -> Iterator[str]:
        nonlocal reading
        for path in files:
            reading = path
            try:
                with open(path, "rb") as f:
                    yield from bounded_lines(f, path)
            except OSError as exc:
                named = path in available_profiles() and not os.path.exists(path)
                raise UsageError(f"cannot read {path}: {exc.strerror}", hint=(
                    f"to report as profile {path}, name it before --from" if named
                    else "")) from None
    try:
        stats, skipped = api.stats_from_json(lines(), by=profile.stats.by)
    except MemoryError:
        raise out_of_memory(reading) from None
    title = f"bptrace-exec stats: {', '.join(files)}{on(args.host)}"
    labels = {"host": args.host} if args.host else {}
    labels["profile"] = profile.name
    out.report(stats, profile, title, labels)
    if skipped:
        stderr(f"bptrace-exec: {skipped} line(s) of {', '.join(files)} were not exec, call "
               "or exit records and were skipped")
    _export(exports, stats, profile, title, labels)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
