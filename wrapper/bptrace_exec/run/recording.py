"""Recordings: the raw transcript of a run, replayable with no root and no bpftrace.

A recording is JSON lines: a header (what is needed to decode the rest), every line
bpftrace printed, unchanged (but for its counts at exit: a run that ends once every CPU
has marked its stream writes the counts the marks carried, as bpftrace prints them;
run.session), and a trailer written when the run ends:

  {"recording": "bptrace-exec/3", "bpftrace": "v0.17.0", "profile": {...},
   "started": "2026-...Z", "wall_offset_ns": N, "host": NAME}
  ...bpftrace's lines...
  {"recording_end": {"elapsed_s": 12.3, "ended_ns": N, "counted": true}}

"ended_ns" is when the run ended (wall clock, ns), "counted" false when bpftrace was
killed and its count of calls is unknown; recordings made before had neither (then a
replay takes the counts as unknown when events came and no count did).
A recording cut short (a killed run, a full disk) has no trailer; it replays up to its
last whole line, with a warning. The number in "bptrace-exec/N" is the version of the
record layouts the program printed (bptrace_exec.records): recordings made by earlier
versions replay too.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from bptrace_exec.codegen.btlang import parse_version
from bptrace_exec.errors import OutputError, SpecError, UsageError
from bptrace_exec.records import VERSION, VERSIONS
from bptrace_exec.run.engine import Engine
from bptrace_exec.spec import Profile, profile_from_dict, profile_to_dict

FORMAT = "bptrace-exec/"


class Recorder:
    """Writes a recording as the run goes; each line is flushed so a crash loses none."""

    def __init__(self, path: str, profile: Profile, engine: Engine,
                 wall_offset_ns: int, host: str, boot_id: str | None) -> None:
        try:
            self.file: IO[bytes] = open(path, "wb")  # noqa: SIM115 (closed in close())
        except OSError as exc:
            raise OutputError(f"cannot write the recording {path}: {exc.strerror}",
                              hint="give a file in a folder you can write") from None
        self.path = path
        self.elapsed_s = 0.0  # set by the run when it ends; written in the trailer
        self.counted = True  # set false by the run when bpftrace was killed: in the trailer
        started = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        self._write_json({"recording": f"{FORMAT}{VERSION}", "bpftrace": engine.version_text,
                          "profile": profile_to_dict(profile),
                          "started": started.replace("+00:00", "Z"),
                          "wall_offset_ns": wall_offset_ns, "host": host,
                          "boot_id": boot_id})
        if self.failed is not None:  # before anything was traced: the run does not start
            self.failed.hint = "nothing was recorded: give a file on a disk with room"
            raise self.failed

    def _write_json(self, obj: object) -> None:
        self.write(json.dumps(obj, ensure_ascii=True).encode())

    # A write that failed (a full disk): the recording ends there, the run goes on (what
    # it traces is still shown), and ends with this error
    failed: OutputError | None = None

    def write(self, line: bytes) -> None:
        if self.failed is not None:
            return
        try:
            self.file.write(line + b"\n")
            self.file.flush()
        except OSError as exc:
            self.failed = OutputError(
                f"cannot write the recording {self.path}: {exc.strerror}",
                hint="what was written before replays with --replay")
            with contextlib.suppress(OSError):
                self.file.close()

    def close(self) -> None:
        if not self.file.closed:
            self._write_json({"recording_end": {"elapsed_s": round(self.elapsed_s, 6),
                                                "ended_ns": time.time_ns(),
                                                "counted": self.counted}})
            with contextlib.suppress(OSError):
                self.file.close()


@dataclass
class Recording:
    path: str
    profile: Profile
    engine: Engine
    wall_offset_ns: int
    started: str
    lines: list[bytes]
    elapsed_s: float | None  # None: the recording was cut short
    version: int  # of the record layouts
    host: str | None = None  # where it was made (--host); None: recorded before it was kept
    boot_id: str | None = None  # the host's boot; None: recorded before it was kept
    ended_ns: int | None = None  # when the run ended; None: cut short, or not kept then
    counted: bool | None = None  # bpftrace's count of calls known; None: not said then

    @property
    def started_ns(self) -> int | None:
        """When the run started, wall clock (None: a header without a time)."""
        try:
            moment = datetime.fromisoformat(self.started.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        return round(moment.timestamp() * 1e6) * 1000


def is_header(obj: object) -> bool:
    """Whether a line read as JSON is a recording's first (not a line --json writes)."""
    return isinstance(obj, dict) and "recording" in obj and isinstance(obj.get("profile"), dict)


