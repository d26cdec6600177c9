"""Profile -> one shell line, `bpftrace -e '...'`, that runs under plain bpftrace and shows
the same execs as text, one line each, without bptrace-exec.

Event mode gets a text program of its own (the main one prints records meant for the
parser): at return, one printf per exec with pid, ppid, uid, return value, latency (us),
the path and the first 64 bytes of argv as bpftrace's %r shows them (NULs between the
arguments print as \\x00). Strings are read 64 bytes at a time, bpftrace 0.17's default,
so no environment variable is needed. Stats mode is the stats program itself: bpftrace
prints its maps as text when it stops.
"""

from __future__ import annotations

import re
import shlex

from bptrace_exec import argtypes
from bptrace_exec.callspec import PROCESS_EXIT
from bptrace_exec.codegen import calls, stats
from bptrace_exec.codegen.common import (
    EXIT_FAILED,
    EXIT_SUCCEEDED,
    KEY,
    end,
    enter_probe,
    exit_probe,
    image_probe,
    predicate,
    result_test,
    tracepoints,
)
from bptrace_exec.spec import Profile

TEXT_STRLEN = 64
# bpftrace's lexer as far as layout goes: string literals, comments, white space, the rest
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|/\*.*?\*/|//[^\n]*|\s+|.', re.S)


def text_program(profile: Profile) -> str:
    scratch = ("exec_start", "exec_path")
    width = TEXT_STRLEN
    header = ('BEGIN { printf("%-7s %-7s %-6s %-5s %8s %s\\n", "PID", "PPID", "UID", "RET", '
              '"LAT(us)", "PROGRAM ARGS"); }\n')
    success = (
        "      $base = curtask->mm->arg_start;\n"
        "      $len = curtask->mm->arg_end - $base;\n"
        f"      if ($len > {width}) {{ $len = {width}; }}\n"
        '      printf("%-7d %-7d %-6d %-5d %8d %s %r\\n", pid, curtask->real_parent->tgid, '
        "uid, args->ret, $lat,\n"
        f"             str(uptr(curtask->mm->env_end), {width}), buf(uptr($base), $len));\n"
    )
    failure = (
        '      printf("%-7d %-7d %-6d %-5d %8d %s\\n", pid, curtask->real_parent->tgid, uid, '
        "args->ret, $lat,\n"
        f"             str(uptr(@exec_path[$key]), {width}));\n"
    )
    if profile.filters.failed:
        shown = "    if (args->ret != 0) {\n" + failure + "    }\n"
    elif profile.filters.succeeded:
        shown = "    if (args->ret == 0) {\n" + success + "    }\n"
    else:
        shown = "    if (args->ret == 0) {\n" + success + "    } else {\n" + failure + "    }\n"
    exit_ = (
        f"{tracepoints(profile, 'exit')}\n"
        "{\n"
        f"{KEY}"
        "  if ($id) {\n"
        "    $lat = (nsecs - $id) / 1000;\n"
        f"{shown}"
        "    delete(@exec_start[$key]);\n"
        "    delete(@exec_path[$key]);\n"
        "  }\n"
        "}\n"
    )
    sections = [
        header,
        enter_probe(profile, False, "  @exec_path[$key] = (uint64)args->filename;\n"),
        image_probe(""),
        exit_,
        exit_probe(False, scratch),
        end(False, scratch),
    ]
    return "\n".join(sections)


def compact(program: str) -> str:
    """One line: comments dropped, whitespace folded, string literals left as they are."""
    out: list[str] = []
    for token in _TOKEN.findall(program):
        if token.startswith('"') and len(token) > 1:
            out.append(token)
        elif token.isspace() or token.startswith(("//", "/*")) and len(token) > 1:
            if out and out[-1] != " ":
                out.append(" ")
        else:
            out.append(token)
    return "".join(out).strip()


