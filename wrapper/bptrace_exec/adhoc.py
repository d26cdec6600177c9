"""Profiles from the command line: --syscall, --arg, --result, --columns and --where.

An ad-hoc profile is written out as the YAML it stands for and read by the same parser
as a profile file, so that its values pass exactly the same checks.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import yaml

from bptrace_exec import argtypes, callspec
from bptrace_exec.errors import SpecError, UsageError
from bptrace_exec.spec import Profile, parse_profile, validate_overrides
from bptrace_exec.tracepoint import FieldLookup, syscall_fields
from bptrace_exec.yamlcheck import COMMAND_LINE

BASE_FILTERS = ("comm", "uid", "pid", "ppid")


def adhoc_profile(syscalls: list[str], args: list[str], *, result: str | None = None,
                  columns: str | None = None, lookup: FieldLookup = syscall_fields) -> Profile:
    """--syscall openat --arg filename:str --arg flags:open_flags [--result fd]"""
    doc: dict[str, Any] = {"version": 1, "probes": list(syscalls)}
    if args:
        pairs = [_arg(a) for a in args]
        names = [name for name, _ in pairs]
        for name in names:
            if names.count(name) > 1:
                raise UsageError(f"--arg {name}:... is given {names.count(name)} times",
                                 hint="give each argument once")
        doc["args"] = dict(pairs)
    if result is not None:
        doc["result"] = result
    if columns is not None:
        doc["columns"] = [c.strip() for c in columns.split(",") if c.strip()]
    name = "+".join(syscalls)
    return parse_profile(yaml.safe_dump(doc, sort_keys=False), source=COMMAND_LINE, name=name,
                         lookup=lookup)


def _arg(text: str) -> tuple[str, Any]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(f"--arg {text!r}: expected NAME:TYPE or NAME:TYPE:FIELD",
                         hint="e.g. --arg filename:str, --arg path:str:filename; types: "
                              + ", ".join(argtypes.TYPES))
    if len(parts) == 2:
        return parts[0], parts[1]
    return parts[0], {"type": parts[1], "from": parts[2]}


def apply_columns(profile: Profile, text: str) -> Profile:
    """--columns a,b,c on a syscall profile: the table's columns, checked as in YAML."""
    if profile.kind != "call":
        raise UsageError("--columns is for syscall profiles; execve's table is fixed",
                         hint="use --json for every field")
    columns = tuple(c.strip() for c in text.split(",") if c.strip())
    callspec.check_columns(columns, profile.args, profile.context, "--columns")
    return dataclasses.replace(profile, columns=columns)


def apply_where(profile: Profile, items: list[str]) -> Profile:
    """--where NAME=VALUE, repeatable: values for one NAME are OR'ed, NAMEs AND'ed; they
    replace the profile's filter on NAME. NAME is comm, uid, pid, ppid or an argument."""
    base: dict[str, list[Any]] = {}
    on_args: dict[str, list[Any]] = {}
    by_name = {a.name: a for a in profile.args}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.removeprefix("=").strip()  # NAME=V, NAME == "V"
        if not sep or not name or not value:
            raise UsageError(f"--where {item!r}: expected NAME=VALUE",
                             hint="e.g. --where comm=nginx, --where path='/etc/*'")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if name in BASE_FILTERS:
            base.setdefault(name, []).append(value if name == "comm" else _number(item, value))
        elif name in by_name:
            on_args.setdefault(name, []).append(_arg_value(item, by_name[name], value))
        else:
            known = ", ".join([*BASE_FILTERS, *by_name])
            raise UsageError(f"--where {item!r}: nothing called {name!r} to filter on",
                             hint=f"filter on: {known}")
    checked, _ = validate_overrides(base, {})
    kept = tuple((n, v) for n, v in profile.filters.args if n not in on_args)
    filters = dataclasses.replace(profile.filters, **checked,
                                  args=kept + tuple((n, tuple(v)) for n, v in on_args.items()))
    return dataclasses.replace(profile, filters=filters)


def _number(item: str, value: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise UsageError(f"--where {item!r}: {value!r} is not a number") from None


def _arg_value(item: str, arg: callspec.Arg, value: str) -> Any:
    arg_type = argtypes.TYPES[arg.type]
    if arg_type.filter_value is None:
        raise UsageError(f"--where {item!r}: {arg.type} arguments cannot be filtered on")
    raw: Any = value
    if arg_type.read == "int":
        with contextlib.suppress(ValueError):  # else a name: SIGTERM, O_CREAT, AT_FDCWD
            raw = int(value, 8 if arg_type.name == "octal" else 0)
    try:
        return arg_type.filter_value(raw)
    except argtypes.FilterValueError as exc:
        raise SpecError("", f"--where {item!r}: {exc}") from None
