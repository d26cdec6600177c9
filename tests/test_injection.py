"""No value from a profile or the command line changes the program's structure.

For hostile values (10,000 per entry point), the generated program with its string
literals and comments blanked out must be the same text as for a harmless value, and
every string literal must decode to exactly the bytes it was given.
"""

from __future__ import annotations

import dataclasses
import re
import shlex

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bptrace_exec.codegen import generate
from bptrace_exec.codegen.oneliner import oneliner
from bptrace_exec.spec import (
    Filters,
    Limits,
    Profile,
    StatsSpec,
    parse_profile,
)

EXAMPLES = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE = parse_profile("version: 1\ndescription: d\n", source="probes/execve.yaml",
                     name="execve")
# bpftrace's lexer, as far as structure goes: string literals, comments, everything else
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|/\*.*?\*/|//[^\n]*|.', re.S)

# what a hostile process or user would try: quotes, backslashes, comment and predicate
# terminators, newlines, shell and printf syntax, control and non-ASCII characters
HOSTILE_ALPHABET = st.characters(codec="utf-8", exclude_characters="\0")
HOSTILE_BITS = st.sampled_from(['"', "\\", "*/", "/*", "/", "//", "\n", "}", "{", "%s",
                                "$(", "`", ";", "\\x41", "\\101", "\\n", "'", "ü", "\x1b"])
hostile_text = st.lists(st.one_of(HOSTILE_BITS, HOSTILE_ALPHABET), max_size=12).map("".join)


def comm_values() -> st.SearchStrategy[str]:
    """Exact names (one ending in * is a prefix, compiled by the same literal quoting)."""
    return hostile_text.filter(lambda s: 0 < len(s.encode()) <= 15 and not s.endswith("*"))


def skeleton(program: str) -> tuple[str, list[str]]:
    """The program with comments blanked and string literals replaced by a placeholder,
    and the literals themselves, in order."""
    shape, literals = [], []
    for token in _TOKEN.findall(program):
        if token.startswith('"') and len(token) > 1:
            literals.append(token)
            shape.append('""')
        elif token.startswith(("/*", "//")) and len(token) > 1:
            shape.append("/**/")
        else:
            shape.append(token)
    return "".join(shape), literals


def decode_literal(lit: str) -> bytes:
    body, out, i = lit[1:-1], bytearray(), 0
    while i < len(body):
        if body[i] == "\\":
            out.append(int(body[i + 1:i + 4], 8))
            i += 4
        else:
            out += body[i].encode()
            i += 1
    return bytes(out)


def with_comm(comms: tuple[str, ...]) -> Profile:
    return dataclasses.replace(BASE, filters=Filters(comm=comms))


HARMLESS = skeleton(generate(with_comm(("a",))).text)[0]
HARMLESS_ONELINE = skeleton(shlex.split(oneliner(with_comm(("a",))))[2])[0]


@EXAMPLES
@given(comm_values())
def test_comm_filter(comm: str) -> None:
    shape, literals = skeleton(generate(with_comm((comm,))).text)
    assert shape == HARMLESS
    comm_literals = [lit for lit in literals if f"comm == {lit}" in
                     generate(with_comm((comm,))).text]
    assert comm_literals  # each entry probe's predicate has it
    assert {decode_literal(lit) for lit in comm_literals} == {comm.encode()}


@EXAMPLES
@given(hostile_text, hostile_text, hostile_text)
def test_name_source_and_description_stay_in_the_comment(name: str, source: str,
                                                          description: str) -> None:
    profile = dataclasses.replace(BASE, name=name, source=source, description=description)
    text = generate(profile).text
    harmless = skeleton(generate(BASE).text)[0]
    assert skeleton(text)[0] == harmless
    header = text.split("*/", 1)[0]
    assert header.count("/*") == 1 and "\x1b" not in header


