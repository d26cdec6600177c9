"""--restart (and --serve): a long run outlives its bpftrace. One that dies is started
again after 1 s, then 2, 4, ... 60 s while it keeps dying within a minute of starting;
each gap is said (a line on stderr, an {"event": "gap"} JSON line, the counter
bptrace_exec_restarts_total), and counts and accounting go on from where the dead one's
last report left them (what it counted after that report is lost with it)."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

from bptrace_exec.errors import UserError
from bptrace_exec.output.text import iso_time
from bptrace_exec.run.spawn import STOP_SIGNALS

BACKOFF_S = (1, 2, 4, 8, 16, 32, 60)
STEADY_S = 60.0  # a bpftrace that traced this long before dying starts the backoff afresh
TICK_S = 0.1  # how soon a stop asked during a wait is seen


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
        self.stopped = False  # asked to end (SIGINT, SIGTERM, SIGHUP) between bpftraces
        self._step = -1

    @contextlib.contextmanager
    def between_runs(self) -> Iterator[None]:
        """A stop asked while no bpftrace runs (each Session handles its own) ends the
        run at the next step, instead of killing the process with nothing said."""
        if not self.enabled:
            yield
            return

        def asked(_signum: int, _frame: FrameType | None) -> None:
            self.stopped = True  # a flag only: safe whatever the main thread was doing
        before = {s: signal.signal(s, asked) for s in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)

    def plan(self, failure: UserError, tracing: bool, lasted_s: float,
             left_s: float | None) -> float | None:
        """Seconds to wait before starting bpftrace again; None: not again. `tracing`: the
        dead one had attached its probes (a first start that fails is a mistake to report,
        not to repeat; a restart that fails is tried again); `left_s`: of --duration."""
        if not self.enabled or self.stopped or not (tracing or self.gap is not None):
            return None
        self._step = 0 if lasted_s >= STEADY_S else min(self._step + 1, len(BACKOFF_S) - 1)
        delay = BACKOFF_S[self._step]
        if left_s is not None and left_s <= delay:
            return None
        self.count += 1
        reason = failure.message.splitlines()[0].split(": ", 1)[0].rstrip(":")
        if self.gap is None:
            self.gap = Gap(reason, time.time_ns(), self.count)
        self.gap.restarts = self.count
        self.warn(f"bptrace-exec: {reason}; starting it again in {delay} s "
                  f"(restart {self.count})")
        return delay

    def wait(self, seconds: float) -> bool:
        """Sleeps; False if asked to stop meanwhile (then the run ends as usual)."""
        deadline = time.monotonic() + seconds
        while not self.stopped and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(TICK_S, left))
        return not self.stopped

    def resumed(self) -> Gap | None:
        """Tracing again: the gap that ended, if any."""
        gap, self.gap = self.gap, None
        return gap
