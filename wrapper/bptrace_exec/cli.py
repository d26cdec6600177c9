"""The command line: options in, a profile with overrides, then the pipeline run for it."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterable, Sequence
from typing import TextIO

from bptrace_exec import __version__
from bptrace_exec.adhoc import adhoc_profile, apply_columns, apply_where
from bptrace_exec.argtypes import RESULT_TYPES, TYPES
from bptrace_exec.callspec import PROCESS_EXIT
from bptrace_exec.cgroups import check_cgroups, container_cgroups
from bptrace_exec.codegen import generate
from bptrace_exec.codegen.oneliner import oneliner
from bptrace_exec.engine import find_engine
from bptrace_exec.errors import EXIT_OK, UsageError, UserError
from bptrace_exec.export import FORMATS, check_writable, format_for, to_dict, write_export
from bptrace_exec.pipeline import (
    CallStatsRun,
    EventRun,
    Run,
    RunOptions,
    Sink,
    StatsRun,
    renderer_for,
    stderr,
)
from bptrace_exec.record import Recorder, ReplaySource, read_recording
from bptrace_exec.report import render_report
from bptrace_exec.runner import GatedCommand, Session, check_environment, explain_failure
from bptrace_exec.spec import (
    ARGV_BYTES_RANGE,
    MAX_ARGS_RANGE,
    TOP_RANGE,
    Profile,
    available_profiles,
    load_profile,
    with_overrides,
)
from bptrace_exec.stats import Stats, from_events
from bptrace_exec.tracepoint import UNKNOWN, syscall_fields

EXAMPLES = """\
examples:
  bptrace-exec execve                    # every exec on the host, as a live table
  bptrace-exec execve --json             # one JSON object per exec, per line
  bptrace-exec execve --comm bash --comm sh   # only execs made by bash or sh
  bptrace-exec execve --uid 1000         # only execs by uid 1000
  bptrace-exec execve --ppid 812         # only execs by children of pid 812
  bptrace-exec execve --failed           # only execs that returned an error
  bptrace-exec execve --succeeded        # only execs that started a program
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

exit status:
  0    traced and stopped cleanly (Ctrl-C, SIGTERM, --duration, closed output)
  1    bpftrace refused the program or died while tracing
  2    bad command line or profile; nothing was run
  3    environment: not root, no usable bpftrace, no tracefs
  4    the --export file could not be written (the report was printed)
  N    with -- COMMAND: COMMAND's own exit status (128+signal if killed)

