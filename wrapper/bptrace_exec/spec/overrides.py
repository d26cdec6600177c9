"""Profiles from the command line: --syscall/--arg/--result (an ad-hoc profile), --columns,
--where, and the options that replace a profile's values (with_overrides).

An ad-hoc profile is written out as the YAML it stands for and read by the same parser
as a profile file, so that its values pass exactly the same checks.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from bptrace_exec.errors import SpecError, UsageError
from bptrace_exec.limits import FILTER_VALUES, check
from bptrace_exec.spec import captures, types
from bptrace_exec.spec.model import PARENTS_RANGE, PATHS, PROCESS_EXIT, Arg, Profile
from bptrace_exec.spec.parse import (
    FILTER_ITEMS,
    LIMIT_RANGES,
    STATS_RANGES,
    cgroup_path,
    check_combination,
    env_name,
    parse_profile,
    path_value,
    profile_from_dict,
    profile_to_dict,
)
from bptrace_exec.spec.tracepoint import FieldLookup, syscall_fields
from bptrace_exec.spec.yamlcheck import COMMAND_LINE, dump, integer

BASE_FILTERS = ("comm", "uid", "euid", "pid", "ppid")


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
    return parse_profile(dump(doc), source=COMMAND_LINE, name=name, lookup=lookup)


def _arg(text: str) -> tuple[str, Any]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(f"--arg {text!r}: expected NAME:TYPE or NAME:TYPE:FIELD",
                         hint="e.g. --arg filename:str, --arg path:str:filename; types: "
                              + ", ".join(types.TYPES))
    if len(parts) == 2:
        return parts[0], parts[1]
    return parts[0], {"type": parts[1], "from": parts[2]}


def apply_columns(profile: Profile, text: str) -> Profile:
    """--columns a,b,c: the table's columns, checked as in YAML."""
    columns = tuple(c.strip() for c in text.split(",") if c.strip())
    captures.check_columns(columns, profile.args, profile.context, "--columns")
    return dataclasses.replace(profile, columns=columns)


def apply_where(profile: Profile, items: list[str]) -> Profile:
    """--where NAME=VALUE, repeatable: values for one NAME are OR'ed, NAMEs AND'ed; they
    replace the profile's filter on NAME. NAME is comm, uid, euid, pid, ppid, cwd, exe
    or an argument."""
    base: dict[str, list[Any]] = {}
    paths: dict[str, list[str]] = {}
    on_args: dict[str, list[Any]] = {}
    by_name = {a.name: a for a in profile.args}
    known = ", ".join([*BASE_FILTERS, *PATHS, *(a.name for a in profile.args
                                                if types.of(a.type).filter_value)])
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
        elif name in PATHS:
            paths.setdefault(name, []).append(path_value(value, f"--where {item!r}"))
        elif name in by_name:
            on_args.setdefault(name, []).append(_arg_value(item, by_name[name], value, known))
        else:
            raise UsageError(f"--where {item!r}: nothing called {name!r} to filter on",
                             hint=f"filter on: {known}")
    checked, _ = validate_overrides(base, {}, WHERE_GIVEN)
    for name, values in [*paths.items(), *on_args.items()]:
        check(FILTER_VALUES, len(values), "", WHERE_GIVEN[0].format(name=name))
    kept = tuple((n, v) for n, v in profile.filters.args if n not in on_args)
    args = kept + tuple((n, tuple(v)) for n, v in on_args.items())
    captures.check_string_filters(args, profile.args, "")
    filters = dataclasses.replace(
        profile.filters, **checked, args=args,
        cwd=tuple(paths.get("cwd", profile.filters.cwd)),
        exe=tuple(paths.get("exe", profile.filters.exe)))
    return dataclasses.replace(profile, filters=filters)


