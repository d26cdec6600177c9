#!/usr/bin/env python3
"""Syscall-profile overhead: what each tracer costs a storm of opens, and of connects.

    scripts/bench_calls.py [--calls 3000] [--rounds 5] [--bpftrace PATH] [--storms open,connect]

Each storm is a C workload (tests/workloads/call_storm.c): N openat+close of one file,
or N TCP connects to a listener of its own on 127.0.0.1. Configurations, interleaved
round by round:
  none          no tracer
  opensnoop     libbpf-tools' opensnoop (open storm; installed with apt-get when missing)
  opensnoop.bt  bpftrace's own opensnoop.bt (open storm)
  bptrace-exec  bptrace-exec PROFILE --json -o FILE (the shipped openat or connect profile)
  strace        strace -f -e trace=openat (or connect) -o /dev/null
libbpf-tools' tcpconnect and tcpconnect.bt attach kprobes, which this kernel has not:
the connect storm has no peer but strace. Printed as scripts/bench_storm.py prints
(which this script shares): wall time relative to `none`, CPU per call above it (the
workload's and the tracer's own), the tracer's own CPU per call, the time its BPF
programs ran, rows received. Needs root and cc; every tracer is stopped by its pid after
each run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "wrapper"))

from bench_storm import TOOL, Run, Started, report, timed, wait_for  # noqa: E402
from benchlib import PEER_TOOLS, bpf_run_times, install, machine, stop, workload  # noqa: E402
from bptrace_exec.run.engine import find_engine  # noqa: E402

STORMS = {"open": ("openat", ["none", "opensnoop", "opensnoop.bt", "bptrace-exec", "strace"]),
          "connect": ("connect", ["none", "bptrace-exec", "strace"])}
START_TIMEOUT = 120


@contextlib.contextmanager
def tracer(kind: str, syscall: str, engine: str, out: Path, marker: bytes,
           poke: list[str]) -> Iterator[Started]:
    """Starts the tracer; yields how the workload runs under it. `poke` makes one call
    that shows up as a row once the tracer is ready; rows are counted at its end."""
    if kind in ("none", "strace"):
        yield Started([] if kind == "none" else
                      ["strace", "-f", "-e", f"trace={syscall}", "-o", "/dev/null"])
        return
    out.unlink(missing_ok=True)
    stderr = subprocess.DEVNULL
    if kind == "opensnoop":  # line-buffered, as on a terminal
        cmd = ["stdbuf", "-oL", PEER_TOOLS["opensnoop"]]
    elif kind == "opensnoop.bt":
        cmd = ["stdbuf", "-oL", engine, PEER_TOOLS["opensnoop.bt"]]
    else:
        cmd = [*TOOL, syscall, "--json", "-o", str(out), "--bpftrace", engine]
        stderr = subprocess.PIPE
    with out.open("ab") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=stderr, text=True, cwd=TOP)
    started, skip = Started([], proc.pid), 0
    try:
        if proc.stderr:
            wait_for(proc.stderr, "Tracing")
        deadline = time.monotonic() + START_TIMEOUT
        while marker not in out.read_bytes():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} showed no {marker!r}")
            subprocess.run(poke, check=True)
            skip += 1
            time.sleep(0.05)
        if proc.stderr:  # ready before the first poke: each shows, in time (rows are held)
            while out.read_bytes().count(marker) < skip:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} showed fewer than {skip} {marker!r}")
                time.sleep(0.05)
        else:  # pokes before it attached are not shown
            skip = out.read_bytes().count(marker)
        yield started
    finally:
        stop(proc)
        if proc.stderr:
            proc.stderr.close()
    started.rows[0] = out.read_bytes().count(marker) - skip
    out.unlink()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bpftrace")
    ap.add_argument("--storms", default="open,connect")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("cc"):
        raise SystemExit("needs root and a C compiler")
    install({"strace": "strace", PEER_TOOLS["opensnoop"]: "libbpf-tools"})
    engine = find_engine(args.bpftrace)
    print(machine(engine.version_text, f"{args.calls} calls a storm, {args.rounds} rounds"),
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        storm_workload = workload(tmp, "call_storm")
        target = Path(tmp) / "bench-calls-target"
        target.write_text("")
        for storm in args.storms.split(","):
            syscall, configs = STORMS[storm]
            configs = [c for c in configs if c != "opensnoop"
                       or shutil.which(PEER_TOOLS["opensnoop"])]
            command = ([storm_workload, "open", str(args.calls), str(target)]
                       if storm == "open" else [storm_workload, "connect", str(args.calls)])
            poke = [*command[:2], "1", *command[3:]]
            # a row of the storm's: its file; for connect, the loopback address
            marker = str(target).encode() if storm == "open" else b"127.0.0.1"
            runs: dict[str, list[Run]] = {c: [] for c in configs}
            with bpf_run_times():
                for round_ in range(args.rounds):
                    for kind in configs[round_ % len(configs):] + configs[:round_ % len(configs)]:
                        out = Path(tmp) / f"{kind}.out"
                        with tracer(kind, syscall, engine.path, out, marker, poke) as started:
                            wall, cpu, own, bpf = timed([*started.prefix, *command], started)
                        counted = kind not in ("none", "strace")
                        runs[kind].append(Run(wall, cpu, own, bpf,
                                              started.rows[0] if counted else None))
            report(storm, configs, runs, args.calls, unit="call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
