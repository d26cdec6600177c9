"""--restart (and --serve): a long run outlives its bpftrace. One that dies is started
again after 1 s, then 2, 4, ... 60 s while it keeps dying within a minute of starting;
each gap is said (a line on stderr, an {"event": "gap"} JSON line, the counter
bptrace_exec_restarts_total), and counts and accounting go on from where the dead one's
last report left them (what it counted after that report is lost with it)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bptrace_exec.errors import EngineFailure
from bptrace_exec.output.text import iso_time
from bptrace_exec.run.session import STOP_SIGNALS

BACKOFF_S = (1, 2, 4, 8, 16, 32, 60)
STEADY_S = 60.0  # a bpftrace that traced this long before dying starts the backoff afresh


@dataclass
class Gap:
    """Time without tracing: from a bpftrace's death to its successor's start."""

    reason: str
    since_ns: int  # wall clock
    restarts: int  # how many, this one included

    def record(self, until_ns: int, host: dict[str, str]) -> dict[str, object]:
        return {"event": "gap", "time": iso_time(self.since_ns), **host,
                "until": iso_time(until_ns), "seconds": round((until_ns - self.since_ns) / 1e9, 3),
                "reason": self.reason, "restarts": self.restarts}


class Restarts:
    def __init__(self, enabled: bool, warn: Callable[[str], None]) -> None:
        self.enabled, self.warn = enabled, warn
        self.count = 0
        self.gap: Gap | None = None  # the one being waited out, until tracing resumes
        self.stopped = False  # asked to end (SIGINT, SIGTERM, SIGHUP) while waiting
        self._step = -1

    def again(self, failure: EngineFailure, tracing: bool, lasted_s: float,
              left_s: float | None) -> bool:
        """Whether to start bpftrace again, once the wait is over. `tracing`: the dead one
        had attached its probes (a first start that fails is a mistake to report, not to
        repeat; a restart that fails is tried again); `left_s`: of --duration."""
        if not self.enabled or not (tracing or self.gap is not None):
            return False
        self._step = 0 if lasted_s >= STEADY_S else min(self._step + 1, len(BACKOFF_S) - 1)
        delay = BACKOFF_S[self._step]
        if left_s is not None and left_s <= delay:
            return False
        self.count += 1
        reason = failure.message.splitlines()[0].split(": ", 1)[0].rstrip(":")
        if self.gap is None:
            self.gap = Gap(reason, time.time_ns(), self.count)
        self.gap.restarts = self.count
        self.warn(f"bptrace-exec: {reason}; starting it again in {delay} s "
                  f"(restart {self.count})")
        self.stopped = not _wait(delay)
        return not self.stopped

    def resumed(self) -> Gap | None:
        """Tracing again: the gap that ended, if any."""
        gap, self.gap = self.gap, None
        return gap


def _wait(seconds: float) -> bool:
    """Sleeps, unless asked to stop (SIGINT, SIGTERM, SIGHUP): then False."""
    stop = threading.Event()
    before = {s: signal.signal(s, lambda *_: stop.set()) for s in STOP_SIGNALS}
    try:
        return not stop.wait(seconds)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
