"""Integration: --serve scraped by a real Prometheus, a .prom export served by a real
node_exporter, Prometheus's own checker on what is served; on every bpftrace version.
Every server listens on 127.0.0.1; every process is ended by its pid."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import exec_as, free_port, run_tool, started, tool_command, wait_until

HOST = socket.gethostname()
NEEDS = ("prometheus", "promtool", "prometheus-node-exporter", "setpriv")
pytestmark = [pytest.mark.root, pytest.mark.skipif(
    not all(shutil.which(n) for n in NEEDS), reason="scripts/setup --test installs them")]


def marker(folder: Path, name: str) -> Path:
    path = folder / name
    shutil.copy("/bin/true", path)
    path.chmod(0o755)
    return path


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return str(reply.read().decode())


def samples(text: str, prefix: str = "bptrace_exec_") -> dict[tuple[str, tuple[Any, ...]],
                                                           float]:
    """Every sample by name and labels; bucket bounds as numbers (0.000016 is 1.6e-05)."""
    def label(name: str, value: str) -> tuple[str, object]:
        return (name, float(value)) if name == "le" else (name, value)
    return {(s.name, tuple(sorted(label(*kv) for kv in s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples
            if s.name.startswith(prefix)}


@contextlib.contextmanager
def serving(engine: str, host: str, uid: int) -> Iterator[str]:
    """bptrace-exec --serve, counting the execs of one uid: its metrics' URL."""
    with started(tool_command("execve", "--serve", "127.0.0.1:0", "--interval", "1",
                              "--host", host, "--uid", str(uid), "--bpftrace", engine,
                              "--duration", "600")) as (_, lines):
        url = lines.wait_for(lambda line: "serving metrics on" in line).split()[-1]
        lines.wait_for(lambda line: line.startswith("Tracing"))
        yield url


def test_a_port_the_kernel_chose_is_said_when_quiet(engine: str,
                                                   nothing_left_running: None) -> None:
    """-q silences the status lines, not the one way to learn which port was bound."""
    with started(tool_command("execve", "--serve", "127.0.0.1:0", "-q", "--bpftrace", engine,
                              "--duration", "600")) as (_, lines):
        url = lines.wait_for(lambda line: "serving metrics on" in line).split()[-1]
        assert "bptrace_exec_" in wait_until(lambda: fetch(url), "metrics served")


def query(prometheus: str, promql: str) -> dict[str, float]:
    """An instant query through Prometheus's HTTP API: host label -> value."""
    reply = json.loads(fetch(f"{prometheus}/api/v1/query?" +
                             urllib.parse.urlencode({"query": promql})))
    assert reply["status"] == "success", reply
    return {r["metric"].get("host", ""): float(r["value"][1]) for r in reply["data"]["result"]}


def test_prometheus_scrapes_two_hosts_exactly(engine: str, markers: Path, tmp_path: Path,
                                              nothing_left_running: None) -> None:
    wanted = {"alpha": (4241, 20), "beta": (4242, 13)}
    with serving(engine, "alpha", 4241) as alpha, serving(engine, "beta", 4242) as beta:
        targets = [urllib.parse.urlsplit(u).netloc for u in (alpha, beta)]
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps({  # YAML is a superset of JSON
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "bptrace-exec",
                                "static_configs": [{"targets": targets}]}]}))
        port = free_port()
        prometheus = f"http://127.0.0.1:{port}"
        with started(["prometheus", f"--config.file={config}",
                      f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                      f"--web.listen-address=127.0.0.1:{port}"]):
            wait_until(lambda: query(prometheus, "bptrace_exec_up") == {"alpha": 1, "beta": 1},
                       "both instances up, as Prometheus sees them")
            programs = {}
            for host, (uid, times) in wanted.items():
                programs[host] = marker(markers, f"marker-{host}")
                exec_as(uid, programs[host], range(times))
            counts = {host: float(times) for host, (_, times) in wanted.items()}
            wait_until(lambda: query(prometheus, "bptrace_exec_execs_total") == counts,
                       "the execs made, counted per host by Prometheus")
            assert query(prometheus, "sum(bptrace_exec_execs_total)") == {"": 33.0}
            for host, program in programs.items():
                by = query(prometheus, f'bptrace_exec_execs_by_program_total{{host="{host}",'
                                       f'program="{program}"}}')
                assert by == {host: counts[host]}
            assert query(prometheus, "resets(bptrace_exec_execs_total[10m])") == \
                {"alpha": 0, "beta": 0}
            assert query(prometheus, "bptrace_exec_lost_events_total") == {"alpha": 0,
                                                                          "beta": 0}
            for url in (alpha, beta):
                check = subprocess.run(["promtool", "check", "metrics"], input=fetch(url),
                                       text=True, capture_output=True, timeout=60)
                assert check.returncode == 0, check.stdout + check.stderr
            build = query(prometheus, "bptrace_exec_build_info")
            assert set(build) == {"alpha", "beta"}


