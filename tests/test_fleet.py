"""Streams of many hosts and runs that last: every JSON line names its host, one report
merges the files of several, the counts of restarted bpftraces add up, the backoff
between restarts (no root: recordings replayed)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import threading
import time
from pathlib import Path

from bptrace_exec.cli import main
from bptrace_exec.errors import EngineFailure
from bptrace_exec.output.tally import Stats, Tally, merged
from bptrace_exec.pipeline import Summary
from bptrace_exec.restarts import Restarts
from test_record import recording


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_every_json_line_names_its_host(tmp_path: Path) -> None:
    rec, _ = recording(tmp_path)
    status, out, _ = run("--replay", str(rec), "--json", "--host", "web-1")
    assert status == 0
    events = lines(out)
    assert {e["event"] for e in events} == {"exec", "end"}
    assert all(e["host"] == "web-1" for e in events)
    _, unnamed, _ = run("--replay", str(rec), "--json")  # recorded before hosts were kept
    assert not any("host" in e for e in lines(unnamed))


def test_a_recording_keeps_the_host_it_was_made_on(tmp_path: Path) -> None:
    rec, _ = recording(tmp_path)
    header, rest = rec.read_bytes().split(b"\n", 1)
    named = json.loads(header) | {"host": "db-2"}
    rec.write_bytes(json.dumps(named).encode() + b"\n" + rest)
    _, out, _ = run("--replay", str(rec), "--json")
    assert {e["host"] for e in lines(out)} == {"db-2"}
    _, report, _ = run("--replay", str(rec), "--stats")
    assert report.startswith(f"bptrace-exec stats: {rec} on db-2")


def test_files_of_several_hosts_merge_into_one_report(tmp_path: Path) -> None:
    rec, _ = recording(tmp_path)
    files = []
    for host in ("web-1", "web-2", "web-3"):
        path = tmp_path / f"{host}.jsonl"
        assert run("--replay", str(rec), "--json", "--host", host, "-o", str(path))[0] == 0
        files.append(str(path))
    one = json.loads(run("--stats", "--json", "--from", files[0])[1])
    status, out, err = run("--stats", "--json", "--from", *files)
    assert status == 0, err
    merged = json.loads(out)
    assert merged["execs"] == 3 * one["execs"] and merged["failed"] == 3 * one["failed"]
    hosts = merged["breakdowns"]["host"]["top"]
    assert {h["key"]: h["count"] for h in hosts} == {
        h: one["execs"] for h in ("web-1", "web-2", "web-3")}
    programs = {p["key"]: p["count"] for p in merged["breakdowns"]["program"]["top"]}
    assert programs == {p["key"]: 3 * p["count"]
                        for p in one["breakdowns"]["program"]["top"]}
    status, table, _ = run("--stats", "--from", *files)
    assert "Hosts (top 3 of 3)" in table


def test_lines_that_name_no_host_are_counted_under_none_beside_those_that_do(
        tmp_path: Path) -> None:
    rec, _ = recording(tmp_path)
    named, unnamed = tmp_path / "named.jsonl", tmp_path / "unnamed.jsonl"
    assert run("--replay", str(rec), "--json", "--host", "web-1", "-o", str(named))[0] == 0
    assert run("--replay", str(rec), "--json", "-o", str(unnamed))[0] == 0
    status, out, err = run("--stats", "--json", "--from", str(named), str(unnamed))
    assert status == 0, err
    both = json.loads(out)
    hosts = {h["key"]: h["count"] for h in both["breakdowns"]["host"]["top"]}
    assert hosts == {"web-1": both["execs"] // 2, "(none)": both["execs"] // 2}
    alone = json.loads(run("--stats", "--json", "--from", str(unnamed))[1])
    assert "host" not in alone["breakdowns"]  # no line names one: not a report by host


def test_a_file_missing_among_several_is_named(tmp_path: Path) -> None:
    rec, _ = recording(tmp_path)
    good = tmp_path / "good.jsonl"
    run("--replay", str(rec), "--json", "-o", str(good))
    status, out, err = run("--stats", "--from", str(good), str(tmp_path / "gone.jsonl"))
    assert status == 2 and out == ""
    assert f"cannot read {tmp_path / 'gone.jsonl'}" in err and "Traceback" not in err


def test_counts_of_two_runs_merge_as_if_counted_at_once() -> None:
    """--restart: the counts of a bpftrace that died and of the next are one tally."""
    events = [({"program": f"/bin/p{i % 3}", "errno": "ENOENT" if i % 4 == 0 else None},
               i % 4 == 0, 1000 * (1 << (i % 11))) for i in range(40)]

    def tally(part: list[tuple[dict[str, object], bool, int]]) -> Stats:
        t = Tally(["program", "errno"], "execs")
        for values, failed, latency in part:
            t.add(values, failed=failed, latency_ns=latency)
        return t.result(1.0)
    whole, first, second = tally(events), tally(events[:17]), tally(events[17:])
    both = merged(first, second)
    assert both.count == whole.count and both.failed == whole.failed
    assert both.breakdowns == whole.breakdowns and both.latency == whole.latency
    assert merged(None, second) is second


def test_the_backoff_doubles_and_starts_afresh_after_a_steady_run() -> None:
    said: list[str] = []
    restarts = Restarts(True, said.append)
    died = EngineFailure("bpftrace was killed by signal 9 while tracing: the rest")
    assert restarts.plan(died, tracing=False, lasted_s=0, left_s=None) is None  # first start
    waited = [restarts.plan(died, tracing=True, lasted_s=3, left_s=None) for _ in range(9)]
    assert waited == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert restarts.plan(died, tracing=True, lasted_s=600, left_s=None) == 1  # ran steadily
    assert restarts.count == 10
    assert said[0] == ("bptrace-exec: bpftrace was killed by signal 9 while tracing; "
                       "starting it again in 1 s (restart 1)")
    assert restarts.plan(died, tracing=True, lasted_s=3, left_s=1.5) is None  # --duration
    assert Restarts(False, said.append).plan(died, tracing=True, lasted_s=3,
                                             left_s=None) is None


def test_a_stop_asked_between_bpftraces_ends_the_wait() -> None:
    restarts = Restarts(True, lambda _m: None)
    with restarts.between_runs():
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        started = time.monotonic()
        assert not restarts.wait(30)
        assert time.monotonic() - started < 5 and restarts.stopped
        died = EngineFailure("bpftrace was killed by signal 9 while tracing")
        assert restarts.plan(died, tracing=True, lasted_s=3, left_s=None) is None
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_the_accounting_of_two_bpftraces_adds_up() -> None:
    first = Summary("execs", events=5, kernel_total=6, lost_records=1, elapsed_s=2.0)
    second = Summary("execs", events=7, kernel_total=7, incomplete=1, elapsed_s=3.0)
    both = first.plus(second)
    assert (both.events, both.kernel_total, both.missing) == (12, 13, 1)
    assert (both.lost_records, both.incomplete, both.elapsed_s) == (1, 1, 5.0)
    killed = Summary("execs", events=3, counted=False)
    assert first.plus(killed).missing is None and killed.plus(second).kernel_total is None
