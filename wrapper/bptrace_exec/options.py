"""Where each command-line option means something. An option given where it would do
nothing, or something other than it says, is refused with the reason (exit status 2):
declared here once, for the CLI to check and for a test to walk."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass

from bptrace_exec.errors import UsageError
from bptrace_exec.spec.model import PATHS

DEFAULT_REFRESH_S = 5  # --interval, when serving

@dataclass(frozen=True)
class Mode:
    """What a command line asks for, as the options' rules need it."""

    live: bool  # bpftrace runs (a trace, or its stats)
    emit: bool  # a program is printed, not run
    replay: bool
    from_file: bool
    stats: bool  # a report, not rows
    json: bool
    tree: bool = False  # rows drawn as a process tree at the end
    record: bool = False  # the transcript kept, for rows replayed later
    timeline: bool = False  # the processes drawn as a picture

    @property
    def name(self) -> str:
        source = ("with --emit" if self.emit else "with --replay" if self.replay
                  else "with --from" if self.from_file else "when tracing")
        return source + (" --stats" if self.stats else "") + (
            " --tree" if self.tree else "")


def mode_of(args: argparse.Namespace) -> Mode:
    drawing = bool(args.from_file and (args.tree or args.timeline))  # else --from reports
    return Mode(live=not (args.emit or args.replay or args.from_file), emit=bool(args.emit),
                replay=bool(args.replay), from_file=bool(args.from_file),
                stats=bool(args.stats or not drawing and (args.export or args.serve
                                                          or args.from_file)),
                json=args.json, tree=args.tree, record=bool(args.record),
                timeline=bool(args.timeline))


Rule = Callable[[Mode], bool]
TRACING: Rule = lambda m: m.live or m.emit  # noqa: E731  (what the program does)
ROWS: Rule = lambda m: not m.stats and not m.emit  # noqa: E731
REPORT: Rule = lambda m: m.stats and not m.emit  # noqa: E731
TABLE: Rule = lambda m: ROWS(m) and not m.json and not m.tree and not m.from_file  # noqa: E731
# --from's drawing: a tree, or only a timeline (which shows nothing)
SHOWN: Rule = lambda m: not m.from_file or m.stats or m.tree  # noqa: E731
ROW_READS: Rule = lambda m: TRACING(m) and not m.stats  # noqa: E731  (read for rows only)
# read for rows and shown in them: not in a tree, unless kept for a replay's rows
ROW_COLUMNS: Rule = lambda m: ROW_READS(m) and (not m.tree or m.record)  # noqa: E731
TREE_HINT = "drop it, or add --record FILE to keep it for the rows of a --replay"
# what an `instead` hint adds: a report or JSON lines; a recording, replayed as rows
HELPS: tuple[dict[str, bool], ...] = ({"stats": True, "json": True}, {"record": True})
FILTERS = "filters run in the kernel while tracing; a recording or a JSON file holds " \
          "what was kept then"

# dest -> (where it means something, why not elsewhere[, what to do instead of dropping it])
RULES: dict[str, tuple[Rule, str] | tuple[Rule, str, str]] = {
    **{dest: (TRACING, FILTERS) for dest in (
        "comm", "uid", "pid", "ppid", "failed", "succeeded", "where", "cgroup", "container",
        "in_container")},
    "parents": (ROW_COLUMNS, "ancestors are read for rows, when tracing", TREE_HINT),
    "tree": (ROWS, "it shows the events of a run as a tree, at its end"),
    "timeline": (ROWS, "it draws the events of a run, at its end"),
    "exits": (ROW_READS, "it adds the ends of processes to what is traced for rows (a "
              "recording holds what was traced; the exit profile counts exits)"),
    "show_context": (ROW_COLUMNS, "the context is read for rows, when tracing", TREE_HINT),
    **{dest: (ROW_COLUMNS, "paths are read for rows, when tracing", TREE_HINT)
       for dest in PATHS},
    "env": (ROW_COLUMNS, "the environment is read for rows, when tracing", TREE_HINT),
    **{dest: (lambda m: not m.replay and (m.stats or not m.from_file),
              "a recording replays the profile it was made with, and --from draws the "
              "processes its files hold") for dest in ("profile", "syscall")},
    "arg": (TRACING, "it describes what to trace"),
    "result": (lambda m: TABLE(m) and not m.replay, "it says how the table shows the "
               "return value (JSON has the number)"),
    "columns": (TABLE, "it chooses the table's columns (JSON lines have every field)"),
    "json": (lambda m: not m.emit and SHOWN(m), "it is the form of rows, a tree or a report "
             "(--emit prints a program, --from --timeline a picture)", "add --tree"),
    "wide": (lambda m: ROWS(m) and not m.json and SHOWN(m), "it is for the table (or tree) "
             "on a terminal"),
    "color": (TABLE, "it colours the table"),
    "all_attempts": (TABLE, "JSON lines and reports count every attempt; the table folds "
                     "them"),
    "summary": (lambda m: ROWS(m) and m.json and not m.from_file,
                "it places the lost and end lines of --json", "add --json"),
    "top": (REPORT, "it sizes the tables of the --stats report", "add --stats"),
    "interval": (lambda m: m.stats and (m.live or m.emit),
                 "it reports a live run every SECONDS", "add --stats"),
    "export": (lambda m: not m.emit and (m.stats or not m.from_file),
               "it writes the report of a run"),
    "serve": (lambda m: m.live, "it serves the counts of a live run"),
    "host": (lambda m: not m.emit and (m.json or m.stats or m.live or m.timeline),
             "it names the host in JSON lines, reports, metrics, recordings and timelines",
             "add --json"),
    "export_format": (lambda m: not m.emit, "it is --export's format"),
    "record": (lambda m: m.live, "it keeps the transcript of a live run"),
    "duration": (lambda m: m.live, "it bounds a live run"),
    "restart": (lambda m: m.live, "it starts a live run's bpftrace again"),
    "command_output": (lambda m: m.live, "it is where a traced COMMAND writes"),
    "max_args": (ROW_READS, "it limits the arguments rows show"),
    "argv_bytes": (ROW_READS, "it limits the arguments rows show"),
    "buffer_pages": (lambda m: m.live, "it sizes bpftrace's buffer for a live run"),
    "bpftrace": (TRACING, "no bpftrace runs"),
    "output": (SHOWN, "--from --timeline alone writes its picture only", "add --tree"),
}
SOURCES = ("emit", "replay", "from_file")  # one at most
SUMMARY_PLACES = ("stream", "stderr", "none")  # --summary's words; else a file
OTHER_PICTURES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".pdf"})


