"""Integration: filters on what is run, on every bpftrace version: the program's path
(exact or by prefix, in the kernel), the effective uid after the exec (in the kernel), and
argv by a glob (in bptrace-exec: what it drops is counted apart from what was lost)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import run_tool

pytestmark = pytest.mark.root

NOBODY = 65534


@pytest.fixture
def programs(markers: Path) -> dict[str, Path]:
    """Copies of /bin/true: two plain ones and a setuid root one."""
    out = {name: markers / name for name in ("plain-a", "plain-b", "raised")}
    for path in out.values():
        shutil.copy("/bin/true", path)
    os.chown(out["raised"], 0, 0)
    out["raised"].chmod(0o4755)
    return out


def workload(programs: dict[str, Path]) -> list[str]:
    """Each program run as nobody with the argument `one`, then as root with `two`."""
    nobody = f"setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups"
    runs = [f"{nobody} {p} one; {p} two" for p in programs.values()]
    return ["--", "sh", "-c", "; ".join(runs)]


def shown(run_args: list[str], engine: str) -> tuple[list[tuple[str, str, int]], dict]:
    run = run_tool("--json", "--bpftrace", engine, *run_args)
    assert run.returncode == 0, run.stderr
    execs = [(Path(str(e["filename"])).name, e["argv"][-1], e["euid"])  # type: ignore[index]
             for e in run.execs()]
    return execs, run.end()


def test_filters_on_the_program_its_euid_and_its_arguments(
        engine: str, programs: dict[str, Path], markers: Path,
        nothing_left_running: None) -> None:
    work = workload(programs)
    by_prefix, end = shown(["--where", f"filename={markers}/plain*", *work], engine)
    assert sorted(by_prefix) == [("plain-a", "one", NOBODY), ("plain-a", "two", 0),
                                 ("plain-b", "one", NOBODY), ("plain-b", "two", 0)]
    exact, _ = shown(["--where", f"filename={programs['raised']}", *work], engine)
    assert sorted(exact) == [("raised", "one", 0), ("raised", "two", 0)]
    # euid 0 after the exec: nobody's setuid program is kept, nobody's others are not
    # (the image printed its records before the return dropped the others: none is left)
    root, end = shown(["--where", "euid=0", "--where", f"filename={markers}/*", *work], engine)
    assert sorted(root) == [("plain-a", "two", 0), ("plain-b", "two", 0),
                            ("raised", "one", 0), ("raised", "two", 0)]
    assert end["dropped_execs"] == end["missing_execs"] == 0
    assert end["incomplete_execs"] == end["partial_execs"] == 0
    # argv in user space: the execs without a match are counted as dropped, not missing
    # (setpriv's own argv has "one" too)
    matched, end = shown(["--where", "argv=o?e", *work], engine)
    assert sorted(matched) == [("plain-a", "one", NOBODY), ("plain-b", "one", NOBODY),
                               ("raised", "one", 0)] + [("setpriv", "one", 0)] * 3
    assert end["execs"] == 6 and end["missing_execs"] == 0
    assert end["dropped_execs"] == end["kernel_execs"] - 6 >= 4  # sh, the "two" ones


def test_a_filter_on_the_path_sees_literals_a_fresh_child_passes(
        engine: str, exec_cases: str, nothing_left_running: None) -> None:
    """Children forked in a storm exec /bin/true from a literal whose page is not present
    yet at entry: the path is compared at return, each one is kept."""
    run = run_tool("--json", "--where", "filename=/bin/true", "--bpftrace", engine, "--",
                   exec_cases, "storm", "50")
    assert run.returncode == 0, run.stderr
    assert [e["filename"] for e in run.execs()] == ["/bin/true"] * 50
    assert run.end()["missing_execs"] == 0


@pytest.mark.parametrize("where", ["filename={markers}/plain*", "argv=two"])
def test_an_end_is_shown_as_its_last_program_was(engine: str, where: str,
                                                 programs: dict[str, Path], markers: Path,
                                                 nothing_left_running: None) -> None:
    """With the ends of processes, a filter on the program drops the end of a process
    whose last program it refused, in the kernel (the path) as here (argv): the ends
    shown are those of the processes shown, not every one on the host. The shell execs
    plain-b last: its end is shown when plain-b is."""
    script = (f"{programs['plain-a']} one; /bin/echo x > /dev/null; "
              f"exec {programs['plain-b']} two")
    run = run_tool("--json", "--exits", "--where", where.format(markers=markers),
                   "--bpftrace", engine, "--", "sh", "-c", script)
    assert run.returncode == 0, run.stderr
    execs = {e["pid"]: Path(str(e["filename"])).name for e in run.execs()}
    ended = sorted(r["pid"] for r in run.records if r.get("event") == "exit")  # type: ignore[type-var]
    assert sorted(execs.values()) == (["plain-a", "plain-b"] if "filename" in where
                                      else ["plain-b"]), run.records
    assert ended == sorted(execs), run.records  # type: ignore[type-var]
    assert run.end()["missing_events"] == 0
