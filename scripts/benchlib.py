"""What the benchmarks share: stopping what they started, by its pid, whatever happens."""

from __future__ import annotations

import signal
import subprocess


def stop(proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """SIGINT (a tracer's clean stop), then SIGKILL if it is still there after timeout."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
