"""Profiles: YAML in, a validated, immutable Profile out.

Every value is checked here, with the file and line it came from, so that later stages
never see a value they would have to distrust.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bptrace_exec import callspec
from bptrace_exec.argtypes import RESULT_TYPES
from bptrace_exec.callspec import Arg
from bptrace_exec.errors import SpecError, UsageError
from bptrace_exec.tracepoint import UNKNOWN, FieldLookup, syscall_fields
from bptrace_exec.yamlcheck import SCHEMA_VERSION
from bptrace_exec.yamlcheck import Mapping as _Mapping
from bptrace_exec.yamlcheck import at as _at
from bptrace_exec.yamlcheck import boolean as _boolean
from bptrace_exec.yamlcheck import integer as _integer
from bptrace_exec.yamlcheck import list_of as _list_of
from bptrace_exec.yamlcheck import scalar as _scalar
from bptrace_exec.yamlcheck import sequence as _sequence
from bptrace_exec.yamlcheck import text as _text

SYSCALLS = ("execve", "execveat")
OUTPUT_FORMATS = ("table", "json")
TASK_COMM_LEN = 16  # the kernel keeps 15 bytes of a command name plus NUL
PID_MAX = 4194304  # PID_MAX_LIMIT on 64-bit kernels
UID_MAX = 4294967294  # (uid_t)-1 is "no uid"
MAX_ARGS_RANGE = (1, 256)
ARGV_BYTES_RANGE = (200, 32768)
STRING_BYTES_RANGE = (1, 32768)
BREAKDOWNS = ("program", "comm", "uid", "ppid", "errno")  # the default ones
EXEC_BREAKDOWNS = BREAKDOWNS + ("cgroup",)  # cgroup: a map keyed by cgroup id, on request
TOP_RANGE = (1, 1000)
INTERVAL_RANGE = (0, 86400)
PROFILE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Filters:
    """What to keep; every list is OR'd, the lists are AND'ed; all run in the kernel."""

    comm: tuple[str, ...] = ()
    uid: tuple[int, ...] = ()
    pid: tuple[int, ...] = ()
    ppid: tuple[int, ...] = ()
    failed: bool = False
    succeeded: bool = False  # the converse of failed; both false: every call
    args: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # syscall profiles: (arg, values)
    cgroup: tuple[str, ...] = ()  # cgroup v2 directories, exact (a container's, a unit's)
    in_container: bool | None = None  # True: only containerised callers; False: only host


@dataclass(frozen=True)
class Limits:
    """How much of each exec is captured; anything beyond is flagged as truncated."""

    max_args: int = 64
    argv_bytes: int = 4096
    string_bytes: int = 4096  # syscall profiles: bytes read of each string argument


@dataclass(frozen=True)
class StatsSpec:
    """Counting in the kernel instead of one row per exec; reported at the end."""

    enabled: bool = False
    by: tuple[str, ...] = BREAKDOWNS  # which breakdowns get a map (and a table)
    top: int = 10  # rows per breakdown in the report
    interval: int = 0  # seconds between reports; 0: only at the end
    latency: bool = True  # keep the latency histogram


@dataclass(frozen=True)
class Context:
    """Process context shown with every record (an exec's, or a syscall profile's)."""

    parents: int = 0  # ancestors shown (pid and comm of each), nearest first
    container: bool = False  # cgroup, container id, pid/mount namespaces, UTS hostname


@dataclass(frozen=True)
class Profile:
    name: str
    source: str
    description: str = ""
    probes: tuple[str, ...] = SYSCALLS
    filters: Filters = field(default_factory=Filters)
    limits: Limits = field(default_factory=Limits)
    stats: StatsSpec = field(default_factory=StatsSpec)
    output_format: str = "table"
    args: tuple[Arg, ...] = ()  # syscall profiles: the arguments captured
    result: str = "int"  # syscall profiles: how a non-negative return value is shown
    columns: tuple[str, ...] = ()  # syscall profiles: the table's columns
    context: Context = field(default_factory=Context)

    @property
    def kind(self) -> str:
        """exec: the execve pipeline (argv from the new image); call: any other syscall."""
        return "exec" if self.probes[0] in SYSCALLS else "call"


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """The profile as YAML would say it (plus its name and source), for recordings."""
    f, lim, st = profile.filters, profile.limits, profile.stats
    out: dict[str, Any] = {
        "name": profile.name, "source": profile.source, "version": SCHEMA_VERSION,
        "description": profile.description, "probes": list(profile.probes),
        "filters": {"comm": list(f.comm), "uid": list(f.uid), "pid": list(f.pid),
                    "ppid": list(f.ppid), "failed": f.failed, "succeeded": f.succeeded,
                    "cgroup": list(f.cgroup)},
        "limits": {"max_args": lim.max_args, "argv_bytes": lim.argv_bytes},
        "stats": {"enabled": st.enabled, "by": list(st.by), "top": st.top,
                  "interval": st.interval, "latency": st.latency},
        "output": {"format": profile.output_format},
    }
    if profile.kind == "call":
        del out["limits"]["max_args"], out["limits"]["argv_bytes"]
        out["limits"]["string_bytes"] = lim.string_bytes
        out["filters"]["args"] = {name: list(values) for name, values in f.args}
        out["args"] = {a.name: {"type": a.type, "from": {
            s.syscall: s.field + (f"[{s.index}]" if s.index is not None else "")
            for s in a.sources}} | ({"length": {s.syscall: s.length for s in a.sources}}
                                    if a.read == "sockaddr" else {})
            for a in profile.args}
        out["result"] = profile.result
        out["columns"] = list(profile.columns)
    out["context"] = {"parents": profile.context.parents,
                      "container": profile.context.container}
    if f.in_container is not None:
        out["filters"]["in_container"] = f.in_container
    return out


def profile_from_dict(data: dict[str, Any]) -> Profile:
    """The inverse of profile_to_dict, for recordings: every value checked again (but not
    against this machine's tracepoints: a recording replays anywhere)."""
    if not isinstance(data, dict):
        raise TypeError("a profile is a mapping")
    body = {k: v for k, v in data.items() if k not in ("name", "source")}
    return parse_profile(yaml.safe_dump(body, sort_keys=False), source=str(data.get("source", "")),
                         name=str(data.get("name", "")), lookup=lambda _name: UNKNOWN)


def shipped_profile_dirs() -> list[Path]:
    """Where profiles are found by name: $BPTRACE_EXEC_PATH, then the shipped probes/ (in
    the source tree, or installed under sys.prefix by a non-editable install)."""
    dirs = [Path(p) for p in os.environ.get("BPTRACE_EXEC_PATH", "").split(":") if p]
    source_tree = Path(__file__).resolve().parents[2] / "probes"
    dirs.append(source_tree if source_tree.is_dir()
                else Path(sys.prefix) / "share" / "bptrace-exec" / "probes")
    return dirs


def available_profiles() -> list[str]:
    names: set[str] = set()
    for d in shipped_profile_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.iterdir() if p.suffix in PROFILE_SUFFIXES)
    return sorted(names)


