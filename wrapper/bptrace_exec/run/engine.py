"""Which bpftrace runs the program, and what its version needs from us.

The program text is the same for every supported version; what differs is how a version
is told its string size, whether it floods stderr with warnings, and its event buffer.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from bptrace_exec.errors import EnvironmentProblem

MIN_VERSION = (0, 17, 0)
MAP_KEYS = 65536  # in-flight execs and followed tasks; a full map would drop execs silently
_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class Engine:
    path: str
    version: tuple[int, int, int]

    @property
    def version_text(self) -> str:
        return "v" + ".".join(map(str, self.version))

    @property
    def ring_shared(self) -> bool:
        """0.23+ sends events through one ring buffer shared by all CPUs (0.17: one per CPU)."""
        return self.version >= (0, 23, 0)

    @property
    def double_escapes_map_keys(self) -> bool:
        """0.22 and 0.23 JSON-escape string map keys twice."""
        return (0, 22, 0) <= self.version < (0, 24, 0)

    def environment(self, buffer_pages: int, strlen: int) -> dict[str, str]:
        """Variables that make every version read strings and report events alike; the
        string size is the program's (codegen.Program.strlen)."""
        env = {
            "BPFTRACE_STR_TRUNC_TRAILER": "",  # 0.18+: would append ".." to long strings
            "BPFTRACE_COLOR": "never",
            "BPFTRACE_PERF_RB_PAGES": str(buffer_pages),
        }
        # 0.23 renamed both and warns on the old names
        renamed = self.version >= (0, 23, 0)
        env["BPFTRACE_MAX_STRLEN" if renamed else "BPFTRACE_STRLEN"] = str(strlen)
        env["BPFTRACE_MAX_MAP_KEYS" if renamed else "BPFTRACE_MAP_KEYS_MAX"] = str(MAP_KEYS)
        return env

    def flags(self) -> list[str]:
        # 0.23 warns about every user-space read; the warnings are about the generated
        # program, which the test suite checks on every version instead.
        return ["--no-warnings"]


def parse_version(text: str) -> tuple[int, int, int] | None:
    match = _VERSION_RE.search(text)
    if not match:
        return None
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def find_engine(explicit: str | None = None) -> Engine:
    """--bpftrace PATH, else $BPFTRACE, else bpftrace on PATH; checked by running it."""
    return EngineProbe(explicit).engine()


class EngineProbe:
    """`bpftrace --version` of the bpftrace find_engine() would use, started at once and
    read by engine(): what the caller does meanwhile overlaps its 10-40 ms."""

    def __init__(self, explicit: str | None = None) -> None:
        candidate = explicit or os.environ.get("BPFTRACE") or "bpftrace"
        origin = ("--bpftrace" if explicit else "$BPFTRACE" if os.environ.get("BPFTRACE")
                  else "PATH")
        self.path = shutil.which(candidate)
        self.failure: EnvironmentProblem | None = None
        self.proc: subprocess.Popen[str] | None = None
        if self.path is None:
            self.failure = EnvironmentProblem(
                f"bpftrace not found (looked for {candidate!r} via {origin})",
                hint="install it with `apt-get install -y bpftrace`, or point --bpftrace or "
                     "$BPFTRACE at the binary")
            return
        try:
            self.proc = subprocess.Popen([self.path, "--version"], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
        except OSError as exc:
            self.failure = EnvironmentProblem(f"cannot run {self.path} --version: {exc}")

    def engine(self) -> Engine:
        """The bpftrace, checked (else EnvironmentProblem); its probe is ended either way."""
        if self.failure is not None:
            raise self.failure
        assert self.proc is not None and self.path is not None
        try:
            stdout, stderr = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired as exc:
            self.proc.kill()
            self.proc.wait()
            raise EnvironmentProblem(f"cannot run {self.path} --version: {exc}") from None
        version = parse_version(stdout) if self.proc.returncode == 0 else None
        if version is None:
            raise EnvironmentProblem(
                f"{self.path} does not look like bpftrace: `--version` printed "
                f"{(stdout + stderr).strip()[:200]!r}",
                hint="point --bpftrace or $BPFTRACE at a bpftrace binary")
        if version < MIN_VERSION:
            raise EnvironmentProblem(
                f"{self.path} is bpftrace v{'.'.join(map(str, version))}; bptrace-exec needs "
                f"v{'.'.join(map(str, MIN_VERSION))} or newer",
                hint="install Debian's bpftrace (`apt-get install -y bpftrace`)")
        return Engine(path=self.path, version=version)
