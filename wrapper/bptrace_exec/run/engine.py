"""Which bpftrace runs the program, and what its version needs from us.

The program text is the same for every supported version but for one line of settings
for 0.22+ (codegen.program.ON_STACK_LIMIT); what differs here is how a version is told
its string size, whether it floods stderr with warnings, and its event buffer.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bptrace_exec.codegen.btlang import parse_version
from bptrace_exec.errors import EnvironmentProblem, not_a_program
from bptrace_exec.run.cache import CacheDir

if TYPE_CHECKING:  # imported when a version is asked: one kept is not (--emit, --help)
    import subprocess

MIN_VERSION = (0, 17, 0)
MAP_KEYS = 65536  # in-flight execs and followed tasks; a full map would drop execs silently


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
    def buffer_pages(self) -> int:
        """Pages of bpftrace's output buffer unless asked otherwise: 0.23's one ring takes
        every CPU's records."""
        return 4096 if self.ring_shared else 1024

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
                f"bpftrace not found (looked for {candidate!r} via {origin})"
                + not_a_program(candidate),
                hint="install it with `apt-get install -y bpftrace`, or point --bpftrace or "
                     "$BPFTRACE at the binary")
            return
        self.path = os.path.abspath(self.path)
        self.identity = VersionCache.identity(self.path)  # before it is asked
        self.known = self.cache.get(self.path, self.identity)
        if self.known is not None:
            return
        import subprocess

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
        import subprocess

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
        self.cache.put(self.path, self.identity, version)
        return Engine(path=self.path, version=version)


class VersionCache:
    """Versions of the bpftrace binaries seen, each under its path and the identity of
    the file there (device, inode, size, change time): a binary upgraded or replaced is
    asked again; a script (a wrapper running some other binary) is always asked."""

    NAME = "engines.json"

    def __init__(self, cache: CacheDir) -> None:
        self.cache = cache

    @classmethod
    def default(cls) -> VersionCache:
        return cls(CacheDir.default())

    @staticmethod
    def identity(path: str) -> list[int] | None:
        """The file's identity, None for a script or a file that cannot be read."""
        try:
            with open(path, "rb") as f:
                if f.read(2) == b"#!":
                    return None
                st = os.fstat(f.fileno())
        except OSError:
            return None
        return [st.st_dev, st.st_ino, st.st_size, st.st_ctime_ns]

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self.cache.read(self.NAME) or "{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, path: str, identity: list[int] | None) -> tuple[int, int, int] | None:
        entry = self._read().get(path)
        if identity is None or not isinstance(entry, dict) or entry.get("file") != identity:
            return None
        version = parse_version(str(entry.get("version")))
        return version if version is not None and version >= MIN_VERSION else None

    def put(self, path: str, identity: list[int] | None,
            version: tuple[int, int, int]) -> None:
        if identity is None:
            return
        data = {known: entry for known, entry in self._read().items()
                if os.path.exists(known)}  # a test's binaries come and go
        data[path] = {"file": identity, "version": ".".join(map(str, version))}
        self.cache.write(self.NAME, json.dumps(data))
