"""Filters on arguments, as conditions on their values at return: numbers equal (as the
C type is wide), flags "any of these set" (a flag of several bits, O_SYNC, is set when
all of them are), strings exact or by prefix (`*`). An exec's path is compared at return
too: a successful one's as the kernel copied it into the new image, a failed one's in the
caller's memory, which the kernel has faulted in by then (at entry a fresh child's literal
often reads as ""); its argv, matched by a glob, is filtered in user space
(spec.parse.argv_patterns).
"""

from __future__ import annotations

from bptrace_exec.codegen.btlang import string_literal
from bptrace_exec.codegen.program import either
from bptrace_exec.codegen.readers import Slot, word
from bptrace_exec.spec import types
from bptrace_exec.spec.model import Arg, Profile, kind_of

LITERAL_MAX = 63  # bpftrace 0.17 refuses string literals of 64 bytes and more


def arg_conditions(profile: Profile, probe: str, slots: list[Slot],
                   strlen: int | None = None) -> list[str]:
    """One condition per filtered argument; "0" when the probe lacks one (it is dropped)."""
    # a filter on an argument of another kind (an exit's status, in a stream of execs)
    # is that kind's: it does not drop this probe's calls
    wanted = {name: values for name, values in profile.filters.args
              if types.of((arg := _arg(profile, name)).type).read in AT_RETURN
              and any(kind_of(s.probe) is kind_of(probe) for s in arg.sources)}
    if any(a.source(probe) is None for a in profile.args if a.name in wanted):
        return ["0"]
    size = strlen or profile.kind.strlen
    return [condition(s, wanted[s.arg.name], size) for s in slots if s.arg.name in wanted]


AT_RETURN = ("int", "str")  # how the arguments filtered at return are read


def _arg(profile: Profile, name: str) -> Arg:
    arg = profile.arg(name)
    assert arg is not None, f"a filter on {name}, which the profile does not capture"
    return arg


def path_conditions(profile: Profile, pointer: str, strlen: int | None = None) -> list[str]:
    """An exec's filter on its path: the string at `pointer`."""
    paths = [values for name, values in profile.filters.args
             if types.of(_arg(profile, name).type).read == "exec_path"]
    return either([_string_match(pointer, str(v), strlen or profile.kind.strlen)
                   for values in paths for v in values])


def condition(slot: Slot, values: tuple[object, ...], strlen: int) -> str:
    """The filter on one argument: on $aN for numbers, on the string read for strings."""
    arg_type = types.of(slot.arg.type)
    var = f"$a{slot.number}"
    alts = []
    for v in values:
        if arg_type.read == "str":
            alts.append(_string_match(word(slot.word), str(v), strlen))
        elif arg_type.name in ("open_flags", "clone_flags"):
            bit = int(v)  # type: ignore[call-overload]
            if arg_type.name == "open_flags" and bit in (0, 1, 2):
                alts.append(f"({var} & 3) == {bit}")
            elif bit & (bit - 1):  # O_TMPFILE holds O_DIRECTORY: every bit, not any
                alts.append(f"({var} & {_unsigned(bit, 64)}) == {_unsigned(bit, 64)}")
            else:
                alts.append(f"({var} & {_unsigned(bit, 64)}) != 0")
        else:
            bits = arg_type.signed_bits or 64
            mask = f" & {(1 << bits) - 1}" if bits < 64 else ""
            alts.append(f"({var}{mask}) == {_unsigned(int(v), bits)}")  # type: ignore[call-overload]
    return either(alts)[0]


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


def _unsigned(value: int, bits: int) -> str:
    """A filter value as the kernel sees the field: `bits` wide, unsigned."""
    masked = value & ((1 << bits) - 1)
    if masked < 1 << 63:
        return str(masked)
    return f"(uint64)(0 - {(1 << 64) - masked})"
