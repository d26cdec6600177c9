"""Streams of many hosts: every JSON line names its host, and one report merges the files
of several (no root: recordings replayed)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from bptrace_exec.cli import main
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


def test_a_file_missing_among_several_is_named(tmp_path: Path) -> None:
    rec, _ = recording(tmp_path)
    good = tmp_path / "good.jsonl"
    run("--replay", str(rec), "--json", "-o", str(good))
    status, out, err = run("--stats", "--from", str(good), str(tmp_path / "gone.jsonl"))
    assert status == 2 and out == ""
    assert f"cannot read {tmp_path / 'gone.jsonl'}" in err and "Traceback" not in err
