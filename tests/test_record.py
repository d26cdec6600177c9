"""Recordings without root: those of every record version replay, and a transcript cut
short replays up to its last whole line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bptrace_exec import api
from bptrace_exec.errors import UsageError
from bptrace_exec.records import VERSION
from bptrace_exec.run.recording import FORMAT, read_recording
from bptrace_exec.spec import load_profile, profile_from_dict, profile_to_dict, with_overrides
from conftest import json_records, tool_command
from expectations import check_all
from stats_expectations import check_stats

FIXTURES = Path(__file__).parent / "fixtures"
WORKDIR = "/tmp/bptrace-exec-transcript"
# The execve profile as recordings of version 1 (before one model for every probe) wrote it.
VERSION_1_PROFILE = {
    "name": "execve", "source": "probes/execve.yaml", "version": 1, "description": "d",
    "probes": ["execve", "execveat"],
    "filters": {"comm": [], "uid": [], "pid": [], "ppid": [], "failed": False,
                "succeeded": False, "cgroup": []},
    "limits": {"max_args": 64, "argv_bytes": 4096},
    "stats": {"enabled": False, "by": ["program", "comm", "uid", "ppid", "errno"], "top": 10,
              "interval": 0, "latency": True},
    "output": {"format": "table"}, "context": {"parents": 0, "container": False}}
VERSIONS = {1: ("driver-v0.17.0.jsonl", VERSION_1_PROFILE),
            2: ("driver2-v0.17.0.jsonl", profile_to_dict(load_profile("execve"))),
            3: ("driver3-v0.17.0.jsonl", profile_to_dict(load_profile("execve"))),
            4: ("driver4-v0.17.0.jsonl", profile_to_dict(load_profile("execve"))),
            5: ("driver5-v0.17.0.jsonl", profile_to_dict(load_profile("execve"))),
            6: ("driver6-v0.17.0.jsonl", profile_to_dict(
                with_overrides(load_profile("execve"), cwd=True, exe=True))),
            7: ("driver7-v0.17.0.jsonl", profile_to_dict(
                with_overrides(load_profile("execve"), cwd=True, exe=True))),
            9: ("driver9-v0.17.0.jsonl", profile_to_dict(
                with_overrides(load_profile("execve"), cwd=True, exe=True)))}
VERSIONS[8] = VERSIONS[7]  # the same records; only the stats' keys changed
VERSIONS[10] = VERSIONS[9]  # the same exec records; other calls' closing ones changed


def recording(tmp_path: Path, version: int = VERSION, *, cut: int | None = None,
              trailer: bool = True) -> tuple[Path, Path]:
    fixture, profile = VERSIONS[version]
    header = {"recording": f"{FORMAT}{version}", "bpftrace": "v0.17.0", "profile": profile,
              "started": "2026-11-25T12:00:00.000000Z", "wall_offset_ns": 0}
    body = (FIXTURES / fixture).read_bytes()
    text = json.dumps(header).encode() + b"\n" + body
    if trailer:
        text += b'{"recording_end": {"elapsed_s": 1.5}}\n'
    path = tmp_path / f"run{version}.rec"
    path.write_bytes(text[:cut] if cut else text)
    return path, FIXTURES / fixture


def test_profile_round_trips() -> None:
    profile = load_profile("execve")
    assert profile_from_dict(profile_to_dict(profile)) == profile


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_recordings_of_every_version_replay_the_same_execs(tmp_path: Path, version: int
                                                           ) -> None:
    path, fixture = recording(tmp_path, version)
    rec = read_recording(str(path))
    assert rec.elapsed_s == 1.5 and rec.engine.version == (0, 17, 0)
    assert rec.version == version
    assert len(rec.lines) == len(fixture.read_bytes().splitlines())
    out = subprocess.run(tool_command("--replay", str(path), "--json", "-q"),
                         capture_output=True, text=True, check=True).stdout
    check_all([r for r in json_records(out) if r["event"] == "exec"], WORKDIR, version)


@pytest.mark.parametrize("version,fixture", [(8, "stats8-v0.17.0.jsonl"),
                                              (VERSION, "stats-v0.17.0.jsonl")])
def test_stats_recordings_replay_their_exact_counts(tmp_path: Path, version: int,
                                                    fixture: str) -> None:
    """Version 8's maps counted by bpftrace's per-CPU aggregations, this version's by
    (VALUE, CPU) in plain maps: a replay reads each as it was written."""
    profile = profile_to_dict(with_overrides(load_profile("execve"), stats=True))
    header = {"recording": f"{FORMAT}{version}", "bpftrace": "v0.17.0", "profile": profile,
              "started": "2026-11-25T12:00:00.000000Z", "wall_offset_ns": 0}
    path = tmp_path / "stats.rec"
    path.write_bytes(json.dumps(header).encode() + b"\n" + (FIXTURES / fixture).read_bytes()
                     + b'{"recording_end": {"elapsed_s": 2.0}}\n')
    with api.replay(str(path)) as run:
        check_stats(run.counts(), WORKDIR)


def test_cut_recording_replays_to_its_last_whole_line(tmp_path: Path) -> None:
    whole, _ = recording(tmp_path)
    full = subprocess.run(tool_command("--replay", str(whole), "--json", "-q"),
                          capture_output=True, text=True, check=True).stdout.splitlines()
    size = whole.stat().st_size
    cut, _ = recording(tmp_path, cut=size * 2 // 3, trailer=False)
    out = subprocess.run(tool_command("--replay", str(cut), "--json"), capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0 and "cut short" in out.stderr
    rows = out.stdout.splitlines()
    execs = [r for r in rows if '"event":"exec"' in r]
    assert 0 < len(execs) < len([r for r in full if '"event":"exec"' in r])
    assert all(r in full for r in execs if '"incomplete":false' in r)


def test_a_replay_says_when_records_were_lost_by_the_recorded_calls(tmp_path: Path) -> None:
    """bpftrace's report of lost records has no time: a replay's is the last call's
    before it, not the day it is replayed; nor is its end's."""
    path, _ = recording(tmp_path)
    lines = path.read_bytes().split(b"\n")
    middle = len(lines) // 2
    lines.insert(middle, b'{"type": "lost_events", "data": {"events": 7}}')
    path.write_bytes(b"\n".join(lines))
    out = subprocess.run(tool_command("--replay", str(path), "--json", "-q"),
                         capture_output=True, text=True, check=True).stdout
    records = json_records(out)
    [lost] = [r for r in records if r["event"] == "lost"]
    times = sorted(r["time"] for r in records if r["event"] == "exec")
    assert lost["count"] == 7 and times[0] <= lost["time"] <= times[-1]
    # a trailer without the end's time (cut short, or before it was kept): after the last call
    [end] = [r for r in records if r["event"] == "end"]
    assert times[0] <= end["time"] <= times[-1]


