"""Syscall profile -> bpftrace program: one entry and one return probe per syscall.

At entry the arguments are kept, as 64-bit words, in one tuple per thread; at return
the filters on arguments run, strings and socket addresses are read from the caller's
memory (the kernel has faulted those pages in by then) and the call is printed as a few
records that share a key, the thread id and the entry time:

  str   TID ID SLOT CHUNK NEXT TEXT     a string argument, 127 bytes per chunk
  addr  TID ID SLOT HEX...              a socket address, its bytes
  call  TID ID RECORDS SYSCALL RET LAT PID PPID UID COMM(16 hex) INT...
  anc, cgrp, uts                        process context, if asked (codegen.context)

SYSCALL is the index of the syscall in the profile's probes, INT the number arguments
in the profile's order, RECORDS the number of records of the call, this one included.
@call_total counts the calls reported, in the kernel; bpftrace prints it at exit.

`process_exit` is not a syscall: one `call` record per process that ends, from
sched_process_exit (see process_exit_probe), with the same layout.
"""

from __future__ import annotations

import dataclasses
import textwrap
from dataclasses import dataclass

from bptrace_exec import argtypes
from bptrace_exec.btlang import int_literal, string_literal
from bptrace_exec.callspec import PROCESS_EXIT, Arg, ArgSource
from bptrace_exec.codegen.common import (
    EXIT_FAILED,
    EXIT_SUCCEEDED,
    PID,
    STOP,
    TID,
    describe_filters,
    follow_probes,
    header,
    predicate,
    result_test,
    stop_probes,
)
from bptrace_exec.codegen.common import begin as common_begin
from bptrace_exec.codegen.context import context_records
from bptrace_exec.engine import Engine
from bptrace_exec.spec import STRING_BYTES_RANGE, Filters, Profile

# bpftrace 0.17 keeps a string and a printf record on the 512-byte stack: the call record
# with six arguments and a 200-byte string record together do not fit, 128-byte ones do.
CALL_STRLEN = 128
CHUNK = CALL_STRLEN - 1
SCRATCH = "call"
TOTAL = "call_total"
LAYOUT = """One call is a `call` record, preceded by `str` and `addr` records for its string
and address arguments, joined by (TID, ID); bptrace-exec reads them back into one
row. See `pydoc bptrace_exec.codegen.calls` for the layout."""


@dataclass(frozen=True)
class Slot:
    """Where one argument's word sits in the entry tuple of one syscall."""

    arg: Arg
    number: int  # the argument's position in the profile: SLOT in str/addr records
    source: ArgSource
    word: int  # index in the entry tuple
    length_word: int = 0  # sockaddr: the index of its length


def slots(profile: Profile, syscall: str) -> list[Slot]:
    out, word = [], 1  # word 0 is the entry time
    for number, arg in enumerate(profile.args):
        source = arg.source(syscall)
        if source is None:
            continue
        length_word = word + 1 if arg.read == "sockaddr" else 0
        out.append(Slot(arg, number, source, word, length_word))
        word += 2 if length_word else 1
    return out


def call_header(profile: Profile, engine: Engine | None, follow: bool) -> str:
    args = ", ".join(f"{a.name} ({a.type})" for a in profile.args) or "none"
    base = dataclasses.replace(profile.filters, args=())
    unit = "processes" if profile.probes == (PROCESS_EXIT,) else "calls"
    parts = [describe_filters(base, follow, unit) if base != Filters() or follow else "",
             describe_arg_filters(profile)]
    return header(profile, engine, follow, LAYOUT, strlen=CALL_STRLEN, leave_out=not follow,
                  filters="; ".join(p for p in parts if p) or "none (every call on the host)",
                  details=(f"Syscalls: {', '.join(profile.probes)}. Arguments: {args}.",
                           f"Limits: {profile.limits.string_bytes} bytes per string argument."))


def describe_arg_filters(profile: Profile) -> str:
    return "; ".join(f"{name} in [" + ", ".join(map(str, values)) + "]"
                     for name, values in profile.filters.args)


