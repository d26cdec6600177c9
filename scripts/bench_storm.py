#!/usr/bin/env python3
"""Exec-storm overhead: what each tracer costs a workload of N fork+exec of /bin/true.

    scripts/bench_storm.py [--execs 3000] [--workers 1,2] [--rounds 5] [--bpftrace PATH]
                           [--configs LIST] [--argv-bytes N]

Configurations, interleaved round by round (the order rotates every round), each timing
the same C workload (tests/workloads/exec_cases.c `storm N WORKERS ARGV_BYTES`):
  none         no tracer
  libbpf       libbpf-tools' execsnoop (installed with apt-get when missing), stdout to a file
  execsnoop.bt bpftrace's own execsnoop.bt, stdout to a file
  bpftrace     bare bpftrace running the very program bptrace-exec generates, its output
               read and thrown away
  events-json  bptrace-exec --json -o FILE
  events-cwd, events-exe, events-paths, events-env   the same with --cwd, --exe, both,
               or --env '*': what each costs
  events-pipe  bptrace-exec, table rows on a pipe read by a consumer that counts them
  events-null  bptrace-exec, table rows to /dev/null (-o /dev/null)
  stats        bptrace-exec --stats
  stats-light  bptrace-exec exec-counts: successful execs counted by the light program,
               which enables no syscall tracepoint
  bpftrace-stats, bpftrace-light   bare bpftrace running the program of stats, stats-light
  strace       strace -f -e trace=execve -o /dev/null
  perf         perf trace -e execve -o /dev/null
Printed per configuration, medians over rounds: wall time relative to `none` in the same
round; CPU per exec above `none` (the workload's user + system time, where a tracer's
kernel work lands, plus the tracer's own processes'), in microseconds; the tracer's own CPU
per exec; of the workload's, the time its BPF programs ran (as the kernel counts it with
kernel.bpf_stats_enabled, on for the benchmark); rows received (execs shown, against execs
performed). CPU time is far steadier on a shared VM than wall time. Needs root and cc;
installs libbpf-tools, strace and linux-perf with apt-get when they are missing. Every
tracer is stopped by its pid after each run, also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
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

from benchlib import PEER_TOOLS, bpf_run_times, install, machine, stop, usage, workload  # noqa: E402
from bptrace_exec.codegen import generate  # noqa: E402
from bptrace_exec.codegen.kerneltypes import NO_TYPES_BTF  # noqa: E402
from bptrace_exec.run.engine import find_engine  # noqa: E402
from bptrace_exec.run.kerneltypes import with_kernel_types  # noqa: E402
from bptrace_exec.spec import load_profile, with_overrides  # noqa: E402

TOOL = [sys.executable, "-m", "bptrace_exec"]
START_TIMEOUT = 120
PACKAGES = {"strace": ("strace", "strace"), "perf": ("perf", "linux-perf"),
            "libbpf": (PEER_TOOLS["execsnoop"], "libbpf-tools")}
WRAPPERS = {"none": [], "strace": ["strace", "-f", "-e", "trace=execve", "-o", "/dev/null"],
            "perf": ["perf", "trace", "-e", "execve", "-o", "/dev/null", "--"]}
JSON_KINDS = {"events-json": [], "events-cwd": ["--cwd"], "events-exe": ["--exe"],
              "events-paths": ["--cwd", "--exe"], "events-env": ["--env", "*"]}
TOOL_ARGS = {**{kind: ["execve", "--json", *more] for kind, more in JSON_KINDS.items()},
             "events-pipe": ["execve"],
             "events-null": ["execve", "-o", "/dev/null"], "stats": ["execve", "--stats"],
             "stats-light": ["exec-counts"]}
# What marks a row of the workload's exec in each tracer's output. The peers read argv at
# entry, and the workload's children pass a literal from a page not yet present: they
# show the row with no arguments (the comm `true`; execsnoop.bt: nothing after the pid).
ROW = {"libbpf": b"\ntrue ", "execsnoop.bt": b" \n", "bpftrace": b'"exec ',
       **dict.fromkeys(JSON_KINDS, b'"filename":"/bin/true"'), "events-pipe": b" /bin/true "}


def wait_for(stream: object, marker: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        if marker in line:
            return
        if not line:
            break
    raise RuntimeError(f"tracer did not print {marker!r}")


def wait_for_rows(path: Path, marker: bytes, workload: str) -> None:
    """A tracer that says nothing when it is ready is ready once it shows an exec."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        subprocess.run([workload, "storm", "1", "1"], check=True)
        if marker in path.read_bytes():
            return
        time.sleep(0.05)
    raise RuntimeError(f"no {marker!r} in {path}")


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


