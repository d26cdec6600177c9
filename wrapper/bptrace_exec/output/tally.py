"""Counting, one way whatever the counts come from: kernel maps (an exec profile's stats
program), events as they go by, or JSON lines written earlier; each gives a Stats
summary, which the report and every export render alike."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from bptrace_exec.event import KILLED, Event, ProcContext, errno_name, tty_name
from bptrace_exec.output.jsonlines import parse_time
from bptrace_exec.output.text import cut_path, decode_text
from bptrace_exec.parse.decode import restore_bytes
from bptrace_exec.records import LATENCY_HIST_MAP, LATENCY_LOG2_MAP
from bptrace_exec.spec import types
from bptrace_exec.spec.captures import EXIT_ARGS
from bptrace_exec.spec.model import KINDS, PATHS, PROCESS_EXIT, ProbeKind, Profile

NO_VALUE = "(none)"  # the key of events without a value: a fork's flags, no terminal
OTHER = "(other)"  # the key of the rest: what a breakdown counted beyond its top keys
OF_FAILED = "errno"  # the breakdown of failed calls alone: a success has no key there
# the arguments JSON lines hold as fields of their own (an exec's, an exit's)
TOP_LEVEL_ARGS = (*(g.name for g in KINDS["exec"].given_args), *(n for n, _ in EXIT_ARGS))


@dataclass(frozen=True)
class Bucket:
    """Latencies whose whole microseconds lie in [low_us, high_us]."""

    low_us: int
    high_us: int
    count: int

    @property
    def upper_s(self) -> float:
        """The bucket's exclusive upper bound, in seconds (Prometheus `le`)."""
        return (self.high_us + 1) / 1e6


@dataclass(frozen=True)
class Latency:
    count: int
    min_ns: int
    max_ns: int
    sum_ns: int
    buckets: tuple[Bucket, ...]  # log2: [0,0], [1,1], [2,3], [4,7], ...

    def percentile(self, q: float) -> Bucket:
        """The bucket holding the q-quantile (0 < q <= 1): its true value lies within."""
        rank = max(1, round(q * self.count + 0.5 - 1e-9))
        seen = 0
        for bucket in self.buckets:
            seen += bucket.count
            if seen >= rank:
                return bucket
        return self.buckets[-1]


@dataclass(frozen=True)
class Stats:
    count: int
    failed: int | None  # None: not counted (a profile of successful calls only)
    duration_s: float
    breakdowns: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # by count
    latency: Latency | None = None
    unreadable: int = 0  # map entries that were not what the program prints (reported)
    unit: str = "execs"  # what is counted: execs, calls or exits

    @property
    def rate(self) -> float:
        return self.count / self.duration_s if self.duration_s > 0 else 0.0

    def top(self, breakdown: str, top: int) -> list[tuple[str, int]]:
        """The breakdown's `top` keys, and OTHER with the sum of the rest if any: the
        counts shown add up to what was counted."""
        rows = self.breakdowns[breakdown]
        return rows[:top] + ([(OTHER, self.rest(breakdown, top))] if len(rows) > top else [])

    def rest(self, breakdown: str, top: int) -> int:
        """What the breakdown counted beyond its `top` keys."""
        return sum(c for _, c in self.breakdowns[breakdown][top:])

    def total_of(self, breakdown: str) -> int:
        """What a breakdown's shares are of: errnos are of the failed calls."""
        return (self.failed or 0) if breakdown == OF_FAILED else self.count


