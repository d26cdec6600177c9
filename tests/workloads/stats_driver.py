"""Execs with known counts, for the stats tests: STATS_COUNTS says what each path gets.

Usage: stats_driver.py WORKDIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

WEIRD = 'we ird "q" \\ ü,x.sh'  # spaces, quotes, a backslash, UTF-8, a comma

# path (relative to WORKDIR when it starts with "./") -> (execs, errno or None)
STATS_COUNTS = {
    "/bin/true": (7, None),
    f"./{WEIRD}": (3, None),
    "./missing": (4, "ENOENT"),
    "./not-executable": (2, "EACCES"),
}


def resolve(path: str, workdir: Path) -> str:
    return str(workdir / path[2:]) if path.startswith("./") else path


def main() -> int:
    workdir = Path(sys.argv[1])
    script = workdir / WEIRD
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    (workdir / "not-executable").write_text("#!/bin/sh\n")
    for path, (count, _) in STATS_COUNTS.items():
        for _ in range(count):
            pid = os.fork()
            if pid == 0:
                try:
                    os.execv(resolve(path, workdir), ["stats-case"])
                except OSError:
                    os._exit(127)
            os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