@dataclasses.dataclass
class Started:
    prefix: list[str]  # what the workload runs under
    pid: int | None = None  # the tracer's, for its own CPU
    rows: list[int] = dataclasses.field(default_factory=lambda: [0])


@contextlib.contextmanager
def tracer(kind: str, programs: dict[str, str], engine_path: str, env: dict[str, str],
           tmp: Path, workload: str) -> Iterator[Started]:
    """Starts the tracer (if any); yields how the workload runs under it. Rows are counted
    once the tracer has ended."""
    if kind in WRAPPERS:
        yield Started(WRAPPERS[kind])
        return
    out = tmp / f"{kind}.out"
    out.unlink(missing_ok=True)
    readers = []
    if kind in ("libbpf", "execsnoop.bt"):
        # line-buffered, as on a terminal: else rows wait in stdio, and some are lost at
        # the stop
        cmd = ["stdbuf", "-oL", *([PEER_TOOLS["execsnoop"]] if kind == "libbpf" else
                                  [engine_path, PEER_TOOLS["execsnoop.bt"]])]
        with out.open("wb") as sink:
            proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.DEVNULL, text=True)
        wait_for_rows(out, ROW[kind], workload)
    elif kind in programs:
        proc = subprocess.Popen([engine_path, "--no-warnings", "-f", "json", programs[kind]],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env={**os.environ, **env}, text=True)
        wait_for(proc.stdout, '"ready')
    else:
        json_file = ["-o", str(out)] if kind in JSON_KINDS else []
        proc = subprocess.Popen([*TOOL, *TOOL_ARGS[kind], *json_file, "--bpftrace", engine_path],
                                cwd=TOP, stdout=subprocess.PIPE if kind == "events-pipe"
                                else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for(proc.stderr, "Tracing")
        readers.append(drain(proc.stderr.fileno()))  # type: ignore[union-attr]
    skip = out.read_bytes().count(ROW[kind]) if out.exists() else 0  # the ready check's
    started = Started([], proc.pid)
    if proc.stdout:
        readers.append(drain(proc.stdout.fileno(), started.rows, ROW.get(kind, b"\0")))
    try:
        yield started
    finally:
        stop(proc)
        for reader in readers:
            reader.join(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    if out.exists():
        started.rows[0] = out.read_bytes().count(ROW[kind]) - skip
        out.unlink()


@dataclasses.dataclass
class Run:
    wall: float
    cpu: float  # the workload's
    own: float | None  # the tracer's processes'
    bpf: float | None  # its BPF programs' runs (within the workload's CPU, for the most)
    rows: int | None


def timed(cmd: list[str], started: Started) -> tuple[float, float, float | None,
                                                    float | None]:
    """Wall-clock seconds, the CPU seconds (user + system) of the workload's whole
    process tree, and over the same time the tracer's own and its BPF programs' (within
    bpf_run_times())."""
    pid = started.pid
    own_before, bpf_before = usage(pid) if pid else (0.0, 0.0)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if not pid:
        return wall, cpu, None, None
    own, bpf = usage(pid)
    return wall, cpu, own - own_before, bpf - bpf_before


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--execs", type=int, default=3000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bpftrace")
    ap.add_argument("--configs", default="none,libbpf,execsnoop.bt,bpftrace,events-json,"
                                          "events-pipe,stats,stats-light,strace,perf")
    ap.add_argument("--argv-bytes", type=int, default=0,
                    help="each exec's arguments, about so many bytes in all (a compiler's "
                         "command line: 1000 and more)")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("cc"):
        raise SystemExit("needs root and a C compiler")
    requested = args.configs.split(",")
    install({path: pkg for config, (path, pkg) in PACKAGES.items() if config in requested})
    engine = find_engine(args.bpftrace)
    configs = [c for c in requested if c not in PACKAGES or shutil.which(PACKAGES[c][0])]
    argv = f" with {args.argv_bytes} bytes of argv" if args.argv_bytes else ""
    print(machine(engine.version_text,
                  f"{args.execs} fork+exec of /bin/true{argv}, {args.rounds} rounds"),
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        storm = workload(tmp, "exec_cases")
        profile = load_profile("execve")
        programs = {"bpftrace": profile,
                    "bpftrace-stats": with_overrides(profile, stats=True),
                    "bpftrace-light": load_profile("exec-counts")}
        paths, envs = {}, {}
        no_types = Path(tmp) / "no-types.btf"
        no_types.write_bytes(NO_TYPES_BTF)
        for kind, prof in programs.items():
            paths[kind] = str(Path(tmp) / f"{kind}.bt")
            program = generate(prof, engine.version_text)
            # as bptrace-exec runs it: with this kernel's types defined, and then BTF
            # with none
            text, defined_lines = with_kernel_types(program.text, None)
            Path(paths[kind]).write_text(text)
            envs[kind] = engine.environment(engine.buffer_pages, program.strlen)
            if defined_lines:
                envs[kind]["BPFTRACE_BTF"] = str(no_types)
        for workers in args.workers.split(","):
            with bpf_run_times():
                runs = measure(int(workers), configs, args, storm, paths, engine.path, envs,
                               Path(tmp))
            report(f"workers={workers}", configs, runs, args.execs)
    return 0


def measure(workers: int, configs: list[str], args: argparse.Namespace, workload: str,
            programs: dict[str, str], engine_path: str, envs: dict[str, dict[str, str]],
            tmp: Path) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {c: [] for c in configs}
    for round_ in range(args.rounds):
        order = configs[round_ % len(configs):] + configs[:round_ % len(configs)]
        for kind in order:
            with tracer(kind, programs, engine_path, envs.get(kind, {}), tmp,
                        workload) as started:
                wall, cpu, own, bpf = timed([*started.prefix, workload, "storm",
                                             str(args.execs), str(workers),
                                             str(args.argv_bytes)], started)
            runs[kind].append(Run(wall, cpu, own, bpf,
                                  started.rows[0] if kind in ROW else None))
    return runs


def report(label: str, configs: list[str], runs: dict[str, list[Run]], execs: int,
           unit: str = "exec") -> None:
    """Medians of per-round figures, each against the no-tracer run of its round."""
    none = runs.get("none")
    print(f"\n{label:9}  {'config':14} {'wall':>6} {'CPU us/' + unit:>11} "
          f"{'own us/' + unit:>11} {'BPF us/' + unit:>11}  rows (of {execs} per round)")
    for kind in configs:
        def median(values: list[float]) -> str:
            return f"{statistics.median(values):11.0f}" if values else f"{'n/a':>11}"
        pairs = list(zip(runs[kind], none or [], strict=False))
        wall = f"{statistics.median(r.wall / n.wall for r, n in pairs):5.2f}x" if none else "n/a"
        # perf trace's workload's CPU time never reaches this process's rusage
        above = [(r.cpu + (r.own or 0) - n.cpu) / execs * 1e6
                 for r, n in pairs] if kind != "perf" else []
        own = [r.own / execs * 1e6 for r in runs[kind] if r.own is not None]
        bpf = [r.bpf / execs * 1e6 for r in runs[kind] if r.bpf is not None]
        rows = [r.rows for r in runs[kind] if r.rows is not None]
        print(f"{'':11}{kind:14} {wall:>6} {median(above)} {median(own)} {median(bpf)}  "
              f"{rows if rows else ''}".rstrip(), flush=True)


if __name__ == "__main__":
    sys.exit(main())
