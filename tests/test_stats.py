"""Stats without root: recorded maps of real runs, the same counts from JSON lines, the
report, and every export format read back by a real parser of that format."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bptrace_exec.output.export import to_csv, to_dict, to_json, to_markdown, to_prometheus
from bptrace_exec.output.report import render_report, shorten_middle
from bptrace_exec.output.tally import (
    LatencyTally,
    Stats,
    from_json_events,
    from_maps,
    log2_bucket,
)
from bptrace_exec.parse.decode import MapData, decode_line
from bptrace_exec.spec.captures import EXEC_DEFAULT_BREAKDOWNS as BREAKDOWNS
from stats_expectations import check_stats, expected_errnos, expected_programs
from workloads.stats_driver import STATS_COUNTS, resolve

RET = {"ENOENT": -2, "EACCES": -13}
# stats-*: this version's programs; stats8-*: record version 8's, counted by
# bpftrace's per-CPU aggregations, which recordings made then hold
FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("stats*-*.jsonl"))
WORKDIR = "/tmp/bptrace-exec-transcript"


def stats_of(fixture: Path) -> Stats:
    maps = {}
    for line in fixture.read_bytes().splitlines():
        record = decode_line(line)
        if isinstance(record, MapData):
            maps[record.name] = record.value
    return from_maps(maps, by=BREAKDOWNS, duration_s=2.0,
                     double_escaped_keys="v0.23" in fixture.name,
                     by_cpu=not fixture.name.startswith("stats8-"))


@pytest.fixture(params=FIXTURES, ids=[f.stem for f in FIXTURES])
def stats(request: pytest.FixtureRequest) -> Stats:
    return stats_of(request.param)


def test_kernel_counts_are_exact(stats: Stats) -> None:
    check_stats(stats, WORKDIR)


def test_both_versions_were_recorded() -> None:
    assert {f.stem for f in FIXTURES} >= {"stats-v0.17.0", "stats-v0.23.2",
                                          "stats8-v0.17.0", "stats8-v0.23.2"}


def test_same_counts_from_json_lines(stats: Stats) -> None:
    """--from: the summary of JSON lines equals the kernel's for the same execs."""
    events = []
    for path, (count, errno) in STATS_COUNTS.items():
        for i in range(count):
            events.append({"event": "exec", "filename": resolve(path, Path(WORKDIR)),
                           "comm": "python", "uid": 0, "ppid": 1, "ret": RET.get(errno, 0),
                           "errno": errno, "latency_ns": 5000 * (i + 1), "argv": ["x"],
                           "time": f"2026-01-01T00:00:0{i}.000000Z"})
    offline = from_json_events(events, by_kind=lambda _kind: BREAKDOWNS)
    programs = dict(stats.breakdowns["program"])
    for path, count in dict(offline.breakdowns["program"]).items():
        assert programs[path] == count
    assert dict(offline.breakdowns["errno"]) == dict(stats.breakdowns["errno"])
    assert offline.duration_s == 6.0


@pytest.mark.parametrize("us,bucket", [(0, (0, 0)), (1, (1, 1)), (2, (2, 3)), (3, (2, 3)),
                                       (300, (256, 511)), (2**40, (2**40, 2**41 - 1))])
def test_log2_buckets_match_bpftrace(us: int, bucket: tuple[int, int]) -> None:
    assert log2_bucket(us) == bucket


def test_percentiles_lie_in_their_bucket() -> None:
    values = [1000 * v for v in [1, 2, 3, 100, 100, 100, 100, 100, 100, 5000]]
    tally = LatencyTally()
    for value in values:
        tally.add(value)
    lat = tally.result()
    assert lat is not None
    assert (lat.percentile(0.5).low_us, lat.percentile(0.5).high_us) == (64, 127)
    assert lat.percentile(0.99).low_us == 4096
    assert lat.percentile(0.1).low_us == 1
    assert lat.min_ns == 1000 and lat.max_ns == 5_000_000


def test_report_fits_80_columns_and_never_drops_counts(stats: Stats) -> None:
    long = "/very/long/" + "x" * 150 + "/name"
    stats.breakdowns["program"].insert(0, (long, 99))
    text = render_report(stats, top=10, title="t")
    assert max(len(line) for line in text.splitlines()) <= 80
    row = next(line for line in text.splitlines() if line.startswith("/very/long/"))
    assert "…" in row and row.rstrip().endswith("%") and " 99 " in row
    assert shorten_middle("abcdefghij", 5) == "ab…ij"


def test_report_escapes_hostile_names(stats: Stats) -> None:
    stats.breakdowns["comm"].insert(0, ("\x1b[2Jevil", 1))
    assert "\x1b" not in render_report(stats, top=10, title="t")