def read_recording(path: str) -> Recording:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the recording {path}: {exc.strerror}") from None
    # the last piece is "" after a whole line, or a line cut mid-write: dropped either way
    lines = raw.split(b"\n")[:-1]
    try:
        header = json.loads(lines[0])
        assert isinstance(header, dict) and str(header.get("recording")).startswith(FORMAT)
        layouts = int(str(header["recording"])[len(FORMAT):])
        if layouts not in VERSIONS:
            raise UsageError(f"{path} is a recording of format {layouts}, which this version "
                             f"does not read (formats {min(VERSIONS)}-{max(VERSIONS)})",
                             hint="replay it with the bptrace-exec that made it")
        version = parse_version(str(header["bpftrace"]))
        assert version is not None
        try:
            profile = profile_from_dict(header["profile"])
        except SpecError as exc:  # its `where` is the profile's file, not the recording
            detail = exc.message.removeprefix(f"{exc.where}: ") if exc.where else exc.message
            raise UsageError(f"{path}: the profile it was recorded with is not valid: "
                             f"{detail}", hint="replay a recording as --record wrote it"
                             ) from None
        offset = int(header["wall_offset_ns"])
        host = header.get("host")
        boot = header.get("boot_id")
        assert all(v is None or isinstance(v, str) for v in (host, boot))
        # wall clock minus boot-time clock: the epoch to 2100, whatever the uptime
        assert 0 <= offset < 4_102_444_800 * 10**9
    except (IndexError, ValueError, KeyError, TypeError, AssertionError, RecursionError):
        raise UsageError(f"{path} is not a bptrace-exec recording",
                         hint="make one with --record FILE") from None
    elapsed = ended = counted = None
    body = lines[1:]
    while body and not body[-1].strip():  # blank lines after the end (an editor's)
        body.pop()
    if body and body[-1].startswith(b'{"recording_end"'):
        try:
            end = json.loads(body[-1])["recording_end"]
            elapsed = float(end["elapsed_s"])
            ended, counted = end.get("ended_ns"), end.get("counted")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            elapsed = None
        body = body[:-1]
    return Recording(path=path, profile=profile, engine=Engine("(recorded)", version),
                     wall_offset_ns=offset, started=str(header.get("started", "")),
                     lines=body, elapsed_s=elapsed, version=layouts, host=host,
                     boot_id=boot,
                     ended_ns=ended if isinstance(ended, int) and ended > 0 else None,
                     counted=counted if isinstance(counted, bool) else None)


class ReplaySource:
    """A recording played back: a pipeline.Source, as a live Session is."""

    names_cgroups = False  # its cgroup ids are another run's, maybe another machine's

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.engine = recording.engine
        self.deadline: float | None = None
        self.wall_offset_ns = recording.wall_offset_ns
        self.boot_id = recording.boot_id
        self.recorded_elapsed = recording.elapsed_s
        self.version = recording.version

    def lines(self) -> Iterator[bytes | None]:
        yield from self.recording.lines

    def status(self, probes: str, attached: int) -> str:
        return (f"Replaying {self.recording.path}: {probes} traced with bpftrace "
                f"{self.engine.version_text} from {self.recording.started}.")

    def ready(self) -> None:
        """Nothing waits for a replay's start."""

    def request_stop(self) -> None:
        """Nothing runs: the replay simply ends with the file."""
