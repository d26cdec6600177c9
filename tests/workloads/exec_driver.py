"""Execs with known argv, run under the tracer by the integration tests.

Usage: exec_driver.py WORKDIR EXEC_CASES_BINARY
Every case is in CASES below: its argv (bytes), the path it execs, and what the exec
returns. The tests import CASES to know what each traced record must say.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TRUE = "/bin/true"


@dataclass(frozen=True)
class Case:
    name: str
    path: str  # what is passed to execve; "{dir}" is WORKDIR
    argv: tuple[bytes, ...]
    errno: str | None = None


def _arg(name: str) -> bytes:
    return f"case-{name}".encode()


HARD_ARGS = (
    b"", b"two words", b"'single'", b'"double"', b"back\\slash", b"new\nline", b"tab\there",
    "ünïcødé ✓".encode(), b"\xff\xfe not utf-8 \x80", b"literal \\x00 text",
    b"literal \\uffffffc3 text", b"\x1b[31mred\x1b[0m", "bidi \u202e override".encode(),
    b"$(touch /tmp/pwned) `id` ;|&", b"-", b"--",
)

CASES = [
    Case("hard", TRUE, (TRUE.encode(), _arg("hard"), *HARD_ARGS)),
    Case("long", TRUE, (TRUE.encode(), _arg("long"), b"L" * 1000, b"tail")),
    Case("many", TRUE, (TRUE.encode(), _arg("many"), *[str(i).encode() for i in range(40)])),
    Case("toolong", TRUE, (TRUE.encode(), _arg("toolong"), b"x" * 5000)),
    Case("toomany", TRUE, (TRUE.encode(), _arg("toomany"), *[b"m%d" % i for i in range(80)])),
    Case("script", "{dir}/script.sh", (b"my-script", _arg("script"), b"a b", b"")),
    Case("enoent", "{dir}/does-not-exist", (b"missing", _arg("enoent"), b"x y"), "ENOENT"),
    Case("eacces", "{dir}/not-executable", (b"noexec", _arg("eacces")), "EACCES"),
    Case("enoexec", "{dir}/garbage", (b"garbage", _arg("enoexec")), "ENOEXEC"),
    Case("e2big", TRUE, (TRUE.encode(), _arg("e2big"), b"B" * (200 * 1024)), "E2BIG"),
    Case("fail199", "{dir}/does-not-exist", (b"f", _arg("fail199"), b"9" * 199), "ENOENT"),
    Case("fail200", "{dir}/does-not-exist", (b"f", _arg("fail200"), b"0" * 200), "ENOENT"),
    Case("failhard", "{dir}/does-not-exist", (b"f", _arg("failhard"), *HARD_ARGS), "ENOENT"),
]


def prepare(workdir: Path) -> None:
    script = workdir / "script.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    (workdir / "not-executable").write_text("#!/bin/sh\n")
    garbage = workdir / "garbage"
    garbage.write_bytes(b"\x01\x02\x03 this is no program\n")
    garbage.chmod(0o755)


def run_case(case: Case, workdir: Path) -> None:
    path = case.path.replace("{dir}", str(workdir))
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(path, list(case.argv))
        except OSError:
            os._exit(127)
    os.waitpid(pid, 0)


def execveat_case() -> None:
    """fexecve(): glibc calls execveat(fd, "", argv, envp, AT_EMPTY_PATH)."""
    fd = os.open(TRUE, os.O_RDONLY)
    pid = os.fork()
    if pid == 0:
        try:
            os.execve(fd, [TRUE, "case-execveat"], dict(os.environ))
        except OSError:
            os._exit(127)
    os.waitpid(pid, 0)
    os.close(fd)


def main() -> int:
    workdir, exec_cases = Path(sys.argv[1]), sys.argv[2]
    prepare(workdir)
    os.chdir(workdir)  # every case's working directory
    for case in CASES:
        run_case(case, workdir)
    execveat_case()
    for mode in ("literal", "literal-missing", "thread", "empty-argv", "hidden-argv"):
        subprocess.run([exec_cases, mode], stdout=subprocess.DEVNULL, check=False)
    assert stat.S_ISDIR(os.stat(workdir).st_mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