def test_json_export(stats: Stats) -> None:
    data = json.loads(to_json(stats, top=10, title="t"))
    assert data["schema"] == "bptrace-exec-stats/1"
    programs = {r["key"]: r["count"] for r in data["breakdowns"]["program"]["top"]}
    for path, count in expected_programs(WORKDIR).items():
        assert programs[path] == count
    assert data["execs"] == stats.count and data["failed"] == stats.failed
    assert sum(b["count"] for b in data["latency"]["buckets"]) == stats.count
    assert data["breakdowns"]["errno"]["distinct"] == 2


def test_csv_export(stats: Stats) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(stats, top=10, title="t"))))
    programs = {r["key"]: int(r["count"]) for r in rows if r["section"] == "program"}
    for path, count in expected_programs(WORKDIR).items():
        assert programs[path] == count
    total = {r["key"]: int(r["count"]) for r in rows if r["section"] == "total"}
    assert total["execs"] == stats.count and total["failed"] == stats.failed
    assert {r["key"]: int(r["count"]) for r in rows if r["section"] == "errno"} == \
        expected_errnos()


def test_markdown_export(stats: Stats) -> None:
    text = to_markdown(stats, top=10, title="t | x")
    tables = re.findall(r"((?:^\|.*\|\n)+)", text, flags=re.M)
    assert len(tables) == 1 + len(stats.breakdowns) + 1
    for table in tables:
        lines = table.splitlines()
        widths = {_cells(line) for line in lines}
        assert len(widths) == 1, table  # every row has the header's number of cells
        assert re.fullmatch(r"\|[-:| ]+\|", lines[1])
    program_rows = [_split(line) for line in tables[1].splitlines()[2:]]
    counts = {row[0].replace("\\\\", "\\"): int(row[1]) for row in program_rows}
    for path, count in expected_programs(WORKDIR).items():
        assert counts[path] == count


