"""A Stats summary -> Prometheus metric families: the same for a scrape (--serve) and for
a textfile (--export FILE.prom), rendered by prometheus_client.

Every series carries the labels `host` and `profile` (when known). Names (stable):
  bptrace_exec_{unit}_total                 counter: execs, calls or exits
  bptrace_exec_failed_{unit}_total          counter; absent when failures are not counted
  bptrace_exec_{unit}_by_{name}_total       counter per key of a breakdown ({name}="KEY";
                                            by_{name} for host, profile, le, quantile and
                                            __*): `top` keys at most, the rest under "(other)"
  bptrace_exec_latency_seconds              histogram, log2 buckets of 1 us to 71 min
  bptrace_exec_lost_events_total            counter: records bpftrace lost (buffer full)
  bptrace_exec_missing_total                counter: calls the kernel saw that were never
                                            shown, known when a bpftrace run ends
  bptrace_exec_duration_seconds             gauge: how long the run has traced
  bptrace_exec_restarts_total               counter: bpftrace started again after it died
  bptrace_exec_up                           gauge: 1 while bpftrace traces
  bptrace_exec_build_info                   gauge 1, labels version and bpftrace

Which keys get a series: a key keeps its series for the life of the process once it has
one, so that neither it nor "(other)" ever goes backwards; while there is room (fewer
than `top`), new keys get one, the most counted first. A key counted after that is
summed under "(other)" (restart the run to choose again).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from bptrace_exec.output.tally import OTHER, Latency, Stats

PREFIX = "bptrace_exec_"
# label names Prometheus keeps for itself: a breakdown of that name is labelled by_NAME
# (an argument called `le`, or `__x`, which the text format refuses)
RESERVED_LABELS = ("le", "quantile")
# le of each bucket, in microseconds: log2 buckets, always all of them, so that a
# histogram keeps the same series from one scrape to the next
LADDER_US = tuple(1 << k for k in range(33))


@dataclass(frozen=True)
class RunState:
    """What a run says of itself, beside its counts."""

    lost: int = 0  # records bpftrace lost
    missing: int = 0
    up: bool = True
    bpftrace: str = ""  # its version
    version: str = ""  # bptrace-exec's
    restarts: int = 0  # of bpftrace, after it died (--restart)


@dataclass
class Keys:
    """Which keys of each breakdown have a series of their own (see the module's text)."""

    top: int
    chosen: dict[str, dict[str, None]] = field(default_factory=dict)  # ordered sets

    def split(self, name: str, rows: list[tuple[str, int]]) -> tuple[list[tuple[str, int]],
                                                                       int]:
        """Rows (most counted first) -> those with a series, and the sum of the rest."""
        chosen = self.chosen.setdefault(name, {})
        for key, _ in rows:
            if len(chosen) >= self.top:
                break
            if key != OTHER:  # a key of that name is summed with the rest
                chosen.setdefault(key)
        return [(k, c) for k, c in rows if k in chosen], sum(
            c for k, c in rows if k not in chosen)


def families(stats: Stats, keys: Keys, labels: Mapping[str, str],
             run: RunState | None = None, *, latency_kept: bool = False) -> list[Metric]:
    """Every metric of one refresh. `labels`: host and profile, on every series;
    `latency_kept`: the histogram is there even before any latency is counted."""
    names, values = list(labels), list(labels.values())
    unit = stats.unit
    what = unit.capitalize()

    def counter(name: str, doc: str, value: float) -> Metric:
        metric = CounterMetricFamily(PREFIX + name, doc, labels=names)
        metric.add_metric(values, value)
        return metric

    def gauge(name: str, doc: str, value: float, extra: Mapping[str, str] | None = None
              ) -> Metric:
        extra = extra or {}
        metric = GaugeMetricFamily(PREFIX + name, doc, labels=[*names, *extra])
        metric.add_metric([*values, *extra.values()], value)
        return metric

    out = [counter(f"{unit}_total", f"{what} traced.", stats.count)]
    if stats.failed is not None:
        out.append(counter(f"failed_{unit}_total", f"{what} that returned an error.",
                           stats.failed))
    for name, rows in stats.breakdowns.items():
        label = f"by_{name}" if name in labels or name in RESERVED_LABELS or \
            name.startswith("__") else name
        metric = CounterMetricFamily(
            f"{PREFIX}{unit}_by_{name}_total",
            f"{what} per {name}: {keys.top} keys at most, the rest under {OTHER}.",
            labels=[*names, label])
        shown, rest = keys.split(name, as_labels(rows))
        for key, count in [*shown, (OTHER, rest)]:
            metric.add_metric([*values, key], count)
        out.append(metric)
    if stats.latency is not None or latency_kept:
        out.append(histogram(stats.latency, names, values, unit))
    out.append(gauge("duration_seconds", "How long the run has traced.", stats.duration_s))
    if run is not None:
        out += [counter("lost_events_total", "Records bpftrace lost: its buffer was full.",
                        run.lost),
                counter("missing_total", f"{what} the kernel saw that never reached "
                        "bptrace-exec; known when a bpftrace run ends.", run.missing),
                counter("restarts_total", "Times bpftrace was started again after it died.",
                        run.restarts),
                gauge("up", "1 while bpftrace traces.", int(run.up)),
                gauge("build_info", "The versions of bptrace-exec and bpftrace.", 1,
                      {"version": run.version, "bpftrace": run.bpftrace})]
    return out


def histogram(latency: Latency | None, names: list[str], values: list[str],
              unit: str) -> Metric:
    what = ("Lifetime, start to exit" if unit == "exits"
            else "Latency, entry to return, measured in the kernel")
    metric = HistogramMetricFamily(PREFIX + "latency_seconds", f"{what}.", labels=names)
    buckets = latency.buckets if latency else ()
    cumulative = []
    for le_us in LADDER_US:
        cumulative.append((f"{le_us / 1e6:.6f}",
                           sum(b.count for b in buckets if b.high_us + 1 <= le_us)))
    count = latency.count if latency else 0
    metric.add_metric(values, [*cumulative, ("+Inf", count)],
                      sum_value=latency.sum_ns / 1e9 if latency else 0.0)
    return metric


def as_labels(rows: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Keys as label values, bytes that are not UTF-8 as \\xNN; keys that read the same
    then (the byte 0xff, the text \\xff) are one series, or Prometheus would get two
    samples of one series."""
    merged: dict[str, int] = {}
    for key, count in rows:
        text = key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        merged[text] = merged.get(text, 0) + count
    return sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))


class Exporter:
    """A prometheus_client collector: the families last published, swapped whole, so that
    a scrape never sees half of a refresh."""

    def __init__(self, initial: Iterable[Metric] = ()) -> None:
        self._families = list(initial)

    def publish(self, metrics: list[Metric]) -> None:
        self._families = metrics

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)