def resolve_profile(arg: str) -> Path:
    """A path to a YAML file, or the name of a shipped profile."""
    path = Path(arg)
    if path.suffix in PROFILE_SUFFIXES or os.sep in arg or path.is_file():
        if not path.is_file():
            raise UsageError(f"profile file not found: {arg}",
                             hint="give a path to a YAML profile or the name of a shipped one")
        return path
    for d in shipped_profile_dirs():
        for suffix in PROFILE_SUFFIXES:
            candidate = d / f"{arg}{suffix}"
            if candidate.is_file():
                return candidate
    names = ", ".join(available_profiles()) or "none found"
    raise UsageError(f"no profile named {arg!r}", hint=f"shipped profiles: {names}")


def load_profile(arg: str) -> Profile:
    path = resolve_profile(arg)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), f"cannot read profile: {exc}") from None
    return parse_profile(text, source=str(path), name=path.stem)


def parse_profile(text: str, *, source: str, name: str,
                  lookup: FieldLookup = syscall_fields) -> Profile:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
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
    top = _Mapping(root, source, "profile")
    top.value("version", _version, required=True)
    probes = top.node("probes", lambda n, s: _probes(n, s, lookup), default=SYSCALLS)
    calls = probes[0] not in SYSCALLS
    args: tuple[Arg, ...] = ()
    if calls:
        args = top.node("args", lambda n, s: callspec.parse_args(n, s, probes, lookup),
                        default=())
    else:
        for key in ("args", "result", "columns"):
            if key in top.items:
                raise SpecError(top.where(key), f"`{key}` is for syscall profiles; execve "
                                "profiles have fixed fields", hint="remove it")
    context = top.node("context", _context, default=Context())
    columns = callspec.default_columns(probes, args, context) if calls else ()
    if calls and "columns" in top.items:
        columns = top.node("columns", _list_of(_text))
        callspec.check_columns(columns, args, context, top.where("columns"))
    profile = Profile(
        name=name,
        source=source,
        description=top.value("description", _text, default=""),
        probes=probes,
        filters=top.node("filters", lambda n, s: _filters(n, s, args), default=Filters()),
        limits=top.node("limits", lambda n, s: _limits(n, s, calls), default=Limits()),
        stats=top.node("stats", lambda n, s: _stats(n, s, _breakdowns(probes, args, context),
                                                    _default_by(probes, args)),
                       default=StatsSpec(by=_default_by(probes, args))),
        output_format=top.node("output", _output, default="table"),
        args=args,
        result=top.value("result", _result, default="int") if calls else "int",
        columns=columns,
        context=context,
    )
    top.reject_unknown()
    check_combination(profile, source)
    return profile


