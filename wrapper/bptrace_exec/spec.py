"""Profiles: YAML in, a validated, immutable Profile out.

Every value is checked here, with the file and line it came from, so that later stages
never see a value they would have to distrust.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bptrace_exec.errors import SpecError, UsageError

SCHEMA_VERSION = 1
SYSCALLS = ("execve", "execveat")
OUTPUT_FORMATS = ("table", "json")
TASK_COMM_LEN = 16  # the kernel keeps 15 bytes of a command name plus NUL
PID_MAX = 4194304  # PID_MAX_LIMIT on 64-bit kernels
UID_MAX = 4294967294  # (uid_t)-1 is "no uid"
MAX_ARGS_RANGE = (1, 256)
ARGV_BYTES_RANGE = (200, 32768)
BREAKDOWNS = ("program", "comm", "uid", "ppid", "errno")
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


@dataclass(frozen=True)
class Limits:
    """How much of each exec is captured; anything beyond is flagged as truncated."""

    max_args: int = 64
    argv_bytes: int = 4096


@dataclass(frozen=True)
class StatsSpec:
    """Counting in the kernel instead of one row per exec; reported at the end."""

    enabled: bool = False
    by: tuple[str, ...] = BREAKDOWNS  # which breakdowns get a map (and a table)
    top: int = 10  # rows per breakdown in the report
    interval: int = 0  # seconds between reports; 0: only at the end
    latency: bool = True  # keep the latency histogram


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


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    return dataclasses.asdict(profile)


def profile_from_dict(data: dict[str, Any]) -> Profile:
    """The inverse of profile_to_dict, for recordings: every value checked again."""
    if not isinstance(data, dict):
        raise TypeError("a profile is a mapping")
    f, lim, st = data.get("filters", {}), data.get("limits", {}), data.get("stats", {})
    checked_f, checked_l = validate_overrides(
        {k: f[k] for k in ("comm", "uid", "pid", "ppid", "failed") if k in f},
        {k: lim[k] for k in ("max_args", "argv_bytes") if k in lim})
    probes = tuple(data.get("probes", SYSCALLS))
    if not probes or any(p not in SYSCALLS for p in probes):
        raise ValueError(f"unknown probes {probes}")
    by = tuple(_breakdown(b, "recording") for b in st.get("by", BREAKDOWNS))
    return Profile(
        name=str(data.get("name", "")), source=str(data.get("source", "")),
        description=str(data.get("description", "")), probes=probes,
        filters=Filters(**checked_f), limits=Limits(**checked_l),
        stats=StatsSpec(enabled=bool(st.get("enabled", False)), by=by,
                        top=_STATS_RANGES["top"](st.get("top", 10), "recording"),
                        interval=_STATS_RANGES["interval"](st.get("interval", 0), "recording"),
                        latency=bool(st.get("latency", True))),
        output_format=str(data.get("output_format", "table")),
    )


def shipped_profile_dirs() -> list[Path]:
    """Where profiles are found by name: $BPTRACE_EXEC_PATH, then the shipped probes/."""
    dirs = [Path(p) for p in os.environ.get("BPTRACE_EXEC_PATH", "").split(":") if p]
    dirs.append(Path(__file__).resolve().parents[2] / "probes")
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


def parse_profile(text: str, *, source: str, name: str) -> Profile:
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
    profile = Profile(
        name=name,
        source=source,
        description=top.value("description", _text, default=""),
        probes=top.node("probes", _probes, default=SYSCALLS),
        filters=top.node("filters", _filters, default=Filters()),
        limits=top.node("limits", _limits, default=Limits()),
        stats=top.node("stats", _stats, default=StatsSpec()),
        output_format=top.node("output", _output, default="table"),
    )
    top.reject_unknown()
    return profile


def with_overrides(profile: Profile, **changes: Any) -> Profile:
    """Command-line values replace the profile's; None means "not given"."""
    def take(keys: tuple[str, ...]) -> dict[str, Any]:
        return {k: changes.pop(k) for k in keys if changes.get(k) is not None}

    filters = take(("comm", "uid", "pid", "ppid", "failed"))
    limits = take(("max_args", "argv_bytes"))
    stats = take(("stats", "top", "interval"))
    if "stats" in stats:
        stats["enabled"] = stats.pop("stats")
    for key in ("top", "interval"):
        if key in stats:
            stats[key] = _STATS_RANGES[key](stats[key], f"--{key}")
    changes = {k: v for k, v in changes.items() if v is not None}
    checked = validate_overrides(filters, limits)
    return dataclasses.replace(
        profile,
        filters=dataclasses.replace(profile.filters, **checked[0]),
        limits=dataclasses.replace(profile.limits, **checked[1]),
        stats=dataclasses.replace(profile.stats, **stats),
        **changes,
    )


