"""A Stats summary -> the report a person reads in an 80-column terminal (tabulate)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bptrace_exec.output.text import safe_text

if TYPE_CHECKING:
    from bptrace_exec.output.tally import Bucket, Latency, Stats

WIDTH = 80
TITLES = {"program": "Programs", "comm": "Callers (comm)", "uid": "Users (uid)",
          "ppid": "Parents (ppid)", "errno": "Errors", "syscall": "Syscalls",
          "cgroup": "Cgroups", "host": "Hosts", "euid": "Effective users (euid)",
          "tty": "Terminals (tty)"}
BAR = 36


def title_for(probes: tuple[str, ...], failed: bool, succeeded: bool, now_ns: int,
              host: str | None = None) -> str:
    """A live run's report title: what was traced, where, and when it was reported."""
    only = " (failed only)" if failed else " (successful only)" if succeeded else ""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now_ns // 1_000_000_000))
    return f"bptrace-exec stats: {', '.join(probes)}{only}{on(host)}, {when} UTC"


def on(host: str | None) -> str:
    return f" on {host}" if host else ""


def title_of(breakdown: str, unit: str = "execs") -> str:
    if breakdown == "errno":
        return f"Errors (failed {unit})"
    return TITLES.get(breakdown, f"By {breakdown}")


def shorten_middle(text: str, width: int) -> str:
    """Long names lose their middle, never their count: `/usr/lib/…/bin/tool`."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def human_us(us: float) -> str:
    if us >= 1_000_000:
        return f"{us / 1e6:.3g} s"
    if us >= 1000:
        return f"{us / 1e3:.3g} ms"
    return f"{us:.3g} us"


def bucket_text(b: Bucket) -> str:
    return f"{human_us(b.low_us)}-{human_us(b.high_us + 1)}" if b.high_us else "<1 us"


def share(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "-"


def _rate(stats: Stats) -> str:
    """Per second, over what span: a short one (a few events of a file) to the
    precision it has; none over no time at all (one event)."""
    d = stats.duration_s
    if d <= 0:
        return ""
    return f" ({stats.rate:.1f}/s over {d:.1f} s)" if d >= 1 else \
        f" ({stats.rate:,.0f}/s over {d * 1000:.3g} ms)"


def render_report(stats: Stats, *, top: int, title: str) -> str:
    from tabulate import tabulate  # only reports need it; it costs 15 ms to import

    out = [title,
           f"{stats.unit} {stats.count:,}{_rate(stats)}"
           + (f" · failed {stats.failed:,} ({share(stats.failed, stats.count)})"
              if stats.failed is not None else "")
           + (f" · {len(stats.breakdowns['program']):,} distinct programs"
              if "program" in stats.breakdowns else "")]
    for name, rows in stats.breakdowns.items():
        total = stats.total_of(name)
        shown = stats.top(name, top)
        out += ["", f"{title_of(name, stats.unit)} (top {min(top, len(rows))} of {len(rows)})"]
        if not shown:
            out.append("  (none)")
            continue
        key_width = WIDTH - 24
        table = [[shorten_middle(safe_text(k.encode("utf-8", "surrogateescape")), key_width),
                  c, share(c, total)] for k, c in shown]
        out.append(tabulate(table, headers=[name, "count", "share"], tablefmt="simple",
                            colalign=("left", "right", "right"), intfmt=","))
    if stats.latency and stats.latency.count:
        out += ["", *latency_lines(stats.latency, stats.unit)]
    if stats.unreadable:
        out += ["", f"({stats.unreadable} map entries could not be read and are not counted)"]
    return "\n".join(out) + "\n"


def latency_lines(lat: Latency, unit: str = "execs") -> list[str]:
    mean_us = lat.sum_ns / lat.count / 1000
    pcts = " · ".join(f"p{int(q * 100)} {bucket_text(lat.percentile(q))}"
                      for q in (0.5, 0.9, 0.99))
    what = "Lifetime, start to exit" if unit == "exits" else "Latency, entry to return"
    lines = [
        f"{what} ({lat.count:,} {unit}): min {human_us(lat.min_ns / 1000)}, "
        f"mean {human_us(mean_us)}, max {human_us(lat.max_ns / 1000)}",
        f"{pcts}",
        "(log2 buckets of microseconds: each percentile lies in the range shown)",
    ]
    peak = max(b.count for b in lat.buckets)
    for b in lat.buckets:
        bar = "@" * round(BAR * b.count / peak) if peak else ""
        lines.append(f"{bucket_text(b):>17} {b.count:>9,} |{bar:<{BAR}}|")
    return lines
