"""Integration: --serve scraped by a real Prometheus, a .prom export served by a real
node_exporter, Prometheus's own checker on what is served; on every bpftrace version.
Every server listens on 127.0.0.1; every process is ended by its pid."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import Lines, run_tool, tool_command

T = TypeVar("T")
NEEDS = ("prometheus", "promtool", "prometheus-node-exporter", "setpriv")
pytestmark = [pytest.mark.root, pytest.mark.skipif(
    not all(shutil.which(n) for n in NEEDS), reason="scripts/setup --test installs them")]


@pytest.fixture
def markers() -> Iterator[Path]:
    """A folder other users can run programs from (pytest's own is root's only)."""
    folder = Path(tempfile.mkdtemp(prefix="bptrace-exec-serve-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def marker(folder: Path, name: str) -> Path:
    path = folder / name
    shutil.copy("/bin/true", path)
    path.chmod(0o755)
    return path


def exec_as(uid: int, program: Path, times: int) -> None:
    for _ in range(times):
        subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                        str(program)], check=True, timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], T | None], what: str, timeout: float = 90) -> T:
    """Polls until `check` gives something: the thing itself, not a long enough sleep."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            last = check()
            if last:
                return last
        time.sleep(0.2)
    pytest.fail(f"{what}: not in {timeout}s (last: {last!r})")


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
def started(command: list[str], ready: str | None = None) -> Iterator[Lines]:
    """A server of the test's own, ended by its pid (SIGINT, then SIGKILL if it lingers)."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        lines = Lines(proc.stderr)  # type: ignore[arg-type]
        if ready:
            lines.wait_for(lambda line: ready in line)
        yield lines
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def serving(engine: str, host: str, uid: int) -> Iterator[str]:
    """bptrace-exec --serve, counting the execs of one uid: its metrics' URL."""
    with started(tool_command("execve", "--serve", "127.0.0.1:0", "--interval", "1",
                              "--host", host, "--uid", str(uid), "--bpftrace", engine,
                              "--duration", "600")) as lines:
        url = lines.wait_for(lambda line: "serving metrics on" in line).split()[-1]
        lines.wait_for(lambda line: line.startswith("Tracing"))
        yield url


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
                exec_as(uid, programs[host], times)
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
