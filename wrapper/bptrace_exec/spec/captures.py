"""A profile's arguments, their filters, its columns and breakdowns, checked against the
probes' tracepoint formats.

  args:
    filename: str                       # short form: NAME: TYPE, from the field NAME
    sig: {type: signal}
    flags:                              # long form: per-syscall sources
      type: clone_flags
      from: {clone: clone_flags, clone3: "uargs[0]"}   # FIELD[N]: the Nth 64-bit word
                                                       # at the user pointer FIELD
An exec profile's arguments are given (spec.model.EXEC_ARGS, spec.types.EXEC_TYPES).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml

from bptrace_exec.errors import SpecError
from bptrace_exec.limits import FILTER_STRING_BYTES, FILTER_VALUES, check
from bptrace_exec.spec import types
from bptrace_exec.spec.model import (
    PATHS,
    PROCESS_EXIT,
    Arg,
    ArgSource,
    Context,
    ProbeKind,
    Profile,
    kind_of,
)
from bptrace_exec.spec.tracepoint import UNKNOWN, Field, FieldLookup, available_syscalls
from bptrace_exec.spec.yamlcheck import Mapping, at, scalar, sequence, text

NAME = re.compile(r"[a-z_][a-z0-9_]{0,31}")
SOURCE = re.compile(r"(?P<field>[a-z_][a-z0-9_]*)(?:\[(?P<index>[0-9]{1,2})\])?")
MAX_ARGS = 6  # a syscall has at most six arguments
# names every event has: an argument may not take one of them
BASE_COLUMNS = ("time", "pid", "tid", "ppid", "uid", "comm", "syscall", "result", "latency")
WHO_COLUMNS = ("gid", "euid", "egid", "loginuid", "sessionid", "tty", "exec_id")  # every event's
PARENT_COLUMNS = ("parents",)  # with context.parents
CONTAINER_COLUMNS = ("container", "cgroup", "hostname", "pidns", "mntns")  # context.container
BASE_BREAKDOWNS = ("syscall", "comm", "uid", "ppid", "errno")
WHO_BREAKDOWNS = ("euid", "tty")
CONTAINER_BREAKDOWNS = ("container", "cgroup", "hostname")
# An exec profile counts in kernel maps: these are the maps its program can keep.
EXEC_DEFAULT_BREAKDOWNS = ("program", "comm", "uid", "ppid", "errno")
EXEC_BREAKDOWNS = (*EXEC_DEFAULT_BREAKDOWNS, *WHO_BREAKDOWNS, "cgroup")
# (the identity's names are not among them: setresuid's tracepoint has an argument euid;
# a syscall's arguments are under "args" in JSON, and take the column of their name)
RESERVED = frozenset(BASE_COLUMNS + BASE_BREAKDOWNS + PARENT_COLUMNS + CONTAINER_COLUMNS + PATHS
                     + ("ret", "event", "incomplete", "args", "context", "program"))
# The end of a process is read from the task: its "arguments" are these.
PROCESS_EXIT_FIELDS = (Field("status", "int"), Field("signal", "int"), Field("core", "int"),
                       Field("cpu_user_ns", "u64"), Field("cpu_system_ns", "u64"))
EXIT_SINCE = {"cpu_user_ns": 6, "cpu_system_ns": 6}  # the record version that added them
# What an end can hold (the signal's range is its type's): a filter outside matches nothing
EXIT_RANGES = {"status": ("an exit status", 0, 255), "core": ("a core flag", 0, 1)}


# The end of a process in an exec profile's stream: its fields, the signal shown by name
# (as the exit profile declares them).
EXIT_ARGS = tuple((f.name, {"signal": "signal", "u64": "uint"}.get(
    f.name, {"u64": "uint"}.get(f.ctype, f.ctype))) for f in PROCESS_EXIT_FIELDS)


def exit_args() -> tuple[Arg, ...]:
    return tuple(Arg(name, arg_type, (ArgSource(PROCESS_EXIT, name),))
                 for name, arg_type in EXIT_ARGS)


def given_args(kind: ProbeKind, probes: tuple[str, ...]) -> tuple[Arg, ...]:
    """A kind's arguments when it has no choice of them (an exec: filename, argv, and
    execveat's dirfd and flags), those that none of the probes has left out. A number
    that some of the probes lack is padded: execve and execveat keep sharing their
    return probes."""
    out = []
    for given in kind.given_args:
        fields = dict(given.fields) or {p: given.name for p in probes}
        sources = tuple(ArgSource(p, fields[p]) for p in probes if p in fields)
        padded = len(sources) < len(probes) and types.of(given.type).read == "int"
        if sources:
            out.append(Arg(given.name, given.type, sources, padded))
    return tuple(out)


# Exec programs read strings of 200 bytes, each in a record of its own, before record
# version 4 made a successful exec one record (records.EXEC).
EXEC_RECORD_VERSION, EARLIER_EXEC_STRLEN = 4, 200


def string_read(profile: Profile, version: int) -> int:
    """The bytes of one string read by the profile's programs of that record version."""
    earlier = profile.kind.new_image and version < EXEC_RECORD_VERSION
    return (EARLIER_EXEC_STRLEN if earlier else profile.kind.strlen) - 1