@EXAMPLES
@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_numbers_are_checked_or_refused(value: int) -> None:
    """A number reaches the program only inside its range; out of it, nothing is made."""
    for build in (lambda v: dataclasses.replace(BASE, filters=Filters(uid=(v,))),
                  lambda v: dataclasses.replace(BASE, filters=Filters(pid=(v,))),
                  lambda v: dataclasses.replace(BASE, limits=Limits(max_args=v)),
                  lambda v: dataclasses.replace(BASE, stats=StatsSpec(enabled=True,
                                                                      interval=v))):
        try:
            text = generate(build(value)).text
        except ValueError:
            continue
        assert str(value) in text and value >= 0


@settings(deadline=None)
@given(hostile_text)
def test_profile_yaml_values_never_reach_the_program_unchecked(value: str) -> None:
    """Hostile text in every field of a YAML profile: refused with a SpecError, or safe."""
    from bptrace_exec.errors import SpecError

    quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    for doc in (f"version: 1\nfilters: {{comm: [{quoted}]}}\n",
                f"version: 1\ndescription: {quoted}\n",
                f"version: 1\nprobes: [{quoted}]\n",
                f"version: 1\nstats: {{enabled: true, by: [{quoted}]}}\n",
                f"version: 1\nfilters: {{uid: [{quoted}]}}\n"):
        try:
            profile = parse_profile(doc, source="p.yaml", name="p")
        except SpecError:
            continue
        assert skeleton(generate(profile).text)[0] in {
            skeleton(generate(dataclasses.replace(profile, description="d",
                                                  filters=_harmless(profile.filters))).text)[0]}


def _harmless(f: Filters) -> Filters:  # a prefix stays a prefix, of as many bytes
    return dataclasses.replace(f, comm=tuple(
        "a" * len(c[:-1].encode("utf-8", "surrogateescape")) + "*" if c.endswith("*")
        else "a" for c in f.comm))


# --- syscall profiles: string filters on arguments, --where, --arg --------------------

def _openat_with_path(value: str) -> Profile:
    from calls_fixtures import shipped

    profile = shipped("openat")
    return dataclasses.replace(profile, filters=Filters(args=(("path", (value,)),)))


def _harmless_like(value: str) -> str:
    prefix = value.endswith("*") and len(value) > 1
    size = len((value[:-1] if prefix else value).encode("utf-8", "surrogateescape"))
    return "a" * size + ("*" if prefix else "")


path_values = hostile_text.filter(
    lambda s: 0 < len(s.encode()) <= 126 and "\0" not in s)


@EXAMPLES
@given(path_values)
def test_string_filter_on_an_argument(value: str) -> None:
    """Compared piece by piece in 63-byte literals: the same program shape as a harmless
    value of the same length, and the literals spell the value's bytes exactly."""
    from bptrace_exec.spec.types import TYPES

    assert TYPES["str"].filter_value is not None
    checked = TYPES["str"].filter_value(value)
    text = generate(_openat_with_path(str(checked))).text
    assert skeleton(text)[0] == \
        skeleton(generate(_openat_with_path(_harmless_like(value))).text)[0]
    condition = next(line for line in text.splitlines() if line.startswith("  if ("))
    compared = [decode_literal(t) for t in _TOKEN.findall(condition)
                if t.startswith('"') and len(t) > 1]
    wanted = value[:-1] if value.endswith("*") and len(value) > 1 else value
    assert b"".join(compared) == wanted.encode()


@EXAMPLES
@given(hostile_text, hostile_text)
def test_where_and_arg_values_are_checked_or_refused(name_value: str, arg: str) -> None:
    from bptrace_exec.errors import UserError
    from bptrace_exec.spec.captures import NAME
    from bptrace_exec.spec.overrides import adhoc_profile, apply_where
    from calls_fixtures import lookup, shipped

    try:
        profile = apply_where(shipped("openat"), [name_value])
    except UserError:
        pass
    else:
        for name, values in profile.filters.args:
            assert name in ("dfd", "path", "flags", "mode") and values
        generate(profile)
    try:
        adhoc = adhoc_profile(["openat"], [arg], lookup=lookup)
    except UserError:
        return
    assert all(NAME.fullmatch(a.name) for a in adhoc.args)
    assert all(s.field in ("dfd", "filename", "flags", "mode") for a in adhoc.args
               for s in a.sources)
