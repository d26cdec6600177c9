"""A profile, checked: what to trace, which arguments to capture, what to keep and show.

Every probe is one of three kinds, and what differs between them is data, below: an exec
(execve, execveat: argv from the new image, counted in the kernel), a syscall (any
other, counted as calls go by), and the end of a process (sched_process_exit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EXEC_SYSCALLS = ("execve", "execveat")
PROCESS_EXIT = "process_exit"  # not a syscall: the end of a process's last thread
# what a profile's limits, stats and context may be set to
MAX_ARGS_RANGE = (1, 256)
# the most bpftrace 0.23 loads: its verifier gives up (a million instructions) near 7 KiB
ARGV_BYTES_RANGE = (200, 6144)
STRING_BYTES_RANGE = (1, 32768)
TOP_RANGE = (1, 1000)
INTERVAL_RANGE = (0, 86400)
PARENTS_RANGE = (0, 16)


@dataclass(frozen=True)
class GivenArg:
    """An argument every profile of a kind has: its name, its type (spec.types) and the
    tracepoint field each probe has it in (none listed: every probe, in the field of its
    name). A profile has it when one of its probes does."""

    name: str
    type: str
    fields: tuple[tuple[str, str], ...] = ()  # (probe, field)
    since: int = 1  # the first record version (records.VERSIONS) whose programs print it


@dataclass(frozen=True)
class ProbeKind:
    name: str
    unit: str  # what one event is, in counts and reports: execs, calls, exits
    event: str  # the JSON lines' "event"
    latency: str  # what the latency measures: "latency" (entry to return) or "lifetime"
    strlen: int  # bytes of one string read; bpftrace 0.17's 512-byte stack sets it
    fails_on_nonzero: bool  # a failure is ret != 0 (else ret < 0)
    kernel_counts: bool  # --stats counts in kernel maps (else as the events go by)
    attach: str  # "syscall": its sys_enter/sys_exit tracepoints; "process_end"
    new_image: bool  # a success starts a new program: read from it, the caller's name kept
    given_args: tuple[GivenArg, ...]  # its arguments, if they are not a choice
    args_at_top: bool  # JSON: the arguments are fields of their own (else under "args")
    limits: tuple[str, ...]  # which `limits` apply
    columns: tuple[str, ...]  # the default table; @args, @container, @parents and
    # @syscall (when there are several probes) stand for what the profile has
    aliases: dict[str, str] = field(default_factory=dict)  # breakdown -> argument

    def failed(self, ret: int) -> bool:
        return ret != 0 if self.fails_on_nonzero else ret < 0


# execveat's dirfd and flags tell `execveat(3, "true", ...)` from `execve("true", ...)`;
# they are columns only when asked for (--columns), and None for an execve.
EXEC_ARGS = (GivenArg("filename", "exec_path"), GivenArg("argv", "argv"),
             GivenArg("dirfd", "exec_dirfd", (("execveat", "fd"),), since=3),
             GivenArg("flags", "exec_flags", (("execveat", "flags"),), since=3))
# 0.17 keeps a string and a printf record on the 512-byte stack, each string twice: an
# exec's string reads are 81 bytes, 80 read, whole words (codegen.readers.ended; its one
# record, records.EXEC, carries its path chunk as those ten words); a syscall's call
# record with six arguments and a 200-byte string record together do not fit, 128-byte
# ones do.
_CALL_COLUMNS = ("time", "pid", "ppid", "uid", "comm", "@container", "@syscall", "@args",
                 "result", "latency", "@parents")
KINDS = {k.name: k for k in (
    ProbeKind("exec", "execs", "exec", "latency", 81, fails_on_nonzero=False,
              kernel_counts=True, attach="syscall", new_image=True,
              given_args=EXEC_ARGS, args_at_top=True, limits=("max_args", "argv_bytes"),
              columns=("time", "pid", "ppid", "uid", "comm", "@container", "result",
                       "latency", "@parents", "filename", "argv"),
              aliases={"program": "filename"}),
    ProbeKind("syscall", "calls", "call", "latency", 128, fails_on_nonzero=False,
              kernel_counts=False, attach="syscall", new_image=False, given_args=(),
              args_at_top=False, limits=("string_bytes",), columns=_CALL_COLUMNS),
    ProbeKind(PROCESS_EXIT, "exits", "exit", "lifetime", 128, fails_on_nonzero=True,
              kernel_counts=False, attach="process_end", new_image=False, given_args=(),
              args_at_top=True, limits=(), columns=_CALL_COLUMNS),
)}


def kind_of(probe: str) -> ProbeKind:
    if probe in EXEC_SYSCALLS:
        return KINDS["exec"]
    return KINDS[PROCESS_EXIT] if probe == PROCESS_EXIT else KINDS["syscall"]


@dataclass(frozen=True)
class Filters:
    """What to keep; every list is OR'd, the lists are AND'ed; all run in the kernel but
    a filter on an exec's argv (codegen.filters)."""

    comm: tuple[str, ...] = ()
    uid: tuple[int, ...] = ()
    euid: tuple[int, ...] = ()  # the effective uid at return: after an exec, the program's
    pid: tuple[int, ...] = ()
    ppid: tuple[int, ...] = ()
    failed: bool = False
    succeeded: bool = False  # the converse of failed; both false: every call
    args: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (argument, values)
    cgroup: tuple[str, ...] = ()  # cgroup v2 directories, exact (a container's, a unit's)
    in_container: bool | None = None  # True: only containerised callers; False: only host
    # paths, exact or a prefix ending in *, matched in bptrace-exec (pipeline.path_filter)
    cwd: tuple[str, ...] = ()
    exe: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limits:
    """How much is captured; anything beyond is flagged as truncated."""

    max_args: int = 64  # arguments kept of an exec
    argv_bytes: int = 4096  # bytes of argv read from a successful exec
    string_bytes: int = 4096  # bytes read of each string argument of a syscall


