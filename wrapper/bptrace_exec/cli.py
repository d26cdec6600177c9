"""The command line: options in, a profile with overrides, then the pipeline run for it."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TextIO

from bptrace_exec import __version__
from bptrace_exec.assemble import Assembler
from bptrace_exec.codegen import generate
from bptrace_exec.decode import Attached, Lost, Note, Printf, Record, decode_line
from bptrace_exec.engine import find_engine
from bptrace_exec.errors import EXIT_OK, UsageError, UserError
from bptrace_exec.events import ExecEvent
from bptrace_exec.render import event_to_dict, iso_time, json_line, table_header, table_row
from bptrace_exec.runner import GatedCommand, Session, check_environment, explain_failure
from bptrace_exec.spec import (
    ARGV_BYTES_RANGE,
    MAX_ARGS_RANGE,
    Profile,
    available_profiles,
    load_profile,
    with_overrides,
)

EXAMPLES = """\
examples:
  bptrace-exec execve                    # every exec on the host, as a live table
  bptrace-exec execve --json             # one JSON object per exec, per line
  bptrace-exec execve --comm bash --comm sh   # only execs made by bash or sh
  bptrace-exec execve --uid 1000         # only execs by uid 1000
  bptrace-exec execve --ppid 812         # only execs by children of pid 812
  bptrace-exec execve --failed           # only execs that returned an error
  bptrace-exec execve --duration 30      # stop by itself after 30 seconds
  bptrace-exec execve -o execs.jsonl --json   # write records to a file
  bptrace-exec execve --max-args 8       # keep at most 8 arguments per exec
  bptrace-exec execve --emit script      # print the bpftrace program and exit
  bptrace-exec ./my-profile.yaml         # a profile of your own
  bptrace-exec -- make -j2               # run make, trace it and its descendants

exit status:
  0    traced and stopped cleanly (Ctrl-C, SIGTERM, --duration, closed output)
  1    bpftrace refused the program or died while tracing
  2    bad command line or profile; nothing was run
  3    environment: not root, no usable bpftrace, no tracefs
  N    with -- COMMAND: COMMAND's own exit status (128+signal if killed)

fields (table): TIME local time of the call, PID/PPID/UID of the caller, COMM the
caller's name, RET 0 or the errno name, LAT(ms) entry-to-return latency measured in the
kernel, PROGRAM the path passed to exec, ARGS argv quoted as bash reads it back
([...] marks arguments cut by the limits).
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bptrace-exec",
        description="Trace execve/execveat with bpftrace, from a YAML profile. Profiles "
                    f"shipped: {', '.join(available_profiles()) or 'none'}.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s [PROFILE] [options] [-- COMMAND [ARGS...]]",
    )
    p.add_argument("profile", nargs="?", default="execve", metavar="PROFILE",
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
    f.add_argument("--failed", action="store_true", default=None,
                   help="only execs that returned an error")
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="JSON lines instead of the table")
    o.add_argument("-o", "--output", metavar="FILE", help="write records to FILE, not stdout")
    o.add_argument("--emit", choices=["script"],
                   help="print the generated bpftrace program and exit (no root needed)")
    o.add_argument("-q", "--quiet", action="store_true",
                   help="no status line and no end-of-run summary on stderr")
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
    profile = load_profile(args.profile)
    return with_overrides(
        profile,
        comm=args.comm, uid=args.uid, pid=args.pid, ppid=args.ppid, failed=args.failed,
        max_args=args.max_args, argv_bytes=args.argv_bytes,
        output_format="json" if args.json else None,
    )


def _run(args: argparse.Namespace, command: list[str]) -> int:
    profile = _profile(args)
    if args.duration is not None and not 0 < args.duration <= 10 ** 7:
        raise UsageError("--duration must be a positive number of seconds")
    if args.emit == "script":
        engine = None
        with contextlib.suppress(UserError):  # the program is the same for every version
            engine = find_engine(args.bpftrace)
        sys.stdout.write(generate(profile, engine, follow=bool(command)).text)
        return EXIT_OK
    check_environment()
    engine = find_engine(args.bpftrace)
    pages = args.buffer_pages or (4096 if engine.ring_shared else 1024)
    if pages < 1 or pages & (pages - 1) or pages > 1 << 16:
        raise UsageError(f"--buffer-pages {pages} is not a power of 2 between 1 and 65536")
    program = generate(profile, engine, follow=bool(command))
    with contextlib.ExitStack() as stack:
        out = (stack.enter_context(open(args.output, "w", buffering=1, encoding="utf-8"))
               if args.output else sys.stdout)
        gated = GatedCommand(command, stdout_to_stderr=not args.output) if command else None
        session = Session(program.text, engine, buffer_pages=pages, command=gated)
        run = _Run(session, profile, _Sink(out, profile.output_format == "json"), args)
        try:
            run.trace()
        finally:
            finished = session.close()
        if not finished.requested:
            raise explain_failure(finished, program.text)
        if finished.forced:
            print("bptrace-exec: bpftrace did not stop within 10 s of SIGINT and was killed; "
                  "records it still held are lost", file=sys.stderr)
        run.report()
        return finished.command_status if finished.command_status is not None else EXIT_OK