class Tally:
    """Counts kept as events go by, in constant memory per distinct key."""

    def __init__(self, by: Iterable[str], unit: str) -> None:
        self.counters: dict[str, Counter[str]] = {name: Counter() for name in by}
        self.unit = unit
        self.count = self.failed = 0
        self.latency = LatencyTally()
        self._keys: list[tuple[Counter[str], Callable[[Event], object], str | None]] | None \
            = None

    def add(self, values: Mapping[str, object], *, failed: bool, latency_ns: int) -> None:
        self.count += 1
        self.failed += failed
        for name, counter in self.counters.items():
            counted = _counted_key(name, values.get(name))
            if counted is not None:
                counter[counted] += 1
        self.latency.add(latency_ns)

    def add_event(self, profile: Profile, e: Event) -> None:
        if self._keys is None:  # what each breakdown reads of an event, found once
            keys = breakdown_keys(profile)
            self._keys = [(counter, keys[name], _missing_key(name))
                          for name, counter in self.counters.items()]
        self.count += 1
        self.failed += profile.kind.failed(e.ret)
        for counter, key, missing in self._keys:
            value = key(e)
            if value is not None:
                counter[str(value)] += 1
            elif missing is not None:
                counter[missing] += 1
        self.latency.add(e.latency_ns)

    def result(self, duration_s: float) -> Stats:
        return Stats(count=self.count, failed=self.failed, duration_s=duration_s,
                     breakdowns={n: _ordered(c) for n, c in self.counters.items()},
                     latency=self.latency.result(), unit=self.unit)


def _missing_key(breakdown: str) -> str | None:
    """What an event without a value is counted under: "(none)", so that a breakdown's
    shares add up to its total; errnos are of failed calls alone (a success has none)."""
    return None if breakdown == OF_FAILED else NO_VALUE


def _counted_key(breakdown: str, value: object) -> str | None:
    return _missing_key(breakdown) if value is None else str(value)


def breakdown_keys(profile: Profile) -> dict[str, Callable[[Event], object]]:
    """What an event is counted under, by breakdown: each argument as the table shows it
    (a string as it is, a list joined by spaces); None: it has none (_missing_key)."""
    def context(read: Callable[[ProcContext], object]) -> Callable[[Event], object]:
        return lambda e: read(e.context) if e.context else None

    keys: dict[str, Callable[[Event], object]] = {
        "syscall": lambda e: e.syscall, "comm": lambda e: decode_text(e.comm),
        "uid": lambda e: e.uid, "ppid": lambda e: e.ppid, "errno": lambda e: e.outcome,
        "euid": lambda e: e.who.euid if e.who else None,
        "tty": lambda e: (e.who.tty or NO_VALUE) if e.who else None,
        "container": context(lambda c: c.container[1][:12] if c.container else NO_VALUE),
        "cgroup": context(lambda c: c.path or c.cgroup or "/"),
        "hostname": context(lambda c: c.hostname),
        "cwd": lambda e: _path_key(e.cwd, "cwd" in e.truncated),
        "exe": lambda e: _path_key(e.exe, "exe" in e.truncated)}
    for arg in profile.args:
        keys[arg.name] = _arg_key(arg.name, types.of(arg.type))
    keys.update({alias: keys[name] for alias, name in profile.kind.aliases.items()})
    return keys


def _path_key(path: bytes | None, cut: bool) -> str | None:
    return None if path is None else cut_path(decode_text(path), cut)


def _arg_key(name: str, arg_type: types.ArgType) -> Callable[[Event], object]:
    def key(e: Event) -> object:
        value = e.values[name]
        if isinstance(value, tuple):
            return " ".join(decode_text(v) for v in value)
        if isinstance(value, bytes) and arg_type.read != "sockaddr":
            return decode_text(value)
        return None if value is None else arg_type.show(value)
    return key


class LatencyTally:
    def __init__(self) -> None:
        self.buckets: Counter[tuple[int, int]] = Counter()
        self.count = self.sum_ns = self.max_ns = 0
        self.min_ns: int | None = None

    def add(self, ns: int) -> None:
        us = ns // 1000
        low = 1 << (us.bit_length() - 1) if us > 0 else 0  # log2_bucket, inlined: hot
        self.buckets[(low, 2 * low - 1 if low else 0)] += 1
        self.count += 1
        self.sum_ns += ns
        if ns > self.max_ns:
            self.max_ns = ns
        if self.min_ns is None or ns < self.min_ns:
            self.min_ns = ns

    def result(self) -> Latency | None:
        if not self.count:
            return None
        top = max(high for _, high in self.buckets)
        buckets = [Bucket(low, high, self.buckets.get((low, high), 0))
                   for low, high in _ladder(top)]
        return Latency(count=self.count, min_ns=self.min_ns or 0, max_ns=self.max_ns,
                       sum_ns=self.sum_ns, buckets=_trim(tuple(buckets)))