def enter_probe(profile: Profile, syscall: str, follow: bool, not_self: bool = True) -> str:
    words = ["nsecs"]
    for slot in slots(profile, syscall):
        words.append(f"(uint64)args->{slot.source.field}")
        if slot.length_word:
            words.append(f"(uint64)args->{slot.source.length}")
    if len(words) == 1:
        words.append("(uint64)0")  # a tuple has two elements at least
    return (
        f"tracepoint:syscalls:sys_enter_{syscall}\n"
        f"{predicate(profile.filters, follow, not_self=not_self)}"
        "{\n"
        f"  @{SCRATCH}[{TID}] = ({', '.join(words)});\n"
        "}\n"
    )


LITERAL_MAX = 63  # bpftrace 0.17 refuses string literals of 64 bytes and more


def _string_match(pointer: str, value: str, strlen: int) -> str:
    """The string at `pointer` equals value, or starts with it if value ends in `*`.
    Long values are compared piece by piece: a literal holds 63 bytes at most."""
    prefix = value.endswith("*") and len(value) > 1
    raw = (value[:-1] if prefix else value).encode("utf-8", "surrogateescape")
    # a piece shorter than a read: the read shows whether the string goes on after it
    size = min(LITERAL_MAX, strlen - 2)
    pieces = [raw[i:i + size] for i in range(0, len(raw), size)]
    tests = []
    for n, piece in enumerate(pieces):
        at = f"uptr({pointer} + {n * size})" if n else f"uptr({pointer})"
        literal = string_literal(piece.decode("utf-8", "surrogateescape"))
        if prefix or n < len(pieces) - 1:
            tests.append(f"strncmp(str({at}, {strlen}), {literal}, {len(piece)}) == 0")
        else:
            tests.append(f"str({at}, {strlen}) == {literal}")
    return tests[0] if len(tests) == 1 else "(" + " && ".join(tests) + ")"


def _value(slot: Slot) -> str:
    """An argument's value at return: the word itself, or the word it points to."""
    if slot.source.index is None:
        return f"$c.{slot.word}"
    return f"*(uint64 *)uptr($c.{slot.word} + {slot.source.index * 8})"


def _unsigned(value: int, bits: int) -> str:
    """A filter value as the kernel sees the field: `bits` wide, unsigned."""
    masked = value & ((1 << bits) - 1)
    if masked < 1 << 63:
        return str(masked)
    return f"(uint64)(0 - {(1 << 64) - masked})"


def condition(slot: Slot, values: tuple[object, ...], strlen: int = CALL_STRLEN) -> str:
    """The filter on one argument, on its value at return ($aN, or the string read)."""
    arg_type = argtypes.TYPES[slot.arg.type]
    var = f"$a{slot.number}"
    alts = []
    for v in values:
        if arg_type.read == "str":
            alts.append(_string_match(f"$c.{slot.word}", str(v), strlen))
        elif arg_type.name in ("open_flags", "clone_flags"):
            bit = int(v)  # type: ignore[call-overload]
            if arg_type.name == "open_flags" and bit in (0, 1, 2):
                alts.append(f"({var} & 3) == {bit}")
            else:
                alts.append(f"({var} & {_unsigned(bit, 64)}) != 0")
        else:
            bits = arg_type.signed_bits or 64
            mask = f" & {(1 << bits) - 1}" if bits < 64 else ""
            alts.append(f"({var}{mask}) == {_unsigned(int(v), bits)}")  # type: ignore[call-overload]
    return alts[0] if len(alts) == 1 else "(" + " || ".join(alts) + ")"


@dataclass(frozen=True)
class Return:
    """What every return probe starts with: the entry's words, each number argument in
    $aN, and the filters on arguments as one condition ("" when there are none)."""

    setup: str
    ints: list[str]
    guard: str


