"""The command line: its options, checked; then the run (cli.runs) on the library (api).

Only what the options need is imported before they are parsed: `--help` answers without
the library.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import NoReturn

from bptrace_exec import __version__
from bptrace_exec.cli.output import stderr
from bptrace_exec.completion import SHELLS, completion
from bptrace_exec.errors import (
    COMMAND_STATUS,
    EXIT_ENVIRONMENT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STATUSES,
    OutputError,
    UserError,
)
from bptrace_exec.limits import FILTER_VALUES, JSON_LINE_BYTES, out_of_memory
from bptrace_exec.options import DEFAULT_REFRESH_S, check_options
from bptrace_exec.output.export import FORMATS
from bptrace_exec.run.prestart import Early
from bptrace_exec.spec.model import (
    ARGV_BYTES_RANGE,
    INTERVAL_RANGE,
    MAX_ARGS_RANGE,
    TOP_RANGE,
)
from bptrace_exec.spec.profiles import PROFILE_SUFFIXES, available_profiles
from bptrace_exec.spec.types import RESULT_TYPES, TYPES

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
  bptrace-exec --from run.jsonl --tree   # the tree of lines written with --exits
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
    textwrap.fill(meaning, 88, initial_indent=f"  {status:<4} ", subsequent_indent=" " * 7)
    + "\n" for status, meaning in [*EXIT_STATUSES, ("N", COMMAND_STATUS)]))


class _Parser(argparse.ArgumentParser):
    """argparse, with a suggestion for an option mistyped."""

    def error(self, message: str) -> NoReturn:
        import difflib  # only for a command line in error

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
                        "instead of rows (implies --exits; with --json, as one object); of "
                        "JSON lines with --from")
    c.add_argument("--timeline", metavar="FILE.svg",
                   help="with an exec profile: at the end, the run as a picture, one bar per "
                        "process from its program to its end (implies --exits); of JSON "
                        "lines with --from")
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
                   help="also report every SECONDS, counts since the start "
                        f"({INTERVAL_RANGE[0]}-{INTERVAL_RANGE[1]}; 0: only at the end, "
                        f"the default but with --serve: {DEFAULT_REFRESH_S})")
    s.add_argument("--export", action="append", metavar="PATH",
                   help="write the report to PATH too, at the end and at every --interval "
                        "(implies --stats; repeatable); the format comes from the "
                        "extension: " + ", ".join(FORMATS))
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
                        f"a line of {JSON_LINE_BYTES.text} at most), as PROFILE, else as "
                        "the profile that writes their events; with --tree or --timeline, "
                        "draw the processes of lines written with --exits")
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


def main(argv: Sequence[str] | None = None, prestarted: Early | None = None) -> int:
    """`prestarted`: bpftrace as the last run of this command line started it
    (run.prestart), for the run to take if it is its own start."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in args_in:
        split = args_in.index("--")
        args_in, command = args_in[:split], args_in[split + 1:]
        if not command:
            build_parser().error("nothing after --: give the COMMAND to run and trace")
    parser = build_parser()
    args = parser.parse_args(args_in)
    files = args.from_file or []
    if args.profile is None and len(files) > 1 and (
            files[-1].endswith(PROFILE_SUFFIXES)
            or (files[-1] in available_profiles() and not os.path.exists(files[-1]))):
        args.profile = files.pop()  # `--from a.jsonl PROFILE`: --from took it as a file
    try:
        if sys.stdout is None and not args.output:  # started with it closed (`>&-`)
            raise OutputError("stdout is closed: nothing can be written there",
                              hint="give -o FILE, or run it with a stdout")
        if args.print_completion:
            sys.stdout.write(completion(parser, args.print_completion))
            return EXIT_OK
        check_options(args, parser, command)
        if args.emit:  # what it needs only: no bpftrace runs
            from bptrace_exec.cli.emit import emit

            return emit(args, command)
        from bptrace_exec.cli.runs import run

        return run(args, command, prestarted)
    except UserError as exc:
        stderr(f"bptrace-exec: {exc}")
        return exc.exit_status
    except KeyboardInterrupt:
        stderr("bptrace-exec: interrupted")
        return EXIT_INTERRUPTED
    except MemoryError:  # where input is read, the error says which; elsewhere, this
        stderr(f"bptrace-exec: {out_of_memory()}")
        return EXIT_ENVIRONMENT
