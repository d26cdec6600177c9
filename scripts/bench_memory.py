#!/usr/bin/env python3
"""Memory: resident size of bptrace-exec's Python process under a steady exec storm.

    scripts/bench_memory.py [--seconds 600] [--modes events,stats,serve] [--bpftrace PATH]

For each mode, bptrace-exec traces the whole host (events: the table, written to
/dev/null; stats: --stats; serve: --serve on 127.0.0.1 with --interval 1, scraped ten
times a second) while a C workload fork+execs /bin/true as fast as one worker can.
VmRSS is sampled every 5 s. Printed: execs/s, RSS after the first minute, at the
end, the growth in between, and the peak. Target: growth < 5 MB. Needs root and cc.
Every process it starts is stopped by its pid at the end, also on failure.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
import benchlib  # noqa: E402,F401  (runs this checkout's tool)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def build_workload(tmp: str) -> str:
    out = str(Path(tmp) / "exec_cases")
    subprocess.run(["cc", "-O2", "-pthread", "-o", out,
                    str(TOP / "tests" / "workloads" / "exec_cases.c")], check=True)
    return out


def wait_for_status(proc: subprocess.Popen[str]) -> str:
    """Waits for tracing to start; gives the metrics' URL, if served."""
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    url = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "serving metrics on" in line:
            url = line.split()[-1]
        if "Tracing" in line:
            return url
        if not line and proc.poll() is not None:
            break
    raise SystemExit(f"bptrace-exec did not start (rc={proc.poll()})")


def measure(mode: str, seconds: int, workload: str, bpftrace: str | None) -> str:
    cmd = [sys.executable, "-m", "bptrace_exec", "execve"]
    cmd += {"stats": ["--stats"], "serve": ["--serve", "127.0.0.1:0", "--interval", "1"]
            }.get(mode, [])
    cmd += ["--bpftrace", bpftrace] if bpftrace else []
    tool = subprocess.Popen(cmd, stdout=subprocess.PIPE if mode == "stats" else
                            subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=TOP)
    storm = None
    scrapes = [0]
    done = threading.Event()
    try:
        url = wait_for_status(tool)
        if url:  # as a scraper would, but ten times a second
            threading.Thread(target=scrape, args=(url, done, scrapes), daemon=True).start()
        # its own process group: the worker it forks goes with it
        storm = subprocess.Popen([workload, "storm", str(10**9), "1"], start_new_session=True)
        start = time.monotonic()
        samples: list[tuple[float, int]] = []
        while (elapsed := time.monotonic() - start) < seconds:
            samples.append((elapsed, rss_kb(tool.pid)))
            time.sleep(5)
        samples.append((time.monotonic() - start, rss_kb(tool.pid)))
    finally:
        done.set()
        if storm:
            os.killpg(storm.pid, signal.SIGKILL)
            storm.wait()
        tool.send_signal(signal.SIGINT)
        out, err = tool.communicate(timeout=120)
    summary = next((ln for ln in (err + (out or "")).splitlines()
                    if "execs traced" in ln or ln.startswith("execs ")), "")
    after_minute = next(kb for t, kb in samples if t >= min(60, seconds / 2))
    end, peak = samples[-1][1], max(kb for _, kb in samples)
    return (f"{mode:6} rss@1min {after_minute / 1024:6.1f} MB  end {end / 1024:6.1f} MB  "
            f"growth {(end - after_minute) / 1024:+5.1f} MB  peak {peak / 1024:6.1f} MB  "
            f"({seconds} s) {summary.removeprefix('bptrace-exec: ')}"
            + (f" {scrapes[0]} scrapes" if scrapes[0] else ""))


def scrape(url: str, done: threading.Event, count: list[int]) -> None:
    while not done.wait(0.1):
        with urllib.request.urlopen(url, timeout=10) as reply:
            reply.read()
        count[0] += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--modes", default="events,stats")
    ap.add_argument("--bpftrace")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("cc"):
        raise SystemExit("needs root and a C compiler")
    version = subprocess.run([args.bpftrace or "bpftrace", "--version"], capture_output=True,
                             text=True, check=False).stdout.strip()
    print(f"# {platform.machine()}, {os.cpu_count()} cpus, kernel {platform.release()}, "
          f"{version}, Python {platform.python_version()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workload = build_workload(tmp)
        for mode in args.modes.split(","):
            print(measure(mode, args.seconds, workload, args.bpftrace), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
