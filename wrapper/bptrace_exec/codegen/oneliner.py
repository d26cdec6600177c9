"""Profile -> one shell line, `bpftrace -e '...'`, that runs under plain bpftrace and shows
the same calls as text, one line each, without bptrace-exec.

Event mode gets a text program of its own (the main one prints records meant for the
parser). An exec: at return, pid, ppid, uid, return value, latency (us), the path and the
first 64 bytes of argv as bpftrace's %r shows them (NULs between the arguments print as
\\x00). A syscall: its arguments as NAME=VALUE. The end of a process: its status, signal
and lifetime. Strings are read 64 bytes at a time, bpftrace 0.17's default, so no
environment variable is needed. Stats mode counts in maps that bpftrace prints as text
when it stops (an exec profile's: its stats program).
"""

from __future__ import annotations

import re
import shlex

from bptrace_exec.codegen import readers, stats
from bptrace_exec.codegen.events import BASE_WORDS, entry_tuple
from bptrace_exec.codegen.filters import arg_conditions, path_conditions
from bptrace_exec.codegen.program import (
    EXIT_FAILED,
    EXIT_SUCCEEDED,
    PPID,
    TID,
    end,
    euid_test,
    predicate,
    probe,
    result_test,
)
from bptrace_exec.codegen.readers import word
from bptrace_exec.errors import UsageError
from bptrace_exec.spec import types
from bptrace_exec.spec.captures import paths_read
from bptrace_exec.spec.model import Limits, Profile
from bptrace_exec.spec.parse import run_here

TEXT_STRLEN = 64
# bpftrace's lexer as far as layout goes: string literals, comments, white space, the rest
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|/\*.*?\*/|//[^\n]*|\s+|.', re.S)


def oneliner(profile: Profile, bpftrace: str = "bpftrace") -> str:
    if here := run_here(profile):
        raise UsageError(f"a filter on {' and '.join(here)} runs in bptrace-exec, not in "
                         "bpftrace: a one-liner cannot have it",
                         hint="filter on filename instead, or run bptrace-exec itself")
    if paths := paths_read(profile):
        raise UsageError(f"a one-liner shows no {' or '.join(paths)}: walking a path "
                         "takes the records of a full program",
                         hint="use --emit script, or drop " + ", ".join(
                             f"--{w} and --where {w}=" for w in paths))
    if profile.context.env:
        raise UsageError("a one-liner shows no environment: reading it takes the records "
                         "of a full program", hint="use --emit script, or drop --env")
    limits = profile.limits
    if profile.kind.new_image and limits != Limits(string_bytes=limits.string_bytes):
        raise UsageError(f"a one-liner shows the first {TEXT_STRLEN} bytes of argv, whatever "
                         "the limits", hint="use --emit script, or drop --max-args and "
                         "--argv-bytes (limits in the profile)")
    if profile.exits:
        raise UsageError("a one-liner traces execs or the ends of processes, not both",
                         hint="one for each: --emit oneliner of execve, and of exit")
    if profile.kind.attach == "process_end":
        program = exit_text_program(profile)
    elif not profile.kind.new_image:
        program = call_text_program(profile)
    elif profile.stats.enabled and stats.light(profile):
        program = "\n".join(stats.light_probes(profile, False, stats.PLAIN))
    elif profile.stats.enabled:
        program = "\n".join(stats.full_probes(profile, False, stats.PLAIN)
                            + [end(["call", "moved"])])
    else:
        program = exec_text_program(profile)
    return f"{shlex.quote(bpftrace)} -e {shlex.quote(compact(program))}"


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


