"""Counts -> a Stats summary, from bpftrace's maps or from recorded JSON lines alike."""

from __future__ import annotations

import errno as errno_names
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from bptrace_exec.decode import restore_bytes


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
    execs: int
    failed: int
    duration_s: float
    breakdowns: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # by count
    latency: Latency | None = None
    unreadable: int = 0  # map entries that were not what the program prints (reported)

    @property
    def rate(self) -> float:
        return self.execs / self.duration_s if self.duration_s > 0 else 0.0

    def top(self, name: str, n: int) -> list[tuple[str, int]]:
        return self.breakdowns.get(name, [])[:n]


def log2_bucket(us: int) -> tuple[int, int]:
    """bpftrace's hist() bucket for a value: [0,0], [1,1], [2,3], [4,7], ..."""
    if us <= 0:
        return 0, 0
    low = 1 << (us.bit_length() - 1)
    return low, 2 * low - 1


def _ordered(counter: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))


def _key_text(raw: str, double_escaped: bool) -> str:
    if double_escaped:  # bpftrace 0.22-0.23 JSON-escape string keys twice
        raw = json.loads('"' + raw + '"', strict=False)
    try:
        return restore_bytes(raw).decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # not something bpftrace writes: keep it, visibly
        return raw.encode("utf-8", "backslashreplace").decode("ascii")


def _errno_name(number: int) -> str:
    return errno_names.errorcode.get(number, f"E{number}")


def from_maps(maps: Mapping[str, object], *, by: Iterable[str], duration_s: float,
              double_escaped_keys: bool = False) -> Stats:
    """The @stat_* maps of one snapshot; an absent map is an empty one (bpftrace skips them)."""
    unreadable = 0

    def counts(name: str) -> dict[str, int]:
        nonlocal unreadable
        value = maps.get(f"stat_{name}", {})
        if not isinstance(value, dict):
            unreadable += 1
            return {}
        good = {k: v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}
        unreadable += len(value) - len(good)
        if name in ("execs", "errno", "uid", "ppid"):
            numeric = {k: v for k, v in good.items() if k.isdigit()}
            unreadable += len(good) - len(numeric)
            good = numeric
        return good

    execs_by_failed = counts("execs")
    breakdowns: dict[str, list[tuple[str, int]]] = {}
    for name in by:
        raw = counts(name)
        if name == "errno":
            keyed = {_errno_name(int(k)): v for k, v in raw.items()}
        elif name in ("program", "comm"):
            keyed = {_key_text(k, double_escaped_keys): v for k, v in raw.items()}
        else:
            keyed = raw
        breakdowns[name] = _ordered(Counter(keyed))
    latency = None
    hist = maps.get("stat_latency_us")
    if isinstance(hist, list):
        readable = [b for b in hist if isinstance(b, dict) and all(
            isinstance(b.get(k), int) for k in ("min", "max", "count"))]
        # 0.17's first bucket (values < 0, never used here) has no "min": not unreadable
        unreadable += sum(1 for b in hist if b not in readable and
                          not (isinstance(b, dict) and "min" not in b))
        buckets = tuple(Bucket(b["min"], b["max"], b["count"]) for b in readable)
        scalar = {n: next(iter(counts(n).values()), 0)
                  for n in ("latency_min", "latency_max", "latency_sum")}
        latency = Latency(count=sum(b.count for b in buckets), min_ns=scalar["latency_min"],
                          max_ns=scalar["latency_max"], sum_ns=scalar["latency_sum"],
                          buckets=_trim(buckets))
    return Stats(execs=sum(execs_by_failed.values()), failed=execs_by_failed.get("1", 0),
                 duration_s=duration_s, breakdowns=breakdowns, latency=latency,
                 unreadable=unreadable)


def _trim(buckets: tuple[Bucket, ...]) -> tuple[Bucket, ...]:
    """Empty buckets below the first and above the last used one say nothing."""
    used = [i for i, b in enumerate(buckets) if b.count]
    return buckets[used[0]:used[-1] + 1] if used else ()


def from_events(events: Iterable[Mapping[str, object]], *, by: Iterable[str],
                duration_s: float | None = None) -> Stats:
    """The same summary from exec objects of `--json` output (Python counts here)."""
    wanted = list(by)
    counters: dict[str, Counter[str]] = {name: Counter() for name in wanted}
    execs = failed = 0
    lat: list[int] = []
    first = last = None
    for e in events:
        execs += 1
        is_failed = int(e.get("ret", 0)) < 0  # type: ignore[call-overload]
        failed += is_failed
        values = {"program": e.get("filename"), "comm": e.get("comm"), "uid": e.get("uid"),
                  "ppid": e.get("ppid"), "errno": e.get("errno") if is_failed else None}
        for name in wanted:
            if values[name] is not None:
                counters[name][str(values[name])] += 1
        lat.append(int(e.get("latency_ns", 0)))  # type: ignore[call-overload]
        stamp = str(e.get("time", ""))
        first = stamp if first is None else min(first, stamp)
        last = stamp if last is None else max(last, stamp)
    if duration_s is None:
        duration_s = _span_s(first, last)
    return Stats(execs=execs, failed=failed, duration_s=duration_s,
                 breakdowns={n: _ordered(c) for n, c in counters.items()},
                 latency=latency_from_ns(lat) if lat else None)


def latency_from_ns(values: list[int]) -> Latency:
    counts: Counter[tuple[int, int]] = Counter(log2_bucket(v // 1000) for v in values)
    top = max(high for _, high in counts)
    buckets = []
    low = 0
    while low <= top:
        bucket = log2_bucket(low)
        buckets.append(Bucket(bucket[0], bucket[1], counts.get(bucket, 0)))
        low = bucket[1] + 1
    return Latency(count=len(values), min_ns=min(values), max_ns=max(values),
                   sum_ns=sum(values), buckets=_trim(tuple(buckets)))


def _span_s(first: str | None, last: str | None) -> float:
    if not first or not last:
        return 0.0
    try:
        return (_parse_time(last) - _parse_time(first)).total_seconds()
    except ValueError:
        return 0.0


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