def merged(earlier: Stats | None, later: Stats) -> Stats:
    """The counts of two bpftrace runs of one trace (--restart) as one."""
    if earlier is None:
        return later
    a, b = earlier, later
    breakdowns = {}
    for name in dict.fromkeys([*a.breakdowns, *b.breakdowns]):
        both: Counter[str] = Counter(dict(a.breakdowns.get(name, [])))
        both.update(dict(b.breakdowns.get(name, [])))
        breakdowns[name] = _ordered(both)
    return Stats(count=a.count + b.count,
                 failed=None if a.failed is None or b.failed is None else a.failed + b.failed,
                 duration_s=a.duration_s + b.duration_s, breakdowns=breakdowns,
                 latency=_merged_latency(a.latency, b.latency),
                 unreadable=a.unreadable + b.unreadable, unit=b.unit)


def _merged_latency(a: Latency | None, b: Latency | None) -> Latency | None:
    a, b = (a if a and a.count else None), (b if b and b.count else None)
    if a is None or b is None:
        return a or b
    counts: Counter[tuple[int, int]] = Counter()
    for bucket in (*a.buckets, *b.buckets):
        counts[(bucket.low_us, bucket.high_us)] += bucket.count
    buckets = tuple(Bucket(low, high, counts.get((low, high), 0))
                    for low, high in _ladder(max(high for _, high in counts)))
    return Latency(count=a.count + b.count, min_ns=min(a.min_ns, b.min_ns),
                   max_ns=max(a.max_ns, b.max_ns), sum_ns=a.sum_ns + b.sum_ns,
                   buckets=_trim(buckets))


def _ladder(top: int) -> list[tuple[int, int]]:
    """Every log2 bucket up to the one that ends at `top`."""
    out, low = [], 0
    while low <= top:
        out.append(log2_bucket(low))
        low = out[-1][1] + 1
    return out


def log2_bucket(us: int) -> tuple[int, int]:
    """bpftrace's hist() bucket for a value: [0,0], [1,1], [2,3], [4,7], ..."""
    if us <= 0:
        return 0, 0
    low = 1 << (us.bit_length() - 1)
    return low, 2 * low - 1


def _ordered(counter: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))


def _trim(buckets: tuple[Bucket, ...]) -> tuple[Bucket, ...]:
    """Empty buckets below the first and above the last used one say nothing."""
    used = [i for i, b in enumerate(buckets) if b.count]
    return buckets[used[0]:used[-1] + 1] if used else ()


# --- kernel maps: an exec profile's stats program (codegen.stats) ------------------------

_U64 = (1 << 64) - 1
_LOG2_BUCKETS = 65  # hist()'s, of values of 0 to 64 bits


def _number(key: str) -> str | None:
    """A number of a map key as its u64 (bpftrace prints a tuple's as signed)."""
    digits = key[1:] if key.startswith("-") else key
    return str(int(key) & _U64) if digits.isascii() and digits.isdigit() else None


