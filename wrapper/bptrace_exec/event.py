"""What flows out of the pipeline: one Event per traced call, its traced bytes exact.

Every probe gives the same base fields; what a profile captured (an exec's filename and
argv, and execveat's dirfd and flags; a syscall's arguments) is in `values`, by capture
name.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass, field

# A capture's value: a number, a string or address (bytes), a list of strings (argv), or
# None where this probe has no such capture.
Value = int | bytes | tuple[bytes, ...] | None

HOST_PID_NS = 0xEFFFFFFC  # PROC_PID_INIT_INO: the host's pid namespace
KILLED = "killed"  # a call whose caller was killed in it: its RET, its errno breakdown key


@dataclass(slots=True)
class Event:
    """One call, its records joined. Not frozen: built once per call on the hot path,
    where a frozen dataclass's per-field object.__setattr__ costs more than the rest."""

    time_ns: int  # wall clock (UTC, ns since the epoch) when the call was entered
    syscall: str  # the probe: execve, openat, ..., or process_exit
    pid: int
    tid: int
    ppid: int
    uid: int
    comm: bytes  # the caller's command name (an exec's: before the exec replaced it)
    ret: int  # the return value, -errno; a process's end: its status as a shell's $?
    latency_ns: int  # entry to return; a process's end: its lifetime
    values: dict[str, Value] = field(default_factory=dict)
    truncated: frozenset[str] = frozenset()  # captures cut by the limits
    incomplete: bool = False  # some of its records were lost; values may be partial
    parents: tuple[tuple[int, bytes], ...] = ()  # (pid, comm), nearest first
    context: ProcContext | None = None  # with the profile's context.container
    killed: bool = False  # the caller was killed as the call failed: what it returned no
    # one saw (strace's `= ?`); `ret` is then records.KILLED_RET, and there is no errno
    unreadable: tuple[str, ...] = ()  # strings that could not be read, shown as "": their
    # pages were not present ("filename", "argv/1"; a call that failed before copying them)
    who: Identity | None = None  # None: recorded by a version that did not read it
    # with the profile's context.cwd/exe (else None): the caller's working directory, and
    # the file its process runs (an exec's: the new program's; None for a failed exec),
    # absolute as the kernel's d_path gives them; "cwd"/"exe" in `truncated` when cut
    cwd: bytes | None = None
    exe: bytes | None = None
    # with context.env, a new program's variables asked for, (name, value) in its order
    # ("env" in `truncated`: its block was longer than read); None: not a new program
    env: tuple[tuple[bytes, bytes], ...] | None = None

    @property
    def errno(self) -> str | None:
        return None if self.killed else errno_name(self.ret)

    @property
    def outcome(self) -> str | None:
        """How a failed call ended: its errno, or that its caller was killed in it."""
        return KILLED if self.killed else self.errno

    def __getitem__(self, capture: str) -> Value:
        return self.values[capture]


UNSET = 0xFFFFFFFF  # a login uid or session id never set (AUDIT_UID_UNSET)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the caller is and which process image, read from the task in the kernel as the
    call returns; for an exec that succeeded, as the new program starts (its credentials
    after a setuid bit)."""

    gid: int
    euid: int
    egid: int
    loginuid: int | None  # who logged in (auditd's auid), kept across su and sudo
    sessionid: int | None  # the login session (auditd's ses)
    tty: str | None  # the controlling terminal: "pts/3", "tty1"
    exec_id: str  # the process image: unique on this host, across boots
    parent_exec_id: str  # the parent process's image then (reparented: the new parent's)


# Terminals' character devices (the kernel's Documentation/admin-guide/devices.txt)
_TTY_NODES = {(5, 0): "tty", (5, 1): "console", (5, 2): "ptmx"}
_TTY_PREFIXES = {166: "ttyACM", 188: "ttyUSB", 229: "hvc"}  # major -> name of minor 0


def tty_name(dev: int) -> str | None:
    """A terminal's name as ps shows it ("pts/3"), from MKDEV(major, minor); else
    "MAJOR:MINOR"; None for 0 (no terminal)."""
    if not dev:
        return None
    major, minor = dev >> 20, dev & 0xFFFFF
    if 136 <= major < 144:
        return f"pts/{(major - 136) * 256 + minor}"
    if major == 4:
        return f"tty{minor}" if minor < 64 else f"ttyS{minor - 64}"
    if (major, minor) in _TTY_NODES:
        return _TTY_NODES[major, minor]
    prefix = _TTY_PREFIXES.get(major)
    return f"{prefix}{minor}" if prefix else f"{major}:{minor}"


# Codes the kernel returns between its own functions, which user space never sees as such
# (a call interrupted by a signal is restarted, or fails with EINTR): named as the kernel
# and strace name them (include/linux/errno.h), never made up as E513.
KERNEL_INTERNAL = {512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND",
                   515: "ENOIOCTLCMD", 516: "ERESTART_RESTARTBLOCK", 517: "EPROBE_DEFER",
                   518: "EOPENSTALE", 519: "ENOPARAM"}


def errno_name(ret: int) -> str | None:
    """ENOENT for -2; None for a call that did not fail."""
    if ret >= 0:
        return None
    return errno.errorcode.get(-ret) or KERNEL_INTERNAL.get(-ret, f"E{-ret}")


# Container runtimes name the cgroup they put a container in after its id:
#   docker (systemd driver)    docker-<64 hex>.scope       (cgroupfs driver: <64 hex>)
#   containerd / CRI           cri-containerd-<64 hex>.scope
#   CRI-O                      crio-<64 hex>.scope
#   podman                     libpod-<64 hex>.scope
# and systemd names units: nginx.service, session-3.scope, user@1000.service.
_CONTAINER = re.compile(
    r"^(?:(?P<runtime>docker|cri-containerd|crio|libpod)-)?(?P<id>[0-9a-f]{64})(?:\.scope)?$")
_RUNTIMES = {"docker": "docker", "cri-containerd": "containerd", "crio": "cri-o",
             "libpod": "podman", None: "cgroupfs"}


@dataclass(frozen=True, slots=True)
class ProcContext:
    """The caller's cgroup and namespaces, read in the kernel at the time of the call."""

    cgroup_id: int
    cgroup: str  # the last name of the caller's cgroup v2 path ("" at the root)
    pidns: int
    mntns: int
    hostname: str
    path: str | None = None  # the cgroup's path under the cgroup2 mount, when found here

    @property
    def in_container(self) -> bool:
        return self.pidns != HOST_PID_NS

    @property
    def container(self) -> tuple[str, str] | None:
        """(runtime, container id), when the cgroup is named the way a runtime names it."""
        return container_of(self.cgroup)

    def short(self) -> str:
        """For a table cell: the container id's first 12 characters, as docker ps shows
        it, else the cgroup's name (a systemd unit), else "host" or "-"."""
        found = self.container
        if found:
            return found[1][:12]
        if self.cgroup:
            return self.cgroup
        return "-" if self.in_container else "host"

    def to_dict(self) -> dict[str, object]:
        found = self.container
        return {"cgroup_id": self.cgroup_id, "cgroup": self.cgroup, "cgroup_path": self.path,
                "container_id": found[1] if found else None,
                "runtime": found[0] if found else None, "in_container": self.in_container,
                "pidns": self.pidns, "mntns": self.mntns, "hostname": self.hostname}


def container_of(cgroup_name: str) -> tuple[str, str] | None:
    m = _CONTAINER.match(cgroup_name)
    return (_RUNTIMES[m.group("runtime")], m.group("id")) if m else None
