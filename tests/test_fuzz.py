"""The parser against anything bpftrace or a traced process could make it read: 100,000
generated lines of junk, cut records, huge lines and odd escapes, interleaved with a real
transcript. Nothing raises, and every exec of the real transcript comes out unchanged."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from bptrace_exec.output.render import Renderer
from bptrace_exec.output.tally import from_maps
from bptrace_exec.output.text import json_line
from bptrace_exec.parse.decode import MapData, Note, Printf, decode_line
from bptrace_exec.parse.join import Assembler
from bptrace_exec.spec import parse_profile
from test_transcripts import version_of

EXECVE = parse_profile("version: 1\n", source="probes/execve.yaml", name="execve")
RENDER = Renderer(EXECVE)

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*.jsonl"))
KEYED = re.compile(rb'("data": "\w+ )(\d+)( )')


def junk_lines(real: list[bytes], rng: random.Random, count: int) -> list[bytes]:
    """Lines that must not disturb real execs: their keys are moved out of the way."""
    odd = [
        b"", b"\n", b"{", b"}", b"null", b"[]", b'{"type": "printf"}', b'{"type": 5}',
        b'{"type": "printf", "data": 5}', b'{"type": "printf", "data": "exec 1 2 3\\n"}',
        b'{"type": "printf", "data": "\\uffffff"}', b'{"type": "printf", "data": "\\ud800x\\n"}',
        b'{"type": "printf", "data": "\\x41"}', b'{"type": "lost_events", "data": {}}',
        b'{"type": "lost_events", "data": {"events": "many"}}',
        b'{"type": "map", "data": {"@stat_execs": {"0": "x"}}}',
        b'{"type": "hist", "data": {"@stat_latency_us": [{"min": "a"}]}}',
        b'{"type": "attached_probes", "data": {"probes": "x"}}',
        b"ERROR: Could not resolve symbol", b"\xff\xfe\x00garbage", b"\x1b[31m\r\n",
        b'{"type": "printf", "data": "argv 7 7 0 zz zz\\n"}',
        b'{"type": "printf", "data": "enter 7 7 1 0 zz /x\\n"}',
        b'{"type": "printf", "data": "exec 7 7 0 1 1 1 1 1 1 0 0 99999 59\\n"}',
        b'{"type": "printf", "data": "call 7 7 0 99999 0 1 1 1 1 1 1 0 0 x\\n"}',
        b'{"type": "printf", "data": "bytes 7 7 1 0 zz zz\\n"}',
        b'{"type": "printf", "data": "first 7 7 -1 0 x\\n"}',
        b'{"type": "printf", "data": "call 7 7 -1 1 0 1 1 1 1 1 1 0 0 x\\n"}',
    ]
    out = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.3:
            out.append(rng.choice(odd))
        elif kind < 0.55:
            line = rng.choice(real)
            out.append(line[: rng.randrange(len(line))])  # cut anywhere
        elif kind < 0.75:
            line = bytearray(KEYED.sub(rb"\g<1>999999\3", rng.choice(real)))
            for _ in range(rng.randrange(1, 4)):  # flip bytes of a record, keyed elsewhere
                line[rng.randrange(len(line))] = rng.randrange(256)
            out.append(bytes(line))
        elif kind < 0.999:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))))
        else:
            out.append(b'{"type": "printf", "data": "' + b"A" * 1_000_000 + b'\\n"}')
    return out


def parse(lines: list[bytes], version: int) -> tuple[list[str], Assembler, dict[str, object]]:
    asm = Assembler(EXECVE, wall_offset_ns=0, version=version)
    rows, maps = [], {}
    for n, line in enumerate(lines):
        record = decode_line(line)
        if isinstance(record, Printf):
            for event in asm.feed(record.text, n):
                rows.append(json_line(RENDER.to_dict(event)))
                RENDER.row(event)
        elif isinstance(record, MapData):
            maps[record.name] = record.value
        elif record is not None:
            assert isinstance(record, object)
        if n % 5000 == 0:
            rows += [json_line(RENDER.to_dict(e)) for e in asm.expire(n)]
    rows += [json_line(RENDER.to_dict(e)) for e in asm.flush()]
    return rows, asm, maps


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_100000_hostile_lines_lose_no_real_exec(fixture: Path) -> None:
    real = fixture.read_bytes().splitlines()
    version = version_of(fixture) if fixture.stem.startswith("driver") else 2
    clean, _, clean_maps = parse(real, version)
    rng = random.Random(fixture.name)
    mixed = real + junk_lines(real, rng, 100_000)
    rng.shuffle(mixed)
    rows, asm, maps = parse(mixed, version)
    real_rows = [r for r in rows if '"tid":999999' not in r and '"pid":999999' not in r]
    assert sorted(r for r in real_rows if r in clean) == sorted(clean)
    assert asm.stats.malformed + asm.stats.unknown > 0  # the junk was seen, and counted
    if clean_maps:
        from_maps(maps, by=(), duration_s=1.0)  # junk map values do not break the stats


def test_notes_keep_a_bounded_preview() -> None:
    record = decode_line(b"x" * 1_000_000)
    assert isinstance(record, Note) and len(record.detail) < 400


def test_fast_and_slow_paths_agree() -> None:
    rng = random.Random(3)
    for _ in range(20_000):
        raw = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(0, 40)))
        text = raw.decode("latin-1")
        line = json.dumps({"type": "printf", "data": text + "\n"}).encode()
        fast = decode_line(line)
        slow = decode_line(b" " + line)  # a leading space takes the JSON parser's path
        assert fast == slow
