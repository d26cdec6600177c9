"""Running bpftrace: the stage with side effects.

bpftrace is started by run.spawn (or taken from run.prestart): its program is handed over
in memory (a memfd), so nothing is left on disk; it runs on a pseudo-terminal, adopted
here by pexpect, which carries its log messages (read here, shown to the user when they
are real errors), while its JSON records go to a pipe of their own (`-o /dev/fd/N`), so
no log line, colour code or `\\r` can mix into them. bpftrace is tied to this process
(PR_SET_PDEATHSIG): if this process dies, even by SIGKILL, bpftrace goes with it (a
trace started in another thread than the main one: at its next record, unread).

A command to trace (`-- COMMAND`) is forked first and held at a gate until the probes
are attached (run.gate), so that its own exec is the first thing traced; its pid is
handed to the program as $2 (this process's is $1), never pasted into the program text.

Stopping loses nothing that happened before the stop: bpftrace drops the records it reads
after its SIGINT, so a program that `drains` is first asked to stop reporting (this
process renames itself, which the program watches) and to mark every CPU's stream; once
a mark of every CPU has been read, so has every call reported before, and only then is
bpftrace sent SIGINT (codegen.program.stop_probes). The marks also carry the counts
bpftrace would print at exit, after detaching its probes one by one (most of a second):
the run ends with them, sends bpftrace SIGINT and leaves it to end, reaped in the
background. A stats program, asked the same way, prints its last report (codegen.stats),
and its run ends alike.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import select
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pexpect
import ptyprocess

from bptrace_exec.codegen.kerneltypes import NO_TYPES_BTF
from bptrace_exec.codegen.program import HEADER_END
from bptrace_exec.errors import EngineFailure, EnvironmentProblem
from bptrace_exec.records import LAST_SNAPSHOT_END, TOTAL_MAP, VERSION, Mark
from bptrace_exec.run.engine import Engine
from bptrace_exec.run.eventlist import kept_listing
from bptrace_exec.run.footprint import release_in_background
from bptrace_exec.run.gate import GatedCommand
from bptrace_exec.run.kerneltypes import SWITCH
from bptrace_exec.run.prestart import Early
from bptrace_exec.run.spawn import STOP_SIGNALS, Start, spawn

BOOT_ID = "/proc/sys/kernel/random/boot_id"
READ_SIZE = 1 << 16
STOP_GRACE_S = 20.0  # how long bpftrace may take to drain and exit after SIGINT:
# bpftrace 0.17 once took over 10 s to end on a loaded host
TERM_AFTER_S = 3.0  # then SIGTERM, bpftrace's other clean stop, in case SIGINT was lost
KILLED_WAIT_S = 10.0  # then SIGKILL, and at most this long for it to be gone
# The longest wait for a line when records are few: a row held for the order of the
# calls (output.rows) is shown at the first tick after its time is up
TICK_S = 0.05
# After a read that emptied the pipe, wait before the next, unless a signal, a stop or the
# command's end comes: bpftrace writes a record at a time, and a reader woken for each
# costs both processes a context switch per record; after the pause one read takes all
# that came meanwhile. In a storm each wake costs the reader more than its records (its
# caches are cold after the traced workload ran): when BATCH_BYTES or more came since the
# last pause and between the two before, BATCH_S (a quarter less CPU than 0.02 s); after
# fewer, the few records are shown sooner, and so is a lone burst (the calls made while
# the probes were attached, which bpftrace reads once they all are; a build's first
# jobs); after half the pipe's size, sooner too, so that bpftrace never waits for room.
BATCH_S = 0.1
BRIEF_S = 0.02
BATCH_BYTES = 1 << 12
TRACEFS = Path("/sys/kernel/tracing")
DEBUGFS_TRACING = Path("/sys/kernel/debug/tracing")
PR_SET_NAME, PR_GET_NAME = 15, 16
DRAIN_WAIT_S = 2.0  # how long every CPU's mark may take before bpftrace is stopped anyway
MARK_LINE = b'{"type": "printf", "data": "mark '
LAST_LINE = b'{"type": "printf", "data": "%s\\n"}' % LAST_SNAPSHOT_END.encode()
CPUS_ONLINE = Path("/sys/devices/system/cpu/online")

# Start-up noise that every run prints and that means nothing here.
_HARMLESS = (
    re.compile(r"couldn't set RLIMIT_MEMLOCK"),
    re.compile(r"^Attaching \d+ probes?\.\.\.$"),
    re.compile(r"BPFTRACE_STRLEN is deprecated"),
)


def pause_after(came: int, came_before: int, pipe_size: int) -> float:
    """The pause after a read that emptied the pipe: `came` bytes since the last pause,
    `came_before` between the two before."""
    storm = min(came, came_before) >= BATCH_BYTES and came < pipe_size // 2
    return BATCH_S if storm else BRIEF_S


def check_environment() -> None:
    """Root and tracefs, checked before anything is started."""
    if os.geteuid() != 0:
        raise EnvironmentProblem("tracing needs root: bpftrace loads programs into the kernel",
                                 hint="run it with sudo, or use --emit script to see the "
                                      "program without running it")
    if not _may_trace():
        raise EnvironmentProblem(
            "tracing needs CAP_SYS_ADMIN, or CAP_BPF and CAP_PERFMON, which this root "
            "process has not (a container's, or a service's bounding set, drops them)",
            hint="run it with those capabilities: a privileged container (`docker run "
                 "--privileged`, or `--cap-add SYS_ADMIN`), a unit without "
                 "CapabilityBoundingSet= narrowing them")
    if not (TRACEFS / "events").is_dir() and not (DEBUGFS_TRACING / "events").is_dir():
        # Mounting it is what a user would be told to do; doing it saves them the step.
        with contextlib.suppress(OSError):
            subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)],
                           capture_output=True, check=False, timeout=30)
        if not (TRACEFS / "events").is_dir():
            raise EnvironmentProblem(
                f"tracefs is not mounted at {TRACEFS}, so no tracepoint can be found",
                hint=f"mount it: `mount -t tracefs nodev {TRACEFS}`")


CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


def _may_trace() -> bool:
    """Whether this process's effective capabilities let bpftrace load its programs
    (true where they cannot be read: bpftrace is the judge then)."""
    try:
        status = Path("/proc/self/status").read_text()
        caps = int(status.split("CapEff:", 1)[1].split()[0], 16)
    except (OSError, IndexError, ValueError):
        return True
    return bool(caps >> CAP_SYS_ADMIN & 1 or caps >> CAP_BPF & caps >> CAP_PERFMON & 1)


@dataclass
class Finished:
    """How a session ended."""

    requested: bool  # we asked bpftrace to stop (signal, duration, command exit, consumer)
    engine_status: int | None  # bpftrace's exit status, or -signal; None: not waited for
    command_status: int | None  # the traced command's exit status, shell style (128+sig)
    diagnostics: list[str]  # bpftrace's log lines, harmless noise removed
    forced: bool = False  # bpftrace ignored SIGINT for STOP_GRACE_S and was killed
    resumed: bool = False  # bpftrace had been stopped (SIGSTOP) and was continued
    # every record was read, counts included, and bpftrace left to end on its own: its
    # status is not waited for (None)
    drained: bool = False

    @property
    def killed(self) -> int | None:
        """The signal that ended bpftrace, when it did not exit: then it printed no counts."""
        status = self.engine_status
        return -status if status is not None and status < 0 else None


class _Adopted(pexpect.spawn):  # type: ignore[misc]
    """pexpect.spawn of a bpftrace already started (run.spawn)."""

    def __init__(self, *args: Any, started: ptyprocess.PtyProcess, **kwargs: Any) -> None:
        self._started = started
        super().__init__(*args, **kwargs)
        # closed once bpftrace has ended (Session.close, or its reaper, waits for it,
        # killed or not): no pause for it to end
        self.ptyproc.delayafterclose = 0.0

    def _spawnpty(self, args: list[str], **kwargs: Any) -> ptyprocess.PtyProcess:
        return self._started


def online_cpus() -> set[int]:
    """The CPUs bpftrace reads a buffer of (and the program marks), e.g. "0-3,6"."""
    try:
        spec = CPUS_ONLINE.read_text().strip()
    except OSError:
        return set(range(os.cpu_count() or 1))
    cpus: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def _rename_self() -> None:
    """The main thread's name written back as it is, from whichever thread asks: the
    kernel's task_rename tracepoint fires for the main thread (its id is the program's
    $1), and nothing else changes."""
    comm = f"/proc/self/task/{os.getpid()}/comm"
    try:
        with open(comm, "rb") as f:
            name = f.read().rstrip(b"\n")
        with open(comm, "wb") as f:
            f.write(name)
    except OSError:  # no /proc: the calling thread's, the cue if it is the main thread
        libc = ctypes.CDLL(None, use_errno=True)
        buffer = ctypes.create_string_buffer(16)
        libc.prctl(PR_GET_NAME, buffer, 0, 0, 0)
        libc.prctl(PR_SET_NAME, buffer, 0, 0, 0)


def _stopped(pid: int) -> bool:
    """Whether a process is stopped by a signal (state T) or by a tracer (t)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] in (b"T", b"t")


