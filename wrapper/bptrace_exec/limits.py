"""Every limit on what bptrace-exec reads, declared once: the checks, their messages and
the README's list (scripts/update-readme) are written from these.

Each lies far beyond any real use and well inside what breaks, as measured on bpftrace
0.17 and 0.23: hostile or mistaken input is refused at once, with the limit and its
reason (exit status 2), before it costs seconds, gigabytes or a crashed bpftrace.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from bptrace_exec.errors import EnvironmentProblem, SpecError, UsageError

MIB = 1 << 20


@dataclass(frozen=True)
class Limit:
    most: int
    unit: str  # what is counted
    what: str  # what is limited, as the README lists it
    why: str  # the reason, measured: in the README and in the error's hint
    instead: str  # what to do instead: the start of the error's hint

    @property
    def text(self) -> str:
        if self.unit == "bytes" and self.most % MIB == 0:
            return f"{self.most // MIB} MiB"
        return f"{self.most:,} {self.unit}"

    @property
    def hint(self) -> str:
        return f"{self.instead} ({self.why})"


PROFILE_BYTES = Limit(
    MIB, "bytes", "a profile file",
    "shipped profiles are 2 KB at most; PyYAML reads about a megabyte a second",
    "is it the right file?")
FILTER_VALUES = Limit(
    64, "values", "values in one filter (comm, uid, pid, ppid, cgroup or an argument's), "
    "in a profile or on the command line",
    "bpftrace compiles each value into every probe: with 256 in each list it took up to "
    "8 s to load; 400 comm names or 10,000 uids make bpftrace's compiler or the kernel's "
    "verifier refuse the program, or bpftrace crash",
    "filter on what the values share: a parent, a cgroup, a name prefix such as sh*")
PROFILE_NODES = Limit(
    4096, "YAML values", "keys, values and list items in a profile",
    "one with every filter list full holds about 800; PyYAML takes 40 us and 700 bytes "
    "for each: half a million took 20 s and 350 MB",
    f"a filter holds {FILTER_VALUES.text} at most; see probes/execve.yaml")
FILTER_STRING_BYTES = Limit(
    1024, "bytes", "string values in all the filters on arguments, together",
    "each is compared byte by byte in the kernel, after the string is read again: from "
    "about 2,500 bytes, bpftrace 0.23's compiler fails with a branch target out of range",
    "filter on shorter prefixes, such as /etc/*")
JSON_LINE_BYTES = Limit(
    4 * MIB, "bytes", "a line of `--stats --from FILE`",
    "the longest line --json writes is 1.2 MB: six string arguments of 32 KiB, each byte "
    "escaped",
    "--from reads the JSON lines that --json wrote")
LIMITS = (PROFILE_BYTES, PROFILE_NODES, FILTER_VALUES, FILTER_STRING_BYTES, JSON_LINE_BYTES)


def check(limit: Limit, count: int, where: str, what: str) -> None:
    """A SpecError when `what`, found at `where`, holds more than the limit allows."""
    if count > limit.most:
        raise over(limit, where, what, count)


def over(limit: Limit, where: str, what: str, count: int | None = None) -> SpecError:
    """`what` holds more than the limit: `count`, when it was counted to the end."""
    held = f"{count:,} {limit.unit}, over" if count is not None else "over"
    return SpecError(where, f"{what}: {held} the limit of {limit.text}", hint=limit.hint)


def too_large(source: str, size: int) -> SpecError:
    """A profile file over the limit, refused unparsed; `size` is what the file system
    says, which for a pipe or a file under /proc is not the size."""
    said = f"is {size:,} bytes" if size > PROFILE_BYTES.most else "is larger than that"
    return SpecError(source, f"a profile file is {PROFILE_BYTES.text} at most; this one "
                     f"{said}", hint=PROFILE_BYTES.hint)


def bounded_lines(stream: BinaryIO, source: str) -> Iterator[str]:
    """A stream's lines, decoded as --json wrote them. A line longer than the limit is an
    error as soon as the limit is read, so that no more than that is ever held (a file
    that is not JSON lines; /dev/zero, whose one line never ends)."""
    number = 0
    while line := stream.readline(JSON_LINE_BYTES.most + 1):
        number += 1
        if len(line) > JSON_LINE_BYTES.most and not line.endswith(b"\n"):
            raise UsageError(f"{source}:{number}: a line longer than {JSON_LINE_BYTES.text}: "
                             "not JSON lines written by --json", hint=JSON_LINE_BYTES.hint)
        yield line.decode("utf-8", "surrogateescape")


def out_of_memory(reading: str = "") -> EnvironmentProblem:
    """A MemoryError, with input within the limits: what is short is the memory this
    process may use (ulimit -v, a cgroup's memory.max). `reading`: what was being read."""
    what = f"out of memory while reading {reading}" if reading else "out of memory"
    return EnvironmentProblem(what, hint="raise the memory limit (ulimit -v, the service's "
                                         "MemoryMax), or give smaller input")