def from_maps(maps: Mapping[str, object], *, by: Iterable[str], duration_s: float,
              double_escaped_keys: bool = False, by_cpu: bool = True,
              cgroup_names: Callable[[set[int]], Mapping[int, str]] | None = None) -> Stats:
    """The @stat_* maps of one snapshot; an absent map is an empty one (bpftrace skips them).
    by_cpu: the breakdowns are keyed (VALUE, CPU), as since records.STATS_BY_CPU (their
    counts summed here), not by VALUE. cgroup_names: cgroup ids -> paths, as found on this
    machine (others show their id)."""
    unreadable = 0

    def counts(name: str, keyed_by_cpu: bool = False, numeric: bool = True
               ) -> dict[str, int]:
        """Map `name`'s counts by key, summed over CPUs when `keyed_by_cpu`."""
        nonlocal unreadable
        value = maps.get(name, {})
        if not isinstance(value, dict):
            unreadable += 1
            return {}
        good: dict[str, int] = {}
        for raw, n in value.items():
            key: str | None = raw
            if keyed_by_cpu:  # "VALUE,CPU": a string VALUE may hold commas, not CPU
                key, _, cpu = raw.rpartition(",")
                if not cpu.isascii() or not cpu.isdigit():
                    key = None
            if numeric and key is not None:
                key = _number(key)
            if key is None or not isinstance(n, int) or isinstance(n, bool):
                unreadable += 1
            else:
                good[key] = good.get(key, 0) + n
        return good

    by_failed = counts("stat_execs")
    breakdowns: dict[str, list[tuple[str, int]]] = {}
    for name in by:
        raw = counts(f"stat_{name}", by_cpu, numeric=name not in ("program", "comm"))
        if name == "errno":
            keyed = {errno_name(-int(k)) or k: v for k, v in raw.items()}
        elif name in ("program", "comm"):
            keyed = {_key_text(k, double_escaped_keys): v for k, v in raw.items()}
        elif name == "tty":
            keyed = {tty_name(int(k)) or NO_VALUE: v for k, v in raw.items()}
        elif name == "cgroup":
            names = cgroup_names({int(k) for k in raw}) if cgroup_names else {}
            keyed = {names.get(int(k), f"cgroup id {k}"): v for k, v in raw.items()}
        else:
            keyed = raw
        breakdowns[name] = _ordered(Counter(keyed))
    latency = None
    hist = maps.get(LATENCY_HIST_MAP)
    buckets: tuple[Bucket, ...] | None = None
    if LATENCY_LOG2_MAP in maps:
        log2 = {int(k): n for k, n in counts(LATENCY_LOG2_MAP, True).items()}
        unreadable += sum(1 for b in log2 if b >= _LOG2_BUCKETS)
        # bucket N: the values of N bits
        buckets = tuple(Bucket(*log2_bucket(1 << b >> 1), log2.get(b, 0)) for b in range(
            max((b + 1 for b in log2 if b < _LOG2_BUCKETS), default=0)))
    elif isinstance(hist, list):
        readable = [b for b in hist if isinstance(b, dict) and all(
            isinstance(b.get(k), int) for k in ("min", "max", "count"))]
        # 0.17's first bucket (values < 0, never used here) has no "min": not unreadable
        unreadable += sum(1 for b in hist if b not in readable and
                          not (isinstance(b, dict) and "min" not in b))
        buckets = tuple(Bucket(b["min"], b["max"], b["count"]) for b in readable)
    if buckets is not None:
        # per CPU (codegen.stats.PER_CPU); one value in a one-liner's or older recording
        lows = [v for v in counts("stat_latency_min").values() if v]
        latency = Latency(count=sum(b.count for b in buckets), min_ns=min(lows, default=0),
                          max_ns=max(counts("stat_latency_max").values(), default=0),
                          sum_ns=sum(counts("stat_latency_sum").values()), buckets=_trim(buckets))
    # FAILED | CPU << 1 (codegen.stats.PER_CPU); in a recording made before: FAILED
    return Stats(count=sum(by_failed.values()),
                 failed=sum(n for k, n in by_failed.items() if int(k) % 2),
                 duration_s=duration_s, breakdowns=breakdowns, latency=latency,
                 unreadable=unreadable)


def _key_text(raw: str, double_escaped: bool) -> str:
    if double_escaped:  # bpftrace 0.22-0.23 JSON-escape string keys twice
        raw = json.loads('"' + raw + '"', strict=False)
    try:
        return restore_bytes(raw).decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # not something bpftrace writes: keep it, visibly
        return raw.encode("utf-8", "backslashreplace").decode("ascii")


# --- JSON lines written earlier with --json (--stats --from) ----------------------------

