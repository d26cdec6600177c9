"""The metrics --serve serves and a .prom export holds: series chosen so that no counter
goes backwards, labels for any key, and text that Prometheus's own checker accepts; the
server's own life (its port bound first, and let go), and the output opened again on
SIGUSR1. No root, no bpftrace: a server on 127.0.0.1, in this process."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bptrace_exec.cli import main
from bptrace_exec.cli.output import Output
from bptrace_exec.errors import OutputError
from bptrace_exec.output.export import to_prometheus
from bptrace_exec.output.metrics import OTHER, Keys, RunState, families
from bptrace_exec.output.serve import Serving, parse_address
from bptrace_exec.output.tally import Bucket, Latency, Stats
from bptrace_exec.spec import load_profile

LABELS = {"host": "web-1", "profile": "execve"}


def stats_of(programs: Counter[str], failed: int = 0) -> Stats:
    rows = sorted(programs.items(), key=lambda kv: (-kv[1], kv[0]))
    return Stats(count=sum(programs.values()), failed=failed, duration_s=1.0,
                 breakdowns={"program": rows})


def served(stats: Stats, keys: Keys) -> dict[str, float]:
    text = exposition(stats, keys)
    family = {f.name: f for f in text_string_to_metric_families(text)}[
        "bptrace_exec_execs_by_program"]
    return {s.labels["program"]: s.value for s in family.samples}


def exposition(stats: Stats, keys: Keys, run: RunState | None = None) -> str:
    """What a scrape gets: a profile that keeps latencies serves its histogram always."""
    from prometheus_client import CollectorRegistry, generate_latest

    from bptrace_exec.output.metrics import Exporter

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Exporter(families(stats, keys, LABELS, run, latency_kept=True)))
    return generate_latest(registry).decode()


def test_no_series_goes_backwards_while_the_ranking_changes() -> None:
    """Refreshes in which later keys overtake the first ones: every series only grows,
    and the series always sum to the total."""
    keys = Keys(top=2)
    counts: Counter[str] = Counter()
    last: dict[str, float] = {}
    for step in range(12):
        counts[f"/bin/p{step % 5}"] += 1 + step  # p3, p4 appear late and become the most
        counts[f"/bin/late{step}"] += 1
        now = served(stats_of(counts), keys)
        assert sum(now.values()) == sum(counts.values())
        assert len(now) <= 3  # top keys and the rest
        for key, value in last.items():
            assert now[key] >= value, (step, key)
        last = now
    assert set(last) == {"/bin/p0", "/bin/late0", OTHER}  # the first ones keep theirs
    assert last["/bin/p0"] == counts["/bin/p0"]


def test_the_first_refresh_gives_series_to_the_most_counted() -> None:
    got = served(stats_of(Counter({"/a": 1, "/b": 7, "/c": 3, OTHER: 2})), Keys(top=2))
    assert got == {"/b": 7, "/c": 3, OTHER: 1 + 2}  # a key named like the rest joins it


def test_label_values_keep_every_key_apart() -> None:
    weird = ['/tmp/a"b', "/tmp/back\\slash", "/tmp/new\nline",
             b"/tmp/\xff\xfe".decode("utf-8", "surrogateescape")]
    got = served(stats_of(Counter({k: i + 1 for i, k in enumerate(weird)})), Keys(top=10))
    assert got['/tmp/a"b'] == 1 and got["/tmp/back\\slash"] == 2
    assert got["/tmp/new\nline"] == 3 and got["/tmp/\\xff\\xfe"] == 4


def test_histogram_buckets_are_the_same_whatever_was_measured() -> None:
    def buckets(latency: Latency | None) -> dict[str, float]:
        stats = Stats(count=latency.count if latency else 0, failed=0, duration_s=1.0,
                      latency=latency)
        family = {f.name: f for f in text_string_to_metric_families(
            exposition(stats, Keys(3)))}["bptrace_exec_latency_seconds"]
        return {s.labels["le"]: s.value for s in family.samples
                if s.name.endswith("_bucket")}
    empty = buckets(None)
    some = buckets(Latency(count=5, min_ns=1500, max_ns=70_000, sum_ns=100_000,
                           buckets=(Bucket(1, 1, 2), Bucket(64, 127, 3))))
    assert list(empty) == list(some) and set(empty.values()) == {0}
    assert some["0.000002"] == 2 and some["0.000128"] == 5 and some["+Inf"] == 5
    assert some["0.000001"] == 0 and some["0.000064"] == 2


def test_run_state_is_served() -> None:
    text = exposition(stats_of(Counter({"/a": 1})), Keys(3),
                      RunState(lost=4, missing=2, up=True, bpftrace="v0.17.0"))
    got = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
    assert got["bptrace_exec_lost_events_total"].value == 4
    assert got["bptrace_exec_missing_total"].value == 2
    assert got["bptrace_exec_up"].value == 1
    assert got["bptrace_exec_build_info"].labels["bpftrace"] == "v0.17.0"
    assert all(s.labels["host"] == "web-1" for s in got.values())


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool: scripts/setup --test")
def test_promtool_accepts_the_export() -> None:
    latency = Latency(count=3, min_ns=900, max_ns=9_000_000, sum_ns=9_100_000,
                      buckets=(Bucket(0, 0, 1), Bucket(1, 1, 1), Bucket(8192, 16383, 1)))
    stats = Stats(count=3, failed=1, duration_s=2.0, latency=latency, breakdowns={
        "program": [("/bin/true", 2), ('/tmp/"x"', 1)], "errno": [("ENOENT", 1)]})
    text = to_prometheus(stats, top=1, title="t", labels=LABELS,
                         run=RunState(bpftrace="v0.23.2"))
    check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                           capture_output=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool: scripts/setup --test")
def test_breakdowns_named_as_labels_prometheus_keeps_are_labelled_by_name() -> None:
    """An argument called le or __x would make a label promtool refuses (and with it the
    whole export, or scrape): it is by_le, by___x, as host and profile are."""
    names = ("le", "quantile", "__x", "host")
    stats = Stats(count=1, failed=0, duration_s=1.0,
                  breakdowns={name: [("7", 1)] for name in names})
    text = to_prometheus(stats, top=3, title="t", labels=LABELS)
    check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                           capture_output=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    got = {f.name: f for f in text_string_to_metric_families(text)}
    for name in names:
        [sample, _] = got[f"bptrace_exec_execs_by_{name}"].samples
        assert sample.labels[f"by_{name}"] == "7" and sample.value == 1


def test_keys_that_read_alike_are_one_series() -> None:
    """The byte 0xff and the text `\\xff` are one label value: one series, their sum."""
    byte = b"/tmp/\xff".decode("utf-8", "surrogateescape")
    got = served(stats_of(Counter({byte: 2, "/tmp/\\xff": 3})), Keys(top=10))
    assert got == {"/tmp/\\xff": 5, OTHER: 0}


def test_a_server_serves_what_it_was_last_given_and_lets_its_port_go() -> None:
    profile = load_profile("execve")
    serving = Serving(parse_address("127.0.0.1:0"), profile, "web-1")
    try:
        first = samples_of(fetch(serving.url))
        assert first["bptrace_exec_up"] == 0 and first["bptrace_exec_execs_total"] == 0
        serving.update(stats_of(Counter({"/bin/true": 4})), RunState(up=True))
        now = samples_of(fetch(serving.url))
        assert now["bptrace_exec_up"] == 1 and now["bptrace_exec_execs_total"] == 4
        port = serving.address.port
    finally:
        serving.close()
    with socket.socket() as again:  # released: nothing listens there any more (as any
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # server would bind)
        again.bind(("127.0.0.1", port))
        again.listen()


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return str(reply.read().decode())


def samples_of(text: str) -> dict[str, float]:
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if not s.labels.keys() - {"host", "profile"}}


def test_a_port_taken_ends_the_run_before_it_starts(tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    out.write_text("kept\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, err = cli("execve", "--serve", f"127.0.0.1:{port}", "-o", str(out),
                          "--bpftrace", "/nonexistent/bpftrace", "--duration", "5")
    assert status == 3, err
    assert f"cannot serve metrics on 127.0.0.1:{port}" in err
    assert "already in use" in err and "hint:" in err and "Tracing" not in err
    assert out.read_text() == "kept\n"


@pytest.mark.parametrize("address", ["127.0.0.1:", "9435x", "[::1]:70000", "-1", "\u00b2",
                                     "no-such-host.invalid:9435", "192.0.2.1:9435"])
def test_a_bad_address_is_refused_before_anything_is_written(address: str,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    out.write_text("kept\n")
    status, err = cli("execve", "--serve", address, "-o", str(out), "--bpftrace",
                      "/nonexistent/bpftrace")
    assert status == 2, err
    assert "--serve" in err and "hint:" in err and "Traceback" not in err
    assert out.read_text() == "kept\n"


def cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(list(argv))
    return status, err.getvalue()


def test_sigusr1_opens_the_output_again_at_its_path(tmp_path: Path) -> None:
    path, moved = tmp_path / "rows.jsonl", tmp_path / "rows.jsonl.1"
    with Output(str(path)) as out:
        restore = Output.reopen_on_signal()
        try:
            out.write("one", flush=False)
            path.rename(moved)
            os.kill(os.getpid(), signal.SIGUSR1)
            out.write("two", flush=False)
            out.flush()
        finally:
            restore()
    assert moved.read_text() == "one\n" and path.read_text() == "two\n"
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_a_file_that_cannot_be_opened_again_is_an_output_error(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    out = Output(str(folder / "rows.jsonl")).__enter__()
    restore = Output.reopen_on_signal()
    try:
        out.write("one")
        shutil.rmtree(folder)
        os.kill(os.getpid(), signal.SIGUSR1)
        with pytest.raises(OutputError) as failed:
            out.write("two")
        assert failed.value.exit_status == 4 and "rows.jsonl" in str(failed.value)
        out.flush()  # closed: nothing more is tried
        out.__exit__(None, None, None)
    finally:
        restore()