def check_combination(profile: Profile, where: str) -> Profile:
    """What each field allows alone but the generated program cannot do together."""
    if profile.filters.failed and profile.filters.succeeded:
        raise SpecError(where, "filters `failed` and `succeeded` are both true: nothing "
                        "would be kept", hint="keep one of them, or neither for every call")
    if profile.kind == "exec" and profile.context.container and profile.filters.failed:
        raise SpecError(where, "an execve profile cannot show container context of failed "
                        "execs only: with both, the program does not fit bpftrace 0.17's "
                        "512-byte stack", hint="drop `failed` and keep failures with "
                        "--json | jq 'select(.ret != 0)', or drop `context.container`")
    return profile


def _breakdowns(probes: tuple[str, ...], args: tuple[Arg, ...],
                context: Context) -> tuple[str, ...]:
    if probes[0] in SYSCALLS:
        return EXEC_BREAKDOWNS
    return callspec.breakdowns(args, container=context.container)


PARENTS_RANGE = (0, 16)


def _context(node: yaml.Node, source: str) -> Context:
    m = _Mapping(node, source, "context")
    context = Context(parents=m.value("parents", _integer(*PARENTS_RANGE), default=0),
                      container=m.value("container", _boolean, default=False))
    m.reject_unknown()
    return context


def cgroup_path(value: Any, where: str) -> str:
    text = _text(value, where)
    if not text.startswith("/") or "\0" in text or len(text.encode()) > 4000:
        raise SpecError(where, f"{text!r} is not a cgroup directory",
                        hint="give its absolute path, e.g. /sys/fs/cgroup/system.slice/"
                             "nginx.service")
    return text.rstrip("/") or "/"


def _default_by(probes: tuple[str, ...], args: tuple[Arg, ...]) -> tuple[str, ...]:
    if probes[0] in SYSCALLS:
        return BREAKDOWNS
    syscall = ("syscall",) if len(probes) > 1 else ()
    return (*syscall, "comm", "uid", "errno", *(a.name for a in args))


def _result(value: Any, where: str) -> str:
    if value not in RESULT_TYPES:
        raise SpecError(where, f"unknown result type {value!r}",
                        hint="use one of: " + ", ".join(RESULT_TYPES))
    return str(value)