def call_text_program(profile: Profile) -> str:
    """A syscall profile as text: one line per call, arguments as NAME=VALUE (numbers in
    decimal or hex, strings up to 63 bytes, addresses as hex bytes); with stats, counts
    by caller and errno and a latency histogram, printed by bpftrace when it stops."""
    head = '"%-7s %-16s %-10s %s\\n", "PID", "COMM", "SYSCALL", "ARGS = RET (LAT us)"'
    sections = [] if profile.stats.enabled else [f"BEGIN {{ printf({head}); }}\n"]
    sections += [calls.enter_probe(profile, s, False, not_self=False) for s in profile.probes]
    for syscall in profile.probes:
        ret = calls.return_setup(profile, syscall, TEXT_STRLEN)
        if profile.stats.enabled:
            body = ("    @calls[comm] = count();\n"
                    "    if ($ret < 0) { @errno[0 - $ret] = count(); }\n"
                    "    @latency_us = hist((nsecs - $id) / 1000);\n")
        else:
            fmt, values = ["%-7d %-16s %-10s"], ["pid", "comm", f'"{syscall}"']
            for slot in calls.slots(profile, syscall):
                name, read = slot.arg.name, slot.arg.read
                if read == "str":
                    fmt.append(f"{name}=%s")
                    values.append(f"str(uptr($c.{slot.word}), {TEXT_STRLEN})")
                elif read == "sockaddr":
                    fmt.append(f"{name}=%rh")
                    values.append(f"buf(uptr($c.{slot.word}), 28)")
                elif slot.arg.type in ("hex", "open_flags", "clone_flags"):
                    fmt.append(f"{name}=0x%lx")
                    values.append(f"$a{slot.number}")
                else:  # 32-bit C ints arrive zero-extended: shown signed, as C has them
                    bits = argtypes.TYPES[slot.arg.type].signed_bits
                    fmt.append(f"{name}=%d" if bits == 32 else f"{name}=%ld")
                    values.append(f"(int32)$a{slot.number}" if bits == 32
                                  else f"$a{slot.number}")
            body = (f'    printf("{" ".join(fmt)} = %ld (%d us)\\n", {", ".join(values)}, '
                    "$ret, (nsecs - $id) / 1000);\n")
        sections.append(calls.return_probe(syscall, ret, body))
    sections.append(f"END {{ clear(@{calls.SCRATCH}); }}\n")
    return "\n".join(sections)


def exit_text_program(profile: Profile) -> str:
    """Process exits as text: pid, comm, exit status, signal, lifetime in ms; with stats,
    counts by comm and by exit status, and a histogram of lifetimes."""
    tests = [predicate(profile.filters, False).strip()[1:-1],
             "curtask->signal->live.counter == 0"]
    tests.append(result_test(profile.filters, EXIT_FAILED, EXIT_SUCCEEDED))
    by_name = {a.name: a for a in profile.args}
    for name, values in profile.filters.args:
        source = by_name[name].source(PROCESS_EXIT)
        assert source is not None
        expr = calls.EXIT_FIELDS[source.field].replace("$code", "curtask->exit_code")
        tests.append("(" + " || ".join(f"({expr}) == {int(v)}" for v in values) + ")")
    test = " && ".join(c for c in tests if c)
    if profile.stats.enabled:
        body = ("  @exits[comm] = count();\n"
                "  @status[($code >> 8) & 0xff, $code & 0x7f] = count();\n"
                "  @lifetime_ms = hist($life / 1000000);\n")
    else:
        body = ('  printf("%-7d %-16s status=%d signal=%d core=%d life=%dms\\n", pid, comm, '
                "($code >> 8) & 0xff, $code & 0x7f, ($code >> 7) & 1, $life / 1000000);\n")
    return (
        "tracepoint:sched:sched_process_exit\n"
        f"/{test}/\n"
        "{\n"
        "  $code = (uint64)curtask->exit_code;\n"
        "  $life = nsecs - curtask->group_leader->start_time;\n"
        f"{body}"
        "}\n"
    )


def oneliner(profile: Profile, bpftrace: str = "bpftrace") -> str:
    if profile.probes == (PROCESS_EXIT,):
        program = exit_text_program(profile)
    elif profile.kind == "call":
        program = call_text_program(profile)
    elif profile.stats.enabled and stats.light(profile):
        program = "\n".join(s for s in stats.light_program(profile, False) if s)
    elif profile.stats.enabled:
        scratch = stats.scratch(profile)
        program = "\n".join(s for s in (
            enter_probe(profile, False, stats.enter_body(profile)), image_probe(""),
            stats.exit_probe(profile), stats.interval_probe(profile),
            exit_probe(False, scratch), end(False, scratch)) if s)
    else:
        program = text_program(profile)
    return f"{shlex.quote(bpftrace)} -e {shlex.quote(compact(program))}"
