"""Integration: where each program was started from (cwd) and which file the kernel ran
(exe), walked in the kernel at the call, checked against /proc/PID/cwd and /proc/PID/exe
of the same processes while they still run, on every bpftrace version: names no string
read holds, bytes that are not UTF-8, a bind mount, a mount namespace of its own, a
directory removed, a path deeper than a walk goes; a relative path, a symbolic link, an
fd, a memfd and a script."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, json_records, run_tool, started, tool_command, wait_until
from expectations import as_bytes, check_all, check_paths

pytestmark = pytest.mark.root

PATH_STEPS = 64  # codegen.context: names and mount points a walk goes through


@contextlib.contextmanager
def ended(procs: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    """The test's own processes (and their children: each leads a group of its own),
    ended by their pids however the test goes."""
    try:
        yield
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, 9)
            p.wait(timeout=30)


@contextlib.contextmanager
def bind_mounted(source: Path, target: Path) -> Iterator[None]:
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(target)], check=True)


def spawn(argv: list[str], cwd: Path | bytes | None = None, **kw: object
          ) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, cwd=cwd, start_new_session=True,  # type: ignore[call-overload]
                            stdin=subprocess.DEVNULL, **kw)


def test_cwd_and_exe_match_proc_for_running_processes(engine: str, tmp_path: Path,
                                                      markers: Path,
                                                      nothing_left_running: None) -> None:
    waiter = markers / "waits-for-the-test"
    shutil.copy("/bin/sleep", waiter)
    hard = os.path.join(bytes(tmp_path), b"a dir with spaces", b"new\nline",
                        b"\xff\xfe not utf-8", b"n" * 255, b"after the longest name")
    os.makedirs(hard)
    deep = Path(tmp_path, *["d"] * (PATH_STEPS + 6))
    deep.mkdir(parents=True)
    (tmp_path / "source" / "inner").mkdir(parents=True)
    (tmp_path / "bound").mkdir()
    (tmp_path / "removed").mkdir()
    (markers / "link-to-waiter").symlink_to(waiter)
    script = markers / "a-script"
    script.write_text(f"#!/bin/sh\n{waiter} 300\n")
    script.chmod(0o755)
    out = tmp_path / "execs.jsonl"
    with bind_mounted(tmp_path / "source", tmp_path / "bound"), started(tool_command(
            "--json", "-o", str(out), "--cwd", "--exe", "--bpftrace", engine,
            "--duration", "300")) as (_, lines):
        lines.wait_for(lambda line: line.startswith("Tracing"))
        by_fd = f"import os; os.execve(os.open({str(waiter)!r}, os.O_RDONLY), ['w', '300'], {{}})"
        in_memory = ("import os; fd = os.memfd_create('bpx-in-memory'); "
                     f"os.write(fd, open({str(waiter)!r}, 'rb').read()); "
                     "os.execve(fd, ['m', '300'], {})")
        procs = {
            "hard": spawn([str(waiter), "300"], cwd=hard),
            "deep": spawn([str(waiter), "300"], cwd=deep),
            "bind": spawn([str(waiter), "300"], cwd=tmp_path / "bound" / "inner"),
            "removed": spawn(["sh", "-c", f"cd {tmp_path}/removed && rmdir ../removed && "
                              f"exec {waiter} 300"]),
            "namespace": spawn(["unshare", "-m", "sh", "-c",
                                f"mount -t tmpfs none {tmp_path}/bound && mkdir "
                                f"{tmp_path}/bound/own && cd {tmp_path}/bound/own && "
                                f"exec {waiter} 300"]),
            "relative": spawn([f"./{waiter.name}", "300"], cwd=markers),
            "link": spawn([str(markers / "link-to-waiter"), "300"]),
            "fd": spawn([sys.executable, "-c", by_fd]),
            "memfd": spawn([sys.executable, "-c", in_memory]),
            "script": spawn([str(script)]),
        }
        with ended(list(procs.values())):
            def images() -> dict[str, dict[str, object]]:
                found = {}
                for e in json_records(out.read_text()):
                    for name, p in procs.items():
                        # the waiter's own exec, not those of the sh, unshare or
                        # python before it in the same process
                        if e["pid"] == p.pid and e["ret"] == 0 and e["argv"][-1:] == ["300"] \
                                or name == "script" and e["filename"] == str(script):
                            found[name] = e
                return found if len(found) == len(procs) else {}
            execs = wait_until(images, "every program's exec")
            proc = {name: (os.readlink(f"/proc/{p.pid}/cwd".encode()),
                           os.readlink(f"/proc/{p.pid}/exe".encode()))
                    for name, p in procs.items()}
    for name, e in execs.items():
        cwd, exe = as_bytes(str(e["cwd"])), as_bytes(str(e["exe"]))
        if name == "deep":  # cut: its deepest names, not from the root
            assert e["cwd_truncated"] is True and not cwd.startswith(b"/")
            assert proc[name][0].endswith(b"/" + cwd) and cwd.endswith(b"/d/d/d")
        else:
            assert (cwd, e["cwd_truncated"]) == (proc[name][0], False), name
        assert (exe, e["exe_truncated"]) == (proc[name][1], False), name
    assert execs["removed"]["cwd"] == f"{tmp_path}/removed (deleted)"
    assert execs["bind"]["cwd"] == f"{tmp_path}/bound/inner"
    assert execs["namespace"]["cwd"] == f"{tmp_path}/bound/own"
    # what ran, where the path asked for differs
    assert execs["link"]["exe"] == execs["relative"]["exe"] == str(waiter)
    assert execs["memfd"]["exe"] == "/memfd:bpx-in-memory (deleted)"
    assert execs["script"]["exe"] == os.path.realpath("/bin/sh")
    assert execs["fd"]["filename"].startswith("/dev/fd/")


def test_calls_and_exits_say_where_their_process_runs(engine: str, tmp_path: Path,
                                                      nothing_left_running: None) -> None:
    """A syscall's caller and a process's end: the cwd and the running program's file;
    a failed exec's cwd, and no file."""
    opened = tmp_path / "opened-here"
    opener = f"open({opened.name!r}, 'w').close()"
    out = tmp_path / "calls.jsonl"
    run = run_tool("openat", "--cwd", "--exe", "--json", "-o", str(out), "--bpftrace", engine,
                   "--", sys.executable, "-c", opener, output=out, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    [call] = [r for r in run.records if r.get("event") == "call"
              and str(r["args"]["path"]).endswith(opened.name)]
    assert (call["cwd"], call["exe"]) == (str(tmp_path), os.path.realpath(sys.executable))
    out = tmp_path / "process.jsonl"
    run = run_tool("process", "--cwd", "--exe", "--json", "-o", str(out), "--bpftrace", engine,
                   "--", "sh", "-c", f"cd {tmp_path} && /nonexistent-program; exit 3",
                   output=out)
    assert run.returncode == 3, run.stderr  # the command's
    [failed] = [r for r in run.records if r.get("ret") == -2]
    assert (failed["cwd"], failed["exe"]) == (str(tmp_path), None)
    [shell_exit] = [r for r in run.records if r.get("event") == "exit" and r["status"] == 3]
    assert shell_exit["cwd"] == str(tmp_path)
    # where the kernel still has the program at a process's end (not before 6.x), its file
    assert shell_exit["exe"] in (None, os.path.realpath("/bin/sh"))
    # the exit profile, alone, with its context (0.17 once could not compile that)
    run = run_tool("exit", "--context", "--cwd", "--json", "--bpftrace", engine, "--",
                   "sh", "-c", "exit 4", cwd=tmp_path)
    [end] = [r for r in run.records if r.get("event") == "exit" and r["status"] == 4]
    cgroup = Path("/proc/self/cgroup").read_text().split("::", 1)[1].strip()
    assert (end["cwd"], end["context"]["cgroup"]) == (str(tmp_path), Path(cgroup).name)


def test_filters_table_replay_and_counts_by_path(engine: str, tmp_path: Path,
                                                 nothing_left_running: None) -> None:
    """--where cwd= and exe= keep what ran there, and count the rest as dropped; the table
    shows the column; a recording replays the paths; --stats counts by them, live and
    from the JSON lines."""
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    command = ["--", "sh", "-c", f"cd {here} && /bin/true && cd {there} && /bin/true"]
    out, recording = tmp_path / "kept.jsonl", tmp_path / "run.rec"
    run = run_tool("execve", "--where", f"cwd={here}*", "--exe", "--json", "-o", str(out),
                   "--record", str(recording), "--bpftrace", engine, *command, output=out)
    assert run.returncode == 0, run.stderr
    assert [(e["cwd"], e["exe"]) for e in run.execs()] == [(str(here), "/usr/bin/true")]
    assert run.end()["dropped_execs"] == 2  # sh, and the one in `there`
    replayed = run_tool("--replay", str(recording), "--json")
    assert [e["cwd"] for e in replayed.execs()] == [str(here)]
    by_exe = run_tool("execve", "--where", "exe=/usr/bin/t*", "--cwd", "--bpftrace", engine,
                      *command)
    rows = [line for line in by_exe.stdout.splitlines() if "/bin/true" in line]
    assert len(rows) == 2 and str(here) in rows[0] and str(there) in rows[1], by_exe.stdout
    assert "CWD" in by_exe.stdout.splitlines()[0] and "/bin/sh" not in by_exe.stdout
    profile = tmp_path / "by-path.yaml"
    profile.write_text("version: 1\nstats: {by: [cwd, exe]}\n")
    everything = tmp_path / "all.jsonl"
    live = run_tool(str(profile), "--stats", "--json", "--bpftrace", engine, *command)
    run_tool("execve", "--cwd", "--exe", "--json", "-o", str(everything), "--bpftrace", engine,
             *command)
    from_file = run_tool(str(profile), "--stats", "--json", "--from", str(everything))
    for report in (live, from_file):
        [stats] = report.records
        counts = {b: {t["key"]: t["count"] for t in stats["breakdowns"][b]["top"]}
                  for b in ("cwd", "exe")}
        assert counts["cwd"][str(here)] == counts["cwd"][str(there)] == 1, report.stdout
        assert counts["exe"]["/usr/bin/true"] == 2 and counts["exe"]["/usr/bin/dash"] == 1


def test_every_hard_case_says_where_it_ran(engine: str, exec_cases: str, tmp_path: Path,
                                           nothing_left_running: None) -> None:
    """The exec workload with both paths read: still exact, and each case's cwd and exe."""
    out = tmp_path / "events.jsonl"
    driver = str(ROOT / "tests" / "workloads" / "exec_driver.py")
    run = run_tool("execve", "--cwd", "--exe", "--json", "-o", str(out), "--bpftrace", engine,
                   "--", sys.executable, driver, str(tmp_path), exec_cases, output=out)
    assert run.returncode == 0, run.stderr
    check_all(run.execs(), str(tmp_path))
    check_paths(run.execs(), str(tmp_path))
    assert run.end()["incomplete_execs"] == run.end()["missing_execs"] == 0
