"""Profile -> bpftrace program text, the same for every supported bpftrace version but
for a line of settings on 0.22+ (program.ON_STACK_LIMIT).

program: what every program shares (header, filters, start, follow, stop, end, printf);
events: the event program, any probe: records per call (records.py), joined again by
the parser; readers: how each kind of argument is read; filters: filters on arguments;
context: process context records; stats: an exec profile's counts in kernel maps;
oneliner: a `bpftrace -e` line to paste; btlang: the only way values enter the text.
"""

from __future__ import annotations

from bptrace_exec.codegen.events import generate_events
from bptrace_exec.codegen.program import Program
from bptrace_exec.codegen.stats import PATH_STRLEN, generate_stats
from bptrace_exec.spec.model import Profile
from bptrace_exec.spec.parse import counted_from_events

__all__ = ["Program", "counts_in_kernel", "generate"]


def counts_in_kernel(profile: Profile) -> bool:
    """--stats of an exec profile counts in maps; every other program reports events,
    and so does one that needs what only bptrace-exec has (a filter on argv, a path):
    its events are counted as they go by."""
    return (profile.stats.enabled and profile.kind.kernel_counts
            and not counted_from_events(profile))


def generate(profile: Profile, version: str | None = None, *, follow: bool = False) -> Program:
    """The bpftrace program for a profile, for bpftrace `version` (said in its header, and
    0.22+ given its settings);
    `follow` restricts it to the command given as $2 and its descendants."""
    if counts_in_kernel(profile):
        return Program(generate_stats(profile, version, follow), PATH_STRLEN)
    return Program(generate_events(profile, version, follow), profile.kind.strlen)
