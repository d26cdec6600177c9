"""The parser on what bpftrace 0.17 and 0.23 really printed (scripts/capture-transcript),
checked against the same expectations as the live integration tests."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bptrace_exec.assemble import Assembler
from bptrace_exec.decode import Printf, decode_line
from bptrace_exec.render import event_to_dict
from expectations import check_all

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("driver-*.jsonl"))
WORKDIR = "/tmp/bptrace-exec-transcript"


def parse(lines: list[bytes]) -> tuple[list[dict[str, object]], Assembler]:
    assembler = Assembler(wall_offset_ns=0, max_args=64)
    events = []
    for line in lines:
        record = decode_line(line)
        if isinstance(record, Printf):
            events += [event_to_dict(e) for e in assembler.feed(record.text, 0)]
    events += [event_to_dict(e) for e in assembler.flush()]
    return events, assembler


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_recorded_run_parses_to_the_known_execs(fixture: Path) -> None:
    events, assembler = parse(fixture.read_bytes().splitlines())
    check_all(events, WORKDIR)
    assert assembler.stats.malformed == assembler.stats.unknown == 0
    assert assembler.stats.incomplete == assembler.stats.orphaned == 0


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_records_from_other_cpus_may_come_in_any_order(fixture: Path) -> None:
    """Shuffled records (one exec's parts on several CPUs) give the same execs."""
    lines = fixture.read_bytes().splitlines()
    in_order, _ = parse(lines)
    shuffled = lines[:]
    random.Random(7).shuffle(shuffled)
    any_order, assembler = parse(shuffled)
    key = lambda e: (e["time"], e["tid"])  # noqa: E731
    assert sorted(any_order, key=key) == sorted(in_order, key=key)
    assert assembler.stats.incomplete == 0


def test_both_versions_were_recorded() -> None:
    assert {f.stem for f in FIXTURES} >= {"driver-v0.17.0", "driver-v0.23.2"}
