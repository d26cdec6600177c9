#!/usr/bin/env python3
"""Exec-storm overhead: what each tracer costs a workload of N fork+exec of /bin/true.

    scripts/bench_storm.py [--execs 3000] [--workers 1,2] [--rounds 5] [--bpftrace PATH]

Configurations, interleaved round by round (the order rotates every round), each timing
the same C workload (tests/workloads/exec_cases.c `storm N WORKERS`):
  none         no tracer
  bpftrace     bare bpftrace running the very program bptrace-exec generates; its
               output read and thrown away
  events-null  bptrace-exec, table rows written to /dev/null (-o /dev/null)
  events-pipe  bptrace-exec, table rows on a pipe read by a consumer that counts them
  stats        bptrace-exec --stats
  stats-light  bptrace-exec exec-counts: successful execs counted by the light program,
               which enables no syscall tracepoint
  bpftrace-stats, bpftrace-light   bare bpftrace running the program of stats, stats-light
  strace       strace -f -e trace=execve -o /dev/null
  perf         perf trace -e execve -o /dev/null
Printed: the median over rounds of each configuration's per-round ratio to `none` (and of
each bptrace-exec mode to bare bpftrace running its program), and the rows events-pipe
received against execs performed.
Needs root and cc; installs strace and linux-perf with apt-get when they are missing.
Every tracer is stopped by its pid after each run, also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "wrapper"))

from benchlib import stop  # noqa: E402
from bptrace_exec.codegen import generate  # noqa: E402
from bptrace_exec.run.engine import find_engine  # noqa: E402
from bptrace_exec.spec import load_profile, with_overrides  # noqa: E402

TOOL = [sys.executable, "-m", "bptrace_exec"]
START_TIMEOUT = 120


def ensure_tools(configs: list[str]) -> None:
    missing = [pkg for tool, pkg in (("strace", "strace"), ("perf", "linux-perf"))
               if tool in configs and not shutil.which(tool)]
    if missing:
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False,
                       stdout=subprocess.DEVNULL)


def wait_for(stream: object, marker: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        if marker in line:
            return
        if not line:
            break
    raise RuntimeError(f"tracer did not print {marker!r}")


def drain(fd: int, counter: list[int] | None = None, needle: bytes = b"") -> threading.Thread:
    """Read a pipe to its end in a thread; optionally count lines holding `needle`. The
    pipe stays open: its file object closes it (closing it here too would close whatever
    fd took the number in between)."""
    def run() -> None:
        pending = b""
        while chunk := os.read(fd, 1 << 20):
            if counter is not None:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                counter[0] += sum(needle in ln for ln in lines)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def tracer(kind: str, programs: dict[str, str], engine_path: str, env: dict[str, str],
           received: list[int]) -> Iterator[list[str]]:
    """Starts the tracer (if any); yields the prefix to run the workload under."""
    if kind in ("none", "strace", "perf"):
        yield {"none": [], "strace": ["strace", "-f", "-e", "trace=execve", "-o", "/dev/null"],
               "perf": ["perf", "trace", "-e", "execve", "-o", "/dev/null", "--"]}[kind]
        return
    if kind in programs:
        proc = subprocess.Popen([engine_path, "--no-warnings", "-f", "json", programs[kind]],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env={**os.environ, **env}, text=True)
        wait_for(proc.stdout, '"ready')
        readers = [drain(proc.stdout.fileno())]  # type: ignore[union-attr]
    else:
        args = {"events-null": ["execve", "-o", "/dev/null"], "events-pipe": ["execve"],
                "stats": ["execve", "--stats"], "stats-light": ["exec-counts"]}[kind]
        proc = subprocess.Popen([*TOOL, *args, "--bpftrace", engine_path], cwd=TOP,
                                stdout=subprocess.PIPE if kind == "events-pipe"
                                else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for(proc.stderr, "Tracing")
        readers = [drain(proc.stderr.fileno())]  # type: ignore[union-attr]
        if proc.stdout:
            readers.append(drain(proc.stdout.fileno(), received, b" /bin/true "))
    try:
        yield []
    finally:
        stop(proc)
        for reader in readers:
            reader.join(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall-clock seconds, and the CPU seconds (user + system) of the workload's whole
    process tree: what a tracer costs runs in the traced tasks' own context, and CPU time
    is far less at the mercy of this VM's neighbours than wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--execs", type=int, default=3000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bpftrace")
    ap.add_argument("--configs", default="none,bpftrace,events-null,events-pipe,stats,"
                                          "stats-light,strace,perf")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("cc"):
        raise SystemExit("needs root and a C compiler")
    requested = args.configs.split(",")
    ensure_tools(requested)
    engine = find_engine(args.bpftrace)
    configs = [c for c in requested if c not in ("strace", "perf") or shutil.which(c)]
    print(f"# {platform.machine()}, {os.cpu_count()} cpus, kernel {platform.release()}, "
          f"bpftrace {engine.version_text}, Python {platform.python_version()}; "
          f"{args.execs} fork+exec of /bin/true, {args.rounds} rounds", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workload = str(Path(tmp) / "exec_cases")
        subprocess.run(["cc", "-O2", "-pthread", "-o", workload,
                        str(TOP / "tests" / "workloads" / "exec_cases.c")], check=True)
        profile = load_profile("execve")
        programs = {"bpftrace": profile,
                    "bpftrace-stats": with_overrides(profile, stats=True),
                    "bpftrace-light": load_profile("exec-counts")}
        paths = {}
        for kind, prof in programs.items():
            paths[kind] = str(Path(tmp) / f"{kind}.bt")
            Path(paths[kind]).write_text(generate(prof, engine.version_text).text)
        env = engine.environment(4096 if engine.ring_shared else 1024)
        for workers in args.workers.split(","):
            run_workers(int(workers), configs, args, workload, paths, engine.path, env)
    return 0


def run_workers(workers: int, configs: list[str], args: argparse.Namespace, workload: str,
                programs: dict[str, str], engine_path: str, env: dict[str, str]) -> None:
    times: dict[str, list[tuple[float, float]]] = {c: [] for c in configs}
    received: list[int] = []
    for round_ in range(args.rounds):
        order = configs[round_ % len(configs):] + configs[:round_ % len(configs)]
        for kind in order:
            count = [0]
            with tracer(kind, programs, engine_path, env, count) as prefix:
                times[kind].append(timed([*prefix, workload, "storm", str(args.execs),
                                          str(workers)]))
            if kind == "events-pipe":
                received.append(count[0])
    def ratio(a: str, b: str | None, i: int) -> str:
        if b not in times:
            return " " * 8
        pairs = zip(times[a], times[b], strict=True)
        return f"{statistics.median(x[i] / y[i] for x, y in pairs):8.3f}"

    print(f"\nworkers={workers}  {'config':14} {'median s':>9} {'vs none':>8} {'vs bare':>8}"
          f" {'cpu s':>7} {'vs none':>8} {'vs bare':>8}   (wall, then CPU of the workload)")
    bare = {"events-null": "bpftrace", "events-pipe": "bpftrace", "stats": "bpftrace-stats",
            "stats-light": "bpftrace-light"}
    for kind in configs:
        wall, cpu = (statistics.median(t[i] for t in times[kind]) for i in (0, 1))
        # perf trace's workload's CPU time never reaches this process's rusage
        cpu_columns = (f"{cpu:7.3f} {ratio(kind, 'none', 1)} {ratio(kind, bare.get(kind), 1)}"
                       if kind != "perf" else "    n/a")
        print(f"{'':11}{kind:14} {wall:9.3f} {ratio(kind, 'none', 0)} "
              f"{ratio(kind, bare.get(kind), 0)} {cpu_columns}".rstrip())
    if received:
        print(f"{'':11}events-pipe rows received per round: {received} "
              f"(execs performed: {args.execs} each)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