def return_setup(profile: Profile, syscall: str, strlen: int = CALL_STRLEN) -> Return:
    lines = [
        f"$key = {TID};",
        f"$c = @{SCRATCH}[$key];",
        f"delete(@{SCRATCH}[$key]);",
        "$id = $c.0;",
        "$ret = args->ret;",
    ]
    ints, conditions = [], []
    wanted = dict(profile.filters.args)
    for slot in slots(profile, syscall):
        if slot.arg.read == "int":
            lines.append(f"$a{slot.number} = {_value(slot)};")
            ints.append(f"$a{slot.number}")
        if slot.arg.name in wanted:
            conditions.append(condition(slot, wanted[slot.arg.name], strlen))
    if any(a.source(syscall) is None for a in profile.args if a.name in wanted):
        conditions.append("0")  # filtered on an argument this syscall does not have
    if test := result_test(profile.filters, "$ret < 0", "$ret >= 0"):
        conditions.insert(0, test)
    if len(conditions) == 1 and conditions[0].startswith("(") and conditions[0].endswith(")"):
        conditions[0] = conditions[0][1:-1]
    setup = "".join(f"  {line}\n" for line in lines)
    return Return(setup, ints, " && ".join(conditions))


def return_probe(syscall: str, ret: Return, body: str) -> str:
    """The return probe: `body` (indented by four) runs for calls the filters keep."""
    body = f"  if ({ret.guard}) {{\n{body}  }}\n" if ret.guard else _dedent(body)
    return (
        f"tracepoint:syscalls:sys_exit_{syscall}\n"
        f"/@{SCRATCH}[{TID}].0/\n"
        "{\n"
        f"{ret.setup}"
        f"{body}"
        "}\n"
    )


