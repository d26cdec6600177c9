#!/usr/bin/env python3
"""Offline throughput: parse + render of a recorded bpftrace transcript, records per second.

    scripts/bench_parse.py [--transcript FILE] [--records N] [--rounds R] [--profile]

The transcript (default tests/fixtures/driver5-v0.17.0.jsonl, a real run of the argv test
cases; scripts/capture-transcript records others; driver-* are of record version 1,
driverN-* of version N) is
repeated with fresh keys until it holds N records. Each path is timed on one core,
in-process, R rounds:
  decode      JSON line -> record
  json        decode + assemble + one JSON line per exec (what --json does)
  table       decode + assemble + one table row per exec
  stats       decode + assemble + a tally of each event (what --stats does, as events go by)
--profile prints the top functions of the json path (cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "wrapper"))

from bptrace_exec.event import Event  # noqa: E402
from bptrace_exec.output.render import Renderer  # noqa: E402
from bptrace_exec.output.tally import Tally  # noqa: E402
from bptrace_exec.output.text import json_line  # noqa: E402
from bptrace_exec.parse.decode import Printf, decode_line  # noqa: E402
from bptrace_exec.parse.join import Assembler  # noqa: E402
from bptrace_exec.spec import parse_profile  # noqa: E402

FIXTURE = TOP / "tests" / "fixtures" / "driver5-v0.17.0.jsonl"
EXECVE = parse_profile("version: 1\n", source="probes/execve.yaml", name="execve")
RENDER = Renderer(EXECVE)
VERSION = 5
_KEY = re.compile(rb'"data": "(\w+) (\d+) (\d+) ')


def transcript(records: int, source: Path = FIXTURE) -> list[bytes]:
    base = [ln for ln in source.read_bytes().splitlines() if b'"printf"' in ln
            and b'"ready' not in ln]
    out: list[bytes] = []
    round_ = 0
    while len(out) < records:
        round_ += 1
        out += [_KEY.sub(lambda m, shift=round_ * 10_000_000: b'"data": "%s %s %d ' % (
            m.group(1), m.group(2), int(m.group(3)) + shift), ln) for ln in base]
    return out[:records]


def run_decode(lines: list[bytes]) -> int:
    n = 0
    for line in lines:
        n += decode_line(line) is not None
    return n


def run_pipeline(lines: list[bytes], render: Callable[[Event], object]) -> int:
    asm = Assembler(EXECVE, wall_offset_ns=0, version=VERSION)
    n = 0
    for line in lines:
        record = decode_line(line)
        if isinstance(record, Printf):
            for event in asm.feed(record.text, 0):
                render(event)
                n += 1
    return n


def run_json(lines: list[bytes]) -> int:
    return run_pipeline(lines, lambda e: json_line(RENDER.to_dict(e)))


def run_table(lines: list[bytes]) -> int:
    return run_pipeline(lines, RENDER.row)


def run_stats(lines: list[bytes]) -> int:
    tally = Tally(EXECVE.stats.by, EXECVE.kind.unit)
    return run_pipeline(lines, lambda e: tally.add_event(EXECVE, e))


PATHS = {"decode": run_decode, "json": run_json, "table": run_table, "stats": run_stats}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--transcript", type=Path, default=FIXTURE)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    global VERSION
    VERSION = int(args.transcript.name.split("-")[0].removeprefix("driver") or 1)
    lines = transcript(args.records, args.transcript)
    print(f"# {platform.machine()}, {os.cpu_count()} cpus, Python "
          f"{platform.python_version()}; {len(lines)} records from {args.transcript.name}")
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(run_json, lines)
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
        print(out.getvalue())
        return 0
    print(f"{'path':8} {'records/s':>12} {'execs/s':>10}   (median of {args.rounds} rounds)")
    for name, fn in PATHS.items():
        rates, execs = [], 0
        for _ in range(args.rounds):
            start = time.process_time()
            execs = fn(lines)
            rates.append(len(lines) / (time.process_time() - start))
        rate = statistics.median(rates)
        per_exec = rate * execs / len(lines) if name != "decode" else 0
        print(f"{name:8} {rate:12,.0f} {per_exec:10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