def test_node_exporter_serves_the_export_unchanged(engine: str, markers: Path,
                                                   tmp_path: Path,
                                                   nothing_left_running: None) -> None:
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    export = textfiles / "bptrace_exec.prom"
    program = marker(markers, "marker-gamma")
    run = run_tool("execve", "--uid", "4243", "--export", str(export), "--host", "gamma",
                   "--bpftrace", engine, "--", "setpriv", "--reuid=4243", "--regid=4243",
                   "--clear-groups", "sh", "-c", f"{program}; {program}; {program}")
    assert run.returncode == 0, run.stderr
    written = samples(export.read_text())
    key = ("bptrace_exec_execs_by_program_total",
           (("host", "gamma"), ("profile", "execve"), ("program", str(program))))
    assert written[key] == 3
    check = subprocess.run(["promtool", "check", "metrics"], input=export.read_text(),
                           text=True, capture_output=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    port = free_port()
    with started(["prometheus-node-exporter", "--collector.disable-defaults",
                  "--collector.textfile", f"--collector.textfile.directory={textfiles}",
                  f"--web.listen-address=127.0.0.1:{port}"]):
        served = wait_until(lambda: samples(fetch(f"http://127.0.0.1:{port}/metrics")),
                            "node_exporter serving the export")
    assert served == written


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process of the test's own and of its children (bpftrace)."""
    total = 0
    for each in [pid, *(int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                        for c in (task / "children").read_text().split())]:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def test_a_hundred_scrapes_a_second_during_refreshes(engine: str,
                                                     nothing_left_running: None) -> None:
    """Ten seconds of 100 scrapes a second while execs go on and the maps are read every
    second: every scrape whole (every series of the last one, the histogram complete and
    cumulative), no counter backwards, the tool's memory flat."""
    with started(tool_command("execve", "--serve", "127.0.0.1:0", "--interval", "1",
                              "--bpftrace", engine, "--duration", "600")) as (tool, lines), \
            started([sys.executable, "-c", "import os\nwhile True:\n"
                     "    os.waitpid(os.posix_spawn('/bin/true', ['/bin/true'], {}), 0)"]):
        url = lines.wait_for(lambda line: "serving metrics on" in line).split()[-1]
        lines.wait_for(lambda line: line.startswith("Tracing"))
        last: dict[tuple[str, tuple[Any, ...]], float] = {}
        scrapes, refreshes, started_at = 0, set(), time.monotonic()
        rss: list[int] = []
        while time.monotonic() - started_at < 10:
            now = samples(fetch(url))
            scrapes += 1
            assert set(last) <= set(now), set(last) - set(now)
            counters = {k: v for k, v in now.items() if k[0].endswith(
                ("_total", "_bucket", "_count", "_sum"))}
            assert all(v >= last.get(k, 0) for k, v in counters.items())
            buckets = sorted((dict(labels)["le"], v) for (name, labels), v in now.items()
                             if name == "bptrace_exec_latency_seconds_bucket")
            assert len(buckets) == 34 and [v for _, v in buckets] == sorted(
                v for _, v in buckets)
            assert buckets[-1][1] == now[("bptrace_exec_latency_seconds_count",
                                          (("host", HOST), ("profile", "execve")))]
            refreshes.add(now[("bptrace_exec_duration_seconds",
                               (("host", HOST), ("profile", "execve")))])
            last = now
            if scrapes in (100, 300) or time.monotonic() - started_at >= 10:
                rss.append(tree_rss_kb(tool.pid))
            time.sleep(0.01)
        assert scrapes >= 300 and len(refreshes) >= 5
        assert rss[-1] - rss[0] < 4096, rss  # kB: flat, as a scrape keeps nothing
