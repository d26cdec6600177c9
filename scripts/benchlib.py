"""What the benchmarks share: the checkout they measure, and stopping what they started,
by its pid, whatever happens."""

from __future__ import annotations

import os
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