def check_options(args: argparse.Namespace, parser: argparse.ArgumentParser,
                  command: list[str]) -> Mode:
    """The mode the options ask for; a UsageError for an option that would do nothing."""
    names: dict[str, str] = {}
    for a in parser._actions:  # --in-container and --on-host share one
        name = "/".join(a.option_strings) or str(a.metavar or a.dest)
        names[a.dest] = f"{names[a.dest]}/{name}" if a.dest in names else name
    given = [names[s] for s in SOURCES if getattr(args, s)]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} cannot be used together",
                         hint="each names where the events come from, or that none do")
    mode = mode_of(args)
    unset = vars(parser.parse_args([]))
    for dest, (applies, why, *instead) in RULES.items():
        if getattr(args, dest) != unset[dest] and not applies(mode):
            helps = instead and any(applies(dataclasses.replace(mode, **fix))
                                    for fix in HELPS)
            where = dataclasses.replace(mode, tree=False) if dest == "tree" else mode
            raise UsageError(f"{names[dest]} does nothing {where.name}: {why}",
                             hint=instead[0] if helps else f"drop {names[dest]}")
    if args.export_format and len(args.export or []) != 1:
        raise UsageError(f"--export-format is the format of one --export PATH: "
                         f"{len(args.export or [])} given",
                         hint=f"add --export PATH, or drop --export-format {args.export_format}"
                         if not args.export else
                         "give each --export PATH the extension of its format")
    files = [("-o", args.output), ("--record", args.record),
             ("--command-output", args.command_output), ("--timeline", args.timeline),
             *(("--export", path) for path in args.export or []),
             ("--summary", args.summary if args.summary not in SUMMARY_PLACES else None)]
    named = [*files, ("--bpftrace", args.bpftrace), ("--replay", args.replay)]
    empty = next((option for option, path in named if path == ""), None)
    if empty:  # else taken as not given: stdout for -o, PATH's bpftrace
        raise UsageError(f"{empty} was given an empty name", hint=f"name a file after "
                         f"{empty}, or leave {empty} out")
    read = {os.path.realpath(path): option for option, path in
            [("--replay", args.replay), *(("--from", p) for p in args.from_file or [])]
            if path and path != "-"}
    seen: dict[str, str] = {}
    for option, path in files:
        if path:
            real = os.path.realpath(path)
            if real in read:  # opened for writing before it is read: it would be lost
                raise UsageError(f"{option} would write over {path}, which {read[real]} "
                                 "reads", hint=f"give {option} another file")
            if real in seen:
                raise UsageError(f"{seen[real]} and {option} both write {path}",
                                 hint="give each its own file")
            seen[real] = option
    if args.host is not None and not (args.host.strip() and args.host.isprintable()):
        # written as it is into every report's title, JSON line and metric label
        raise UsageError(f"--host {args.host!r}: a host's name is printable text, not "
                         "empty", hint="for instance --host web-1; leave it out for the "
                                       "hostname")
    suffix = os.path.splitext(args.timeline or "")[1].lower()
    if suffix in OTHER_PICTURES:  # an SVG under another picture's name opens as neither
        raise UsageError(f"--timeline draws SVG, not {suffix[1:].upper()}: {args.timeline}",
                         hint="name a FILE.svg, which a browser shows")
    if args.command_output and not command:
        raise UsageError("--command-output does nothing without a -- COMMAND: it is where "
                         "the COMMAND writes", hint="add -- COMMAND, or drop --command-output")
    if args.restart and (command or args.record):
        why = "a COMMAND runs once" if command else "a recording is one bpftrace's transcript"
        raise UsageError(f"--restart and {'-- COMMAND' if command else '--record'} cannot be "
                         f"used together: {why}", hint="drop --restart")
    if command and not (mode.live or args.emit == "script"):
        raise UsageError(f"a COMMAND runs and is traced live: it does nothing {mode.name}",
                         hint="drop -- COMMAND")
    return mode
