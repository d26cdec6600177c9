"""Integration: real stats runs against real execs with known counts, on every bpftrace
version, exported in every format and read back; the same counts as event mode."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, json_records, run_tool
from stats_expectations import expected_errnos, expected_programs
from workloads.stats_driver import STATS_COUNTS, resolve

pytestmark = pytest.mark.root
DRIVER = str(ROOT / "tests" / "workloads" / "stats_driver.py")


def test_stats_run_exports_exact_counts(engine: str, tmp_path: Path,
                                        nothing_left_running: None) -> None:
    outputs = {fmt: tmp_path / f"report.{fmt}" for fmt in ("json", "csv", "md", "prom")}
    data = {}
    for fmt, path in outputs.items():
        run = run_tool("execve", "--stats", "--export", str(path), "--bpftrace", engine,
                       "--", sys.executable, DRIVER, str(tmp_path))
        assert run.returncode == 0, run.stderr
        assert "Programs (top" in run.stdout and "Latency, entry to return" in run.stdout
        assert max(len(line) for line in run.stdout.splitlines()) <= 80
        data[fmt] = path.read_text()
    want = expected_programs(str(tmp_path))
    report = json.loads(data["json"])
    got = {r["key"]: r["count"] for r in report["breakdowns"]["program"]["top"]}
    assert all(got[p] == n for p, n in want.items()), got
    assert {r["key"]: r["count"] for r in report["breakdowns"]["errno"]["top"]} == \
        expected_errnos()
    rows = list(csv.DictReader(data["csv"].splitlines()))
    got = {r["key"]: int(r["count"]) for r in rows if r["section"] == "program"}
    assert all(got[p] == n for p, n in want.items()), got
    families = {f.name: f for f in text_string_to_metric_families(data["prom"])}
    got = {s.labels["program"]: s.value
           for s in families["bptrace_exec_execs_by_program"].samples}
    assert all(got[p] == n for p, n in want.items()), got
    assert "| /bin/true " in data["md"]


def test_stats_equal_event_mode(engine: str, tmp_path: Path, nothing_left_running: None) -> None:
    events_file = tmp_path / "events.jsonl"
    run_tool("--json", "-o", str(events_file), "--bpftrace", engine, "--",
             sys.executable, DRIVER, str(tmp_path), output=events_file)
    counted = Counter(r["filename"] for r in json_records(events_file.read_text())
                      if r["event"] == "exec")
    stats = run_tool("--stats", "--export", str(tmp_path / "s.json"), "--bpftrace", engine,
                     "--", sys.executable, DRIVER, str(tmp_path))
    assert stats.returncode == 0, stats.stderr
    top = json.loads((tmp_path / "s.json").read_text())["breakdowns"]["program"]["top"]
    assert {r["key"]: r["count"] for r in top} == dict(counted)
    offline = subprocess.run([sys.executable, "-m", "bptrace_exec", "--stats", "--from",
                              str(events_file), "--export", str(tmp_path / "o.json")],
                             capture_output=True, text=True, check=True)
    assert "Programs (top" in offline.stdout
    top = json.loads((tmp_path / "o.json").read_text())["breakdowns"]["program"]["top"]
    assert {r["key"]: r["count"] for r in top} == dict(counted)


def test_interval_reports(engine: str, tmp_path: Path, nothing_left_running: None) -> None:
    run = run_tool("--stats", "--interval", "1", "--bpftrace", engine, "--", "sh", "-c",
                   "for i in 1 2 3; do /bin/true; sleep 1; done")
    assert run.returncode == 0, run.stderr
    reports = run.stdout.count("bptrace-exec stats:")
    assert reports >= 3  # at least two interval reports, then the final one
    final = run.stdout.rsplit("bptrace-exec stats:", 1)[1]
    assert "/bin/true" in final and " 3 " in final.split("/bin/true", 1)[1].splitlines()[0]


def test_interval_reports_of_a_syscall_profile_only_grow(engine: str, tmp_path: Path,
                                                        nothing_left_running: None) -> None:
    """openat counted as the calls go by, a report every second for three seconds and
    more: each says at least what the one before said, the last says every open."""
    opener = ("import time\n"
              "end = time.monotonic() + 3.5\n"
              "while time.monotonic() < end:\n"
              "    try: open('/nonexistent/bpx-interval')\n"
              "    except OSError: pass\n"
              "    time.sleep(0.1)\n")
    run = run_tool("openat", "--stats", "--interval", "1", "--json", "--where",
                   "path=/nonexistent/bpx-interval", "--bpftrace", engine, "--",
                   sys.executable, "-c", opener)
    assert run.returncode == 0, run.stderr
    reports = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(reports) >= 4, run.stdout  # three a second apart, then the final one
    counts = [r["calls"] for r in reports]
    assert counts == sorted(counts) and counts[-1] >= 30 and counts[0] > 0
    assert reports[-1]["breakdowns"]["errno"]["top"] == [
        {"key": "ENOENT", "count": counts[-1], "share": 1.0}]


@pytest.mark.parametrize("fmt", ["json", "prom"])
def test_full_disk_keeps_the_report(engine: str, fmt: str, tmp_path: Path,
                                    nothing_left_running: None) -> None:
    disk = tmp_path / "tiny"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(disk)], check=True)
    try:
        (disk / "filler").write_bytes(b"x" * 8192)
        run = run_tool("--stats", "--export", str(disk / f"report.{fmt}"), "--bpftrace",
                       engine, "--", "/bin/true")
        left = sorted(p.name for p in disk.iterdir())
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    assert run.returncode == 4
    assert "cannot write the export" in run.stderr and "Traceback" not in run.stderr
    assert "Programs (top" in run.stdout
    assert left == ["filler"]  # no half-written file left behind


def test_unwritable_export_fails_before_tracing(tmp_path: Path) -> None:
    run = run_tool("--stats", "--export", str(tmp_path / "no" / "such" / "dir.json"))
    assert run.returncode == 4 and "does not exist" in run.stderr
    run = run_tool("--stats", "--export", "/dev/null", "--export-format", "json")
    assert run.returncode == 4 and "not a regular file" in run.stderr
    run = run_tool("--stats", "--export", str(tmp_path / "report.txt"))
    assert run.returncode == 2 and "--export-format" in run.stderr


def test_light_stats_count_what_the_syscall_tracepoints_count(
        engine: str, tmp_path: Path, nothing_left_running: None) -> None:
    """exec-counts enables no syscall tracepoint, yet counts what `execve --stats
    --succeeded` counts, breakdown for breakdown (ppid aside: each run has its driver)."""
    reports, stdout = {}, {}
    for name, args in (("light", ["exec-counts"]),
                       ("full", ["execve", "--stats", "--succeeded"])):
        path = tmp_path / f"{name}.json"
        run = run_tool(*args, "--export", str(path), "--bpftrace", engine,
                       "--", sys.executable, DRIVER, str(tmp_path))
        assert run.returncode == 0, run.stderr
        reports[name], stdout[name] = json.loads(path.read_text()), run.stdout
    light, full = reports["light"], reports["full"]
    # failures are not counted (not 0): said as null, and not in the report
    assert "(successful only)" in light["title"] and light["failed"] is None
    assert "failed" not in stdout["light"] and full["failed"] is None
    assert "latency" not in light and "errno" not in light["breakdowns"]
    want = {resolve(p, tmp_path): n for p, (n, errno) in STATS_COUNTS.items() if not errno}
    programs = {r["key"]: r["count"] for r in light["breakdowns"]["program"]["top"]}
    assert all(programs[p] == n for p, n in want.items()) and len(programs) == len(want) + 1
    assert programs[sys.executable] == 1  # the driver itself: the only other exec
    for by in ("program", "uid"):
        assert ({r["key"]: r["count"] for r in light["breakdowns"][by]["top"]}
                == {r["key"]: r["count"] for r in full["breakdowns"][by]["top"]}), by
    assert light["execs"] == full["execs"] == sum(want.values()) + 1
    assert sorted(light["breakdowns"]) == ["ppid", "program", "uid"]
    assert "Programs (top 3 of 3)" in stdout["light"] and "Latency" not in stdout["light"]


def test_every_call_is_in_every_breakdown_those_without_a_value_under_none(
        engine: str, tmp_path: Path, nothing_left_running: None) -> None:
    """fork has no flags: its calls are counted under "(none)", so that the flags'
    shares add up to the calls, live and from the JSON lines of the same calls alike."""
    forker = ("import ctypes, os\n"
              "libc = ctypes.CDLL(None, use_errno=True)\n"
              "for _ in range(2):\n"
              "    pid = libc.syscall(57)  # fork(2) itself: glibc's fork() calls clone\n"
              "    if pid == 0:\n"
              "        os._exit(0)\n"
              "    os.waitpid(pid, 0)\n"
              "pid = os.fork()\n"
              "if pid == 0:\n"
              "    os._exit(0)\n"
              "os.waitpid(pid, 0)\n")
    live, events = tmp_path / "live.json", tmp_path / "events.jsonl"
    run = run_tool("clone", "--stats", "--export", str(live), "--bpftrace", engine, "--",
                   sys.executable, "-c", forker)
    assert run.returncode == 0, run.stderr
    traced = run_tool("clone", "--json", "-o", str(events), "--bpftrace", engine, "--",
                      sys.executable, "-c", forker, output=events)
    assert traced.returncode == 0, traced.stderr
    offline = run_tool("--stats", "--from", str(events), "--export", str(tmp_path / "o.json"))
    assert offline.returncode == 0, offline.stderr
    for report in (json.loads(live.read_text()), json.loads((tmp_path / "o.json").read_text())):
        flags = report["breakdowns"]["flags"]
        counted = {r["key"]: r["count"] for r in flags["top"]}
        syscalls = {r["key"]: r["count"] for r in report["breakdowns"]["syscall"]["top"]}
        assert sum(counted.values()) + flags["other"] == report["calls"], report
        assert counted["(none)"] == syscalls["fork"] == 2, report
    assert "(none)" in run.stdout.split("By flags", 1)[1]


def test_exports_are_written_at_every_interval(engine: str, tmp_path: Path,
                                               nothing_left_running: None) -> None:
    """--interval with --export rewrites the file at each report, as a textfile
    collector needs it: the command waits until the file counts its exec, which it can
    only do while the run goes on (up to a minute, else it exits 9)."""
    export = tmp_path / "live.prom"
    wait = (f"/bin/true bpx-live; i=0; until grep -q '/bin/true' {export} 2>/dev/null; "
            "do i=$((i+1)); [ $i -gt 600 ] && exit 9; sleep 0.1; done")
    run = run_tool("--stats", "--interval", "1", "--export", str(export),
                   "--bpftrace", engine, "--", "sh", "-c", wait)
    assert run.returncode == 0, run.stderr
    assert 'program="/bin/true"} 1.0' in export.read_text()
