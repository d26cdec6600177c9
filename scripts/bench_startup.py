#!/usr/bin/env python3
"""Start-up: from launching a tracer until it shows a call made right after, beside the
peers; and what answers without tracing (--help, --emit) costs.

    scripts/bench_startup.py [--rounds 9] [--bpftrace PATH] [--configs LIST]

A marker (a copy of /bin/true under a name of its own) is exec'd every 10 ms from the
moment each tracer is launched, with its count as argument; "shown" is when the tracer's
output first shows it, "captured" when the marker it shows was exec'd: from then on the
tracer misses nothing, whatever its output waits for (bptrace-exec holds rows 0.1 s to
give them in the order of the calls). For the syscall profiles the marker opens a file
of its own name and count instead. Configurations:
  libbpf            libbpf-tools' execsnoop (installed with apt-get when missing)
  execsnoop.bt      bpftrace's own execsnoop.bt
  events            bptrace-exec execve --json
  succeeded         bptrace-exec execve --json --succeeded: only execs that started a
                    program, whose return reads nothing (a failed exec's is the
                    largest part of the program's compile and check)
  command           bptrace-exec execve --json -- MARKER (the command runs once tracing is
                    ready: its row shows when it could start; captured: not known)
  stats             bptrace-exec execve --stats: to its "Tracing" status line (a report
                    shows no single exec), from when execs are counted
  opensnoop, opensnoop.bt, openat   the same for opens: libbpf-tools' opensnoop,
                    bpftrace's opensnoop.bt, bptrace-exec openat --json
Rounds alternate the configurations (the order rotates each round); printed: the median
and the range of each, and its ratio to execsnoop.bt's (opensnoop.bt's for opens), shown
and captured. Then
a whole traced command, `execve -- true` from launch to exit (its start-up, the command
and the end of tracing: the drain; bpftrace then detaches its probes on its own, after
the tool has exited), the median of `rounds` runs after the rounds; --help and --emit
script, end to end, medians of 9, measured before the rounds, when no tracer of the
benchmark is busy, with the package byte-compiled as an install leaves it; the package's
import time.
Needs root. Every process it starts is stopped by its pid after each round.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# this checkout's bptrace_exec
from benchlib import PEER_TOOLS, TOP, byte_compiled, install, machine, stop

TOOL = [sys.executable, "-m", "bptrace_exec"]
TIMEOUT = 60
CONFIGS = ("libbpf,execsnoop.bt,events,succeeded,command,stats,opensnoop,opensnoop.bt,"
           "openat")
OPENS = ("opensnoop", "opensnoop.bt", "openat")
PEER_OF = {c: "opensnoop.bt" if c in OPENS else "execsnoop.bt"  # bpftrace's own tools
           for c in CONFIGS.split(",") if not c.endswith(".bt")}


def command(config: str, marker: str, bpftrace: str) -> list[str]:
    # line-buffered as on a terminal: else the peers' rows wait in stdio
    line = ["stdbuf", "-oL"]
    return {
        "libbpf": [*line, PEER_TOOLS["execsnoop"]],
        "execsnoop.bt": [*line, bpftrace, PEER_TOOLS["execsnoop.bt"]],
        "opensnoop": [*line, PEER_TOOLS["opensnoop"]],
        "opensnoop.bt": [*line, bpftrace, PEER_TOOLS["opensnoop.bt"]],
        "events": [*TOOL, "execve", "--json", "--bpftrace", bpftrace],
        "succeeded": [*TOOL, "execve", "--json", "--succeeded", "--bpftrace", bpftrace],
        "command": [*TOOL, "execve", "--json", "--bpftrace", bpftrace, "--", marker],
        "stats": [*TOOL, "execve", "--stats", "--bpftrace", bpftrace],
        "openat": [*TOOL, "openat", "--json", "--bpftrace", bpftrace],
    }[config]


@contextlib.contextmanager
def marking(act: Callable[[int], None]) -> Iterator[list[float]]:
    """act(N) every 10 ms in a thread, until the block ends: when each N was acted."""
    done = threading.Event()
    acted: list[float] = []

    def run() -> None:
        while not done.wait(0.01):
            acted.append(time.monotonic())
            act(len(acted) - 1)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield acted
    finally:
        done.set()
        thread.join()


def first_seen(config: str, marker: str, bpftrace: str) -> tuple[float, float | None]:
    """Seconds from launch until the tracer's output names the marker (stats: until its
    status line), and until the marker it names was made (None: not known)."""
    stream = "stderr" if config == "stats" else "stdout"
    needle = "Tracing" if config == "stats" else os.path.basename(marker)
    if config in OPENS:
        def act(n: int) -> None:
            os.close(os.open(f"{marker}.{n}", os.O_RDONLY | os.O_CREAT, 0o600))
    else:
        def act(n: int) -> None:
            subprocess.run([marker, str(n)], check=False)
    start = time.monotonic()
    proc = subprocess.Popen(command(config, marker, bpftrace), cwd=TOP, text=True,
                            errors="replace", stdout=subprocess.PIPE if stream == "stdout"
                            else subprocess.DEVNULL, stderr=subprocess.PIPE
                            if stream == "stderr" else subprocess.DEVNULL)
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    assert pipe is not None
    seen: list[tuple[float, int | None]] = []
    count = re.compile(re.escape(needle) + r"""(?:"?,? ?"?|\.)(\d+)""")

    def read() -> None:
        for line in pipe:
            if needle in line and not seen:
                found = count.search(line)
                seen.append((time.monotonic() - start, int(found[1]) if found else None))
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        with marking(act) as acted:
            deadline = start + TIMEOUT
            while not seen and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.002)
    finally:
        stop(proc)
        reader.join(timeout=30)
        pipe.close()
    if not seen:
        raise RuntimeError(f"{config} never showed {needle!r} (exit {proc.returncode})")
    shown, n = seen[0]
    if config == "stats":
        return shown, shown
    return shown, acted[n] - start if n is not None and n < len(acted) else None


def timed(argv: list[str], rounds: int = 9) -> tuple[float, float]:
    """The median wall time of running argv to its end, and the median CPU time (user +
    system) it took: what a busy machine's wait for a CPU adds to the first, not to the
    second."""
    walls, cpus = [], []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=TOP, timeout=TIMEOUT)
        walls.append(time.monotonic() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def answered(argv: list[str]) -> str:
    wall, cpu = timed(argv)
    return f"{wall * 1000:.0f} ms (CPU {cpu * 1000:.0f} ms)"


def import_ms() -> float:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import bptrace_exec.cli"],
                         capture_output=True, text=True, check=True, cwd=TOP).stderr
    match = re.search(r"\|\s+(\d+) \| bptrace_exec\.cli$", out, flags=re.M)
    return int(match.group(1)) / 1000 if match else float("nan")


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.3f}s" if values else "-"


def _ratio(times: dict[str, list[float]], config: str) -> str:
    peer = times.get(PEER_OF.get(config, ""))
    if not peer or not times[config]:
        return ""
    return f"{statistics.median(times[config]) / statistics.median(peer):.2f}x {PEER_OF[config]}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--bpftrace", default=shutil.which("bpftrace") or "bpftrace")
    ap.add_argument("--configs", default=CONFIGS)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    configs = args.configs.split(",")
    if {"libbpf", "opensnoop"} & set(configs):
        install({PEER_TOOLS["execsnoop"]: "libbpf-tools"})
    version = subprocess.run([args.bpftrace, "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    print(machine(version.split()[-1], f"first call shown, {args.rounds} rounds"), flush=True)
    byte_compiled()
    # before any tracer runs: the tool leaves a bpftrace detaching its probes after it
    # exits, up to a second of CPU that would be counted against these
    answers = (f"--help: {answered([*TOOL, '--help'])}; --emit script: "
               f"{answered([*TOOL, 'execve', '--emit', 'script'])}; "
               f"import bptrace_exec.cli: {import_ms():.1f} ms (targets: under 150 ms; "
               "measured before the rounds)")
    shown: dict[str, list[float]] = {c: [] for c in configs}
    captured: dict[str, list[float]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        marker = str(Path(tmp) / f"bxm{os.getpid()}")  # a comm of its own, under 15 bytes
        shutil.copy("/bin/true", marker)
        for i in range(args.rounds):
            for config in configs[i % len(configs):] + configs[:i % len(configs)]:
                when, made = first_seen(config, marker, args.bpftrace)
                shown[config].append(when)
                if made is not None:
                    captured[config].append(made)
    print(f"{'config':14} {'shown':>7}  {'range':17} {'vs peer':20} {'captured':>8}  vs peer")
    for config, values in shown.items():
        print(f"{config:14} {statistics.median(values):6.3f}s  "
              f"[{min(values):.3f}..{max(values):.3f}]  {_ratio(shown, config):20} "
              f"{_median(captured[config]):>8}  {_ratio(captured, config)}", flush=True)
    whole, _ = timed([*TOOL, "execve", "-q", "-o", os.devnull, "--bpftrace", args.bpftrace,
                      "--", "true"], rounds=args.rounds)
    print(f"a whole traced command (execve -- true): {whole:.3f}s", flush=True)
    print(answers, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
