"""What the benchmarks share: the checkout they measure, and stopping what they started,
by its pid, whatever happens."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
HZ = os.sysconf("SC_CLK_TCK")
# `python -m bptrace_exec` in a child runs this checkout's code, not an installed copy
# (an editable install points at one checkout: comparing two would measure it twice)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(TOP / "wrapper"), os.environ.get("PYTHONPATH", "")) if p)


# the peers measured beside the tool: libbpf-tools' and bpftrace's own, as Debian installs them
PEER_TOOLS = {name: f"/usr/sbin/{name}"
              for name in ("execsnoop", "execsnoop.bt", "opensnoop", "opensnoop.bt")}
STATS_SWITCH = Path("/proc/sys/kernel/bpf_stats_enabled")


@contextlib.contextmanager
def bpf_run_times() -> Iterator[None]:
    """The kernel times every BPF program's runs while inside (its fdinfo's run_time_ns);
    as it was after, also when the benchmark is told to end (SIGTERM, SIGHUP)."""
    before = STATS_SWITCH.read_text()
    handlers = {s: signal.signal(s, lambda signum, _: sys.exit(128 + signum))
                for s in (signal.SIGTERM, signal.SIGHUP)}
    STATS_SWITCH.write_text("1")
    try:
        yield
    finally:
        STATS_SWITCH.write_text(before)
        for s, handler in handlers.items():
            signal.signal(s, handler)


def usage(pid: int) -> tuple[float, float]:
    """Of a process and its live descendants: the CPU seconds (user + system) they used,
    and the seconds the kernel spent running the BPF programs they hold (within
    bpf_run_times(); in whichever task hit them, the traced workload's for the most)."""
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{entry}/stat").read_text()
                stats[int(entry)] = text[text.rfind(")") + 2:].split()
    cpu, programs, todo = 0.0, {}, [pid]
    while todo:
        current = todo.pop()
        fields = stats.get(current)
        if fields is None:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / HZ
        programs.update(_programs(current))
        todo += [child for child, f in stats.items() if int(f[1]) == current]
    return cpu, sum(programs.values()) / 1e9


def _programs(pid: int) -> dict[int, int]:
    """{program id: its run time so far, ns} of the BPF programs a process holds."""
    out = {}
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fdinfo"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
                if "run_time_ns:" in info:  # a program's (its links name it too)
                    ident = int(info.split("prog_id:")[1].split()[0])
                    out[ident] = int(info.split("run_time_ns:")[1].split()[0])
    return out


def stop(proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """SIGINT (a tracer's clean stop), then SIGKILL if it is still there after timeout."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def byte_compiled() -> None:
    """This checkout's modules compiled as an install leaves them: with
    PYTHONDONTWRITEBYTECODE set, each run of a module changed since its last .pyc would
    compile its source again, a cost no installed copy pays."""
    import compileall

    if not compileall.compile_dir(str(TOP / "wrapper"), quiet=1):
        raise SystemExit(f"cannot byte-compile {TOP / 'wrapper'}")


def install(packages: dict[str, str]) -> None:
    """{program path: Debian package}: installs the packages of those missing."""
    missing = [pkg for path, pkg in packages.items() if not shutil.which(path)]
    if missing:
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False,
                       stdout=subprocess.DEVNULL)


def machine(engine_version: str, what: str) -> str:
    """The line a benchmark's figures start with: where they were measured, and what."""
    return (f"# {platform.machine()}, {os.cpu_count()} cpus, kernel {platform.release()}, "
            f"bpftrace {engine_version}, Python {platform.python_version()}; {what}")


def workload(tmp: str, name: str) -> str:
    """tests/workloads/NAME.c compiled into tmp; its path."""
    path = str(Path(tmp) / name)
    subprocess.run(["cc", "-O2", "-pthread", "-o", path,
                    str(TOP / "tests" / "workloads" / f"{name}.c")], check=True)
    return path