def from_json_events(events: Iterable[Mapping[str, object]], *,
                     by_kind: Callable[[ProbeKind], Iterable[str]],
                     duration_s: float | None = None) -> Stats:
    """The same summary from exec, call or exit objects of `--json` output, each kind
    counted under the breakdowns `by_kind` gives it (asked as its first event is counted):
    of the execs when there are any (a stream of execs and exits), else of what there is.
    The time span is of every event: one trace's (stats_from_json refuses a mix of
    traces of different profiles)."""
    tallies: dict[str, Tally] = {}
    first = last = None
    for e in events:
        kind = event_kind(e)
        tally = tallies.get(kind.unit)
        if tally is None:
            tally = tallies[kind.unit] = Tally(by_kind(kind), kind.unit)
        killed = e.get(KILLED) is True  # then "ret" is null
        failed = killed or kind.failed(int(e.get("ret", 0)))  # type: ignore[call-overload]
        values = {"comm": e.get("comm"), "uid": e.get("uid"), "ppid": e.get("ppid"),
                  # identity: read since record version 5 (exec_id null before)
                  "euid": e.get("euid"),
                  "tty": (e.get("tty") or NO_VALUE) if e.get("exec_id") is not None else None,
                  "errno": KILLED if killed else e.get("errno") if failed else None,
                  "syscall": e.get("syscall"), "host": e.get("host")}
        for which in PATHS:  # read with --cwd, --exe
            path = e.get(which)
            values[which] = cut_path(path, e.get(f"{which}_truncated") is True) \
                if isinstance(path, str) else None
        context = e.get("context")
        if isinstance(context, dict):  # recorded with --context
            values["cgroup"] = context.get("cgroup_path") or context.get("cgroup") or "/"
        args = e.get("args")
        if not isinstance(args, dict):  # an exec's or an exit's: fields of their own
            args = {k: e.get(k) for k in TOP_LEVEL_ARGS if k in e}
        values.update({k: _json_key(v) for k, v in args.items()})
        values.update({alias: values.get(name) for alias, name in kind.aliases.items()})
        latency = e.get(f"{kind.latency}_ns", 0)
        tally.add(values, failed=failed, latency_ns=int(latency))  # type: ignore[call-overload]
        stamp = str(e.get("time", ""))
        first = stamp if first is None else min(first, stamp)
        last = stamp if last is None else max(last, stamp)
    if duration_s is None:
        duration_s = _span_s(first, last)
    chosen = tallies.get("execs") or next(iter(tallies.values()), None) or Tally(
        by_kind(KINDS["exec"]), "execs")
    return chosen.result(duration_s)


def event_kind(e: Mapping[str, object]) -> ProbeKind:
    """What a JSON event is of, by its "event" (lines written before it had one: execs)."""
    name = e.get("event", "exec")
    return next((k for k in KINDS.values() if k.event == name), KINDS["syscall"])


def writes(profile: Profile, e: Mapping[str, object]) -> bool:
    """Whether `profile`'s --json may have written event `e`: an exec profile's stream
    holds the ends of processes too (process, --exits), which its report does not count."""
    kind = event_kind(e)
    if kind.name == PROCESS_EXIT:
        return PROCESS_EXIT in profile.probes or profile.kind.new_image
    if kind.new_image:
        return profile.kind.new_image
    return e.get("syscall") in profile.calls


def event_text(e: Mapping[str, object]) -> str:
    """An event as an error names it: "an exec", "an exit", "a call of openat"."""
    kind = event_kind(e)
    return f"a call of {e.get('syscall')}" if kind.name == "syscall" else \
        f"an {kind.event}"


def _json_key(value: object) -> object:
    """A JSON argument value as a breakdown key: addresses and lists as the table has them."""
    if isinstance(value, dict):
        if "port" in value:
            host = str(value.get("address"))
            return f"[{host}]:{value['port']}" if ":" in host else f"{host}:{value['port']}"
        return value.get("path", value.get("family"))
    if isinstance(value, list):
        return " ".join(map(str, value))
    return value


def _span_s(first: str | None, last: str | None) -> float:
    if not first or not last:
        return 0.0
    try:
        return (parse_time(last) - parse_time(first)) / 1e9
    except ValueError:
        return 0.0
