"""The benchmarks still run (once, tiny): they time nothing here and assert no speed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

SCRIPTS = ROOT / "scripts"
BTF = Path("/sys/kernel/btf/vmlinux")


def bench(name: str, *args: str, timeout: float = 300) -> str:
    out = subprocess.run([sys.executable, str(SCRIPTS / name), *args], capture_output=True,
                         text=True, timeout=timeout, check=True, cwd=ROOT)
    assert out.stdout.startswith("# x86_64") or out.stdout.startswith("# ")
    return out.stdout


def test_bench_parse() -> None:
    text = bench("bench_parse.py", "--records", "3000", "--rounds", "1")
    assert [line.split()[0] for line in text.splitlines()[2:]] == ["decode", "json", "table",
                                                                   "stats"]


@pytest.mark.root
def test_bench_storm() -> None:
    text = bench("bench_storm.py", "--execs", "40", "--rounds", "1", "--workers", "1",
                 "--configs", "none,libbpf,execsnoop.bt,bpftrace,events-json,events-pipe,"
                 "stats,stats-light")
    # every tracer that shows execs showed each of the storm's, and its cost is printed:
    # wall ratio, CPU per exec above no tracer, its own CPU per exec, its BPF programs'
    for kind in ("libbpf", "execsnoop.bt", "events-json", "events-pipe"):
        assert re.search(kind + r" +[\d.]+x +-?\d+ +\d+ +[1-9]\d* +\[40\]\n", text), text
    for kind in ("stats", "stats-light"):  # a few us in the kernel: 0 on a fast machine
        assert re.search(kind + r" +[\d.]+x +-?\d+ +\d+ +\d+\n", text), text
    assert re.search(r"none +1.00x +0 +n/a +n/a\n", text), text


@pytest.mark.root
def test_bench_calls() -> None:
    text = bench("bench_calls.py", "--calls", "20", "--rounds", "1")
    for storm, kinds in (("open", ("opensnoop", "opensnoop.bt", "bptrace-exec")),
                         ("connect", ("bptrace-exec",))):
        section = text[text.index(f"\n{storm} "):]
        for kind in kinds:
            assert re.search(kind + r" +[\d.]+x +-?\d+ +\d+ +[1-9]\d* +\[20\]\n", section), text
        assert re.search(r"strace +[\d.]+x +-?\d+ +n/a +n/a\n", section), text


@pytest.mark.root
def test_bench_startup() -> None:
    text = bench("bench_startup.py", "--rounds", "1")
    # each tracer showed the marker; the tool's times beside its peer's
    for kind in ("libbpf", "execsnoop.bt", "opensnoop", "opensnoop.bt"):
        assert re.search(kind + r" +[\d.]+s +\[[\d.]+\.\.[\d.]+\]", text), text
    # shown, and captured: when the marker it showed was made (a command's: not known)
    shown = r" +[\d.]+s +\[[\d.]+\.\.[\d.]+\] +[\d.]+x "
    for kind, peer in (("events", "execsnoop.bt"), ("succeeded", "execsnoop.bt"),
                       ("stats", "execsnoop.bt"), ("openat", "opensnoop.bt")):
        assert re.search(kind + shown + peer + r" +[\d.]+s +[\d.]+x " + peer + "\n", text), text
    assert re.search("command" + shown + r"execsnoop.bt +- +\n", text), text
    assert re.search(r"whole traced command \(execve -- true\): [\d.]+s", text), text
    answer = r"\d+ ms \(CPU \d+ ms\)"  # wall, and the CPU time it took
    assert re.search(f"--help: {answer}; --emit script: {answer}", text), text


@pytest.mark.root
def test_bench_memory() -> None:
    text = bench("bench_memory.py", "--seconds", "4",
                 "--modes", "events,stats,serve,execsnoop.bt,libbpf")
    for mode in ("events", "stats", "serve"):  # Python and its bpftrace, Python alone
        assert re.search(mode + r" +rss@1min +[\d.]+ MB .* peak +[\d.]+ MB \(Python [\d.]+\)",
                         text), text
    assert re.search(r"serve .* [1-9][0-9]* scrapes", text), text
    for label in (r"during the storm \(at the end\)", "peak"):
        assert re.search(label + r" vs execsnoop.bt: events [\d.]+x, stats [\d.]+x, "
                         r"serve [\d.]+x, libbpf [\d.]+x", text), text


@pytest.mark.root
def test_bench_compile() -> None:
    text = bench("bench_compile.py", "--rounds", "1", "--profile", "openat")
    ms = r" +\d+ms +\[\d+\.\.\d+\]"
    rows = ["whole program", "with --succeeded", "opensnoop.bt"]
    if BTF.exists() and os.environ.get("BPTRACE_EXEC_KERNEL_TYPES") != "bpftrace":
        rows += ["with the kernel's BTF", "types found by bpftrace"]  # it defines them
    for row in rows:
        assert re.search("^" + re.escape(row) + ms + " +$", text, re.M), text
    # each probe left out in turn: its cost, or that the others need it
    measured = re.findall(r"^less (\S.*?)" + ms + r" +-?\d+ms$", text, re.M)
    needed = re.findall(r"^less (\S.*?) +n/a +needed$", text, re.M)
    for probe in ("BEGIN", "syscalls:sys_enter_openat", "syscalls:sys_exit_openat", "END"):
        assert probe in measured, text  # no other probe reads what these write
    assert needed == ["task:task_rename"], text  # the only one that sets @stop
