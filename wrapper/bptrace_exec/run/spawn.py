"""bpftrace's process, started the one way the tool starts it: its program and BTF in
files that live in memory, its records through a pipe, its log through a terminal of its
own, tracefs' list of events narrowed to the program's (run.eventlist), and death with
this process however it ends.

Light, on the standard library's bare modules: a start is also made before the rest of
the tool has loaded (run.prestart). ctypes and pty are imported when a start is made:
--help and --emit make none.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import struct
import termios

TYPE_CHECKING = False  # typing itself is not loaded for this: the early start waits for it
if TYPE_CHECKING:
    import ctypes

PROGRAM_NAME = "bptrace-exec-program.bt"
BTF_NAME = "bptrace-exec-no-types.btf"
PIPE_SIZE = 1 << 20  # room for bursts while the consumer renders
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# At their defaults in every child this process execs (bpftrace, a traced COMMAND): the
# tool handles the stop signals, Python ignores SIGPIPE and SIGXFSZ, and an exec keeps
# what is ignored (`while :; do echo y; done | head -1` would never end)
CHILD_DEFAULTS = (*STOP_SIGNALS, signal.SIGPIPE, signal.SIGXFSZ)
TERMINAL_SIZE = (24, 500)  # rows, columns: wide enough that no log line is wrapped
PR_SET_PDEATHSIG = 1
ENV_PREFIXES = ("BPFTRACE_", "MALLOC_")  # what a start sets in bpftrace's environment
TRACEFS_PREFIX = "/sys/kernel/"  # where tracefs' lists of events are

_CLONE_NEWNS = 0x20000
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_SLAVE = 1 << 19


class Listing:
    """A list of the program's tracepoints kept in the cache (run.eventlist): where it is,
    which file it is (as checked there), and the tracefs lists it stands in for."""

    __slots__ = ("path", "device", "inode", "targets")

    def __init__(self, path: str, device: int, inode: int, targets: tuple[str, ...]) -> None:
        self.path, self.device, self.inode, self.targets = path, device, inode, targets

    def _fields(self) -> tuple[object, ...]:
        return (self.path, self.device, self.inode, self.targets)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Listing) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]


class Start:
    """What bpftrace is started with. Two equal starts make the same process: the
    descriptors' numbers are the spawn's own."""

    __slots__ = ("engine", "flags", "env", "program", "btf", "listing", "tracer", "command")

    def __init__(self, engine: str, flags: list[str], env: dict[str, str], program: str,
                 btf: bytes | None, listing: Listing | None, tracer: int,
                 command: int | None) -> None:
        self.engine, self.flags, self.env, self.program = engine, flags, env, program
        self.btf = btf  # handed as BPFTRACE_BTF, in place of the kernel's
        self.listing = listing
        self.tracer = tracer  # the records' reader: the program's $1
        self.command = command  # the gated command's PID: its $2

    def _fields(self) -> tuple[object, ...]:
        return (self.engine, self.flags, self.env, self.program, self.btf, self.listing,
                self.tracer, self.command)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Start) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def to_text(self) -> str:
        """All but the PIDs, which are the next run's own."""
        listing = self.listing
        return json.dumps({
            "engine": self.engine, "flags": self.flags, "env": self.env,
            "program": self.program, "btf": None if self.btf is None else self.btf.hex(),
            "listing": None if listing is None else [
                listing.path, listing.device, listing.inode, list(listing.targets)]})

    @classmethod
    def from_text(cls, text: str, tracer: int) -> Start | None:
        """None for text that to_text did not write."""
        try:
            kept = json.loads(text)
            listing = kept["listing"]
            start = cls(kept["engine"], kept["flags"], kept["env"], kept["program"],
                        None if kept["btf"] is None else bytes.fromhex(kept["btf"]),
                        None if listing is None else Listing(
                            listing[0], listing[1], listing[2], tuple(listing[3])),
                        tracer, None)
        except (ValueError, TypeError, KeyError, IndexError):
            return None
        return start if start._fine() else None

    def _fine(self) -> bool:
        """Of the types to_text writes; only bpftrace's and malloc's variables set; a
        list bound over tracefs' lists of events only."""
        listing = self.listing
        return (isinstance(self.engine, str) and os.path.isabs(self.engine)
                and isinstance(self.program, str) and isinstance(self.flags, list)
                and all(isinstance(f, str) for f in self.flags)
                and isinstance(self.env, dict)
                and all(isinstance(k, str) and isinstance(v, str)
                        and k.startswith(ENV_PREFIXES) for k, v in self.env.items())
                and (listing is None or (
                    isinstance(listing.path, str) and isinstance(listing.device, int)
                    and isinstance(listing.inode, int)
                    and all(isinstance(t, str) and t.startswith(TRACEFS_PREFIX)
                            and t.endswith("/available_events") for t in listing.targets))))