def with_overrides(profile: Profile, **changes: Any) -> Profile:
    """Command-line values replace the profile's; None means "not given"."""
    def take(keys: tuple[str, ...]) -> dict[str, Any]:
        return {k: changes.pop(k) for k in keys if changes.get(k) is not None}

    filters = take(("comm", "uid", "pid", "ppid", "failed", "succeeded"))
    for one, other in (("failed", "succeeded"), ("succeeded", "failed")):
        if filters.get(one) and other not in filters:
            filters[other] = False  # --failed replaces the profile's `succeeded`, and back
    placed: dict[str, Any] = {}  # filters with checks of their own
    cgroups = changes.pop("cgroup", None)
    if cgroups is not None:
        placed["cgroup"] = tuple(cgroup_path(c, f"--cgroup {c}") for c in cgroups)
    in_container = changes.pop("in_container", None)
    if in_container is not None:
        placed["in_container"] = in_container
    context = {k: changes.pop(k) for k in ("parents", "container")
               if changes.get(k) is not None}
    if context:
        context["parents"] = _integer(*PARENTS_RANGE)(
            context.get("parents", profile.context.parents), "--parents")
        changes["context"] = dataclasses.replace(profile.context, **context)
        if profile.kind == "call":
            changes["columns"] = callspec.columns_with_context(
                profile.columns, profile.probes, profile.args, profile.context,
                changes["context"])
    limits = take(("max_args", "argv_bytes"))
    if limits and profile.kind == "call":
        raise UsageError("--max-args and --argv-bytes are for execve profiles",
                         hint="a syscall profile sets `limits: {string_bytes: N}`")
    stats = take(("stats", "top", "interval"))
    if "stats" in stats:
        stats["enabled"] = stats.pop("stats")
    for key in ("top", "interval"):
        if key in stats:
            stats[key] = _STATS_RANGES[key](stats[key], f"--{key}")
    changes = {k: v for k, v in changes.items() if v is not None}
    checked = validate_overrides(filters, limits)
    return check_combination(dataclasses.replace(
        profile,
        filters=dataclasses.replace(profile.filters, **checked[0], **placed),
        limits=dataclasses.replace(profile.limits, **checked[1]),
        stats=dataclasses.replace(profile.stats, **stats),
        **changes,
    ), "command line")