def as_recorded(profile: Profile, version: int) -> Profile:
    """The profile as programs of an earlier record version printed it: a given argument
    they did not capture is in no probe's records (its value is None), so that theirs are
    read as they were written; it comes after those they did, whose slots stay."""
    newer = {g.name for g in profile.kind.given_args if g.since > version}
    if profile.exits:
        newer |= {name for name, since in EXIT_SINCE.items() if since > version}
    if not newer & {a.name for a in profile.args}:
        return profile
    args = tuple(dataclasses.replace(a, sources=(), padded=False) if a.name in newer else a
                 for a in profile.args)
    return dataclasses.replace(profile, args=args)


def carried(arg: Arg, probe: str) -> bool:
    """Whether a probe's records carry the argument: it has it, or it is padded (among
    the syscalls: the end of a process carries its own only)."""
    return arg.source(probe) is not None or (arg.padded and probe != PROCESS_EXIT)


def fields_of(probe: str, lookup: FieldLookup) -> tuple[Field, ...] | None | tuple[str]:
    return PROCESS_EXIT_FIELDS if probe == PROCESS_EXIT else lookup(probe)


# Syscalls that end their caller: their sys_exit tracepoint never fires.
NO_RETURN = frozenset({"exit", "exit_group"})


def check_syscall(name: str, where: str, lookup: FieldLookup) -> None:
    if name == PROCESS_EXIT:
        return
    if not NAME.fullmatch(name):
        raise SpecError(where, f"{name!r} is not a syscall name",
                        hint="use the name without sys_, e.g. openat")
    if name in NO_RETURN:  # a call is shown at its return: none would ever be
        raise SpecError(where, f"{name} never returns, so no call of it would be shown",
                        hint="`bptrace-exec exit` shows how each process ended (its "
                             "status or signal), `bptrace-exec process` its execs too")
    if lookup(name) is None:
        import difflib  # only for a name in error

        close = difflib.get_close_matches(name, available_syscalls(), n=4)
        raise SpecError(where, f"this kernel has no tracepoint syscalls:sys_enter_{name}",
                        hint=("did you mean: " + ", ".join(close)) if close else
                        "list them with: ls /sys/kernel/tracing/events/syscalls")


