"""--from: what JSON lines written earlier with --json hold, read back without root: a
report of their events (--stats), or the tree and timeline of their processes."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Iterator

from bptrace_exec import api
from bptrace_exec.cli.output import Output, stderr
from bptrace_exec.cli.profile import profile_asked
from bptrace_exec.cli.show import draw_timeline, export_all, report, write_tree
from bptrace_exec.errors import EXIT_OK, UsageError
from bptrace_exec.limits import bounded_lines, out_of_memory
from bptrace_exec.output import tree
from bptrace_exec.output.jsonlines import event_of, parse_time
from bptrace_exec.output.report import on
from bptrace_exec.run.recording import is_header
from bptrace_exec.spec import Profile, available_profiles
from bptrace_exec.spec.model import PROCESS_EXIT


class Files:
    """The lines of --from's files, one file after the other, and where the last one read
    is (what errors name)."""

    def __init__(self, paths: list[str]) -> None:
        self.paths, self.named = paths, ", ".join(paths)
        self.reading, self.number = "", 0

    def where(self) -> tuple[str, int]:
        return self.reading, self.number

    def lines(self) -> Iterator[str]:
        for path in self.paths:
            self.reading = path
            try:
                with open(path, "rb") as f:
                    self.number = 0
                    for line in bounded_lines(f, path):
                        self.number += 1
                        yield line
            except OSError as exc:
                named = path in available_profiles() and not os.path.exists(path)
                raise UsageError(f"cannot read {path}: {exc.strerror}", hint=(
                    f"to report as profile {path}, name it before --from" if named
                    else "")) from None


def report_files(args: argparse.Namespace, profile: Profile | None, out: Output,
                 exports: list[tuple[str, str]]) -> int:
    """`--stats --from FILE...`: one report from JSON lines written earlier, by one host or
    many (then with a host breakdown), by the profile named or else by the one that
    writes their events."""
    files = Files(args.from_file)

    def shipped(name: str) -> Profile:  # with this command line's changes
        return profile_asked(argparse.Namespace(**{**vars(args), "profile": name}))
    try:
        stats, counted, skipped = api.stats_from_json(
            files.lines(), profile=profile, shipped=shipped, where=files.where)
    except MemoryError:
        raise out_of_memory(files.reading) from None
    not_events = (f" ({skipped} line(s) were not exec, call or exit records)"
                  if skipped else "")
    if counted is None or not stats.count:
        what = counted.kind.unit if counted is not None else "exec, call or exit events"
        raise UsageError(f"no {what} in {files.named}: nothing to report{not_events}",
                         hint="--from reads the JSON lines --json wrote (a trace that saw "
                              "nothing wrote only its end line)")
    title = f"bptrace-exec stats: {files.named}{on(args.host)}"
    labels = {"host": args.host} if args.host else {}
    labels["profile"] = counted.name
    report(out, stats, counted, title, labels)
    if skipped:
        stderr(f"bptrace-exec: {skipped} line(s) of {files.named} were not exec, call "
               "or exit records and were skipped")
    export_all(exports, stats, counted, title, labels)
    return EXIT_OK


def draw_files(args: argparse.Namespace, out: Output) -> int:
    """`--from FILE... --tree` / `--timeline`: the processes of execs and ends written
    earlier (--exits, the process profile), drawn as the run that traced them would have
    drawn them, the tree made at the time of their `end` line (else of their last event)."""
    files = Files(args.from_file)
    processes = tree.Tree()
    ends, skipped, ended_ns = 0, 0, None
    hosts: set[str | None] = set()
    try:
        for line in files.lines():
            try:
                obj = json.loads(line)
                event = event_of(obj) if isinstance(obj, dict) else None
            except (ValueError, RecursionError):  # not JSON, or NotAnEvent
                skipped += bool(line.strip())
                continue
            if event is None:
                said = obj.get("event") if isinstance(obj, dict) else None
                if is_header(obj):
                    raise UsageError(f"{files.reading}:{files.number}: a recording (made "
                                     "with --record), not the JSON lines --json writes",
                                     hint=f"draw it with --replay {files.reading}")
                if said == "end":
                    with contextlib.suppress(ValueError):
                        ended_ns = parse_time(obj.get("time"))
                skipped += said not in ("end", "lost", "gap", "tree")  # a call's, say
                continue
            processes.add(event)
            # placed: of an exec id (lines replayed from a recording that read none are not)
            ends += event.syscall == PROCESS_EXIT and event.who is not None
            hosts.add(name if isinstance(name := obj.get("host"), str) else None)
    except MemoryError:
        raise out_of_memory(files.reading) from None
    if not ends:
        raise UsageError(f"no ends of processes with their exec ids in {files.named}: "
                         "nothing to draw", hint="--from draws the JSON lines of a run "
                         "traced with --exits (or the process profile)")
    # one host's lines are titled with its name, several hosts' with none
    host = args.host or (next(iter(hosts)) if len(hosts) == 1 else None)
    if args.tree:
        write_tree(out, processes, as_json=args.json, host=host, wide=args.wide,
                   time_ns=ended_ns or processes.last_ns)
    if args.timeline:
        draw_timeline(args.timeline, processes, host)
    if skipped:
        stderr(f"bptrace-exec: {skipped} line(s) of {files.named} were not exec or exit "
               "records and were skipped")
    return EXIT_OK
