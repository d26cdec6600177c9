"""Which bpftrace runs the program, and what its version needs from us.

The program text is the same for every supported version; what differs is how a version
is told its string size, whether it floods stderr with warnings, and its event buffer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

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
            # glibc's default threshold grows with the large blocks LLVM frees, and the
            # heap they leave stays with bpftrace for the whole run (measured: 8 MB)
            "MALLOC_TRIM_THRESHOLD_": "131072",
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
    read by engine(): what the caller does meanwhile overlaps its 10-40 ms. A version
    seen before for the very same file (VersionCache) is not asked again."""

    def __init__(self, explicit: str | None = None) -> None:
        candidate = explicit or os.environ.get("BPFTRACE") or "bpftrace"
        origin = ("--bpftrace" if explicit else "$BPFTRACE" if os.environ.get("BPFTRACE")
                  else "PATH")
        self.path = shutil.which(candidate)
        self.failure: EnvironmentProblem | None = None
        self.proc: subprocess.Popen[str] | None = None
        self.cache = VersionCache.default()
        self.known: tuple[int, int, int] | None = None
        if self.path is None:
            self.failure = EnvironmentProblem(
                f"bpftrace not found (looked for {candidate!r} via {origin})",
                hint="install it with `apt-get install -y bpftrace`, or point --bpftrace or "
                     "$BPFTRACE at the binary")
            return
        self.known = self.cache.get(self.path)
        if self.known is not None:
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
        assert self.path is not None
        if self.known is not None:
            return Engine(path=self.path, version=self.known)
        assert self.proc is not None
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
        self.cache.put(self.path, version)
        return Engine(path=self.path, version=version)


class VersionCache:
    """Versions of the bpftrace binaries seen, each under its path and the identity of
    the file there (device, inode, size, change time): a binary upgraded or replaced is
    asked again. In the user's cache directory, when it is the user's own; a cache that
    cannot be read or written is no cache."""

    def __init__(self, file: Path | None) -> None:
        self.file = file

    @classmethod
    def default(cls) -> VersionCache:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
            os.path.expanduser("~"), ".cache")
        return cls(Path(base, "bptrace-exec", "engines.json") if os.path.isabs(base) else None)

    @staticmethod
    def _identity(path: str) -> list[int]:
        st = os.stat(path)
        return [st.st_dev, st.st_ino, st.st_size, st.st_ctime_ns]

    def _read(self) -> dict[str, object]:
        if self.file is None:
            return {}
        try:
            if self.file.stat().st_uid != os.geteuid():
                return {}
            data = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, path: str) -> tuple[int, int, int] | None:
        entry = self._read().get(path)
        try:
            if isinstance(entry, dict) and entry.get("file") == self._identity(path):
                version = parse_version(str(entry.get("version")))
                return version if version is not None and version >= MIN_VERSION else None
        except OSError:
            pass
        return None

    def put(self, path: str, version: tuple[int, int, int]) -> None:
        if self.file is None:
            return
        try:
            folder = self.file.parent
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            if folder.stat().st_uid != os.geteuid():  # someone else's (sudo kept $HOME)
                return
            data = {known: entry for known, entry in self._read().items()
                    if os.path.exists(known)}  # a test's binaries come and go
            data[path] = {"file": self._identity(path),
                          "version": ".".join(map(str, version))}
            staged = folder / f".engines.{os.getpid()}.json"
            staged.write_text(json.dumps(data))
            staged.replace(self.file)
        except OSError:
            return
