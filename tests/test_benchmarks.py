"""The benchmarks still run (once, tiny): they time nothing here and assert no speed."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPTS = ROOT / "scripts"


def bench(name: str, *args: str, timeout: float = 300) -> str:
    out = subprocess.run([sys.executable, str(SCRIPTS / name), *args], capture_output=True,
                         text=True, timeout=timeout, check=True, cwd=ROOT)
    assert out.stdout.startswith("# x86_64") or out.stdout.startswith("# ")
    return out.stdout


def test_bench_parse() -> None:
    text = bench("bench_parse.py", "--records", "3000", "--rounds", "1")
    assert [line.split()[0] for line in text.splitlines()[2:]] == ["decode", "json", "table",
                                                                   "stats"]


@pytest.mark.root
def test_bench_storm() -> None:
    text = bench("bench_storm.py", "--execs", "40", "--rounds", "1", "--workers", "1",
                 "--configs", "none,bpftrace,events-pipe,bpftrace-stats,stats,"
                 "bpftrace-light,stats-light")
    assert "events-pipe rows received per round: [40]" in text
    # each bptrace-exec mode is also compared with bare bpftrace running its program,
    # in wall time and in the workload's CPU time
    for kind in ("events-pipe", "stats", "stats-light"):
        assert re.search(kind + r" +[\d.]+" + r" +[\d.]+" * 5 + "\n", text), text


@pytest.mark.root
def test_bench_startup() -> None:
    assert "ratio (median of 1 per-round ratios)" in bench("bench_startup.py", "--rounds", "1")


@pytest.mark.root
def test_bench_memory() -> None:
    text = bench("bench_memory.py", "--seconds", "4", "--modes", "events,stats")
    assert "events rss@1min" in text and "stats  rss@1min" in text
