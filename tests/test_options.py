"""Every option in every mode either does what it says or is refused with the reason
(exit status 2): the matrix of bptrace_exec.options, walked without root. An option is
"doing something" when the output (stdout, stderr, files written) differs from the same
command line without it."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from bptrace_exec.cli import build_parser, main
from bptrace_exec.options import RULES
from test_record import recording

# Options of a live run only, whose effect is on the run rather than on the program;
# a live test checks each: --duration (test_duration_stops_by_itself), --record
# (test_replay_equals_the_live_run), --buffer-pages (test_lost_events_are_never_hidden),
# --json/--columns/-o/--top/--interval/--export in live runs (test_trace, test_stats_live),
# --summary (test_json_consumers), --all-attempts (test_a_path_search_is_one_row),
# --command-output (test_command_output_kept_apart).
# --serve (test_serve), --restart (test_daemon).
LIVE_ONLY = {"duration", "record", "buffer_pages", "command_output", "serve", "restart"}
# Where a value depends on this host (a container to look up, a second bpftrace): their
# refusals are walked, their effect is tested live.
HOST_BOUND = {"container", "bpftrace"}
# Whose effect needs what the recording here does not hold (the ends of processes):
# test_execs_and_exits_in_one_stream replays one that does (--timeline: test_timeline).
RECORDING_BOUND = {"tree", "timeline"}
# Whose effect needs calls the recorded workload does not make (a PATH search): test_rows.
DATA_BOUND = {"all_attempts"}
# Whose effect is on a terminal only: test_a_table_on_a_terminal (a pty).
TERMINAL = {"wide"}
# Live command lines are walked with no bpftrace to find: they stop once past the checks.
NO_BPFTRACE = "/nonexistent/bpftrace"


def cgroup2_root() -> str:
    for line in Path("/proc/mounts").read_text().splitlines():
        _, where, kind, *_ = line.split()
        if kind == "cgroup2":
            return where
    return "/sys/fs/cgroup"


def option(dest: str, tmp: Path) -> tuple[list[str], list[str]]:
    """(what the option needs besides itself, the option with a value)."""
    adhoc = ["--syscall", "openat"]
    return {
        "comm": ([], ["--comm", "sh"]), "uid": ([], ["--uid", "0"]),
        "pid": ([], ["--pid", "1"]), "ppid": ([], ["--ppid", "1"]),
        "failed": ([], ["--failed"]), "succeeded": ([], ["--succeeded"]),
        "where": ([], ["--where", "uid=0"]), "cgroup": ([], ["--cgroup", cgroup2_root()]),
        "container": ([], ["--container", "3f2a9c"]), "in_container": ([], ["--on-host"]),
        "parents": ([], ["--parents", "2"]), "show_context": ([], ["--context"]),
        "cwd": ([], ["--cwd"]), "exe": ([], ["--exe"]), "env": ([], ["--env", "PATH"]),
        "exits": ([], ["--exits"]), "tree": ([], ["--tree"]),
        "timeline": ([], ["--timeline", str(tmp / "t.svg")]),
        "profile": ([], ["openat"]), "syscall": ([], adhoc),
        "arg": (adhoc, ["--arg", "filename:str"]), "result": (adhoc, ["--result", "fd"]),
        "columns": ([], ["--columns", "pid,comm"]), "json": ([], ["--json"]),
        "summary": (["--json"], ["--summary", "stderr"]),
        "all_attempts": ([], ["--all-attempts"]), "wide": ([], ["--wide"]),
        "color": ([], ["--color", "always"]),
        "top": ([], ["--top", "1"]), "interval": ([], ["--interval", "5"]),
        "export": ([], ["--export", str(tmp / "x.csv")]),
        "export_format": (["--export", str(tmp / "y.json")], ["--export-format", "csv"]),
        "record": ([], ["--record", str(tmp / "r.rec")]), "duration": ([], ["--duration", "1"]),
        "max_args": ([], ["--max-args", "8"]), "argv_bytes": ([], ["--argv-bytes", "1000"]),
        "buffer_pages": ([], ["--buffer-pages", "64"]),
        "command_output": ([], ["--command-output", str(tmp / "out.txt")]),
        "bpftrace": ([], ["--bpftrace", NO_BPFTRACE]),
        "host": ([], ["--host", "web-1"]), "serve": ([], ["--serve", "127.0.0.1:0"]),
        "restart": ([], ["--restart"]), "output": ([], ["-o", str(tmp / "o.txt")]),
    }[dest]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Each mode as a command line: a recording and JSON lines to read, no root needed."""
    tmp = tmp_path_factory.mktemp("sources")
    rec, _ = recording(tmp)
    jsonl = tmp / "events.jsonl"
    assert main(["--replay", str(rec), "--json", "-q", "-o", str(jsonl)]) == 0
    # an exec and its process's end, as --json --exits writes them, to draw
    ended = tmp / "ended.jsonl"
    ended.write_text("\n".join(json.dumps({
        "event": event, "time": "2026-12-07T22:33:32.007709Z", "syscall": syscall,
        "pid": 7, "ppid": 1, "uid": 0, "tid": 7, "gid": 0, "euid": 0, "egid": 0,
        "loginuid": None, "sessionid": None, "tty": None, "comm": "sh", **values,
        "killed": False, "latency_ns": 5, "lifetime_ns": 9, "exec_id": "b:7:9:2",
        "parent_exec_id": "b:1:1:1"}) for event, syscall, values in (
            ("exec", "execve", {"filename": "/bin/sh", "argv": ["sh", "-c", "exit 3"],
                                "ret": 0}),
            ("exit", "process_exit", {"status": 3, "signal": "0", "core": 0, "ret": 3}))
    ) + "\n")
    return {"events": [], "stats": ["--stats"], "replay": ["--replay", str(rec)],
            "replay --stats": ["--replay", str(rec), "--stats"],
            "from": ["--stats", "--from", str(jsonl)], "emit": ["--emit", "script"],
            "emit --stats": ["--emit", "script", "--stats"],
            "from --tree": ["--from", str(ended), "--tree"],
            "from --timeline": ["--from", str(ended)]}