class _Sink:
    """Where rows go; a closed reader (`| head`) ends the run cleanly, once."""

    def __init__(self, stream: TextIO, as_json: bool) -> None:
        self.stream, self.as_json, self.closed = stream, as_json, False

    def write(self, line: str) -> None:
        if self.closed:
            return
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except BrokenPipeError:
            self.closed = True

    def event(self, event: ExecEvent) -> None:
        if self.as_json:
            self.write(json_line({"event": "exec", **event_to_dict(event)}))
        else:
            self.write(table_row(event))


class _Run:
    """One tracing run: bpftrace's lines in, rows out, counts kept for the summary."""

    def __init__(self, session: Session, profile: Profile, sink: _Sink,
                 args: argparse.Namespace) -> None:
        self.session, self.profile, self.sink, self.args = session, profile, sink, args
        self.assembler = Assembler(wall_offset_ns=time.time_ns() - time.monotonic_ns(),
                                   max_args=profile.limits.max_args)
        self.execs = self.lost = self.probes = 0
        self.notes: list[str] = []
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        if not self.args.quiet:
            print(message, file=sys.stderr)

    def show(self, events: Iterable[ExecEvent]) -> None:
        for event in events:
            self.sink.event(event)
            self.execs += 1

    def trace(self) -> None:
        for line in self.session.lines():
            now = time.monotonic_ns()
            if line is None:
                self.show(self.assembler.expire(now))
            else:
                self.on_record(decode_line(line), now)
            if self.sink.closed:
                self.session.request_stop()
        self.show(self.assembler.flush())

    def on_record(self, record: Record | None, now: int) -> None:
        if isinstance(record, Printf):
            was_ready = self.assembler.ready
            self.show(self.assembler.feed(record.text, now))
            if self.assembler.ready and not was_ready:
                self.on_ready()
        elif isinstance(record, Attached):
            self.probes = record.probes
        elif isinstance(record, Lost):
            self.lost += record.count
            if self.sink.as_json:
                self.sink.write(json_line({"event": "lost", "time": iso_time(time.time_ns()),
                                           "count": record.count}))
            print(f"bptrace-exec: bpftrace lost {record.count} events (its buffer was "
                  "full); raise --buffer-pages", file=sys.stderr)
        elif isinstance(record, Note):
            self.notes.append(f"{record.kind}: {record.detail}")

    def on_ready(self) -> None:
        self.started = time.monotonic()
        if self.args.duration:
            self.session.deadline = self.started + self.args.duration
        end = "Running the command." if self.session.command else "Hit Ctrl-C to end."
        self.say(f"Tracing {', '.join(self.profile.probes)} with bpftrace "
                 f"{self.session.engine.version_text} ({self.probes} probes). {end}")
        if not self.sink.as_json:
            self.sink.write(table_header())
        self.session.release_command()

    def report(self) -> None:
        stats = self.assembler.stats
        summary = f"{self.execs} execs traced in {time.monotonic() - self.started:.1f} s"
        if self.lost:
            summary += f"; bpftrace lost {self.lost} events"
        if stats.incomplete:
            summary += f"; {stats.incomplete} shown incomplete ([records lost])"
        if stats.orphaned:
            summary += f"; {stats.orphaned} partial execs dropped (no return record)"
        if stats.malformed or stats.unknown:
            summary += f"; {stats.malformed + stats.unknown} unreadable records"
        self.say(f"bptrace-exec: {summary}.")
        if self.notes:
            print(f"bptrace-exec: bpftrace also printed {len(self.notes)} record(s) that "
                  f"bptrace-exec does not use; the first: {self.notes[0]}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
