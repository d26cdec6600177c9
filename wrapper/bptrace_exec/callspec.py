"""The parts of a profile that only syscall profiles have: arguments, their filters,
the result type and the columns. Checked against the syscalls' tracepoint formats.

  args:
    filename: str                       # short form: NAME: TYPE, from the field NAME
    sig: {type: signal}
    flags:                              # long form: per-syscall sources
      type: clone_flags
      from: {clone: clone_flags, clone3: "uargs[0]"}   # FIELD[N]: the Nth 64-bit word
                                                       # at the user pointer FIELD
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

import yaml

from bptrace_exec import argtypes
from bptrace_exec.errors import SpecError
from bptrace_exec.tracepoint import UNKNOWN, Field, FieldLookup, available_syscalls
from bptrace_exec.yamlcheck import Mapping, at, scalar, sequence, text

NAME = re.compile(r"[a-z_][a-z0-9_]{0,31}")
SOURCE = re.compile(r"(?P<field>[a-z_][a-z0-9_]*)(?:\[(?P<index>[0-9]{1,2})\])?")
MAX_ARGS = 6  # a syscall has at most six arguments
# names every call record has: an argument may not take one of them
BASE_COLUMNS = ("time", "pid", "tid", "ppid", "uid", "comm", "syscall", "result", "latency")
PARENT_COLUMNS = ("parents",)  # with context.parents
CONTAINER_COLUMNS = ("container", "cgroup", "hostname", "pidns", "mntns")  # context.container
BASE_BREAKDOWNS = ("syscall", "comm", "uid", "ppid", "errno")
CONTAINER_BREAKDOWNS = ("container", "cgroup", "hostname")
RESERVED = frozenset(BASE_COLUMNS + BASE_BREAKDOWNS + PARENT_COLUMNS + CONTAINER_COLUMNS
                     + ("ret", "event", "incomplete", "args", "context"))


@dataclass(frozen=True)
class ArgSource:
    syscall: str
    field: str
    index: int | None = None  # FIELD[N]: read the Nth 64-bit word at the pointer FIELD
    length: str | None = None  # sockaddr: the field that holds its length


@dataclass(frozen=True)
class Arg:
    name: str
    type: str
    sources: tuple[ArgSource, ...]  # one per syscall that has it; others show nothing

    @property
    def read(self) -> str:
        t = argtypes.lookup(self.type)
        assert t is not None
        return t.read

    def source(self, syscall: str) -> ArgSource | None:
        return next((s for s in self.sources if s.syscall == syscall), None)


# Not a syscall: the end of a process (its last thread), from sched:sched_process_exit.
# Its "arguments" are read from the task; its latency is the process's lifetime.
PROCESS_EXIT = "process_exit"
PROCESS_EXIT_FIELDS = (Field("status", "int"), Field("signal", "int"), Field("core", "int"))


def fields_of(name: str, lookup: FieldLookup) -> tuple[Field, ...] | None | tuple[str]:
    return PROCESS_EXIT_FIELDS if name == PROCESS_EXIT else lookup(name)


def check_syscall(name: str, where: str, lookup: FieldLookup) -> None:
    if name == PROCESS_EXIT:
        return
    if not NAME.fullmatch(name):
        raise SpecError(where, f"{name!r} is not a syscall name",
                        hint="use the name without sys_, e.g. openat")
    if lookup(name) is None:
        close = difflib.get_close_matches(name, available_syscalls(), n=4)
        raise SpecError(where, f"this kernel has no tracepoint syscalls:sys_enter_{name}",
                        hint=("did you mean: " + ", ".join(close)) if close else
                        "list them with: ls /sys/kernel/tracing/events/syscalls")


def parse_args(node: yaml.Node, source: str, syscalls: tuple[str, ...],
               lookup: FieldLookup) -> tuple[Arg, ...]:
    m = Mapping(node, source, "args")
    out = []
    for name in m.items:
        m.used.add(name)
        where = at(source, m.items[name][0])
        if not NAME.fullmatch(name) or name in RESERVED:
            raise SpecError(where, f"{name!r} cannot name an argument",
                            hint="use lower-case letters, digits and _, and none of: "
                                 + ", ".join(sorted(RESERVED)))
        out.append(_arg(name, m.items[name][1], source, syscalls, lookup))
    if len(out) > MAX_ARGS:
        raise SpecError(at(source, node), f"{len(out)} arguments; a syscall has at most "
                        f"{MAX_ARGS}")
    return tuple(out)


def _arg(name: str, node: yaml.Node, source: str, syscalls: tuple[str, ...],
         lookup: FieldLookup) -> Arg:
    if isinstance(node, yaml.MappingNode):
        m = Mapping(node, source, f"args.{name}")
        type_name = m.value("type", text, required=True)
        type_where = m.where("type")
        sources = m.node("from", lambda n, s: _sources(n, s, syscalls), default=None)
        lengths = m.node("length", lambda n, s: _sources(n, s, syscalls), default={})
        m.reject_unknown()
    else:
        type_name, type_where = text(scalar(node, source), at(source, node)), at(source, node)
        sources, lengths = None, {}
    arg_type = argtypes.lookup(type_name)
    if arg_type is None:
        raise SpecError(type_where, f"unknown type {type_name!r} for argument {name!r}",
                        hint="types: " + argtypes.describe_types())
    where = at(source, node)
    if lengths and arg_type.read != "sockaddr":
        raise SpecError(where, "`length` is for sockaddr arguments", hint="remove it")
    for length in lengths.values():
        if not NAME.fullmatch(length):
            raise SpecError(where, f"{length!r} is not a field name",
                            hint="give the syscall's argument that holds the length")
    if sources is None:
        sources = {s: name for s in syscalls}
    checked = []
    for syscall, spec in sources.items():
        checked.append(_source(name, syscall, spec, lengths.get(syscall), arg_type.read,
                               where, lookup))
    return Arg(name, arg_type.name, tuple(checked))


def _sources(node: yaml.Node, source: str, syscalls: tuple[str, ...]) -> dict[str, str]:
    if isinstance(node, yaml.ScalarNode):
        field = text(scalar(node, source), at(source, node))
        return {s: field for s in syscalls}
    m = Mapping(node, source, "from")
    out = {}
    for syscall in m.items:
        if syscall not in syscalls:
            raise SpecError(at(source, m.items[syscall][0]), f"{syscall!r} is not one of "
                            "the profile's probes", hint="probes: " + ", ".join(syscalls))
        out[syscall] = m.value(syscall, text)
    return out


def _source(name: str, syscall: str, spec: str, length: str | None, read: str, where: str,
            lookup: FieldLookup) -> ArgSource:
    m = SOURCE.fullmatch(spec)
    if not m:
        raise SpecError(where, f"{spec!r} is not a field of {syscall}",
                        hint="write FIELD, or FIELD[N] for the Nth 64-bit word it points to")
    field, index = m.group("field"), m.group("index")
    fields = fields_of(syscall, lookup)
    known: dict[str, Field] | None = None
    if fields is not None and fields != UNKNOWN:
        known = {f.name: f for f in fields if isinstance(f, Field)}
        if field not in known:
            valid = ", ".join(f"{f.name} ({f.ctype})" for f in known.values()) or "none"
            raise SpecError(where, f"{syscall} has no argument {field!r}"
                            + (f" (asked for by {name!r})" if field != name else ""),
                            hint=f"{syscall}'s arguments on this kernel: {valid}")
        needs_pointer = read in ("str", "sockaddr") or index is not None
        if needs_pointer and not known[field].pointer:
            raise SpecError(where, f"{syscall}'s {field} is a {known[field].ctype}, not a "
                            "pointer", hint="read it as int, fd, hex, ...")
    if index is not None and read != "int":
        raise SpecError(where, "FIELD[N] reads a number: give the argument a number type")
    if read == "sockaddr":
        if length is None and known is not None:
            length = next((n for n in ("addrlen", "addr_len") if n in known), None)
        if length is None and known is not None:
            raise SpecError(where, f"which of {syscall}'s arguments holds the address's "
                            "length?", hint="add `length: FIELD` to the argument")
        if length is not None and known is not None and length not in known:
            raise SpecError(where, f"{syscall} has no argument {length!r} for the length",
                            hint=f"{syscall}'s arguments: " + ", ".join(known))
        length = length or "addrlen"
    return ArgSource(syscall, field, int(index) if index is not None else None, length)


def parse_arg_filters(node: yaml.Node, source: str, args: tuple[Arg, ...]
                      ) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    by_name = {a.name: a for a in args}
    m = Mapping(node, source, "filters.args")
    out = []
    for name in m.items:
        m.used.add(name)
        key_where = at(source, m.items[name][0])
        if name not in by_name:
            raise SpecError(key_where, f"no argument {name!r} to filter on",
                            hint="captured arguments: " + (", ".join(by_name) or "none"))
        values = filter_values(by_name[name], m.items[name][1], source)
        if values:  # an empty list keeps everything, like the other filters
            out.append((name, values))
    return tuple(out)


def filter_values(arg: Arg, node: yaml.Node, source: str) -> tuple[Any, ...]:
    arg_type = argtypes.TYPES[arg.type]
    if arg_type.filter_value is None:
        raise SpecError(at(source, node), f"{arg.type} arguments cannot be filtered on")
    items = sequence(node, source) if isinstance(node, yaml.SequenceNode) else [node]
    out = []
    for item in items:
        try:
            out.append(arg_type.filter_value(scalar(item, source)))
        except argtypes.FilterValueError as exc:
            raise SpecError(at(source, item), f"filter on {arg.name}: {exc}") from None
    return tuple(out)


def default_columns(probes: tuple[str, ...], args: tuple[Arg, ...],
                    context: Any = None) -> tuple[str, ...]:
    syscall = ("syscall",) if len(probes) > 1 else ()
    container = ("container",) if context is not None and context.container else ()
    parents = ("parents",) if context is not None and context.parents else ()
    return ("time", "pid", "ppid", "uid", "comm", *container, *syscall,
            *(a.name for a in args), "result", "latency", *parents)


def columns_with_context(columns: tuple[str, ...], probes: tuple[str, ...],
                         args: tuple[Arg, ...], old: Any, new: Any) -> tuple[str, ...]:
    """The columns once the context changes: the defaults follow it; columns a user chose
    keep their order, gain what is newly shown and lose what is not shown any more."""
    if columns == default_columns(probes, args, old):
        return default_columns(probes, args, new)
    kept = tuple(c for c in columns if (c not in PARENT_COLUMNS or new.parents)
                 and (c not in CONTAINER_COLUMNS or new.container))
    added = (("container",) if new.container and not old.container else ()) + \
        (("parents",) if new.parents and not old.parents else ())
    return kept + tuple(c for c in added if c not in kept)


def check_columns(values: tuple[str, ...], args: tuple[Arg, ...], context: Any,
                  where: str) -> None:
    valid = BASE_COLUMNS + tuple(a.name for a in args)
    valid += PARENT_COLUMNS if context.parents else ()
    valid += CONTAINER_COLUMNS if context.container else ()
    if not values:
        raise SpecError(where, "`columns` is empty", hint="columns: " + ", ".join(valid))
    for value in values:
        if value not in valid:
            raise SpecError(where, f"unknown column {value!r}", hint="columns: "
                            + ", ".join(valid))
    if len(set(values)) != len(values):
        raise SpecError(where, "a column is listed twice")


def breakdowns(args: tuple[Arg, ...], *, container: bool) -> tuple[str, ...]:
    return (BASE_BREAKDOWNS + (CONTAINER_BREAKDOWNS if container else ())
            + tuple(a.name for a in args))