def outcome(argv: list[str], tmp: Path) -> tuple[int, str, str, dict[str, bytes]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse
            status = int(exc.code or 0)
    files = {p.name: p.read_bytes() for p in tmp.iterdir()}
    for p in tmp.iterdir():
        p.unlink()
    return status, out.getvalue(), err.getvalue(), files


@pytest.mark.parametrize("mode", ["events", "stats", "replay", "replay --stats", "from",
                                  "emit", "emit --stats", "from --tree", "from --timeline"])
@pytest.mark.parametrize("dest", sorted(RULES))
def test_each_option_does_what_it_says_or_is_refused(dest: str, mode: str,
                                                     sources: dict[str, list[str]],
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BPFTRACE", NO_BPFTRACE)
    needs, given = option(dest, tmp_path)
    if mode == "from" and dest == "profile":  # one that traces the file's execs
        given = ["exec-counts"]
    base = sources[mode] + needs
    if mode == "from --timeline":  # where outcome() sees it written
        base += ["--timeline", str(tmp_path / "drawn.svg")]
    with_it = outcome(base + given, tmp_path)
    if needs and "does nothing" in outcome(base, tmp_path)[2]:
        assert with_it[0] == 2  # what it needs is refused there already
        return
    status, _, stderr, _ = with_it
    flag = given[0] if given[0].startswith("-") else "PROFILE"
    if status == 2 and "does nothing" in stderr:
        assert flag in stderr and "hint:" in stderr, stderr
        return
    if mode == "from" and dest == "syscall":  # an ad-hoc profile of openat, on execs
        assert status == 2 and "which profile openat does not trace" in stderr, stderr
        return
    if dest in HOST_BOUND or dest in RECORDING_BOUND and (mode.startswith("replay")
                                                          or mode == f"from --{dest}"):
        return  # (in a mode of its own, it is given twice)
    assert status != 2, f"{given} {mode}: refused for another reason: {stderr}"
    if dest in LIVE_ONLY or dest in DATA_BOUND or dest in TERMINAL:
        return  # their effect is a live run's, checked by the live tests named above
    if mode in ("events", "stats"):  # a live run loads the program --emit prints
        assert NO_BPFTRACE in stderr  # it got past every check
        base = ["--emit", "script"] + (["--stats"] if mode == "stats" else []) + needs
        if dest in ("json", "columns", "result", "top", "export", "export_format", "summary",
                    "all_attempts", "wide", "color", "host"):
            return  # shown by the live tests, not in the program
        with_it = outcome(base + given, tmp_path)
    assert with_it != outcome(base, tmp_path), f"{given} does nothing {mode}"


def test_the_rules_cover_every_option() -> None:
    selectors = {"help", "version", "emit", "replay", "from_file", "stats", "quiet",
                 "print_completion"}
    dests = {a.dest for a in build_parser()._actions}
    assert dests - selectors == set(RULES)


@pytest.mark.parametrize("dest", ["parents", "show_context", "cwd", "exe", "env"])
def test_what_only_rows_show_is_refused_with_a_tree_unless_recorded(
        dest: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tree shows each process's program and end: the caller's ancestors, context,
    paths and environment would be read in the kernel and shown nowhere. A recording
    keeps them for the rows of its replay."""
    monkeypatch.setenv("BPFTRACE", NO_BPFTRACE)
    _, given = option(dest, tmp_path)
    status, _, stderr, _ = outcome(["--tree", *given], tmp_path)
    assert status == 2 and f"{given[0]} does nothing when tracing --tree" in stderr, stderr
    assert "add --record FILE" in stderr
    kept = outcome(["--tree", *given, "--record", str(tmp_path / "r.rec")], tmp_path)
    assert NO_BPFTRACE in kept[2]  # past every check


def test_a_star_before_the_end_of_a_filter_is_said(tmp_path: Path) -> None:
    """A * before the end of a name, path or string filter matches a * (a name or a path
    may hold one): compiled as given, with a warning that it is no glob; one at the end,
    a prefix, is not warned of."""
    for argv, filter_ in ((["openat", "--where", "path=/etc/*.conf"], "path='/etc/*.conf'"),
                          (["--comm", "*sh"], "comm='*sh'"),
                          (["--where", "cwd=/srv/*/logs"], "cwd='/srv/*/logs'")):
        status, program, stderr, _ = outcome([*argv, "--emit", "script"], tmp_path)
        assert status == 0 and f"warning: the filter {filter_} matches that text" in stderr
        assert "is no glob" in stderr and program.startswith("#!")
    status, _, stderr, _ = outcome(["--comm", "sh*", "--where", "cwd=/srv/*", "--emit",
                                    "script"], tmp_path)
    assert status == 0 and "warning" not in stderr
