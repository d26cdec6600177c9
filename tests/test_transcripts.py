"""The parser on what bpftrace 0.17 and 0.23 really printed (scripts/capture-transcript),
checked against the same expectations as the live integration tests. The `driver-*`
transcripts were printed by programs of record version 1 (before one model for every
probe), `driverN-*` by programs of version N: they stand for the recordings made then,
which must still replay."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bptrace_exec.output.render import Renderer
from bptrace_exec.parse.decode import Printf, decode_line
from bptrace_exec.parse.join import Assembler
from bptrace_exec.spec import parse_profile
from expectations import check_all, check_hidden_argv, check_paths

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("driver*-v*.jsonl"))
WORKDIR = "/tmp/bptrace-exec-transcript"
EXECVE = parse_profile("version: 1\n", source="probes/execve.yaml", name="execve")
# since record version 6, captured with each exec's cwd and exe (--paths)
WITH_PATHS = parse_profile("version: 1\ncontext: {cwd: true, exe: true}\n",
                           source="probes/execve.yaml", name="execve")
PATHS_SINCE = 6


def version_of(fixture: Path) -> int:
    """driver-*: record version 1; driverN-*: version N."""
    name = fixture.stem.split("-")[0]
    return int(name.removeprefix("driver") or 1)


def parse(lines: list[bytes], version: int) -> tuple[list[dict[str, object]], Assembler]:
    profile = WITH_PATHS if version >= PATHS_SINCE else EXECVE
    assembler = Assembler(profile, wall_offset_ns=0, version=version)
    render = Renderer(profile)
    events = []
    for line in lines:
        record = decode_line(line)
        if isinstance(record, Printf):
            events += [render.to_dict(e) for e in assembler.feed(record.text, 0)]
    events += [render.to_dict(e) for e in assembler.flush()]
    return events, assembler


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_recorded_run_parses_to_the_known_execs(fixture: Path) -> None:
    events, assembler = parse(fixture.read_bytes().splitlines(), version_of(fixture))
    check_all(events, WORKDIR, version_of(fixture))
    if version_of(fixture) > 1:  # a case added since
        check_hidden_argv(events)
    [fexecve] = [e for e in events if e["syscall"] == "execveat"]
    # dirfd and flags since version 3; null in recordings made before, as for an execve
    at = (3, 0x1000) if version_of(fixture) > 2 else (None, None)
    assert (fexecve["dirfd"], fexecve["flags"]) == at
    assert all(e["dirfd"] is None for e in events if e["syscall"] == "execve")
    assert assembler.stats.malformed == assembler.stats.unknown == 0
    assert assembler.stats.incomplete == assembler.stats.unfinished == 0
    check_identity(events, version_of(fixture))
    if version_of(fixture) >= PATHS_SINCE:
        check_paths(events, WORKDIR)


def check_identity(events: list[dict[str, object]], version: int) -> None:
    """Since version 5 every exec says who ran it and which image it is; before, null."""
    if version < 5:
        assert all(e["exec_id"] is e["euid"] is e["tty"] is None for e in events)
        return
    assert all(isinstance(e["euid"], int) and isinstance(e["exec_id"], str) for e in events)
    started = [e for e in events if e["ret"] == 0]
    images = {e["exec_id"]: e for e in started}
    assert len(images) == len(started), "each program started is an image of its own"
    # the workload's children name its image as their parent's
    children = [e for e in started if e["parent_exec_id"] in images]
    assert children and all(images[str(e["parent_exec_id"])]["pid"] == e["ppid"]
                            for e in children)
    # A failed exec is its caller's: here, children forked by a traced image that fail
    # to exec. A forked child keeps its parent's exec count (task->self_exec_id).
    assert all(str(e["exec_id"]).split(":")[1] == str(e["pid"]) for e in events)
    forked = [e for e in events if e["ret"] != 0 and e["parent_exec_id"] in images]
    assert forked and all(str(e["exec_id"]).split(":")[-1] ==
                          str(e["parent_exec_id"]).split(":")[-1] for e in forked)


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_records_from_other_cpus_may_come_in_any_order(fixture: Path) -> None:
    """Shuffled records (one exec's parts on several CPUs) give the same execs."""
    lines = fixture.read_bytes().splitlines()
    in_order, _ = parse(lines, version_of(fixture))
    shuffled = lines[:]
    random.Random(7).shuffle(shuffled)
    any_order, assembler = parse(shuffled, version_of(fixture))
    key = lambda e: (e["time"], e["tid"])  # noqa: E731
    assert sorted(any_order, key=key) == sorted(in_order, key=key)
    assert assembler.stats.incomplete == 0


def test_both_versions_were_recorded() -> None:
    assert {f.stem for f in FIXTURES} >= {"driver-v0.17.0", "driver-v0.23.2",
                                          "driver2-v0.17.0", "driver2-v0.23.2",
                                          "driver3-v0.17.0", "driver3-v0.23.2",
                                          "driver4-v0.17.0", "driver4-v0.23.2",
                                          "driver5-v0.17.0", "driver5-v0.23.2",
                                          "driver6-v0.17.0", "driver6-v0.23.2",
                                          "driver7-v0.17.0", "driver7-v0.23.2",
                                          "driver9-v0.17.0", "driver9-v0.23.2"}
