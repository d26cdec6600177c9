"""Profiles: YAML in, a validated, immutable Profile out.

Every value is checked here, with the file and line it came from, so that later stages
never see a value they would have to distrust.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from bptrace_exec.errors import SpecError
from bptrace_exec.limits import PROFILE_BYTES, out_of_memory, too_large
from bptrace_exec.spec import captures, types
from bptrace_exec.spec.model import (
    ARGV_BYTES_RANGE,
    EXEC_SYSCALLS,
    INTERVAL_RANGE,
    MAX_ARGS_RANGE,
    PARENTS_RANGE,
    PATHS,
    PROCESS_EXIT,
    STRING_BYTES_RANGE,
    TOP_RANGE,
    Arg,
    Context,
    Filters,
    Limits,
    Profile,
    StatsSpec,
    kind_of,
)
from bptrace_exec.spec.tracepoint import UNKNOWN, FieldLookup, syscall_fields
from bptrace_exec.spec.types import RESULT_TYPES, TYPES
from bptrace_exec.spec.yamlcheck import (
    SCHEMA_VERSION,
    Mapping,
    Problems,
    at,
    boolean,
    compose,
    dump,
    integer,
    list_of,
    scalar,
    sequence,
    text,
)

OUTPUT_FORMATS = ("table", "json")
TASK_COMM_LEN = 16  # the kernel keeps 15 bytes of a command name plus NUL
PID_MAX = 4194304  # PID_MAX_LIMIT on 64-bit kernels
UID_MAX = 4294967294  # (uid_t)-1 is "no uid"
PATH_FILTER_BYTES = 4096


def parse_profile(text_: str, *, source: str, name: str,
                  lookup: FieldLookup = syscall_fields) -> Profile:
    size = len(text_.encode("utf-8", "surrogateescape"))
    if size > PROFILE_BYTES.most:  # refused before PyYAML spends seconds on it
        raise too_large(source, size)
    try:
        return _parsed(text_, source, name, lookup)
    except RecursionError:  # YAML nested hundreds deep
        raise SpecError(source, "the profile is nested too deeply to be read",
                        hint="a profile is a few levels deep: see probes/execve.yaml") from None
    except MemoryError:  # within the limits: the memory allowed is what is short
        raise out_of_memory(f"the profile {source}") from None


def _parsed(text_: str, source: str, name: str, lookup: FieldLookup) -> Profile:
    try:
        root = compose(text_, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise SpecError(where, f"not valid YAML: {exc.problem or exc}",
                        hint="check indentation and quoting around that line") from None
    except yaml.YAMLError as exc:
        raise SpecError(source, f"not valid YAML: {exc}") from None
    if root is None:
        raise SpecError(source, "the profile is empty",
                        hint="start from probes/execve.yaml; at least `version: 1` is needed")
    top = Mapping(root, source, "profile")
    problems = Problems()
    problems.collect(lambda: top.value("version", _version, required=True))
    probes = problems.collect(
        lambda: top.node("probes", lambda n, s: _probes(n, s, lookup), default=EXEC_SYSCALLS))
    problems.raise_any()  # the rest depends on what is traced
    kind = kind_of(probes[0])

    def arguments() -> tuple[Arg, ...]:
        if not kind.given_args:
            parsed: tuple[Arg, ...] = top.node(
                "args", lambda n, s: captures.parse_args(n, s, probes, lookup), default=())
            return parsed
        given = captures.given_args(kind, tuple(p for p in probes if p != PROCESS_EXIT))
        if PROCESS_EXIT in probes:  # and what the end of a process says
            given += captures.exit_args()
        if "args" in top.items:  # an exec's arguments are given by its probes
            top.used.add("args")
            *names, last = (arg.name for arg in given)
            raise SpecError(top.where("args"), f"an {kind.name} profile's arguments are "
                            f"{', '.join(names)} and {last}, always", hint="remove `args`")
        return given

    args = problems.collect(arguments, default=None)
    context = problems.collect(lambda: top.node("context", _context, default=Context()),
                               default=None)
    fields = dict(
        description=problems.collect(lambda: top.value("description", text, default="")),
        filters=problems.collect(lambda: top.node(  # on arguments: only once they parse
            "filters", lambda n, s: _filters(n, s, args), default=Filters()))
        if args is not None else Filters(),
        limits=problems.collect(lambda: top.node(
            "limits", lambda n, s: _limits(n, s, kind.limits), default=Limits())),
        output_format=problems.collect(lambda: top.node("output", _output, default="table")),
        result=problems.collect(lambda: top.value("result", _result, default="int")),
    )
    if args is not None and context is not None:  # else: their own errors say enough
        valid_by = captures.breakdowns(kind, args, context)
        default_by = captures.default_breakdowns(kind, probes, args)
        fields["stats"] = problems.collect(lambda: top.node(
            "stats", lambda n, s: _stats(n, s, valid_by, default_by),
            default=StatsSpec(by=default_by)))
        fields["columns"] = problems.collect(lambda: _columns(top, probes, args, context))
    else:
        top.used.update(("stats", "columns", "filters"))
    problems.collect(top.reject_unknown)
    problems.raise_any()
    profile = Profile(name=name, source=source, probes=probes, args=args, context=context,
                      **fields)
    check_combination(profile, source)
    return profile


def _columns(top: Mapping, probes: tuple[str, ...], args: tuple[Arg, ...],
             context: Context) -> tuple[str, ...]:
    if "columns" not in top.items:
        return captures.default_columns(probes, args, context)
    columns: tuple[str, ...] = top.node("columns", list_of(text))
    captures.check_columns(columns, args, context, top.where("columns"))
    return columns


def check_combination(profile: Profile, where: str) -> Profile:
    """What each field allows alone but the generated program cannot do together."""
    if profile.filters.failed and profile.filters.succeeded:
        raise SpecError(where, "filters `failed` and `succeeded` are both true: nothing "
                        "would be kept", hint="keep one of them, or neither for every call")
    if profile.exits and profile.stats.enabled:
        raise SpecError(where, "a profile of execs and exits reports no counts: an exec "
                        "profile's are of execs, kept in the kernel",
                        hint="count exits with the exit profile (bptrace-exec exit --stats), "
                        "and the execs of this stream with --json -o FILE, then --stats "
                        "--from FILE")
    if (profile.stats.enabled and counted_from_events(profile) and "cgroup" in profile.stats.by
            and not profile.context.container):
        raise SpecError(where, "counts by cgroup that come from events (with a path or a "
                        "filter on argv, cwd or exe) need the cgroup read with each one",
                        hint="add --context (context: {container: true}), or count by "
                        "cgroup without the path or the filter")
    if profile.context.env and not (profile.kind.new_image and not profile.filters.failed):
        raise SpecError(where, "the environment shown is that of the program an exec "
                        "starts: an exec profile's, of execs that succeed",
                        hint="drop `env` (--env), or `failed`")
    if profile.kind.new_image and profile.context.container and profile.filters.failed:
        raise SpecError(where, "an execve profile cannot show container context of failed "
                        "execs only: with both, the program does not fit bpftrace 0.17's "
                        "512-byte stack", hint="drop `failed` and keep failures with "
                        "--json | jq 'select(.ret != 0)', or drop `context.container`")
    return profile


def run_here(profile: Profile) -> tuple[str, ...]:
    """The filters bptrace-exec applies to the events, not the kernel: on argv, cwd, exe."""
    return (("argv",) if argv_patterns(profile) else ()) + tuple(
        which for which in PATHS if getattr(profile.filters, which))


def counted_from_events(profile: Profile) -> bool:
    """Whether an exec profile's counts come from its events, in bptrace-exec, rather than
    from kernel maps: they need what only bptrace-exec has (a filter run here, a path)."""
    return profile.kind.kernel_counts and bool(run_here(profile) or captures.paths_read(profile))


def argv_patterns(profile: Profile) -> tuple[str, ...]:
    """The globs of a filter on argv, which runs in user space: an exec is kept when one
    of its arguments matches one of them."""
    return tuple(v for name, values in profile.filters.args
                 if (a := profile.arg(name)) and types.of(a.type).read == "argv"
                 for v in values)


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """The profile as YAML would say it (plus its name and source), for recordings."""
    f, lim, st = profile.filters, profile.limits, profile.stats
    out: dict[str, Any] = {
        "name": profile.name, "source": profile.source, "version": SCHEMA_VERSION,
        "description": profile.description, "probes": list(profile.probes),
        "filters": {"comm": list(f.comm), "uid": list(f.uid), "euid": list(f.euid),
                    "pid": list(f.pid),
                    "ppid": list(f.ppid), "failed": f.failed, "succeeded": f.succeeded,
                    "cgroup": list(f.cgroup)},
        "limits": {k: getattr(lim, k) for k in profile.kind.limits},
        "stats": {"enabled": st.enabled, "by": list(st.by), "top": st.top,
                  "interval": st.interval, "latency": st.latency},
        "output": {"format": profile.output_format},
        "result": profile.result,
        "columns": list(profile.columns),
        "context": {"parents": profile.context.parents,
                    "container": profile.context.container,
                    "cwd": profile.context.cwd, "exe": profile.context.exe,
                    "env": list(profile.context.env)},
    }
    if f.args:
        out["filters"]["args"] = {name: list(values) for name, values in f.args}
    if not profile.kind.given_args:
        out["args"] = {a.name: _arg_to_dict(a) for a in profile.args}
    if f.in_container is not None:
        out["filters"]["in_container"] = f.in_container
    for which in PATHS:
        if getattr(f, which):
            out["filters"][which] = list(getattr(f, which))
    return out


def _arg_to_dict(a: Arg) -> dict[str, Any]:
    out: dict[str, Any] = {"type": a.type, "from": {
        s.probe: s.field + (f"[{s.index}]" if s.index is not None else "") for s in a.sources}}
    if TYPES[a.type].read == "sockaddr":
        out["length"] = {s.probe: s.length for s in a.sources}
    return out


def profile_from_dict(data: dict[str, Any]) -> Profile:
    """The inverse of profile_to_dict, for recordings: every value checked again (but not
    against this machine's tracepoints: a recording replays anywhere)."""
    if not isinstance(data, dict):
        raise TypeError("a profile is a mapping")
    body = {k: v for k, v in data.items() if k not in ("name", "source")}
    return parse_profile(dump(body), source=str(data.get("source", "")),
                         name=str(data.get("name", "")), lookup=lambda _name: UNKNOWN)


# --- field checkers: each takes (value, where) and returns the clean value ---------------

def _version(value: Any, where: str) -> int:
    if value != SCHEMA_VERSION or isinstance(value, bool):
        raise SpecError(where, f"unsupported schema version {value!r}",
                        hint=f"this bptrace-exec reads `version: {SCHEMA_VERSION}` profiles")
    return SCHEMA_VERSION


def comm_value(value: Any, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # `comm: [7z]` is a string to the user, whatever YAML thinks
    name = text(value, where)
    size = len(name.removesuffix("*").encode("utf-8", "surrogateescape"))
    if not name.removesuffix("*") or "\0" in name:
        raise SpecError(where, "a command name must be non-empty and contain no NUL byte",
                        hint="a name ending in * is a prefix: `sh*`")
    if size >= TASK_COMM_LEN:
        raise SpecError(where, f"command name {name!r} is {size} bytes; the kernel keeps only "
                        f"{TASK_COMM_LEN - 1}", hint=f"use its first {TASK_COMM_LEN - 1} bytes, "
                        "as `ps -o comm` shows it")
    return name


def cgroup_path(value: Any, where: str) -> str:
    path = text(value, where)
    if not path.startswith("/") or "\0" in path or len(path.encode()) > 4000:
        raise SpecError(where, f"{path!r} is not a cgroup directory",
                        hint="give its absolute path, e.g. /sys/fs/cgroup/system.slice/"
                             "nginx.service")
    return path.rstrip("/") or "/"


def path_value(value: Any, where: str) -> str:
    """A path to match: exact, or a prefix when it ends in *."""
    path = text(value, where)
    size = len(path.encode("utf-8", "surrogateescape"))
    if not path.startswith("/") or "\0" in path or size > PATH_FILTER_BYTES:
        raise SpecError(where, f"{path!r} is not an absolute path",
                        hint="give it from /, exact, or a prefix ending in *: /tmp/*")
    return path if path.endswith("*") else path.rstrip("/") or "/"  # as the kernel names it


def env_name(value: Any, where: str) -> str:
    """An environment variable's name, or * for all of them."""
    name = text(value, where)
    if not name or "=" in name or "\0" in name or len(name.encode()) > 255:
        raise SpecError(where, f"{name!r} is not an environment variable's name",
                        hint="give a name (PATH, LD_PRELOAD), or * for every variable")
    return name


FILTER_ITEMS: dict[str, Callable[[Any, str], Any]] = {
    "comm": comm_value,
    "uid": integer(0, UID_MAX),
    "euid": integer(0, UID_MAX),
    "pid": integer(1, PID_MAX),
    "ppid": integer(0, PID_MAX),
}
LIMIT_RANGES = {
    "max_args": integer(*MAX_ARGS_RANGE),
    "argv_bytes": integer(*ARGV_BYTES_RANGE),
    "string_bytes": integer(*STRING_BYTES_RANGE),
}
STATS_RANGES = {"top": integer(*TOP_RANGE), "interval": integer(*INTERVAL_RANGE)}


def _probes(node: yaml.Node, source: str, lookup: FieldLookup) -> tuple[str, ...]:
    items = sequence(node, source)
    if not items:
        raise SpecError(at(source, node), "`probes` is empty",
                        hint=f"list {' and/or '.join(EXEC_SYSCALLS)}, or other syscalls: "
                             "openat, ...")
    out: list[str] = []
    for item in items:
        name = text(scalar(item, source), at(source, item))
        if name not in EXEC_SYSCALLS:
            captures.check_syscall(name, at(source, item), lookup)
        if name in out:
            raise SpecError(at(source, item), f"probe {name!r} is listed twice")
        execs = [*out, name] != [PROCESS_EXIT] and all(
            p in EXEC_SYSCALLS for p in [*out, name] if p != PROCESS_EXIT)
        if out and PROCESS_EXIT in (name, *out) and not execs:
            raise SpecError(at(source, item), f"{PROCESS_EXIT} is traced alone, or with "
                            f"{' and '.join(EXEC_SYSCALLS)}",
                            hint="trace other syscalls in a profile of their own")
        if out and not execs and kind_of(name) != kind_of(out[0]):
            raise SpecError(at(source, item), f"{name} cannot share a profile with "
                            f"{out[0]}", hint=f"{' and '.join(EXEC_SYSCALLS)} have a profile "
                            "of their own (argv from the new image); trace the others in "
                            "another")
        out.append(name)
    # an exec profile's kind is its first probe's: the ends of processes come last
    return tuple(sorted(out, key=lambda p: p == PROCESS_EXIT))


def _filters(node: yaml.Node, source: str, args: tuple[Arg, ...]) -> Filters:
    m = Mapping(node, source, "filters")
    values: dict[str, Any] = {}
    for key, check in FILTER_ITEMS.items():
        values[key] = m.node(key, list_of(check, filter_name=f"filters.{key}"), default=())
    values["failed"] = m.value("failed", boolean, default=False)
    values["succeeded"] = m.value("succeeded", boolean, default=False)
    values["cgroup"] = m.node("cgroup", list_of(cgroup_path, filter_name="filters.cgroup"),
                              default=())
    values["in_container"] = m.value("in_container", boolean, default=None)
    for which in PATHS:
        values[which] = m.node(which, list_of(path_value, filter_name=f"filters.{which}"),
                               default=())
    if any(types.of(a.type).filter_value for a in args):
        values["args"] = m.node("args", lambda n, s: captures.parse_arg_filters(n, s, args),
                                default=())
    m.reject_unknown()
    return Filters(**values)


def _limits(node: yaml.Node, source: str, keys: tuple[str, ...]) -> Limits:
    m = Mapping(node, source, "limits")
    limits = Limits(**{k: m.value(k, LIMIT_RANGES[k], default=getattr(Limits(), k))
                       for k in keys})
    m.reject_unknown()
    return limits


def _breakdown(valid: tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(value: Any, where: str) -> str:
        name = text(value, where)
        if name not in valid:
            raise SpecError(where, f"unknown breakdown {name!r}",
                            hint=f"valid breakdowns: {', '.join(valid)}")
        return name
    return check


def _stats(node: yaml.Node, source: str, valid: tuple[str, ...],
           default_by: tuple[str, ...]) -> StatsSpec:
    m = Mapping(node, source, "stats")
    by = m.node("by", list_of(_breakdown(valid)), default=default_by)
    if len(set(by)) != len(by):
        raise SpecError(m.where("by"), "a breakdown is listed twice")
    spec = StatsSpec(
        enabled=m.value("enabled", boolean, default=False),
        by=by,
        top=m.value("top", STATS_RANGES["top"], default=StatsSpec.top),
        interval=m.value("interval", STATS_RANGES["interval"], default=StatsSpec.interval),
        latency=m.value("latency", boolean, default=True),
    )
    m.reject_unknown()
    return spec


def _context(node: yaml.Node, source: str) -> Context:
    m = Mapping(node, source, "context")
    context = Context(parents=m.value("parents", integer(*PARENTS_RANGE), default=0),
                      container=m.value("container", boolean, default=False),
                      cwd=m.value("cwd", boolean, default=False),
                      exe=m.value("exe", boolean, default=False),
                      env=m.node("env", list_of(env_name, filter_name="context.env"),
                                 default=()))
    m.reject_unknown()
    return context


def _output(node: yaml.Node, source: str) -> str:
    m = Mapping(node, source, "output")
    fmt = m.value("format", text, default="table")
    if fmt not in OUTPUT_FORMATS:
        raise SpecError(m.where("format"), f"unknown output format {fmt!r}",
                        hint=f"use one of: {', '.join(OUTPUT_FORMATS)}")
    m.reject_unknown()
    return str(fmt)


def _result(value: Any, where: str) -> str:
    if value not in RESULT_TYPES:
        raise SpecError(where, f"unknown result type {value!r}",
                        hint="use one of: " + ", ".join(RESULT_TYPES))
    return str(value)