def _split(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [c.strip() for c in cells]


def _cells(line: str) -> int:
    return len(_split(line))


def test_prometheus_export(stats: Stats) -> None:
    text = to_prometheus(stats, top=10, title="t")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    programs = {s.labels["program"]: s.value
                for s in families["bptrace_exec_execs_by_program"].samples}
    for path, count in expected_programs(WORKDIR).items():
        assert programs[path] == count
    assert families["bptrace_exec_execs"].samples[0].value == stats.count
    hist = families["bptrace_exec_latency_seconds"]
    assert hist.type == "histogram"
    buckets = [s for s in hist.samples if s.name.endswith("_bucket")]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == stats.count
    assert [b.value for b in buckets] == sorted(b.value for b in buckets)
    count = next(s for s in hist.samples if s.name.endswith("_count"))
    assert count.value == stats.count


def test_failures_not_counted_are_not_shown_as_none(stats: Stats) -> None:
    """A profile of successful calls only has no failure count: every format leaves it
    out (JSON says null), rather than saying 0."""
    uncounted = dataclasses.replace(stats, failed=None, breakdowns={
        k: v for k, v in stats.breakdowns.items() if k != "errno"})
    assert "failed" not in render_report(uncounted, top=3, title="t")
    assert to_dict(uncounted, top=3, title="t")["failed"] is None
    rows = list(csv.reader(io.StringIO(to_csv(uncounted, top=3, title="t"))))
    assert ["total", "execs"] in [r[:2] for r in rows]
    assert ["total", "failed"] not in [r[:2] for r in rows]
    assert "| failed" not in to_markdown(uncounted, top=3, title="t")
    assert "failed" not in to_prometheus(uncounted, top=3, title="t")
    assert "failed" in to_prometheus(stats, top=3, title="t")  # counted: there


def test_export_dict_counts_other(stats: Stats) -> None:
    data = to_dict(stats, top=1, title="t")
    breakdowns = data["breakdowns"]
    assert isinstance(breakdowns, dict)
    program = breakdowns["program"]
    assert len(program["top"]) == 1
    assert program["top"][0]["count"] + program["other"] == stats.count


def test_cgroup_breakdown_names_ids_found_on_the_machine() -> None:
    maps = {"stat_execs": {"0": 3}, "stat_cgroup": {"1,0": 1, "4242,0": 1, "4242,3": 1}}
    stats = from_maps(maps, by=["cgroup"], duration_s=1.0,
                      cgroup_names=lambda ids: {i: "/a.slice" for i in ids if i == 4242})
    assert stats.breakdowns["cgroup"] == [("/a.slice", 2), ("cgroup id 1", 1)]


def test_counts_kept_per_cpu_are_summed_and_old_recordings_read_alike() -> None:
    """FAILED | CPU << 1, the breakdowns by (VALUE, CPU), the latency's buckets and
    figures per CPU (codegen.stats.PER_CPU); what recordings of before held: the same."""
    per_cpu = {"stat_execs": {"0": 2, "5": 1, "6": 4},
               "stat_errno": {"2,1": 1}, "stat_uid": {"0,0": 2, "0,3": 4, "1000,2": 1},
               # a name with a comma; a tuple's number printed signed (u64 max)
               "stat_comm": {"a,b,0": 3, "a,b,2": 1, "sh,3": 3},
               "stat_ppid": {"-1,0": 7},
               "stat_latency_log2_us": {"0,0": 1, "3,0": 2, "3,2": 3, "5,3": 1},
               "stat_latency_min": {"0": 300, "1": 0, "2": 200},
               "stat_latency_max": {"0": 900, "2": 700}, "stat_latency_sum": {"0": 5, "2": 6}}
    by = ["errno", "uid", "comm", "ppid"]
    stats = from_maps(per_cpu, by=by, duration_s=1.0)
    assert (stats.count, stats.failed, stats.unreadable) == (7, 1, 0)
    assert stats.breakdowns == {"errno": [("ENOENT", 1)], "uid": [("0", 6), ("1000", 1)],
                                "comm": [("a,b", 4), ("sh", 3)],
                                "ppid": [(str(2**64 - 1), 7)]}
    assert stats.latency is not None
    assert (stats.latency.min_ns, stats.latency.max_ns, stats.latency.sum_ns) == (200, 900, 11)
    assert [(b.low_us, b.high_us, b.count) for b in stats.latency.buckets] == [
        (0, 0, 1), (1, 1, 0), (2, 3, 0), (4, 7, 5), (8, 15, 0), (16, 31, 1)]
    older = {"stat_execs": {"0": 6, "1": 1},
             "stat_errno": {"2": 1}, "stat_uid": {"0": 6, "1000": 1},
             "stat_comm": {"a,b": 4, "sh": 3}, "stat_ppid": {str(2**64 - 1): 7},
             "stat_latency_us": [{"min": 0, "max": 0, "count": 1},
                                 {"min": 1, "max": 1, "count": 0},
                                 {"min": 2, "max": 3, "count": 0},
                                 {"min": 4, "max": 7, "count": 5},
                                 {"min": 8, "max": 15, "count": 0},
                                 {"min": 16, "max": 31, "count": 1}],
             "stat_latency_min": {"0": 200}, "stat_latency_max": {"0": 900},
             "stat_latency_sum": {"0": 11}}
    assert from_maps(older, by=by, duration_s=1.0, by_cpu=False) == stats


def test_a_key_without_its_cpu_is_unreadable_not_miscounted() -> None:
    maps = {"stat_execs": {"0": 2}, "stat_uid": {"0,1": 1, "0": 1, "0,x": 1},
            "stat_latency_log2_us": {"3,0": 1, "99,0": 1, "3": 1}}
    stats = from_maps(maps, by=["uid"], duration_s=1.0)
    assert stats.breakdowns["uid"] == [("0", 1)]
    assert stats.latency is not None and stats.latency.count == 1
    assert stats.unreadable == 4


def test_a_rate_over_a_short_span_says_its_span(stats: Stats) -> None:
    """A file of a few events spans milliseconds: the rate says over how many, not
    "over 0.0 s"; one event (no span) has no rate."""
    def first_line(duration_s: float) -> str:
        return render_report(dataclasses.replace(stats, duration_s=duration_s), top=3,
                             title="t").splitlines()[1]
    count = stats.count
    assert f"({count / 2:.1f}/s over 2.0 s)" in first_line(2.0)
    assert f"({count / 0.0312:,.0f}/s over 31.2 ms)" in first_line(0.0312)
    assert "/s" not in first_line(0.0) and first_line(0.0).startswith(f"execs {count:,}")


def test_every_form_sums_the_keys_beyond_top_as_other(stats: Stats) -> None:
    """--top 2: the report, Markdown and CSV give the rest of each breakdown as one
    "(other)" row, as the metrics and JSON do, so that what is shown adds up."""
    many = {n: rows for n, rows in stats.breakdowns.items() if len(rows) > 2}
    assert many, stats.breakdowns  # the fixtures' programs and errnos are more than two
    rows = list(csv.reader(io.StringIO(to_csv(stats, top=2, title="t"))))
    report = render_report(stats, top=2, title="t")
    markdown = to_markdown(stats, top=2, title="t")
    for name, counted in many.items():
        mine = [(k, int(c)) for section, k, c, _ in rows if section == name]
        rest = sum(c for _, c in counted[2:])
        assert mine == [*counted[:2], ("(other)", rest)]
        assert to_dict(stats, top=2, title="t")["breakdowns"][name]["other"] == rest  # type: ignore[index]
    assert report.count("(other)") == markdown.count("| (other)") == len(many)
    assert re.search(r"^\(other\) +[\d,]+ +[\d.]+%$", report, re.M), report