def validate_overrides(filters: dict[str, Any], limits: dict[str, Any]
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same checks as the YAML fields, for values from the command line."""
    out_f: dict[str, Any] = {}
    for key, values in filters.items():
        if key == "failed":
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


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SpecError(where, f"expected a string, got {_kind(value)}")
    return value


def _integer(low: int, high: int) -> Callable[[Any, str], int]:
    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(where, f"expected a whole number, got {_kind(value)}",
                            hint=f"use a number from {low} to {high}")
        if not low <= value <= high:
            raise SpecError(where, f"{value} is out of range",
                            hint=f"use a number from {low} to {high}")
        return value
    return check


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
}


def _probes(node: yaml.Node, source: str) -> tuple[str, ...]:
    items = _sequence(node, source)
    if not items:
        raise SpecError(_at(source, node), "`probes` is empty",
                        hint=f"list one or more of: {', '.join(SYSCALLS)}")
    out: list[str] = []
    for item in items:
        name = _text(_scalar(item, source), _at(source, item))
        if name not in SYSCALLS:
            raise SpecError(_at(source, item), f"unknown probe {name!r}",
                            hint=f"valid probes: {', '.join(SYSCALLS)}")
        if name in out:
            raise SpecError(_at(source, item), f"probe {name!r} is listed twice")
        out.append(name)
    return tuple(out)


def _filters(node: yaml.Node, source: str) -> Filters:
    m = _Mapping(node, source, "filters")
    values: dict[str, Any] = {}
    for key, check in _FILTER_ITEMS.items():
        values[key] = m.node(key, _list_of(check), default=())
    values["failed"] = m.value("failed", _boolean, default=False)
    m.reject_unknown()
    return Filters(**values)


def _limits(node: yaml.Node, source: str) -> Limits:
    m = _Mapping(node, source, "limits")
    limits = Limits(**{k: m.value(k, check, default=getattr(Limits(), k))
                       for k, check in _LIMIT_RANGES.items()})
    m.reject_unknown()
    return limits


_STATS_RANGES = {"top": _integer(*TOP_RANGE), "interval": _integer(*INTERVAL_RANGE)}


def _breakdown(value: Any, where: str) -> str:
    name = _text(value, where)
    if name not in BREAKDOWNS:
        raise SpecError(where, f"unknown breakdown {name!r}",
                        hint=f"valid breakdowns: {', '.join(BREAKDOWNS)}")
    return name


def _stats(node: yaml.Node, source: str) -> StatsSpec:
    m = _Mapping(node, source, "stats")
    defaults = StatsSpec()
    by = m.node("by", _list_of(_breakdown), default=defaults.by)
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


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(where, f"expected true or false, got {_kind(value)}")
    return value


def _list_of(check: Callable[[Any, str], Any]) -> Callable[[yaml.Node, str], tuple[Any, ...]]:
    def parse(node: yaml.Node, source: str) -> tuple[Any, ...]:
        items = _sequence(node, source) if isinstance(node, yaml.SequenceNode) else [node]
        return tuple(check(_scalar(item, source), _at(source, item)) for item in items)
    return parse


# --- YAML node plumbing: keeps line numbers for every message ----------------------------

_CONSTRUCTOR = yaml.SafeLoader(stream="")


def _at(source: str, node: yaml.Node) -> str:
    return f"{source}:{node.start_mark.line + 1}"


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    names = {bool: "true/false", int: "a number", float: "a decimal number", str: "a string",
             list: "a list", dict: "a mapping"}
    return names.get(type(value), type(value).__name__)


def _scalar(node: yaml.Node, source: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
        raise SpecError(_at(source, node), f"expected a single value, got {kind}")
    try:
        return _CONSTRUCTOR.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise SpecError(_at(source, node), f"cannot read this value: {exc}") from None


def _sequence(node: yaml.Node, source: str) -> list[yaml.Node]:
    if not isinstance(node, yaml.SequenceNode):
        raise SpecError(_at(source, node), "expected a list, e.g. [a, b]")
    return list(node.value)


class _Mapping:
    """A YAML mapping read key by key, remembering which keys were understood."""

    def __init__(self, node: yaml.Node, source: str, what: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            raise SpecError(_at(source, node), f"`{what}` must be a mapping of `key: value`")
        self.source, self.what = source, what
        self.items: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, source)
            if not isinstance(key, str):
                raise SpecError(_at(source, key_node), f"key {key!r} must be a name")
            if key in self.items:
                raise SpecError(_at(source, key_node), f"`{key}` is given twice in `{what}`")
            self.items[key] = (key_node, value_node)
        self.used: set[str] = set()

    def where(self, key: str) -> str:
        return _at(self.source, self.items[key][1])

    def _lookup(self, key: str, required: bool) -> yaml.Node | None:
        self.used.add(key)
        if key in self.items:
            return self.items[key][1]
        if required:
            raise SpecError(self.source, f"`{key}` is missing from the {self.what}",
                            hint=f"add `{key}: {SCHEMA_VERSION}` at the top")
        return None

    def value(self, key: str, check: Callable[[Any, str], Any], *, default: Any = None,
              required: bool = False) -> Any:
        """A single value, checked with the line it stands on."""
        node = self._lookup(key, required)
        return default if node is None else check(_scalar(node, self.source), self.where(key))

    def node(self, key: str, parse: Callable[[yaml.Node, str], Any], *,
             default: Any = None) -> Any:
        """A structured value (list or mapping), parsed from its node."""
        node = self._lookup(key, False)
        return default if node is None else parse(node, self.source)

    def reject_unknown(self) -> None:
        for key in self.items:
            if key not in self.used:
                known = ", ".join(sorted(self.used))
                raise SpecError(_at(self.source, self.items[key][0]),
                                f"unknown key `{key}` in {self.what}", hint=f"known keys: {known}")
