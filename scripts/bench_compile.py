#!/usr/bin/env python3
"""Compile time: what bpftrace spends on a profile's program before the kernel sees it,
probe by probe, beside bpftrace's own execsnoop.bt.

    scripts/bench_compile.py [--rounds 5] [--bpftrace PATH] [--profile execve]

bpftrace is started as a run starts it (run.spawn: the kernel types defined in the
program, BTF with no types, tracefs' list of events narrowed to the program's), with
--emit-elf: it parses, checks and compiles the program, writes the ELF file and ends
before loading anything, so the verifier's time is not in these figures. Measured: its
CPU time, user and system (its rusage), the median and range of `rounds` interleaved
runs: of the whole program; of the program less each of its probes in turn (the probe's
cost is the difference: one probe on several tracepoints is one program on each; "needed"
where the others read a map it alone writes); of the program for --succeeded (a failed
call's return reads nothing); of the peer (opensnoop.bt for openat, else execsnoop.bt);
of the whole program with the kernel's BTF instead of the empty one, and with neither
the definitions nor the empty BTF (bpftrace finds the types itself). The CPU counted
includes the few milliseconds the forked child spends before it execs bpftrace (its
namespace, its descriptors). Needs root (the list of events is narrowed in a mount
namespace).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import sys
import tempfile
from typing import NamedTuple

from benchlib import PEER_TOOLS, TOP, machine  # this checkout's bptrace_exec

sys.path.insert(0, str(TOP / "wrapper"))

from bptrace_exec.codegen import generate  # noqa: E402
from bptrace_exec.codegen.program import header_length  # noqa: E402
from bptrace_exec.run.engine import Engine, find_engine  # noqa: E402
from bptrace_exec.run.kerneltypes import with_kernel_types  # noqa: E402
from bptrace_exec.run.session import boot_id, run_start  # noqa: E402
from bptrace_exec.run.spawn import spawn  # noqa: E402
from bptrace_exec.spec import load_profile, with_overrides  # noqa: E402

PEER_OF = {"openat": "opensnoop.bt"}  # else execsnoop.bt
_PROBE_END = re.compile(r"^}\n", re.M)
# bpftrace refuses a map read and never written, or a variable whose type came from it:
# what a program less a probe that writes them is
_NEEDED = re.compile(r"ERROR: (Undefined map|Type mismatch|Undefined or undeclared variable)")


def probes(text: str, untyped: str) -> tuple[str, list[tuple[str, str]]]:
    """The program's text before its first probe, and each probe: (its attach points,
    its text). `untyped`: the program as generated, before its kernel types were
    defined after its header (run.kerneltypes)."""
    head_end = header_length(untyped) + len(text) - len(untyped)
    if text.startswith("config = ", head_end):  # bpftrace's settings, for 0.22+
        head_end = text.index("\n", head_end) + 1
    blocks, start = [], head_end
    for end in _PROBE_END.finditer(text, head_end):
        block = text[start:end.end()]
        attach = [line.rstrip(",").removeprefix("tracepoint:") for line in block.splitlines()
                  if line and not line.startswith(("//", " ", "/", "{", "}"))]
        blocks.append((", ".join(attach), block))
        start = end.end()
    assert not text[start:].strip(), "a program ends with its last probe"
    return text[:head_end], blocks


class Config(NamedTuple):
    text: str
    own_types: bool  # handed BTF with no types (run.kerneltypes)
    less: bool = False  # a program less one probe: it may not compile without it


def compile_cpu(engine: Engine, config: Config, strlen: int, elf: str) -> float | None:
    """CPU seconds of one `bpftrace --emit-elf` of the program, started as a run starts
    it; None for a program less a probe the others need."""
    start = run_start(config.text, engine, buffer_pages=engine.buffer_pages, strlen=strlen,
                      own_types=config.own_types)
    start.flags = [*start.flags, "--emit-elf", elf]
    spawned = spawn(start)
    try:
        log = _drained(spawned.terminal)  # read as it comes: a full terminal would hold it
        _, status, usage = os.wait4(spawned.pid, 0)
        made = os.path.exists(elf)
    finally:
        spawned.end()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(elf)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and made:
        return usage.ru_utime + usage.ru_stime
    if config.less and _NEEDED.search(log):
        return None
    sys.exit(f"bpftrace could not compile a program of this benchmark:\n{log}")


def _drained(terminal: int) -> str:
    """What bpftrace writes on its terminal, until it ends."""
    out = b""
    try:
        while chunk := os.read(terminal, 65536):
            out += chunk
    except OSError:  # EIO: the terminal's other side closed, its only process gone
        pass
    return out.decode("utf-8", "replace")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bpftrace")
    ap.add_argument("--profile", default="execve")
    args = ap.parse_args()
    engine = find_engine(args.bpftrace)
    profile = load_profile(args.profile)
    program = generate(profile, engine.version_text)
    text, own = _typed(program.text)
    head, blocks = probes(text, program.text)
    configs = {"whole program": Config(text, own)}
    for i, (attach, _) in enumerate(blocks):
        same = sum(a == attach for a, _ in blocks[:i])
        configs[f"less {attach}" + (f" #{same + 1}" if same else "")] = Config(
            head + "".join(b for j, (_, b) in enumerate(blocks) if j != i), own, less=True)
    succeeded = generate(with_overrides(profile, succeeded=True), engine.version_text).text
    configs["with --succeeded"] = Config(*_typed(succeeded))
    peer = PEER_OF.get(profile.name, "execsnoop.bt")
    with open(PEER_TOOLS[peer], encoding="utf-8") as f:
        configs[peer] = Config(f.read(), False)
    if own:
        configs["with the kernel's BTF"] = Config(text, False)
        configs["types found by bpftrace"] = Config(program.text, False)
    cpu: dict[str, list[float | None]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as tmp:
        elf = os.path.join(tmp, "program.o")
        for r in range(args.rounds):
            names = list(configs)
            for name in names[r % len(names):] + names[:r % len(names)]:
                cpu[name].append(compile_cpu(engine, configs[name], program.strlen, elf))
    report(cpu, {name for name, c in configs.items() if c.less}, engine, profile.name,
           args.rounds)


def _typed(text: str) -> tuple[str, bool]:
    """The program as a run hands it to bpftrace, and whether it defines its own types."""
    typed, defined = with_kernel_types(text, boot_id())
    return typed, defined > 0


def report(cpu: dict[str, list[float | None]], less: set[str], engine: Engine,
           profile: str, rounds: int) -> None:
    """The table; `less`: the programs less a probe, each beside the whole one."""
    whole = statistics.median(t for t in cpu["whole program"] if t is not None)
    width = max(map(len, cpu))
    print(machine(engine.version_text, f"profile {profile}: bpftrace's CPU to compile it "
                  f"(--emit-elf), {rounds} rounds"))
    print(f"{'program':{width}} {'CPU':>8}  {'range':16} {'probe':>8}")
    for name, times in cpu.items():
        runs = [t for t in times if t is not None]
        if not runs:
            print(f"{name:{width}} {'n/a':>8}  {'':16} {'needed':>8}")
            continue
        median = statistics.median(runs)
        cost = f"{(whole - median) * 1000:.0f}ms" if name in less else ""
        spread = f"[{min(runs) * 1000:.0f}..{max(runs) * 1000:.0f}]"
        print(f"{name:{width}} {median * 1000:6.0f}ms  {spread:16} {cost:>8}")


if __name__ == "__main__":
    main()