@dataclass(frozen=True)
class StatsSpec:
    """A report of counts instead of one row per call."""

    enabled: bool = False
    by: tuple[str, ...] = ()  # which breakdowns are kept (each a table)
    top: int = 10  # rows per breakdown in the report
    interval: int = 0  # seconds between reports; 0: only at the end
    latency: bool = True  # keep the latency histogram


# The paths a profile's context may ask for: the caller's working directory, the file its
# process runs (mm->exe_file); a path record's `which` is the index here (records.PATH).
PATHS = ("cwd", "exe")


@dataclass(frozen=True)
class Context:
    """Process context shown with every event."""

    parents: int = 0  # ancestors shown (pid and comm of each), nearest first
    container: bool = False  # cgroup, container id, pid/mount namespaces, UTS hostname
    cwd: bool = False  # the caller's working directory, walked in the kernel
    exe: bool = False  # the file its process runs (after an exec: the new program's)
    env: tuple[str, ...] = ()  # variables of a new program's environment shown; "*": all


@dataclass(frozen=True)
class ArgSource:
    """Where an argument comes from, for one probe."""

    probe: str
    field: str  # the tracepoint field
    index: int | None = None  # FIELD[N]: the Nth 64-bit word at the pointer FIELD
    length: str | None = None  # sockaddr: the field that holds its length


@dataclass(frozen=True)
class Arg:
    """An argument the profile captures: its name, its type (spec.types), and where each
    probe has it (a probe without a source shows nothing for it)."""

    name: str
    type: str
    sources: tuple[ArgSource, ...]
    # A number that the closing record of a probe without it carries too (0, read as
    # None): probes that differ only by it read alike at return and share one probe.
    padded: bool = False

    def source(self, probe: str) -> ArgSource | None:
        return next((s for s in self.sources if s.probe == probe), None)


@dataclass(frozen=True)
class Profile:
    name: str
    source: str
    description: str = ""
    probes: tuple[str, ...] = EXEC_SYSCALLS
    filters: Filters = field(default_factory=Filters)
    limits: Limits = field(default_factory=Limits)
    stats: StatsSpec = field(default_factory=StatsSpec)
    output_format: str = "table"
    args: tuple[Arg, ...] = ()
    result: str = "int"  # how a non-negative return value is shown
    columns: tuple[str, ...] = ()  # the table's columns
    context: Context = field(default_factory=Context)

    @property
    def kind(self) -> ProbeKind:
        """What the profile traces: its first probe's kind (an exec profile may trace the
        ends of processes too, `exits`)."""
        return kind_of(self.probes[0])

    @property
    def calls(self) -> tuple[str, ...]:
        """The syscalls traced: the probes but the end of a process."""
        return tuple(p for p in self.probes if p != PROCESS_EXIT)

    @property
    def exits(self) -> bool:
        """Whether an exec profile traces the ends of processes too, in the same stream."""
        return self.kind.new_image and PROCESS_EXIT in self.probes

    def arg(self, name: str) -> Arg | None:
        return next((a for a in self.args if a.name == name), None)
