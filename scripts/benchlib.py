"""What the benchmarks share: the checkout they measure, and stopping what they started,
by its pid, whatever happens."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
# `python -m bptrace_exec` in a child runs this checkout's code, not an installed copy
# (an editable install points at one checkout: comparing two would measure it twice)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(TOP / "wrapper"), os.environ.get("PYTHONPATH", "")) if p)


def stop(proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """SIGINT (a tracer's clean stop), then SIGKILL if it is still there after timeout."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def install(packages: dict[str, str]) -> None:
    """{program path: Debian package}: installs the packages of those missing."""
    missing = [pkg for path, pkg in packages.items() if not shutil.which(path)]
    if missing:
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False,
                       stdout=subprocess.DEVNULL)


def machine(engine_version: str, what: str) -> str:
    """The line a benchmark's figures start with: where they were measured, and what."""
    return (f"# {platform.machine()}, {os.cpu_count()} cpus, kernel {platform.release()}, "
            f"bpftrace {engine_version}, Python {platform.python_version()}; {what}")


def workload(tmp: str, name: str) -> str:
    """tests/workloads/NAME.c compiled into tmp; its path."""
    path = str(Path(tmp) / name)
    subprocess.run(["cc", "-O2", "-pthread", "-o", path,
                    str(TOP / "tests" / "workloads" / f"{name}.c")], check=True)
    return path