fields (table): TIME local time of the call, PID/PPID/UID of the caller, COMM the
caller's name, RET 0 or the errno name, LAT(ms) entry-to-return latency measured in the
kernel, PROGRAM the path passed to exec, ARGS argv quoted as bash reads it back
([...] marks arguments cut by the limits). Syscall profiles show their own columns:
the captured arguments by type (flags and signals by name, addresses as ip:port) and RET,
the return value or its errno name.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
    f = p.add_argument_group("filters (in the kernel; each replaces the profile's)")
    f.add_argument("--comm", action="append", metavar="NAME",
                   help="caller's command name, exact (repeatable)")
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
                   help="keep calls where NAME (comm, uid, pid, ppid or a captured argument) "
                        "is VALUE; a string ending in * is a prefix (repeatable: values of "
                        "one NAME are OR'ed)")
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
    c.add_argument("--parents", type=int, metavar="N",
                   help="show N ancestors of each caller, pid and comm, nearest first (0-16)")
    c.add_argument("--context", action="store_true", default=None,
                   help="show the caller's cgroup, container id, pid and mount namespaces "
                        "and hostname")
    a = p.add_argument_group("ad-hoc syscall profile (instead of PROFILE)")
    a.add_argument("--syscall", action="append", metavar="NAME",
                   help="trace this syscall, e.g. openat (repeatable)")
    a.add_argument("--arg", action="append", metavar="NAME:TYPE[:FIELD]",
                   help="capture an argument: its tracepoint field (FIELD, default NAME) "
                        "read as TYPE, one of: " + ", ".join(TYPES))
    a.add_argument("--result", choices=RESULT_TYPES,
                   help="how a non-negative return value is shown (default int)")
    a.add_argument("--columns", metavar="A,B,...",
                   help="the table's columns: time, pid, tid, ppid, uid, comm, syscall, "
                        "result, latency and the arguments' names")
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="JSON lines instead of the table")
    o.add_argument("-o", "--output", metavar="FILE", help="write records to FILE, not stdout")
    o.add_argument("--emit", choices=["script", "oneliner"],
                   help="print the generated bpftrace program (script), or a `bpftrace -e` "
                        "line that shows the same execs as text (oneliner), and exit; no "
                        "root needed")
    o.add_argument("-q", "--quiet", action="store_true",
                   help="no status line and no end-of-run summary on stderr")
    s = p.add_argument_group("stats (count in the kernel, report at the end)")
    s.add_argument("--stats", action="store_true", help="a report instead of one row per exec")
    s.add_argument("--top", type=int, metavar="N",
                   help=f"rows per table in the report ({TOP_RANGE[0]}-{TOP_RANGE[1]}, "
                        "default 10)")
    s.add_argument("--interval", type=int, metavar="SECONDS",
                   help="also report every SECONDS, counts since the start (1-86400)")
    s.add_argument("--export", metavar="PATH",
                   help="write the report to PATH too (implies --stats); the format comes "
                        "from the extension: " + ", ".join(FORMATS))
    s.add_argument("--export-format", choices=sorted(set(FORMATS.values())),
                   help="the export format, whatever PATH's extension")
    s.add_argument("--from", dest="from_file", metavar="FILE",
                   help="report on JSON lines written earlier with --json (no root needed)")
    rr = p.add_argument_group("record and replay")
    rr.add_argument("--record", metavar="FILE",
                    help="keep the raw transcript of the run in FILE")
    rr.add_argument("--replay", metavar="FILE",
                    help="render a recording again (table, --json, --stats, --export); no "
                         "root, no bpftrace")
    r = p.add_argument_group("run")
    r.add_argument("--duration", type=float, metavar="SECONDS", help="stop after SECONDS")
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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in args_in:
        split = args_in.index("--")
        args_in, command = args_in[:split], args_in[split + 1:]
        if not command:
            build_parser().error("nothing after --: give the COMMAND to run and trace")
    args = build_parser().parse_args(args_in)
    try:
        return _run(args, command)
    except UserError as exc:
        print(f"bptrace-exec: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("bptrace-exec: interrupted", file=sys.stderr)
        return 130


def _profile(args: argparse.Namespace) -> Profile:
    if args.syscall:
        if args.profile is not None:
            raise UsageError(f"give either a PROFILE ({args.profile}) or --syscall, not both")
        profile = adhoc_profile(args.syscall, args.arg or [], result=args.result,
                                columns=args.columns)
    elif args.arg or args.result:
        raise UsageError("--arg and --result describe an ad-hoc profile",
                         hint="add --syscall NAME, or put them in the profile's YAML")
    else:
        profile = load_profile(args.profile or "execve")
        if args.columns:
            profile = apply_columns(profile, args.columns)
    if args.where:
        profile = apply_where(profile, args.where)
    cgroups = list(args.cgroup or [])
    for container in args.container or []:
        cgroups += container_cgroups(container)
    if profile.kind == "call" and not args.replay and any(
            syscall_fields(p) == UNKNOWN for p in profile.probes if p != PROCESS_EXIT):
        stderr("bptrace-exec: warning: the syscalls' tracepoint formats cannot be read here "
               "(/sys/kernel/tracing needs root): the profile's syscalls and arguments were "
               "not checked against this kernel")
    return with_overrides(
        profile,
        comm=args.comm, uid=args.uid, pid=args.pid, ppid=args.ppid, failed=args.failed,
        succeeded=args.succeeded, cgroup=cgroups or None, in_container=args.in_container,
        parents=args.parents,
        container=args.context,
        max_args=args.max_args, argv_bytes=args.argv_bytes,
        stats=True if args.stats or args.from_file or args.export else None, top=args.top,
        interval=args.interval, output_format="json" if args.json else None,
    )


def _run(args: argparse.Namespace, command: list[str]) -> int:
    profile = _profile(args)
    if profile.kind == "call" and profile.stats.enabled and profile.stats.interval:
        raise UsageError("--interval reports are for execve profiles; a syscall profile "
                         "reports its stats at the end", hint="drop --interval")
    if args.duration is not None and not 0 < args.duration <= 10 ** 7:
        raise UsageError("--duration must be a positive number of seconds")
    export_format = None
    if args.export:
        export_format = format_for(args.export, args.export_format)
        check_writable(args.export)
    if args.from_file:
        return _stats_from_file(args, profile, export_format)
    if args.replay:
        return _replay(args, export_format)
    if args.emit == "oneliner":
        if args.parents or args.context:
            raise UsageError("a one-liner shows no process context",
                             hint="use --emit script, or drop --parents and --context")
        if command:
            raise UsageError("--emit oneliner traces the whole host; it takes no -- COMMAND",
                             hint="add filters (--comm, --pid, ...) instead")
        sys.stdout.write(oneliner(profile, args.bpftrace or "bpftrace") + "\n")
        return EXIT_OK
    if args.emit == "script":
        engine = None
        with contextlib.suppress(UserError):  # the program is the same for every version
            engine = find_engine(args.bpftrace)
        sys.stdout.write(generate(profile, engine, follow=bool(command)).text)
        return EXIT_OK
    check_environment()
    check_cgroups(profile.filters.cgroup)
    engine = find_engine(args.bpftrace)
    pages = args.buffer_pages or (4096 if engine.ring_shared else 1024)
    if pages < 1 or pages & (pages - 1) or pages > 1 << 16:
        raise UsageError(f"--buffer-pages {pages} is not a power of 2 between 1 and 65536")
    program = generate(profile, engine, follow=bool(command))
    with contextlib.ExitStack() as stack:
        out = _output(args, stack)
        gated = GatedCommand(command, stdout_to_stderr=not args.output) if command else None
        session = Session(program.text, engine, buffer_pages=pages, command=gated,
                          strlen=program.strlen, drains=program.drains)
        opts = RunOptions(duration=args.duration, quiet=args.quiet)
        if args.record:
            opts.recorder = stack.enter_context(contextlib.closing(
                Recorder(args.record, profile, engine, opts.wall_offset_ns)))
        sink = Sink(out, profile.output_format == "json", renderer_for(profile))
        run = _run_class(profile)(session, profile, sink, opts)
        try:
            run.trace()
        finally:
            finished = session.close()
            if opts.recorder:
                opts.recorder.elapsed_s = run.elapsed
        if not finished.requested:
            raise explain_failure(finished, program.text)
        if finished.forced:
            stderr("bptrace-exec: bpftrace did not stop within 10 s of SIGINT and was "
                   "killed; records it still held are lost")
        run.summary()
        if isinstance(run, (StatsRun, CallStatsRun)) and run.final and args.export \
                and export_format:
            write_export(run.final, args.export, export_format, top=profile.stats.top,
                         title=run.title())
        return finished.command_status if finished.command_status is not None else EXIT_OK


def _run_class(profile: Profile) -> type[Run]:
    if not profile.stats.enabled:
        return EventRun
    return CallStatsRun if profile.kind == "call" else StatsRun


def _output(args: argparse.Namespace, stack: contextlib.ExitStack) -> TextIO:
    """-o FILE (line-buffered, closed with the stack), else stdout."""
    if not args.output:
        return sys.stdout
    return stack.enter_context(open(args.output, "w", buffering=1, encoding="utf-8"))


def _replay(args: argparse.Namespace, export_format: str | None) -> int:
    """--replay FILE: the recorded run rendered again, by the same pipeline."""
    rec = read_recording(args.replay)
    # how it is shown is this command line's choice, not the recorded one's
    profile = with_overrides(rec.profile, output_format="json" if args.json else "table",
                             top=args.top)
    if rec.elapsed_s is None:
        stderr(f"bptrace-exec: warning: {args.replay} was cut short; replaying it up to its "
               "last whole line")
    source = ReplaySource(rec)
    opts = RunOptions(quiet=args.quiet)
    wants_stats = args.stats or args.export
    with contextlib.ExitStack() as stack:
        out = _output(args, stack)
        sink = Sink(out, profile.output_format == "json", renderer_for(profile))
        if profile.stats.enabled or (wants_stats and profile.kind == "call"):
            profile = with_overrides(profile, stats=True)
            stats_run = _run_class(profile)(source, profile, sink, opts)
            assert isinstance(stats_run, (StatsRun, CallStatsRun))
            stats_run.trace()
            stats = stats_run.final
        else:
            if wants_stats:
                sink.collected = []
            run = EventRun(source, profile, sink, opts)
            run.trace()
            stats = None
            if sink.collected is None:
                run.summary()
            else:
                stats = from_events(sink.collected, by=profile.stats.by,
                                    duration_s=run.elapsed)
                _show_stats(Sink(out, sink.as_json), stats, profile,
                            f"bptrace-exec stats: {args.replay}")
        if stats is not None and args.export and export_format:
            write_export(stats, args.export, export_format, top=profile.stats.top,
                         title=f"bptrace-exec stats: {args.replay}")
    return EXIT_OK


def _show_stats(sink: Sink, stats: Stats, profile: Profile, title: str) -> None:
    top = profile.stats.top
    sink.write(json.dumps(to_dict(stats, top=top, title=title), ensure_ascii=False)
               if sink.as_json else render_report(stats, top=top, title=title))


def _stats_from_file(args: argparse.Namespace, profile: Profile,
                     export_format: str | None) -> int:
    """`--stats --from FILE`: the report from JSON lines written earlier; no root needed."""
    try:
        with open(args.from_file, encoding="utf-8", errors="surrogateescape") as f:
            events, skipped = read_event_lines(f)
    except OSError as exc:
        raise UsageError(f"cannot read {args.from_file}: {exc.strerror}") from None
    stats = from_events(events, by=profile.stats.by)
    title = f"bptrace-exec stats: {args.from_file}"
    _show_stats(Sink(sys.stdout, profile.output_format == "json"), stats, profile, title)
    if skipped:
        stderr(f"bptrace-exec: {skipped} line(s) of {args.from_file} were neither exec nor "
               "call records and were skipped")
    if args.export and export_format:
        write_export(stats, args.export, export_format, top=profile.stats.top, title=title)
    return EXIT_OK


def read_event_lines(lines: Iterable[str]) -> tuple[list[dict[str, object]], int]:
    events, skipped = [], 0
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            skipped += bool(line.strip())
            continue
        if isinstance(obj, dict) and (obj.get("event", "exec") == "exec" and "argv" in obj
                                      or obj.get("event") == "call"):
            events.append(obj)
        elif isinstance(obj, dict) and obj.get("event") in ("lost", "end"):
            continue  # what --json writes beside the execs
        else:
            skipped += 1
    return events, skipped


if __name__ == "__main__":
    raise SystemExit(main())