def boot_id() -> str | None:
    """This boot's id (exec ids name it), None where the kernel does not say it."""
    try:
        return Path(BOOT_ID).read_text().strip()
    except OSError:
        return None


def run_start(program_text: str, engine: Engine, *, buffer_pages: int, strlen: int,
              own_types: bool, command: int | None = None) -> Start:
    """How a run starts bpftrace on a program; this process reads its records.
    `own_types`: the program defines every kernel type it reads (run.kerneltypes), so
    bpftrace is handed BTF with none instead of the kernel's."""
    return Start(engine.path, engine.flags(), engine.environment(buffer_pages, strlen),
                 program_text, NO_TYPES_BTF if own_types else None,
                 kept_listing(program_text), os.getpid(), command)


class Session:
    """One bpftrace run, a pipeline.Source. Iterate `lines()` for its JSON output; it
    always ends clean."""

    version = VERSION  # it runs a program this version generated
    recorded_elapsed: float | None = None
    names_cgroups = True  # the cgroups are this machine's

    def __init__(self, program_text: str, engine: Engine, *, buffer_pages: int, strlen: int,
                 command: GatedCommand | None = None, drains: bool = False,
                 handle_signals: bool = False, own_types: bool = False,
                 prestarted: Early | None = None) -> None:
        """`own_types`: as run_start's. `prestarted`: a bpftrace started before the tool
        had loaded, taken if it is this start (run.prestart)."""
        self.engine = engine
        self.command = command
        # wall clock minus the monotonic clock bpftrace's nsecs counts on; taken once
        self.wall_offset_ns = time.time_ns() - time.monotonic_ns()
        self.boot_id = boot_id()
        self._log = bytearray()
        self.deadline: float | None = None  # monotonic time at which to stop by itself
        self._stop_requested = False
        self._forced = False
        self._resumed = False
        self._term_sent = False
        self._stop_sent_at: float | None = None
        self._signal_received: int | None = None
        self._drains = drains
        self._ready = False  # every probe attached: the program can be drained
        self._drain_started: float | None = None
        self._totals: dict[int, int] = {}  # each CPU's count, from its mark
        self._marked_at: int | None = None  # monotonic ns: when every CPU had marked
        self._drained = False
        self._finished: Finished | None = None
        self._cpus = online_cpus()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._old_handlers: dict[int, Any] = {}
        spawned, held = None, False  # held: its terminal, by `started`
        try:
            # Before bpftrace starts: a stop asked as it starts is seen by lines(), never
            # a KeyboardInterrupt halfway through it. A library user's program keeps its
            # own signal handling: Ctrl-C raises there.
            for sig in STOP_SIGNALS if handle_signals else ():
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
            start = run_start(program_text, engine, buffer_pages=buffer_pages,
                              strlen=strlen, own_types=own_types,
                              command=None if command is None else command.pid)
            spawned = prestarted.take(start) if prestarted is not None else None
            try:
                spawned = spawned or spawn(start)
            except OSError as exc:
                raise EnvironmentProblem(f"cannot start {engine.path}: "
                                         f"{exc.strerror or exc}") from None
            if prestarted is not None:
                prestarted.keep(start, command)
            self._program_fd, self._read_fd = spawned.program_fd, spawned.records
            self._pipe_size = spawned.pipe_size
            started = ptyprocess.PtyProcess(spawned.pid, spawned.terminal)
            held = True
            try:
                self.child = _Adopted(engine.path, start.flags, encoding=None,
                                      started=started)
            except BaseException:
                started.fileobj.close()
                raise
        except BaseException as exc:  # nothing started is left behind
            if spawned is not None:
                spawned.end(terminal=not held)
            self._restore()
            if isinstance(exc, pexpect.ExceptionPexpect):
                raise EnvironmentProblem(f"cannot start {engine.path}: {exc}") from None
            raise

    def _restore(self) -> None:
        """The signal handlers as they were; this session's pipes closed."""
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers = {}
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # --- control ---------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signal_received = signum
        self._wake()

    def _wake(self) -> None:
        """A reader waiting in lines() (in another thread, or paused) goes on at once."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    def request_stop(self) -> None:
        """Ask bpftrace to stop; lines() goes on until everything it had is read."""
        if not self._stop_requested:
            self._stop_requested = True
            self._wake()
        self._continue_if_stopped()
        if self._drain_started is not None or self._stop_sent_at is not None:
            return
        if self._drains and self._ready and self.child.isalive():
            self._drain_started = time.monotonic()
            _rename_self()  # the program's cue: stop reporting, mark every CPU
        else:
            self._send_stop()

    def _continue_if_stopped(self) -> None:
        """A bpftrace stopped by a signal (SIGSTOP, a debugger) can neither drain nor end:
        continue it. Its buffer may have overflowed meanwhile; it reports that as lost."""
        if _stopped(self.child.pid):
            self._resumed = True
            with contextlib.suppress(OSError):
                os.kill(self.child.pid, signal.SIGCONT)

    def _send_stop(self) -> None:
        if self._stop_sent_at is None and self.child.isalive():
            self._stop_sent_at = time.monotonic()
            with contextlib.suppress(OSError):
                self.child.kill(signal.SIGINT)

    def status(self, probes: str, attached: int) -> str:
        end = "Running the command." if self.command else "Hit Ctrl-C to end."
        return (f"Tracing {probes} with bpftrace {self.engine.version_text} "
                f"({attached} probes). {end}")

    def ready(self) -> None:
        """Every probe is attached: the command may run, and the program be drained."""
        self._ready = True
        if self.command is not None:
            self.command.release()
        release_in_background(self.child.pid)  # the compiler's pages, no longer needed

    def _take_marks(self, lines: list[bytes]) -> list[bytes]:
        """The lines without the program's marks. Once every CPU has marked its stream,
        bpftrace has printed every call reported before the stop; once a mark made
        after that is read too, so are the losses it counted meanwhile (0.23 prints them
        between reads of its buffer, not in it), and the marks' counts stand for the
        ones it prints at exit, as it prints them. Once a stats program's last report is
        printed, so is everything it counted. Either way it is sent SIGINT then (_drained),
        and what follows is not read."""
        kept: list[bytes] = []
        for line in lines:
            if line.startswith(MARK_LINE):
                with contextlib.suppress(ValueError, TypeError):
                    mark = Mark(*map(int, line[len(MARK_LINE):].split(b"\\n", 1)[0].split()))
                    self._totals[mark.cpu] = mark.total
                    if self._marked_at is not None and mark.time > self._marked_at:
                        return kept + self._drain_done(totals=True)
                continue
            kept.append(line)
            if line == LAST_LINE:
                return kept + self._drain_done(totals=False)
        if self._marked_at is None and self._totals.keys() >= self._cpus:
            if online_cpus() == self._cpus:
                self._marked_at = time.monotonic_ns()
            else:  # a CPU came or went: bpftrace's own counts, at its exit
                self._send_stop()
        return kept

    def _drain_done(self, *, totals: bool) -> list[bytes]:
        """The end of the output: SIGINT, and the counts the marks carried, if any."""
        self._drained = True
        self._send_stop()
        counts = {str(cpu): n for cpu, n in sorted(self._totals.items()) if n}
        if not totals or not counts:  # bpftrace prints no empty map
            return []
        return [json.dumps({"type": "map", "data": {f"@{TOTAL_MAP}": counts}}).encode()]

    # --- output ----------------------------------------------------------------------

    def lines(self) -> Iterator[bytes | None]:
        """JSON lines as they come; None on every tick (so callers can expire state).
        Stops on its own at the deadline, a signal, the command's exit or bpftrace's."""
        sel = selectors.DefaultSelector()
        sel.register(self._read_fd, selectors.EVENT_READ, "json")
        sel.register(self.child.child_fd, selectors.EVENT_READ, "log")
        pause = selectors.DefaultSelector()  # what ends a batch's pause early
        for wakes in (sel, pause):
            wakes.register(self._wake_r, selectors.EVENT_READ, "wake")
            if self.command is not None and self.command.pidfd >= 0:
                wakes.register(self.command.pidfd, selectors.EVENT_READ, "command")
        pending = b""
        json_open = True
        wait = 0.0  # the pause before the next read
        came = 0  # bytes read since the last pause
        came_before = 0  # between the two pauses before
        try:
            while json_open:
                self._check_stop_conditions()
                if wait and not self._stop_requested:
                    if self.deadline is not None:
                        wait = min(wait, max(0.0, self.deadline - time.monotonic()))
                    pause.select(wait)
                    came_before, came = came, 0
                wait = 0.0
                for key, _ in sel.select(TICK_S):
                    if key.data == "wake":
                        os.read(self._wake_r, 64)
                    elif key.data == "command":  # ended: seen by the stop conditions
                        sel.unregister(key.fd)
                        pause.unregister(key.fd)
                    elif key.data == "log":
                        if not self._read_log():
                            sel.unregister(self.child.child_fd)
                    else:
                        chunk = os.read(self._read_fd, READ_SIZE)
                        if not chunk:
                            json_open = False
                            break
                        came += len(chunk)
                        if len(chunk) < READ_SIZE:  # the pipe is empty
                            wait = pause_after(came, came_before, self._pipe_size)
                        pending += chunk
                        *complete, pending = pending.split(b"\n")
                        if self._drain_started is not None:
                            complete = self._take_marks(complete)
                        yield from complete
                        if self._drained:  # all the run needs has come
                            return
                yield None
            if pending:
                yield pending
        finally:
            sel.close()
            pause.close()

    def _check_stop_conditions(self) -> None:
        if self._signal_received is not None:
            self.request_stop()
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.request_stop()
        if self.command is not None and self.command.poll() is not None:
            self.request_stop()
        if self._drain_started is not None and \
                time.monotonic() - self._drain_started > DRAIN_WAIT_S:
            self._send_stop()  # a CPU's mark never came (bpftrace stalled or stopped)
        self._escalate()

    def _escalate(self) -> None:
        """Once SIGINT is sent: SIGTERM after TERM_AFTER_S, SIGKILL after STOP_GRACE_S."""
        if self._stop_sent_at is None or self._forced:
            return
        waited = time.monotonic() - self._stop_sent_at
        self._continue_if_stopped()  # stopped again since the request
        if waited > STOP_GRACE_S:
            self._forced = True
            self.child.terminate(force=True)
        elif waited > TERM_AFTER_S and not self._term_sent:
            self._term_sent = True
            with contextlib.suppress(OSError):
                self.child.kill(signal.SIGTERM)

    def _drain_log(self, timeout: float) -> None:
        """Read what the pty holds, waiting at most timeout (a plain read would block)."""
        with contextlib.suppress(OSError, ValueError):
            if select.select([self.child.child_fd], [], [], timeout)[0]:
                self._read_log()

    def _read_log(self) -> bool:
        try:
            data = os.read(self.child.child_fd, READ_SIZE)
        except OSError:  # EIO: the pty's other side is closed
            return False
        self._log += data
        return bool(data)

    # --- end ---------------------------------------------------------------------------

    def close(self, *, early: bool = False) -> Finished:
        """Stop whatever still runs and say how it ended. Safe to call twice. `early`: the
        consumer leaves before the end, which asks the stop."""
        if self._finished is not None:
            return self._finished
        self._stop_requested |= early
        drained = self._drained and self.child.isalive()
        if drained:
            try:
                threading.Thread(target=self._reap, name="bptrace-exec reaper",
                                 daemon=True).start()
            except RuntimeError:  # no thread to be had: wait, as for any other end
                drained = False
        if not drained and self.child.isalive():
            # Not a request: a bpftrace that closed its output may still be exiting (its
            # files close before it can be reaped), and must not count as asked to stop.
            self._send_stop()
            self._wait_for_end()
        status = None
        if not drained:
            with contextlib.suppress(Exception):
                while self._read_log():
                    pass
            with contextlib.suppress(Exception):
                self.child.close()
            status = self.child.exitstatus
            if status is None and self.child.signalstatus is not None:
                status = -self.child.signalstatus
        if self.command is not None:
            self.command.end()
        self._restore()
        for fd in (self._read_fd, self._program_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._finished = Finished(
            requested=self._stop_requested,
            engine_status=status,
            command_status=self.command.status if self.command else None,
            diagnostics=self.diagnostics(),
            forced=self._forced,
            resumed=self._resumed,
            drained=drained,
        )
        return self._finished

    def _wait_for_end(self) -> None:
        """Until bpftrace, sent SIGINT, has ended: SIGTERM, then SIGKILL if it does not."""
        while self.child.isalive() and not self._forced:
            self._escalate()
            self._drain_log(TICK_S)
        # killed: the kernel still detaches its probes before it is gone
        killed_at = time.monotonic()
        while self.child.isalive() and time.monotonic() - killed_at < KILLED_WAIT_S:
            time.sleep(TICK_S)

    def _reap(self) -> None:
        """A drained bpftrace ends as it would have while the run waited, then its
        terminal is closed. Were this process to end first, bpftrace goes with it
        (PR_SET_PDEATHSIG)."""
        with contextlib.suppress(Exception):
            self._wait_for_end()
        with contextlib.suppress(Exception):
            self.child.close()

    def diagnostics(self) -> list[str]:
        text = self._log.decode("utf-8", "replace").replace("\r\n", "\n")
        lines = [ln for ln in text.split("\n") if ln.strip()]
        return [ln for ln in lines if not any(p.search(ln) for p in _HARMLESS)]


def explain_failure(finished: Finished, program_text: str, *, tracing: bool,
                    defined_lines: int = 0, counting: bool = False) -> EngineFailure:
    """bpftrace stopped without being asked, or was killed: say why in plain words.
    `tracing`: its probes were attached, so the program itself was accepted;
    `defined_lines`: the kernel types' definitions put in the text it ran
    (run.kerneltypes), after the header comment; `counting`: its maps held the run's
    counts (stats), printed only when asked."""
    if tracing and finished.killed is not None:
        how = ("did not stop when asked and was killed" if finished.forced
               else f"was killed by signal {finished.killed} while tracing")
        if counting:
            return EngineFailure(f"bpftrace {how}: the counts it held since its last report "
                                 "are lost", hint="with --interval N, a report every N "
                                 "seconds keeps what was counted until then")
        return EngineFailure(f"bpftrace {how}: the records it still held are lost, and how "
                             "many calls the kernel saw is unknown",
                             hint="what was traced before is shown above; the end line's "
                                  "missing count is null")
    lines = finished.diagnostics
    located = _locate(lines, program_text, defined_lines)
    detail = "\n".join(f"  {ln}" for ln in lines[-12:]) or "  (it printed nothing)"
    status = finished.engine_status
    how = (f"was killed by signal {-status}" if status is not None and status < 0
           else f"exited with status {status}")
    message = f"bpftrace {how}:\n{detail}"
    if located:
        message += f"\n  generated program line {located}"
    hint = ("run with --emit script to see the whole program; if it is a verifier or "
            "compile error, please report it")
    if defined_lines:
        hint += f" (and try again with {SWITCH}=bpftrace)"
    return EngineFailure(message, hint=hint)


_LOCATION = re.compile(r"/dev/fd/\d+:(\d+):")


def _locate(lines: list[str], program_text: str, defined_lines: int) -> str:
    source = program_text.splitlines()
    header = next((i for i, ln in enumerate(source) if ln == HEADER_END), 0) + 1
    for ln in lines:
        match = _LOCATION.search(ln)
        if match:
            number = int(match.group(1))
            if header < number <= header + defined_lines:
                return (f"{number}, in the kernel types defined for it (set "
                        f"{SWITCH}=bpftrace to leave them to bpftrace)")
            number -= defined_lines if number > header else 0
            if 0 < number <= len(source):
                return f"{number}: {source[number - 1].strip()}"
    return ""
