"""Profile -> bpftrace program text, the same for every supported bpftrace version.

common: what every program shares (header, filters, entry, image and cleanup probes).
events: one exec -> a few printf records, joined again in user space (bptrace_exec.assemble).
calls: any other syscall -> a few printf records (bptrace_exec.assemble_calls).
stats: counts and a latency histogram in maps, printed at exit (bptrace_exec.stats);
  a light program of its own when only successful execs are counted.
"""

from __future__ import annotations

from bptrace_exec.codegen import calls, events, stats
from bptrace_exec.codegen.common import (
    READY,
    READY_RECORD,
    TEXT_CHUNK,
    Program,
    begin,
    describe_filters,
    end,
    enter_probe,
    exit_probe,
    follow_probes,
    header,
    image_probe,
    stop_probes,
)
from bptrace_exec.codegen.events import ARGC_COUNT_LIMIT, ARGC_UNSURE, BUF_CHUNK
from bptrace_exec.engine import STRLEN, Engine
from bptrace_exec.spec import Profile

__all__ = ["ARGC_COUNT_LIMIT", "ARGC_UNSURE", "BUF_CHUNK", "READY", "READY_RECORD", "STRLEN",
           "TEXT_CHUNK", "Program", "describe_filters", "generate"]


def generate(profile: Profile, engine: Engine | None = None, *, follow: bool = False) -> Program:
    """The bpftrace program for a profile; `follow` restricts it to $2 and descendants."""
    if profile.kind == "call":
        return Program(text=calls.generate_calls(profile, engine, follow),
                       probes=profile.probes, follow=follow, stats=False,
                       strlen=calls.CALL_STRLEN, not_self=not follow, drains=True)
    if profile.stats.enabled and stats.light(profile):
        details = (f"Limits: {STRLEN - 1} bytes of each program's path.",)
        sections = [header(profile, engine, follow, stats.LIGHT_LAYOUT, details=details),
                    begin(follow),
                    *stats.light_program(profile, follow)]
        return Program(text="\n".join(s for s in sections if s), probes=profile.probes,
                       follow=follow, stats=True)
    if profile.stats.enabled:
        scratch = stats.scratch(profile)
        sections = [
            header(profile, engine, follow, stats.LAYOUT),
            begin(follow),
            follow_probes() if follow else "",
            enter_probe(profile, follow, stats.enter_body(profile)),
            image_probe(""),
            stats.exit_probe(profile),
            stats.interval_probe(profile),
        ]
    else:
        enter = 0 if profile.filters.failed else 1
        scratch = events.scratch(profile)
        sections = [
            header(profile, engine, follow, events.LAYOUT),
            begin(follow),
            follow_probes() if follow else "",
            enter_probe(profile, follow, events.enter_body(emit_argv0=bool(enter))),
            image_probe(events.image_body(profile)),
            events.image_context_probe(profile),
            events.success_probe(profile, enter),
            events.failure_probe(profile, enter),
            stop_probes(),
        ]
    sections += [exit_probe(follow, scratch),
                 end(follow, scratch, drains=not profile.stats.enabled)]
    text = "\n".join(s for s in sections if s)
    return Program(text=text, probes=profile.probes, follow=follow,
                   stats=profile.stats.enabled, drains=not profile.stats.enabled)
