#!/usr/bin/env python3
"""Memory: resident size of each tracer, all its processes, under a steady exec storm.

    scripts/bench_memory.py [--seconds 600] [--modes events,stats,serve,execsnoop.bt,libbpf]
                            [--bpftrace PATH]

For each mode, a tracer traces the whole host while a C workload fork+execs /bin/true as
fast as one worker can: bptrace-exec in events mode (the table, written to /dev/null),
stats (--stats), serve (--serve on 127.0.0.1 with --interval 1, scraped ten times a
second); its peers bpftrace's execsnoop.bt and libbpf-tools' execsnoop (installed with
apt-get when missing), their rows read and thrown away. VmRSS of the tracer and its
descendants (bptrace-exec: Python and its bpftrace) is sampled every 5 s. Printed:
that RSS after the first minute (or half the run), at the end, the growth in
between, the peak (the first sample, taken as tracing starts, may hold bpftrace's
compiler: it is paged out once every probe is attached), bptrace-exec's Python alone,
and the ratios to execsnoop.bt's of the RSS at the end and of the peak.
Targets: growth < 5 MB; all of bptrace-exec's processes within 1.1x of execsnoop.bt
during the storm.
Needs root and cc. Every process it starts is stopped by its pid at the end, also on
failure.
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
from benchlib import PEER_TOOLS, install, stop  # noqa: E402  (runs this checkout's tool)

PEERS = {"execsnoop.bt": [PEER_TOOLS["execsnoop.bt"]], "libbpf": [PEER_TOOLS["execsnoop"]]}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tree_rss_kb(pid: int) -> int:
    """VmRSS of a process and its descendants (threads' children included)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += rss_kb(current)
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text()
                todo += [int(c) for c in children.split()]
        except OSError:  # ended meanwhile
            continue
    return total


def build_workload(tmp: str) -> str:
    out = str(Path(tmp) / "exec_cases")
    subprocess.run(["cc", "-O2", "-pthread", "-o", out,
                    str(TOP / "tests" / "workloads" / "exec_cases.c")], check=True)
    return out


def wait_for(stream: object, markers: tuple[str, ...]) -> str:
    """Waits for a line holding one of `markers` (tracing has started); gives the
    metrics' URL, if served."""
    deadline = time.monotonic() + 120
    url = ""
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        if "serving metrics on" in line:
            url = line.split()[-1]
        if any(m in line for m in markers):
            return url
        if not line:
            break
    raise SystemExit("the tracer did not start")


def drain(stream: object) -> threading.Thread:
    def run() -> None:
        while stream.read(1 << 16):  # type: ignore[attr-defined]
            pass
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def start(mode: str, bpftrace: str | None) -> tuple[subprocess.Popen[str], str]:
    """The tracer, tracing; the metrics' URL, if served."""
    if mode in PEERS:  # they say they are tracing with their header, on stdout
        # line-buffered, as on a terminal: else the header waits in stdio
        cmd = ["stdbuf", "-oL", *([bpftrace or "bpftrace"] if mode == "execsnoop.bt"
                                  else []), *PEERS[mode]]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, errors="replace")
        url = wait_for(proc.stdout, ("PID",))
        drain(proc.stdout)
        return proc, url
    cmd = [sys.executable, "-m", "bptrace_exec", "execve"]
    cmd += {"stats": ["--stats"], "serve": ["--serve", "127.0.0.1:0", "--interval", "1"]
            }.get(mode, ["-o", "/dev/null"])
    cmd += ["--bpftrace", bpftrace] if bpftrace else []
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=TOP)
    url = wait_for(proc.stderr, ("Tracing",))
    drain(proc.stderr)
    return proc, url


def measure(mode: str, seconds: int, workload: str, bpftrace: str | None
            ) -> tuple[str, int, int]:
    """The line printed for `mode`, its RSS at the end and its peak (kB)."""
    tracer, url = start(mode, bpftrace)
    storm = None
    scrapes = [0]
    done = threading.Event()
    samples: list[tuple[float, int, int]] = []
    try:
        if url:  # as a scraper would, but ten times a second
            threading.Thread(target=scrape, args=(url, done, scrapes), daemon=True).start()
        # its own process group: the worker it forks goes with it
        storm = subprocess.Popen([workload, "storm", str(10**9), "1"], start_new_session=True,
                                 stdout=subprocess.DEVNULL)
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < seconds:
            samples.append((elapsed, tree_rss_kb(tracer.pid), rss_kb(tracer.pid)))
            time.sleep(min(5, seconds / 4))
        samples.append((time.monotonic() - began, tree_rss_kb(tracer.pid), rss_kb(tracer.pid)))
    finally:
        done.set()
        if storm:
            os.killpg(storm.pid, signal.SIGKILL)
            storm.wait()
        stop(tracer, timeout=120)
    after_minute = next(kb for t, kb, _ in samples if t >= min(60, seconds / 2))
    end, peak = samples[-1][1], max(kb for _, kb, _ in samples)
    own = max(kb for _, _, kb in samples)
    return (f"{mode:12} rss@1min {after_minute / 1024:6.1f} MB  end {end / 1024:6.1f} MB  "
            f"growth {(end - after_minute) / 1024:+5.1f} MB  peak {peak / 1024:6.1f} MB"
            + (f" (Python {own / 1024:.1f})" if mode not in PEERS else "")
            + (f"  {scrapes[0]} scrapes" if scrapes[0] else ""), end, peak)


def scrape(url: str, done: threading.Event, count: list[int]) -> None:
    while not done.wait(0.1):
        with urllib.request.urlopen(url, timeout=10) as reply:
            reply.read()
        count[0] += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--modes", default="events,stats,serve,execsnoop.bt,libbpf")
    ap.add_argument("--bpftrace")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("cc"):
        raise SystemExit("needs root and a C compiler")
    modes = args.modes.split(",")
    if "libbpf" in modes:
        install({PEER_TOOLS["execsnoop"]: "libbpf-tools"})
    version = subprocess.run([args.bpftrace or "bpftrace", "--version"], capture_output=True,
                             text=True, check=False).stdout.strip()
    print(f"# {platform.machine()}, {os.cpu_count()} cpus, kernel {platform.release()}, "
          f"{version}, Python {platform.python_version()}", flush=True)
    ends: dict[str, int] = {}
    peaks: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workload = build_workload(tmp)
        for mode in modes:
            line, ends[mode], peaks[mode] = measure(mode, args.seconds, workload,
                                                    args.bpftrace)
            print(line, flush=True)
    for label, kb in (("during the storm (at the end)", ends), ("peak", peaks)):
        if "execsnoop.bt" in kb:
            print(f"{label} vs execsnoop.bt: " + ", ".join(
                f"{mode} {value / kb['execsnoop.bt']:.2f}x" for mode, value in kb.items()
                if mode != "execsnoop.bt")
                + ("   (target <= 1.10x)" if kb is ends else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