def parse_args(node: yaml.Node, source: str, probes: tuple[str, ...],
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
        out.append(_arg(name, m.items[name][1], source, probes, lookup))
    if len(out) > MAX_ARGS:
        raise SpecError(at(source, node), f"{len(out)} arguments; a syscall has at most "
                        f"{MAX_ARGS}")
    return tuple(out)


def _arg(name: str, node: yaml.Node, source: str, probes: tuple[str, ...],
         lookup: FieldLookup) -> Arg:
    if isinstance(node, yaml.MappingNode):
        m = Mapping(node, source, f"args.{name}")
        type_name = m.value("type", text, required=True)
        type_where = m.where("type")
        sources = m.node("from", lambda n, s: _sources(n, s, probes), default=None)
        lengths = m.node("length", lambda n, s: _sources(n, s, probes), default={})
        m.reject_unknown()
    else:
        type_name, type_where = text(scalar(node, source), at(source, node)), at(source, node)
        sources, lengths = None, {}
    arg_type = types.lookup(type_name)
    if arg_type is None:
        raise SpecError(type_where, f"unknown type {type_name!r} for argument {name!r}",
                        hint="types: " + types.describe_types())
    where = at(source, node)
    if lengths and arg_type.read != "sockaddr":
        raise SpecError(where, "`length` is for sockaddr arguments", hint="remove it")
    for length in lengths.values():
        if not NAME.fullmatch(length):
            raise SpecError(where, f"{length!r} is not a field name",
                            hint="give the syscall's argument that holds the length")
    if sources is None:
        sources = {p: name for p in probes}
    checked = [_source(name, probe, spec, lengths.get(probe), arg_type.read, where, lookup)
               for probe, spec in sources.items()]
    return Arg(name, arg_type.name, tuple(checked))


def _sources(node: yaml.Node, source: str, probes: tuple[str, ...]) -> dict[str, str]:
    if isinstance(node, yaml.ScalarNode):
        field = text(scalar(node, source), at(source, node))
        return {p: field for p in probes}
    m = Mapping(node, source, "from")
    out = {}
    for probe in m.items:
        if probe not in probes:
            raise SpecError(at(source, m.items[probe][0]), f"{probe!r} is not one of "
                            "the profile's probes", hint="probes: " + ", ".join(probes))
        out[probe] = m.value(probe, text)
    return out


def _source(name: str, probe: str, spec: str, length: str | None, read: str, where: str,
            lookup: FieldLookup) -> ArgSource:
    m = SOURCE.fullmatch(spec)
    if not m:
        raise SpecError(where, f"{spec!r} is not a field of {probe}",
                        hint="write FIELD, or FIELD[N] for the Nth 64-bit word it points to")
    field, index = m.group("field"), m.group("index")
    fields = fields_of(probe, lookup)
    known: dict[str, Field] | None = None
    if fields is not None and fields != UNKNOWN:
        known = {f.name: f for f in fields if isinstance(f, Field)}
        if field not in known:
            valid = ", ".join(f"{f.name} ({f.ctype})" for f in known.values()) or "none"
            raise SpecError(where, f"{probe} has no argument {field!r}"
                            + (f" (asked for by {name!r})" if field != name else ""),
                            hint=f"{probe}'s arguments on this kernel: {valid}")
        needs_pointer = read in ("str", "sockaddr") or index is not None
        if needs_pointer and not known[field].pointer:
            raise SpecError(where, f"{probe}'s {field} is a {known[field].ctype}, not a "
                            "pointer", hint="read it as int, fd, hex, ...")
    if index is not None and read != "int":
        raise SpecError(where, "FIELD[N] reads a number: give the argument a number type")
    if read == "sockaddr":
        if length is None and known is not None:
            length = next((n for n in ("addrlen", "addr_len") if n in known), None)
        if length is None and known is not None:
            raise SpecError(where, f"which of {probe}'s arguments holds the address's "
                            "length?", hint="add `length: FIELD` to the argument")
        if length is not None and known is not None and length not in known:
            raise SpecError(where, f"{probe} has no argument {length!r} for the length",
                            hint=f"{probe}'s arguments: " + ", ".join(known))
        length = length or "addrlen"
    return ArgSource(probe, field, int(index) if index is not None else None, length)


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
    check_string_filters(tuple(out), args, at(source, node))
    return tuple(out)


def filter_values(arg: Arg, node: yaml.Node, source: str) -> tuple[Any, ...]:
    arg_type = types.of(arg.type)
    if arg_type.filter_value is None:
        raise SpecError(at(source, node), f"{arg.type} arguments cannot be filtered on")
    items = sequence(node, source) if isinstance(node, yaml.SequenceNode) else [node]
    check(FILTER_VALUES, len(items), at(source, node), f"`filters.args.{arg.name}`")
    out = []
    for item in items:
        try:
            out.append(filter_value(arg, scalar(item, source)))
        except types.FilterValueError as exc:
            raise SpecError(at(source, item), f"filter on {arg.name}: {exc}") from None
    return tuple(out)


def filter_value(arg: Arg, raw: object) -> Any:
    """What the kernel compares `arg` with for `raw`, a value a user wrote; FilterValueError
    for one it cannot have."""
    arg_type = types.of(arg.type)
    assert arg_type.filter_value is not None
    value = arg_type.filter_value(raw)
    source = arg.source(PROCESS_EXIT)
    bounds = EXIT_RANGES.get(source.field) if source else None
    if bounds and isinstance(value, int) and not bounds[1] <= value <= bounds[2]:
        what, low, high = bounds
        raise types.FilterValueError(f"{value} is not {what} ({low}-{high})")
    return value


def check_string_filters(filters: tuple[tuple[str, tuple[Any, ...]], ...],
                         args: tuple[Arg, ...], where: str) -> None:
    """The bytes of every string the filters on arguments compare, against their limit."""
    strings = {a.name for a in args if types.of(a.type).read in ("str", "exec_path")}
    size = sum(len(str(v).encode("utf-8", "surrogateescape"))
               for name, values in filters if name in strings for v in values)
    check(FILTER_STRING_BYTES, size, where, "the string filters on arguments, together")


def default_columns(probes: tuple[str, ...], args: tuple[Arg, ...],
                    context: Context) -> tuple[str, ...]:
    """The kind's columns, with what the profile has in place of each @name."""
    fill = {"@container": ("container",) if context.container else (),
            "@syscall": ("syscall",) if len(probes) > 1 else (),
            "@args": tuple(a.name for a in args),
            "@parents": (("parents",) if context.parents else ())
            + tuple(which for which in PATHS if getattr(context, which))
            + (("env",) if context.env else ())}
    return tuple(c for column in kind_of(probes[0]).columns
                 for c in fill.get(column, (column,)))


def columns_with_context(columns: tuple[str, ...], probes: tuple[str, ...],
                         args: tuple[Arg, ...], old: Context, new: Context) -> tuple[str, ...]:
    """The columns once the context changes: the defaults follow it; columns a user chose
    keep their order, gain what is newly shown and lose what is not shown any more."""
    if columns == default_columns(probes, args, old):
        return default_columns(probes, args, new)
    kept = tuple(c for c in columns if (c not in PARENT_COLUMNS or new.parents)
                 and (c not in CONTAINER_COLUMNS or new.container)
                 and (c != "env" or new.env))
    added = (("container",) if new.container and not old.container else ()) + \
        (("parents",) if new.parents and not old.parents else ()) + \
        tuple(w for w in PATHS if getattr(new, w) and not getattr(old, w)) + \
        (("env",) if new.env and not old.env else ())
    # before the columns the kind's defaults put after the context, when they end the
    # row (an exec's filename and argv, of any width): the new ones line up, as there
    last = kind_of(probes[0]).columns
    last = last[last.index("@parents") + 1:]
    at = len(kept)
    while at and kept[at - 1] in last:
        at -= 1
    return kept[:at] + tuple(c for c in added if c not in kept) + kept[at:]


def check_columns(values: tuple[str, ...], args: tuple[Arg, ...], context: Context,
                  where: str) -> None:
    valid = BASE_COLUMNS + tuple(a.name for a in args) + WHO_COLUMNS + PATHS
    valid += PARENT_COLUMNS if context.parents else ()
    valid += CONTAINER_COLUMNS if context.container else ()
    valid += ("env",) if context.env else ()
    if not values:
        raise SpecError(where, "`columns` is empty", hint="columns: " + ", ".join(valid))
    for value in values:
        if value not in valid:
            raise SpecError(where, f"unknown column {value!r}", hint="columns: "
                            + ", ".join(valid))
    twice = next((v for n, v in enumerate(values) if v in values[:n]), None)
    if twice is not None:
        raise SpecError(where, f"column {twice!r} is listed twice",
                        hint="list each column once")


def paths_read(profile: Profile) -> tuple[str, ...]:
    """The paths (spec.model.PATHS) the programs read: those the context shows, and those a
    column, a filter or a breakdown needs."""
    wanted = (getattr(profile.context, which) or getattr(profile.filters, which)
              or which in profile.columns or profile.stats.enabled and which in profile.stats.by
              for which in PATHS)
    return tuple(which for which, read in zip(PATHS, wanted, strict=True) if read)


def breakdowns(kind: ProbeKind, args: tuple[Arg, ...], context: Context) -> tuple[str, ...]:
    """What --stats can count by: the kernel's maps for a kind that counts there."""
    if kind.kernel_counts:  # a path: counted from events (codegen.counts_in_kernel)
        return EXEC_BREAKDOWNS + PATHS
    return (BASE_BREAKDOWNS + WHO_BREAKDOWNS + (CONTAINER_BREAKDOWNS if context.container else ())
            + PATHS + tuple(a.name for a in args))


def default_breakdowns(kind: ProbeKind, probes: tuple[str, ...],
                       args: tuple[Arg, ...]) -> tuple[str, ...]:
    if kind.kernel_counts:
        return EXEC_DEFAULT_BREAKDOWNS
    syscall = ("syscall",) if len(probes) > 1 else ()
    return (*syscall, "comm", "uid", "errno", *(a.name for a in args))
