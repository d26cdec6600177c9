"""What a stats run over tests/workloads/stats_driver.py must report, whatever produced it
(the kernel's maps, recorded JSON lines) and whatever format carried it."""

from __future__ import annotations

from pathlib import Path

from bptrace_exec.output.tally import Stats
from workloads.stats_driver import STATS_COUNTS, resolve


def expected_programs(workdir: str) -> dict[str, int]:
    return {resolve(p, Path(workdir)): n for p, (n, _) in STATS_COUNTS.items()}


def expected_errnos() -> dict[str, int]:
    out: dict[str, int] = {}
    for count, errno in STATS_COUNTS.values():
        if errno:
            out[errno] = out.get(errno, 0) + count
    return out


def check_stats(stats: Stats, workdir: str) -> None:
    programs = dict(stats.breakdowns["program"])
    for path, count in expected_programs(workdir).items():
        assert programs.get(path) == count, (path, programs)
    assert dict(stats.breakdowns["errno"]) == expected_errnos()
    assert stats.failed == sum(expected_errnos().values())
    assert stats.count == sum(programs.values()) == sum(c for _, c in stats.breakdowns["uid"])
    assert stats.latency is not None and stats.latency.count == stats.count
    assert stats.latency.min_ns <= stats.latency.max_ns
    assert sum(b.count for b in stats.latency.buckets) == stats.count