def exit_probe(profile: Profile, syscall: str, index: int) -> str:
    chunks = -(-int(int_literal(profile.limits.string_bytes, *STRING_BYTES_RANGE))
               // CHUNK)
    ret = return_setup(profile, syscall)
    reads = ["    $n = (uint64)1;\n"]
    for slot in slots(profile, syscall):
        n = slot.number
        if slot.arg.read == "str":
            reads.append(
                f"    $p = $c.{slot.word};\n"
                "    $i = (uint64)0;\n"
                f"    while ($i < {chunks}) {{\n"
                f'      printf("str %lu %lu {n} %lu %u %s\\n", $key, $id, $i,\n'
                f"             *(uint8 *)uptr($p + ($i + 1) * {CHUNK}),\n"
                f"             str(uptr($p + $i * {CHUNK}), {CALL_STRLEN}));\n"
                "      $i++;\n"
                f"      if (*(uint8 *)uptr($p + $i * {CHUNK} - 1) == 0 ||\n"
                f"          *(uint8 *)uptr($p + $i * {CHUNK}) == 0) {{ break; }}\n"
                "    }\n"
                "    $n += $i;\n")
        elif slot.arg.read == "sockaddr":
            reads.append(
                f"    $len = $c.{slot.length_word};\n"
                f"    if ($len > {argtypes.SOCKADDR_MAX}) {{ $len = {argtypes.SOCKADDR_MAX}; }}\n"
                f'    printf("addr %lu %lu {n} %rh\\n", $key, $id, buf(uptr($c.{slot.word}), '
                "$len));\n"
                "    $n++;\n")
    reads.append(context_records(profile, CALL_STRLEN))
    # no call is reported once the reader has asked for the end (codegen.common.stop_probes)
    ret = dataclasses.replace(ret, guard=" && ".join(g for g in (f"!{STOP}", ret.guard) if g))
    return return_probe(syscall, ret, "".join(reads)
                        + call_record(index, "nsecs - $id", ret.ints))


def call_record(index: int, latency: str, ints: list[str]) -> str:
    """The `call` record that closes a call (indented by four), and its count."""
    fmt = " ".join(["call %lu %lu %lu %u %ld %lu %lu %lu %lu %rh"] + ["%lu"] * len(ints))
    values = ", ".join(["$key", "$id", "$n", str(index), "$ret", latency, PID,
                        "(uint64)curtask->real_parent->tgid", "(uint64)uid",
                        "buf(comm, 16)", *ints])
    wrapped = textwrap.fill(values, width=88, initial_indent=" " * 11,
                            subsequent_indent=" " * 11, break_long_words=False,
                            break_on_hyphens=False)
    return (
        f'    printf("{fmt}\\n",\n'
        f"{wrapped});\n"
        f"    @{TOTAL}[0] = count();  // printed at exit: user space reports any gap\n"
    )


def _dedent(text: str) -> str:
    return "".join(line[2:] if line.startswith("  ") else line for line in text.splitlines(True))


# exit_code as wait(2) sees it: status << 8 when it exited, the signal (| 0x80 with a
# core dump) when one killed it
EXIT_FIELDS = {"status": "($code >> 8) & 0xff", "signal": "$code & 0x7f",
                "core": "($code >> 7) & 1"}


def process_exit_probe(profile: Profile, follow: bool) -> str:
    """One record per process that ends: RET is its shell-style status (128 + signal when
    killed), the latency its lifetime. It runs for every thread exit: the filters and
    the "last thread" test decide inside, so that a followed thread is always forgotten."""
    keep = predicate(profile.filters, follow, not_self=True).strip()[1:-1]
    last = "curtask->signal->live.counter == 0"  # decremented before this tracepoint
    ints, conditions = [], [keep, last, f"!{STOP}", result_test(profile.filters, EXIT_FAILED,
                                                                EXIT_SUCCEEDED)]
    wanted = dict(profile.filters.args)
    lines = ["  $code = (uint64)curtask->exit_code;\n"]
    for slot in slots(profile, PROCESS_EXIT):
        lines.append(f"  $a{slot.number} = {EXIT_FIELDS[slot.source.field]};\n")
        ints.append(f"$a{slot.number}")
        if slot.arg.name in wanted:
            conditions.append(condition(slot, wanted[slot.arg.name]))
    unfollow = "  delete(@exec_follow[$key]);\n" if follow else ""
    return (
        "// The last thread of a process ends: the process's exit.\n"
        "tracepoint:sched:sched_process_exit\n"
        "{\n"
        f"  $key = {TID};\n"
        "  $id = nsecs;\n"
        + "".join(lines) +
        f"  if ({' && '.join(c for c in conditions if c)}) {{\n"
        "    $n = (uint64)1;\n"
        "    $ret = (int64)(($code >> 8) & 0xff);\n"
        "    if ($code & 0x7f) { $ret = (int64)(128 + ($code & 0x7f)); }\n"
        + context_records(profile, CALL_STRLEN)
        + call_record(0, "nsecs - curtask->group_leader->start_time", ints) +
        "  }\n"
        f"{unfollow}"
        "}\n"
    )


def generate_calls(profile: Profile, engine: Engine | None, follow: bool) -> str:
    unfollow = "  delete(@exec_follow[$tid]);\n" if follow else ""
    clears = [SCRATCH] + (["exec_follow"] if follow else []) + ["stop"]
    begin = common_begin(follow)
    end = ("// Scratch maps are cleared so that nothing is printed at exit.\n"
           "END\n{\n" + "".join(f"  clear(@{m});\n" for m in clears) + "}\n")
    if profile.probes == (PROCESS_EXIT,):
        return "\n".join(s for s in (
            call_header(profile, engine, follow), begin, follow_probes() if follow else "",
            process_exit_probe(profile, follow), stop_probes(),
            end.replace(f"  clear(@{SCRATCH});\n", "")) if s)
    sections = [
        call_header(profile, engine, follow),
        begin,
        follow_probes() if follow else "",
        *(enter_probe(profile, s, follow) for s in profile.probes),
        *(exit_probe(profile, s, i) for i, s in enumerate(profile.probes)),
        "// A thread that dies inside a call never returns from it: forget its entry.\n"
        "tracepoint:sched:sched_process_exit\n"
        "{\n"
        f"  $tid = {TID};\n"
        f"  if (@{SCRATCH}[$tid].0) {{ delete(@{SCRATCH}[$tid]); }}\n"
        f"{unfollow}"
        "}\n",
        stop_probes(),
        end,
    ]
    return "\n".join(s for s in sections if s)