@pytest.mark.parametrize("content", [b"", b"not json\n", b'{"recording": "other/9"}\n',
                                     b'{"recording": "bptrace-exec/1"}\n'])
def test_not_a_recording(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.rec"
    path.write_bytes(content)
    with pytest.raises(UsageError, match="not a bptrace-exec recording"):
        read_recording(str(path))


def test_a_recording_this_version_cannot_read_says_why(tmp_path: Path) -> None:
    path, _ = recording(tmp_path)
    header, _, rest = path.read_bytes().partition(b"\n")
    later = tmp_path / "later.rec"
    later.write_bytes(header.replace(f"{FORMAT}{VERSION}".encode(), f"{FORMAT}99".encode())
                      + b"\n" + rest)
    with pytest.raises(UsageError, match="recording of format 99, which this version does "
                                         "not read"):
        read_recording(str(later))
    # its profile, edited: the recording is named, not the profile it was made from
    edited = tmp_path / "edited.rec"
    edited.write_bytes(header.replace(b'"max_args": 64', b'"max_args": 999999')
                       + b"\n" + rest)
    with pytest.raises(UsageError, match=f"^{edited}: the profile it was recorded with is "
                                         "not valid: 999999 is out of range"):
        read_recording(str(edited))


def test_a_replay_of_a_killed_run_says_what_the_live_run_said(tmp_path: Path) -> None:
    """A bpftrace killed while tracing printed no count: its trailer says so, and the
    replay's end line and summary say "unknown" as the live run did (not 0 missing), at
    the recorded time of the end. Recordings made before the trailer said it (or cut
    short) tell it by the count they lack."""
    path, _ = recording(tmp_path, trailer=False)
    uncounted = b"".join(line for line in path.read_bytes().splitlines(keepends=True)
                         if b'"@total"' not in line)
    ended_ns = 1_764_072_000_123_456_000
    killed, before, cut = (tmp_path / n for n in ("killed.rec", "before.rec", "cut.rec"))
    killed.write_bytes(uncounted + json.dumps({"recording_end": {
        "elapsed_s": 3.2, "ended_ns": ended_ns, "counted": False}}).encode() + b"\n")
    before.write_bytes(uncounted + b'{"recording_end": {"elapsed_s": 3.2}}\n')
    cut.write_bytes(uncounted)
    for rec in (killed, before, cut):
        out = subprocess.run(tool_command("--replay", str(rec), "--json"),
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        end = json_records(out.stdout)[-1]
        assert (end["event"], end["execs"], end["kernel_execs"], end["missing_execs"]) == (
            "end", 25, None, None), end
        assert "25 execs traced in" in out.stderr
        assert "how many execs the kernel saw is unknown (bpftrace was killed)" in out.stderr
    assert end["time"] != "2025-11-25T12:00:00.123456Z"
    replayed = subprocess.run(tool_command("--replay", str(killed), "--json"),
                              capture_output=True, text=True, timeout=60, check=False)
    assert json_records(replayed.stdout)[-1]["time"] == "2025-11-25T12:00:00.123456Z"
    counted, _ = recording(tmp_path)  # its @total, and a trailer of an earlier version
    whole = subprocess.run(tool_command("--replay", str(counted), "--json"),
                           capture_output=True, text=True, timeout=60, check=False)
    end = json_records(whole.stdout)[-1]
    assert (end["kernel_execs"], end["missing_execs"]) == (25, 0)
    assert "unknown" not in whole.stderr


def test_missing_recording_file() -> None:
    with pytest.raises(UsageError, match="cannot read the recording"):
        read_recording("/nonexistent/run.rec")


def test_blank_lines_after_the_end_are_no_cut(tmp_path: Path) -> None:
    path, _ = recording(tmp_path)
    path.write_bytes(path.read_bytes() + b"\n\n")  # as an editor may leave it
    assert read_recording(str(path)).elapsed_s == 1.5
    out = subprocess.run(tool_command("--replay", str(path), "--json"), capture_output=True,
                         text=True, check=True)
    assert "cut short" not in out.stderr and "garbled" not in out.stderr, out.stderr