def exec_text_program(profile: Profile) -> str:
    width = TEXT_STRLEN
    head = probe(["BEGIN"], [], '  printf("%-7s %-7s %-6s %-5s %8s %s\\n", "PID", "PPID", '
                 '"UID", "RET", "LAT(us)", "PROGRAM ARGS");\n')
    line = '"%-7d %-7d %-6d %-5d %8d %s'
    success = (
        "      $base = curtask->mm->arg_start;\n"
        "      $len = curtask->mm->arg_end - $base;\n"
        f"      if ($len > {width}) {{ $len = {width}; }}\n"
        f'      printf({line} %r\\n", pid, {PPID}, uid, args->ret, $lat,\n'
        f"             str(uptr(curtask->mm->env_end), {width}), buf(uptr($base), $len));\n")
    failure = (f'      printf({line}\\n", pid, {PPID}, uid, args->ret, $lat,\n'
               f"             str(uptr({word(1)}), {width}));\n")
    # the path filter: on the kernel's copy in the new image, or on the caller's string
    success = _within(path_conditions(profile, "curtask->mm->env_end", width), success, 6)
    failure = _within(path_conditions(profile, word(1), width), failure, 6)
    shown = {"failed": f"    if (args->ret != 0) {{\n{failure}    }}\n",
             "succeeded": f"    if (args->ret == 0) {{\n{success}    }}\n",
             "": f"    if (args->ret == 0) {{\n{success}    }} else {{\n{failure}    }}\n"}
    enter = probe([f"tracepoint:syscalls:sys_enter_{p}" for p in profile.probes],
                  predicate(profile.filters, False, not_self=False),
                  f"  @call[{TID}] = (nsecs, (uint64)args->filename);\n")
    # word(0) and word(1) below: the entry time and the caller's path
    image = probe(["tracepoint:sched:sched_process_exec"], ["@call[(uint64)args->old_pid].0"],
                  "  $key = (uint64)args->old_pid;\n"
                  "  if ($key != (uint64)args->pid) { @moved[(uint64)args->pid] = $key; }\n")
    exit_ = probe(
        [f"tracepoint:syscalls:sys_exit_{p}" for p in profile.probes], [],
        f"  $tid = {TID};\n  $key = $tid;\n"
        "  if (@moved[$tid]) { $key = @moved[$tid]; delete(@moved[$tid]); }\n"
        f"  if ({word(0)}) {{\n"
        f"    $lat = (nsecs - {word(0)}) / 1000;\n"
        + _within(euid_test(profile.filters), shown[result_test(profile.filters, "failed",
                                                                 "succeeded")])
        + "    delete(@call[$key]);\n  }\n")
    forget = probe(["tracepoint:sched:sched_process_exit"], [],
                   f"  $tid = {TID};\n  if (@call[$tid].0) {{ delete(@call[$tid]); }}\n")
    return "\n".join([head, enter, image, exit_, forget, end(["call", "moved"])])


def _within(conditions: list[str], body: str, indent: int = 4) -> str:
    """Statements (indented by `indent`) run only when the conditions hold."""
    if not conditions:
        return body
    pad = " " * indent
    return (f"{pad}if ({' && '.join(conditions)}) {{\n"
            + "".join("  " + line if line.strip() else line for line in body.splitlines(True))
            + f"{pad}}}\n")