def validate_overrides(filters: dict[str, Any], limits: dict[str, Any]
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same checks as the YAML fields, for values from the command line."""
    out_f: dict[str, Any] = {}
    for key, values in filters.items():
        if key in ("failed", "succeeded"):
            out_f[key] = bool(values)
            continue
        check = _FILTER_ITEMS[key]
        out_f[key] = tuple(check(v, f"--{key} {v}") for v in values)
    out_l = {k: _LIMIT_RANGES[k](v, f"--{k.replace('_', '-')}") for k, v in limits.items()}
    return out_f, out_l


# --- field checkers: each takes (value, where) and returns the clean value ---------------

def _version(value: Any, where: str) -> int:
    if value != SCHEMA_VERSION or isinstance(value, bool):
        raise SpecError(where, f"unsupported schema version {value!r}",
                        hint=f"this bptrace-exec reads `version: {SCHEMA_VERSION}` profiles")
    return SCHEMA_VERSION


def _comm(value: Any, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # `comm: [7z]` is a string to the user, whatever YAML thinks
    text = _text(value, where)
    size = len(text.encode("utf-8", "surrogateescape"))
    if not text or "\0" in text:
        raise SpecError(where, "a command name must be non-empty and contain no NUL byte")
    if size >= TASK_COMM_LEN:
        raise SpecError(where, f"command name {text!r} is {size} bytes; the kernel keeps only "
                        f"{TASK_COMM_LEN - 1}", hint=f"use its first {TASK_COMM_LEN - 1} bytes, "
                        "as `ps -o comm` shows it")
    return text


_FILTER_ITEMS: dict[str, Callable[[Any, str], Any]] = {
    "comm": _comm,
    "uid": _integer(0, UID_MAX),
    "pid": _integer(1, PID_MAX),
    "ppid": _integer(0, PID_MAX),
}
_LIMIT_RANGES = {
    "max_args": _integer(*MAX_ARGS_RANGE),
    "argv_bytes": _integer(*ARGV_BYTES_RANGE),
    "string_bytes": _integer(*STRING_BYTES_RANGE),
}


def _probes(node: yaml.Node, source: str, lookup: FieldLookup) -> tuple[str, ...]:
    items = _sequence(node, source)
    if not items:
        raise SpecError(_at(source, node), "`probes` is empty",
                        hint=f"list {' and/or '.join(SYSCALLS)}, or other syscalls: openat, ...")
    out: list[str] = []
    for item in items:
        name = _text(_scalar(item, source), _at(source, item))
        if name not in SYSCALLS:
            callspec.check_syscall(name, _at(source, item), lookup)
        if name in out:
            raise SpecError(_at(source, item), f"probe {name!r} is listed twice")
        if out and callspec.PROCESS_EXIT in (name, out[0]):
            raise SpecError(_at(source, item), f"{callspec.PROCESS_EXIT} is traced alone",
                            hint="trace syscalls in a profile of their own")
        if out and (name in SYSCALLS) != (out[0] in SYSCALLS):
            raise SpecError(_at(source, item), f"{name} cannot share a profile with "
                            f"{out[0]}", hint=f"{' and '.join(SYSCALLS)} have a profile of "
                            "their own (argv from the new image); trace the others in another")
        out.append(name)
    return tuple(out)


def _filters(node: yaml.Node, source: str, args: tuple[Arg, ...]) -> Filters:
    m = _Mapping(node, source, "filters")
    values: dict[str, Any] = {}
    for key, check in _FILTER_ITEMS.items():
        values[key] = m.node(key, _list_of(check), default=())
    values["failed"] = m.value("failed", _boolean, default=False)
    values["succeeded"] = m.value("succeeded", _boolean, default=False)
    values["cgroup"] = m.node("cgroup", _list_of(cgroup_path), default=())
    values["in_container"] = m.value("in_container", _boolean, default=None)
    if args:
        values["args"] = m.node("args", lambda n, s: callspec.parse_arg_filters(n, s, args),
                                default=())
    m.reject_unknown()
    return Filters(**values)


def _limits(node: yaml.Node, source: str, calls: bool) -> Limits:
    m = _Mapping(node, source, "limits")
    keys = ("string_bytes",) if calls else ("max_args", "argv_bytes")
    limits = Limits(**{k: m.value(k, _LIMIT_RANGES[k], default=getattr(Limits(), k))
                       for k in keys})
    m.reject_unknown()
    return limits


_STATS_RANGES = {"top": _integer(*TOP_RANGE), "interval": _integer(*INTERVAL_RANGE)}


def _breakdown(valid: tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(value: Any, where: str) -> str:
        name = _text(value, where)
        if name not in valid:
            raise SpecError(where, f"unknown breakdown {name!r}",
                            hint=f"valid breakdowns: {', '.join(valid)}")
        return name
    return check


def _stats(node: yaml.Node, source: str, valid: tuple[str, ...],
           default_by: tuple[str, ...]) -> StatsSpec:
    m = _Mapping(node, source, "stats")
    defaults = StatsSpec(by=default_by)
    by = m.node("by", _list_of(_breakdown(valid)), default=defaults.by)
    if len(set(by)) != len(by):
        raise SpecError(m.where("by"), "a breakdown is listed twice")
    spec = StatsSpec(
        enabled=m.value("enabled", _boolean, default=defaults.enabled),
        by=by,
        top=m.value("top", _STATS_RANGES["top"], default=defaults.top),
        interval=m.value("interval", _STATS_RANGES["interval"], default=defaults.interval),
        latency=m.value("latency", _boolean, default=defaults.latency),
    )
    m.reject_unknown()
    return spec


def _output(node: yaml.Node, source: str) -> str:
    m = _Mapping(node, source, "output")
    fmt = m.value("format", _text, default="table")
    if fmt not in OUTPUT_FORMATS:
        raise SpecError(m.where("format"), f"unknown output format {fmt!r}",
                        hint=f"use one of: {', '.join(OUTPUT_FORMATS)}")
    m.reject_unknown()
    return str(fmt)