def _number(item: str, value: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise UsageError(f"--where {item!r}: {value!r} is not a number") from None


def _arg_value(item: str, arg: Arg, value: str, known: str) -> Any:
    arg_type = types.of(arg.type)
    if arg_type.filter_value is None:
        raise UsageError(f"--where {item!r}: {arg.name} cannot be filtered on",
                         hint=f"filter on: {known}")
    raw: Any = value
    if arg_type.read == "int":
        with contextlib.suppress(ValueError):  # else a name: SIGTERM, O_CREAT, AT_FDCWD
            raw = int(value, 8 if arg_type.name == "octal" else 0)
    try:
        return captures.filter_value(arg, raw)
    except types.FilterValueError as exc:
        raise SpecError("", f"--where {item!r}: {exc}") from None


_FILTERS = ("comm", "uid", "euid", "pid", "ppid", "failed", "succeeded")
_LIMITS = ("max_args", "argv_bytes")
_STATS = ("stats", "top", "interval")
# what a caller may change: these, with checks of their own, and any field of a Profile
OPTIONS = frozenset((*_FILTERS, *_LIMITS, *_STATS, "cgroup", "in_container", "parents", "exits",
                     *PATHS, "env",
                     *(f.name for f in dataclasses.fields(Profile))))


def with_overrides(profile: Profile, **changes: Any) -> Profile:
    """Command-line values replace the profile's; None means "not given"."""
    unknown = sorted(set(changes) - OPTIONS)
    if unknown:
        raise UsageError(f"no such option: {', '.join(unknown)}",
                         hint="options are the command line's, with _ for -: comm, failed, "
                              "parents, context, stats, ... (help(bptrace_exec.trace))")
    if changes.pop("exits", None):
        profile = with_exits(profile)
    columns = changes.pop("columns", None)  # "a,b" as --columns, or names

    def take(keys: tuple[str, ...]) -> dict[str, Any]:
        return {k: changes.pop(k) for k in keys if changes.get(k) is not None}

    filters = take(_FILTERS)
    for one, other in (("failed", "succeeded"), ("succeeded", "failed")):
        if filters.get(one) and other not in filters:
            filters[other] = False  # --failed replaces the profile's `succeeded`, and back
    placed: dict[str, Any] = {}  # filters with checks of their own
    cgroups = changes.pop("cgroup", None)
    if cgroups is not None:
        check(FILTER_VALUES, len(cgroups), "", "--cgroup/--container")
        placed["cgroup"] = tuple(cgroup_path(c, f"--cgroup {c}") for c in cgroups)
    in_container = changes.pop("in_container", None)
    if in_container is not None:
        placed["in_container"] = in_container
    context = take(("parents", *PATHS))
    if changes.get("env") is not None:  # --env NAME, repeatable
        check(FILTER_VALUES, len(changes["env"]), "", "--env")
        context["env"] = tuple(env_name(n, f"--env {n}") for n in changes.pop("env"))
    shown = changes.pop("context", None)  # the caller's process context: cgroup, container...
    if shown is not None:
        context["container"] = shown
    if context:
        context["parents"] = integer(*PARENTS_RANGE)(
            context.get("parents", profile.context.parents), "--parents")
        changes["context"] = dataclasses.replace(profile.context, **context)
        changes["columns"] = captures.columns_with_context(
            profile.columns, profile.probes, profile.args, profile.context,
            changes["context"])
    if columns is not None:  # checked against the context as changed
        shown_context = changes.get("context", profile.context)
        changes["columns"] = apply_columns(
            dataclasses.replace(profile, context=shown_context),
            columns if isinstance(columns, str) else ",".join(columns)).columns
    limits = take(_LIMITS)
    if set(limits) - set(profile.kind.limits):
        raise UsageError("--max-args and --argv-bytes are for exec profiles",
                         hint="a syscall profile sets `limits: {string_bytes: N}`")
    stats = take(_STATS)
    if "stats" in stats:
        stats["enabled"] = stats.pop("stats")
    for key in ("top", "interval"):
        if key in stats:
            stats[key] = STATS_RANGES[key](stats[key], f"--{key}")
    changes = {k: v for k, v in changes.items() if v is not None}
    checked = validate_overrides(filters, limits)
    return check_combination(dataclasses.replace(
        profile,
        filters=dataclasses.replace(profile.filters, **checked[0], **placed),
        limits=dataclasses.replace(profile.limits, **checked[1]),
        stats=dataclasses.replace(profile.stats, **stats),
        **changes,
    ), "command line")


def with_exits(profile: Profile) -> Profile:
    """An exec profile that traces the ends of processes too (--exits)."""
    if not profile.kind.new_image:
        raise UsageError("--exits, --tree and --timeline are for exec profiles",
                         hint="the exit profile traces the ends of processes alone: "
                              "bptrace-exec exit")
    if profile.exits:
        return profile
    data = profile_to_dict(profile)
    data["probes"].append(PROCESS_EXIT)
    return profile_from_dict(data)


# how --where names a filter in an error: all its values, or one
WHERE_GIVEN = ("--where {name}=...", "--where {name}={value}")


def validate_overrides(filters: dict[str, Any], limits: dict[str, Any],
                       given: tuple[str, str] = ("--{name}", "--{name} {value}")
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same checks as the YAML fields, for values from the command line, named in
    an error as they were `given`: all of a filter's, or one value."""
    out_f: dict[str, Any] = {}
    for key, values in filters.items():
        if key in ("failed", "succeeded"):
            out_f[key] = bool(values)
            continue
        check(FILTER_VALUES, len(values), "", given[0].format(name=key))
        out_f[key] = tuple(FILTER_ITEMS[key](v, given[1].format(name=key, value=v))
                           for v in values)
    out_l = {k: LIMIT_RANGES[k](v, f"--{k.replace('_', '-')}") for k, v in limits.items()}
    return out_f, out_l
