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
cost is the difference: one probe on several tracepoints is one program on each); of
execsnoop.bt; of the whole program with the kernel's BTF instead of the empty one, and
with neither the definitions nor the empty BTF (bpftrace finds the types itself).
Needs root (the list of events is narrowed in a mount namespace).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile

from benchlib import TOP, machine  # this checkout's bptrace_exec

sys.path.insert(0, str(TOP / "wrapper"))

from bptrace_exec.codegen import generate  # noqa: E402
from bptrace_exec.codegen.kerneltypes import NO_TYPES_BTF  # noqa: E402
from bptrace_exec.codegen.program import HEADER_END  # noqa: E402
from bptrace_exec.run.engine import Engine, find_engine  # noqa: E402
from bptrace_exec.run.eventlist import kept_listing  # noqa: E402
from bptrace_exec.run.kerneltypes import with_kernel_types  # noqa: E402
from bptrace_exec.run.session import boot_id  # noqa: E402
from bptrace_exec.run.spawn import Start, spawn  # noqa: E402
from bptrace_exec.spec import load_profile  # noqa: E402

PEER = "/usr/sbin/execsnoop.bt"
LESS = "less "
_PROBE_END = re.compile(r"^}\n", re.M)


def probes(text: str, defined_lines: int) -> tuple[str, list[tuple[str, str]]]:
    """The program's text before its first probe, and each probe: (its attach points,
    its text)."""
    head_end = text.index(f"\n{HEADER_END}\n") + len(HEADER_END) + 2
    for _ in range(defined_lines):
        head_end = text.index("\n", head_end) + 1
    blocks, start = [], head_end
    for end in _PROBE_END.finditer(text, head_end):
        block = text[start:end.end()]
        attach = [line.rstrip(",").removeprefix("tracepoint:") for line in block.splitlines()
                  if line and not line.startswith(("//", " ", "/", "{", "}"))]
        blocks.append((", ".join(attach), block))
        start = end.end()
    return text[:head_end], blocks


def compile_cpu(engine: Engine, text: str, strlen: int, btf: bytes | None,
                elf: str, name: str) -> float | None:
    """CPU seconds of one `bpftrace --emit-elf` of `text`, started as a run starts it;
    None for a program less a probe that sets a map or a variable's type the others
    need (not a program then)."""
    start = Start(engine.path, [*engine.flags(), "--emit-elf", elf],
                  engine.environment(1024, strlen), text, btf, kept_listing(text), 0, None)
    spawned = spawn(start)
    try:
        _, status, usage = os.wait4(spawned.pid, 0)
        log = _drained(spawned.terminal)
    finally:
        spawned.end()
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0 or not os.path.exists(elf):
        if name.startswith(LESS):  # what it sets or types, the others read
            return None
        sys.exit(f"bpftrace could not compile {name}:\n{log}")
    os.unlink(elf)
    return usage.ru_utime + usage.ru_stime


def _drained(terminal: int) -> str:
    """What bpftrace wrote on its terminal, now that it has ended."""
    out = b""
    os.set_blocking(terminal, False)
    try:
        while chunk := os.read(terminal, 65536):
            out += chunk
    except OSError:  # nothing more, or the terminal is gone with its only process
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
    text, defined = with_kernel_types(program.text, boot_id())
    own = NO_TYPES_BTF if defined else None
    head, blocks = probes(text, defined)
    with open(PEER, encoding="utf-8") as f:
        peer = f.read()
    configs: dict[str, tuple[str, bytes | None]] = {"whole program": (text, own)}
    for i, (attach, _) in enumerate(blocks):
        same = sum(a == attach for a, _ in blocks[:i])  # a second probe there: " #2"
        configs[LESS + attach + (f" #{same + 1}" if same else "")] = (
            head + "".join(b for j, (_, b) in enumerate(blocks) if j != i), own)
    configs["execsnoop.bt"] = (peer, None)
    if defined:
        configs["with the kernel's BTF"] = (text, None)
        configs["types found by bpftrace"] = (program.text, None)
    cpu: dict[str, list[float | None]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as tmp:
        elf = os.path.join(tmp, "program.o")
        for r in range(args.rounds):
            names = list(configs)
            for name in names[r % len(names):] + names[:r % len(names)]:
                program_text, btf = configs[name]
                cpu[name].append(compile_cpu(engine, program_text, program.strlen, btf, elf,
                                             name))
    whole = statistics.median(t for t in cpu["whole program"] if t is not None)
    print(machine(engine.version_text, f"profile {profile.name}: bpftrace's CPU to compile "
                  f"it (--emit-elf), {args.rounds} rounds"))
    print(f"{'program':62} {'CPU':>8}  {'range':16} {'probe':>8}")
    for name, times in cpu.items():
        runs = [t for t in times if t is not None]
        if not runs:  # the others need what it sets
            print(f"{name[:62]:62} {'n/a':>8}  {'':16} {'needed':>8}")
            continue
        median = statistics.median(runs)
        cost = f"{(whole - median) * 1000:.0f}ms" if name.startswith(LESS) else ""
        spread = f"[{min(runs) * 1000:.0f}..{max(runs) * 1000:.0f}]"
        print(f"{name[:62]:62} {median * 1000:6.0f}ms  {spread:16} {cost:>8}")


if __name__ == "__main__":
    main()