class Spawned:
    """A bpftrace started: its PID, its terminal, the pipe's end its records come from,
    and its program's file (kept open for the messages that quote it)."""

    __slots__ = ("pid", "terminal", "records", "program_fd", "pipe_size")

    def __init__(self, pid: int, terminal: int, records: int, program_fd: int,
                 pipe_size: int) -> None:
        self.pid, self.terminal, self.records = pid, terminal, records
        self.program_fd, self.pipe_size = program_fd, pipe_size

    def end(self, *, terminal: bool = True) -> None:
        """Killed with its process group (it leads one: whatever a bpftrace script runs
        goes too), waited for, its descriptors closed (not `terminal` once another object
        holds it): for a start no run takes."""
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.waitpid(self.pid, 0)
        for fd in (self.terminal if terminal else -1, self.records, self.program_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def spawn(start: Start) -> Spawned:
    """bpftrace started; OSError if it could not be."""
    opened: list[int] = []  # closed here if a step fails
    try:
        program_fd = _in_memory(PROGRAM_NAME, start.program.encode(), opened)
        btf_fd = _in_memory(BTF_NAME, start.btf, opened) if start.btf is not None else -1
        records, write_fd = os.pipe()
        opened += [records, write_fd]
        os.set_inheritable(write_fd, True)
        with contextlib.suppress(OSError):
            fcntl.fcntl(records, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        pipe_size = fcntl.fcntl(records, fcntl.F_GETPIPE_SZ)
        argv = [start.engine, *start.flags, "-f", "json", "-o", f"/dev/fd/{write_fd}",
                f"/dev/fd/{program_fd}", str(start.tracer)]
        if start.command is not None:
            argv.append(str(start.command))
        env = {**os.environ, **start.env}
        if btf_fd >= 0:
            env["BPFTRACE_BTF"] = f"/dev/fd/{btf_fd}"
        pid, terminal = _fork(argv, env, [fd for fd in opened if fd != records],
                              _ChildSetup(start.listing))
    except BaseException:
        for fd in opened:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    os.close(write_fd)  # bpftrace holds the only writer: EOF means it is gone
    if btf_fd >= 0:
        os.close(btf_fd)  # bpftrace has its own
    return Spawned(pid, terminal, records, program_fd, pipe_size)


def _in_memory(name: str, data: bytes, opened: list[int]) -> int:
    """A descriptor bpftrace inherits (added to `opened`), of a file that lives in
    memory: nothing is left behind, however this process ends."""
    fd = os.memfd_create(name)
    opened.append(fd)
    view = memoryview(data)
    while view:  # a write may be short (a file-size limit): never a program cut
        view = view[os.write(fd, view):]
    os.set_inheritable(fd, True)
    return fd


def _fork(argv: list[str], env: dict[str, str], kept: list[int],
          setup: _ChildSetup) -> tuple[int, int]:
    """(PID, the terminal's side of this process) of argv run on a terminal of its own,
    with the `kept` descriptors and no other; once it has exec'd."""
    import pty

    said, say = os.pipe()  # the child's errno, if it could not exec; closed by the exec
    parent = os.getpid()
    try:
        pid, terminal = pty.fork()
    except BaseException:
        os.close(said)
        os.close(say)
        raise
    if pid == 0:
        said_why = b"1:"
        try:
            os.close(said)
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", *TERMINAL_SIZE, 0, 0))
            mode = termios.tcgetattr(0)
            mode[3] &= ~termios.ECHO
            termios.tcsetattr(0, termios.TCSANOW, mode)
            fcntl.fcntl(say, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
            keep = sorted({*kept, say})
            for low, high in zip([2, *keep], [*keep, os.sysconf("SC_OPEN_MAX")], strict=True):
                os.closerange(low + 1, high)
            setup(parent)
            os.execvpe(argv[0], argv, env)
        except BaseException as exc:  # whatever it is: said, then this process is gone
            errno = exc.errno if isinstance(exc, OSError) and exc.errno else 0
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            said_why = f"{errno}:{why or type(exc).__name__}".encode(errors="replace")
        finally:
            try:
                os.write(say, said_why)
            finally:
                os._exit(127)
    os.close(say)
    try:
        failed = os.read(said, 4096)
    except BaseException:
        _reap(pid, terminal)
        raise
    finally:
        os.close(said)
    if failed:
        _reap(pid, terminal)
        number, _, why = failed.decode(errors="replace").partition(":")
        raise OSError(int(number) if number.isdigit() else 0, why)
    return pid, terminal


def _reap(pid: int, terminal: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.waitpid(pid, 0)
    os.close(terminal)


class _ChildSetup:
    """In bpftrace's process, before exec: default signal dispositions (an ignored SIGHUP,
    as under nohup, would survive exec), death with this process however it ends (else,
    forked by another thread, its next write after this process is gone ends it), and
    the program's own list of tracepoints."""

    def __init__(self, listing: Listing | None) -> None:
        import ctypes  # loaded and looked up here: after the fork, only calls
        import threading

        libc = ctypes.CDLL(None, use_errno=True)
        self._prctl = libc.prctl
        self._narrow = _Narrow(listing, libc) if listing is not None else None
        # The kernel's "parent" is the thread that forks: a library's caller may start a
        # trace in a thread that ends before it does (Trace.close() ends bpftrace then)
        self._with_parent = threading.current_thread() is threading.main_thread()

    def __call__(self, parent: int) -> None:
        for sig in CHILD_DEFAULTS:
            signal.signal(sig, signal.SIG_DFL)
        if self._with_parent:
            self._prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # it ended before the line above: so does this
            os._exit(1)
        if self._narrow is not None:
            self._narrow()


class _Narrow:
    """Its own mount namespace, where every tracefs list of events is the program's. Set
    up here, so that after the fork nothing is loaded or looked up; a step that fails
    leaves the host's list in view."""

    def __init__(self, listing: Listing, libc: ctypes.CDLL) -> None:
        self.listing = listing
        self._unshare, self._mount = libc.unshare, libc.mount
        self._targets = [target.encode() for target in listing.targets]

    def __call__(self) -> None:
        if self._unshare(_CLONE_NEWNS) != 0:
            return
        # a slave: the host's mounts and unmounts still reach it, its own reach no one
        if self._mount(None, b"/", None, _MS_REC | _MS_SLAVE, None) != 0:
            return
        # opened in this namespace: a bind mount takes only a source that is in it
        try:
            fd = os.open(self.listing.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                         | os.O_CLOEXEC)
        except OSError:
            return
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (self.listing.device, self.listing.inode):
                return  # not the file that was checked
            source = f"/proc/self/fd/{fd}".encode()
            for target in self._targets:
                if os.path.exists(target):
                    self._mount(source, target, None, _MS_BIND, None)
        finally:
            os.close(fd)
