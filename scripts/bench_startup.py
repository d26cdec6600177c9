#!/usr/bin/env python3
"""Start-up: launching bptrace-exec until its "Tracing" status line, against bare bpftrace
running the same program until its probes are live; and what Python adds.

    scripts/bench_startup.py [--rounds 7] [--bpftrace PATH]

bpftrace 0.17 and 0.23 print attached_probes *before* attaching: an exec 2 ms after it is
usually missed (measured). The program's BEGIN record ("ready") comes once every probe is
attached, which is when bptrace-exec prints its status line; so bare bpftrace is timed to
that record too (its attached_probes time is printed for reference).
Rounds alternate the two (which goes first alternates too); printed: the median of each,
the median of per-round ratios (target <= 1.15), the import time of the package
(python -X importtime) and the time of `--emit script` (everything but bpftrace).
Needs root. Every process is stopped by its pid after each round.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "wrapper"))

from benchlib import stop  # noqa: E402
from bptrace_exec.codegen import generate  # noqa: E402
from bptrace_exec.run.engine import find_engine  # noqa: E402
from bptrace_exec.spec import load_profile  # noqa: E402


def time_until(cmd: list[str], stream: str, marker: str, env: dict[str, str],
               also: str = "", seen: list[float] | None = None) -> float:
    """Seconds from launch to the first line holding marker (and to `also`, into seen)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if stream == "stdout" else
                            subprocess.DEVNULL, stderr=subprocess.PIPE if stream == "stderr"
                            else subprocess.DEVNULL, text=True, env=env, cwd=TOP)
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    assert pipe is not None
    try:
        for line in pipe:
            if also and also in line and seen is not None:
                seen.append(time.monotonic() - start)
            if marker in line:
                return time.monotonic() - start
        raise RuntimeError(f"{cmd[0]} ended before {marker!r}")
    finally:
        stop(proc)


def import_ms() -> float:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import bptrace_exec.cli"],
                         capture_output=True, text=True, check=True, cwd=TOP,
                         env={**os.environ, "PYTHONPATH": str(TOP / "wrapper")}).stderr
    match = re.search(r"\|\s+(\d+) \| bptrace_exec\.cli$", out, flags=re.M)
    return int(match.group(1)) / 1000 if match else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--bpftrace")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    engine = find_engine(args.bpftrace)
    print(f"# {platform.machine()}, {os.cpu_count()} cpus, kernel {platform.release()}, "
          f"bpftrace {engine.version_text}, Python {platform.python_version()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        program = Path(tmp) / "program.bt"
        generated = generate(load_profile("execve"), engine.version_text)
        program.write_text(generated.text)
        env = {**os.environ, **engine.environment(1024, generated.strlen)}
        bare = [engine.path, "--no-warnings", "-f", "json", str(program)]
        tool = [sys.executable, "-m", "bptrace_exec", "execve", "-o", "/dev/null",
                "--bpftrace", engine.path]
        results: dict[str, list[float]] = {"bpftrace": [], "bptrace-exec": []}
        attached: list[float] = []
        for i in range(args.rounds):
            pair = [("bpftrace", bare, "stdout", '"ready'),
                    ("bptrace-exec", tool, "stderr", "Tracing")]
            for name, cmd, stream, marker in (pair if i % 2 == 0 else pair[::-1]):
                results[name].append(time_until(cmd, stream, marker, env,
                                                also="attached_probes", seen=attached))
    ratios = [t / b for t, b in zip(results["bptrace-exec"], results["bpftrace"], strict=True)]
    emit = []
    for _ in range(5):
        start = time.monotonic()
        subprocess.run([sys.executable, "-m", "bptrace_exec", "--emit", "script"], check=True,
                       stdout=subprocess.DEVNULL, cwd=TOP)
        emit.append(time.monotonic() - start)
    print(f"bpftrace to attached_probes   median {statistics.median(attached):.3f} s "
          "(printed before attaching)")
    print(f"bpftrace to probes live       median {statistics.median(results['bpftrace']):.3f} s "
          "(its BEGIN record)")
    print(f"bptrace-exec to status line   median {statistics.median(results['bptrace-exec']):.3f}"
          f" s")
    print(f"ratio (median of {args.rounds} per-round ratios): {statistics.median(ratios):.3f}"
          "   target <= 1.15")
    print(f"import bptrace_exec.cli: {import_ms():.1f} ms; `--emit script` end to end: "
          f"{statistics.median(emit) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