def call_text_program(profile: Profile) -> str:
    """A syscall profile as text: one line per call, arguments as NAME=VALUE (numbers in
    decimal or hex, strings up to 63 bytes, addresses as hex bytes); with stats, counts
    by caller and errno and a latency histogram, printed by bpftrace when it stops."""
    head = '"%-7s %-16s %-10s %s\\n", "PID", "COMM", "SYSCALL", "ARGS = RET (LAT us)"'
    sections = [] if profile.stats.enabled else [f"BEGIN {{ printf({head}); }}\n"]
    for name in profile.probes:
        sections.append(probe([f"tracepoint:syscalls:sys_enter_{name}"],
                              predicate(profile.filters, False, not_self=False),
                              f"  @call[{TID}] = {entry_tuple(profile, name, 'nsecs')};\n"))
    for name in profile.probes:
        slots = readers.slots(profile, name, BASE_WORDS)
        if profile.stats.enabled:
            body = ("    @calls[comm] = count();\n"
                    "    if ($ret < 0) { @errno[0 - $ret] = count(); }\n"
                    f"    @latency_us = hist((nsecs - {word(0)}) / 1000);\n")
        else:
            fmt, values = ["%-7d %-16s %-10s"], ["pid", "comm", f'"{name}"']
            for slot in slots:
                fmt.append(f"{slot.arg.name}={_conversion(slot)}")
                values.append(_text_value(slot))
            body = (f'    printf("{" ".join(fmt)} = %ld (%d us)\\n", {", ".join(values)}, '
                    f"$ret, (nsecs - {word(0)}) / 1000);\n")
        conditions = [c for c in [result_test(profile.filters, "$ret < 0", "$ret >= 0"),
                                  *arg_conditions(profile, name, slots, TEXT_STRLEN),
                                  *euid_test(profile.filters)] if c]
        if conditions:
            body = f"  if ({' && '.join(conditions)}) {{\n{body}  }}\n"
        else:
            body = "".join(line[2:] for line in body.splitlines(True))
        setup = (f"  $key = {TID};\n  $ret = args->ret;\n"
                 + "".join(f"  $a{s.number} = {readers.int_value(s)};\n"
                           for s in slots if s.read == "int"))
        sections.append(probe([f"tracepoint:syscalls:sys_exit_{name}"],
                              [f"@call[{TID}].0"], setup + body + "  delete(@call[$key]);\n"))
    sections.append("END { clear(@call); }\n")
    return "\n".join(sections)


def _conversion(slot: readers.Slot) -> str:
    if slot.read == "str":
        return "%s"
    if slot.read == "sockaddr":
        return "%rh"
    if slot.arg.type in ("hex", "open_flags", "clone_flags"):
        return "0x%lx"
    return "%d" if types.of(slot.arg.type).signed_bits == 32 else "%ld"


def _text_value(slot: readers.Slot) -> str:
    if slot.read == "str":
        return f"str(uptr({readers.word(slot.word)}), {TEXT_STRLEN})"
    if slot.read == "sockaddr":
        return f"buf(uptr({readers.word(slot.word)}), 28)"
    if types.of(slot.arg.type).signed_bits == 32:  # 32-bit C ints arrive zero-extended
        return f"(int32)$a{slot.number}"
    return f"$a{slot.number}"


def exit_text_program(profile: Profile) -> str:
    """Process exits as text: pid, comm, exit status, signal, lifetime in ms; with stats,
    counts by comm and by exit status, and a histogram of lifetimes."""
    slots = readers.slots(profile, profile.probes[0], BASE_WORDS)
    arg_tests = arg_conditions(profile, profile.probes[0], slots)
    for slot in slots:  # in the predicate: the values read from the task there
        arg_tests = [t.replace(f"$a{slot.number}", f"({readers.int_value(slot)})")
                     for t in arg_tests]
    tests = [*predicate(profile.filters, False, not_self=False),
             "curtask->signal->live.counter == 0",
             result_test(profile.filters, EXIT_FAILED, EXIT_SUCCEEDED), *arg_tests,
             *euid_test(profile.filters)]
    if profile.stats.enabled:
        body = ("  @exits[comm] = count();\n"
                "  @status[($code >> 8) & 0xff, $code & 0x7f] = count();\n"
                "  @lifetime_ms = hist($life / 1000000);\n")
    else:
        body = ('  printf("%-7d %-16s status=%d signal=%d core=%d life=%dms\\n", pid, comm, '
                "($code >> 8) & 0xff, $code & 0x7f, ($code >> 7) & 1, $life / 1000000);\n")
    condition = " && ".join(t for t in tests if t).replace("$code", "curtask->exit_code")
    # a header, as the other one-liners print once every probe is attached
    head = ("" if profile.stats.enabled else
            'BEGIN { printf("%-7s %-16s %s\\n", "PID", "COMM", "EXIT"); }\n\n')
    return head + probe(["tracepoint:sched:sched_process_exit"], [condition],
                        "  $code = (uint64)curtask->exit_code;\n"
                        "  $life = nsecs - curtask->group_leader->start_time;\n" + body)
