"""Recordings without root: a transcript cut short replays up to its last whole line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bptrace_exec.errors import UsageError
from bptrace_exec.record import FORMAT, read_recording
from bptrace_exec.spec import load_profile, profile_from_dict, profile_to_dict
from conftest import tool_command

FIXTURE = Path(__file__).parent / "fixtures" / "driver-v0.17.0.jsonl"


def recording(tmp_path: Path, *, cut: int | None = None, trailer: bool = True) -> Path:
    header = {"recording": FORMAT, "bpftrace": "v0.17.0",
              "profile": profile_to_dict(load_profile("execve")),
              "started": "2026-11-25T12:00:00.000000Z", "wall_offset_ns": 0}
    body = FIXTURE.read_bytes()
    text = json.dumps(header).encode() + b"\n" + body
    if trailer:
        text += b'{"recording_end": {"elapsed_s": 1.5}}\n'
    path = tmp_path / "run.rec"
    path.write_bytes(text[:cut] if cut else text)
    return path


def test_profile_round_trips() -> None:
    profile = load_profile("execve")
    assert profile_from_dict(profile_to_dict(profile)) == profile


def test_whole_recording(tmp_path: Path) -> None:
    rec = read_recording(str(recording(tmp_path)))
    assert rec.elapsed_s == 1.5 and rec.engine.version == (0, 17, 0)
    assert len(rec.lines) == len(FIXTURE.read_bytes().splitlines())


def test_cut_recording_replays_to_its_last_whole_line(tmp_path: Path) -> None:
    import subprocess

    whole = recording(tmp_path)
    full = subprocess.run(tool_command("--replay", str(whole), "--json", "-q"),
                          capture_output=True, text=True, check=True).stdout.splitlines()
    size = whole.stat().st_size
    cut = recording(tmp_path, cut=size * 2 // 3, trailer=False)
    out = subprocess.run(tool_command("--replay", str(cut), "--json"), capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0 and "cut short" in out.stderr
    rows = out.stdout.splitlines()
    execs = [r for r in rows if '"event":"exec"' in r]
    assert 0 < len(execs) < len([r for r in full if '"event":"exec"' in r])
    assert all(r in full for r in execs if '"incomplete":false' in r)


@pytest.mark.parametrize("content", [b"", b"not json\n", b'{"recording": "other/9"}\n',
                                     b'{"recording": "bptrace-exec/1"}\n'])
def test_not_a_recording(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.rec"
    path.write_bytes(content)
    with pytest.raises(UsageError, match="not a bptrace-exec recording"):
        read_recording(str(path))


def test_missing_recording_file() -> None:
    with pytest.raises(UsageError, match="cannot read the recording"):
        read_recording("/nonexistent/run.rec")
