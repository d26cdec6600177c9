"""Integration: who ran each program and which image it is, read in the kernel, checked
against what /proc says of the same processes while they still run, on every bpftrace
version: a setuid and setgid program run by nobody, a login uid and session set the way
login does, a controlling terminal, and the exec ids that tie an image to its parent."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from conftest import (
    TEST_MARK,
    json_records,
    marked_processes,
    run_tool,
    started,
    tool_command,
    wait_until,
)

pytestmark = pytest.mark.root

NOBODY = 65534
LOGINUID = 4321


def proc_ids(pid: int) -> dict[str, int]:
    """/proc/PID/status's real and effective ids."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines())
    uid, euid = map(int, fields["Uid"].split()[:2])
    gid, egid = map(int, fields["Gid"].split()[:2])
    return {"uid": uid, "euid": euid, "gid": gid, "egid": egid}


def proc_tty(pid: int) -> str | None:
    """The controlling terminal as /proc/PID/stat's tty_nr encodes it (new_encode_dev)."""
    tty_nr = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[4])
    if not tty_nr:
        return None
    major, minor = (tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    assert 136 <= major < 144, f"not a pseudo-terminal: {major}:{minor}"
    return f"pts/{(major - 136) * 256 + minor}"


@contextlib.contextmanager
def ended(*procs: subprocess.Popen[bytes] | pexpect.spawn) -> Iterator[None]:
    """The test's own processes, ended by their pid however the test goes."""
    try:
        yield
    finally:
        for p in procs:
            if isinstance(p, pexpect.spawn):
                p.close(force=True)
            else:
                p.kill()
                p.wait(timeout=30)


def test_identity_matches_proc_for_running_processes(engine: str, tmp_path: Path,
                                                     markers: Path,
                                                     nothing_left_running: None) -> None:
    waiter = markers / "waits-for-the-test"
    shutil.copy("/bin/sleep", waiter)
    raised = markers / "raises-privileges"
    shutil.copy("/bin/sleep", raised)
    os.chown(raised, 0, 0)
    raised.chmod(0o6755)  # setuid and setgid root
    out = tmp_path / "execs.jsonl"
    with started(tool_command("--json", "-o", str(out), "--bpftrace", engine,
                              "--duration", "300")) as (tool, lines):
        lines.wait_for(lambda line: line.startswith("Tracing"))
        setuid = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                                   "--clear-groups", str(raised), "300"])
        # as login(1) does: the login uid set once, which starts an audit session
        login = subprocess.Popen(["sh", "-c", f"echo {LOGINUID} > /proc/self/loginuid && "
                                  f"exec {waiter} 300"])
        terminal = pexpect.spawn(str(waiter), ["300"])
        with ended(setuid, login, terminal):
            pids = {"setuid": setuid.pid, "login": login.pid, "terminal": terminal.pid}

            def images() -> dict[str, dict[str, object]]:
                found = {}
                for e in json_records(out.read_text()):
                    for name, pid in pids.items():
                        if e.get("pid") == pid and e.get("filename") in (str(waiter),
                                                                         str(raised)):
                            found[name] = e
                return found if len(found) == len(pids) else {}
            execs = wait_until(images, "the three programs' execs")
            before = {e["exec_id"]: e for e in json_records(out.read_text())
                      if e.get("pid") == login.pid and e.get("argv", [""])[0] == "sh"
                      and e.get("ret") == 0}
            for name, pid in pids.items():
                assert {k: execs[name][k] for k in ("uid", "euid", "gid", "egid")} == \
                    proc_ids(pid), name
                assert execs[name]["loginuid"] == (
                    LOGINUID if name == "login" else
                    None if Path("/proc/self/loginuid").read_text() == "4294967295" else
                    int(Path("/proc/self/loginuid").read_text())), name
                session = int(Path(f"/proc/{pid}/sessionid").read_text())
                assert execs[name]["sessionid"] == (None if session == 2**32 - 1 else session)
                assert execs[name]["tty"] == proc_tty(pid), name
                assert str(execs[name]["exec_id"]).split(":")[1] == str(pid)
            # the terminal the program reads from is the one named
            assert os.readlink(f"/proc/{terminal.pid}/fd/0") == f"/dev/{execs['terminal']['tty']}"
    setuid_exec = execs["setuid"]
    assert (setuid_exec["uid"], setuid_exec["euid"]) == (NOBODY, 0)
    assert (setuid_exec["gid"], setuid_exec["egid"]) == (NOBODY, 0)
    assert isinstance(execs["login"]["sessionid"], int)
    assert str(execs["terminal"]["tty"]).startswith("pts/")
    # sh then, in the same process, the program it exec'd: one image after the other
    [shell] = before.values()
    pid, shell_start, shell_count = str(shell["exec_id"]).split(":")[1:]
    assert str(execs["login"]["exec_id"]).split(":")[1:] == [pid, shell_start,
                                                            str(int(shell_count) + 1)]
    assert execs["login"]["parent_exec_id"] == shell["parent_exec_id"]


def test_an_exit_names_the_image_its_process_last_ran(engine: str, tmp_path: Path,
                                                      markers: Path,
                                                      nothing_left_running: None) -> None:
    """Two runs at once, one of execs, one of process ends: each process's end carries
    the exec id of its last exec, and a child's parent_exec_id is its parent's."""
    marker = markers / "marker"
    shutil.copy("/bin/true", marker)
    execs_out, exits_out = tmp_path / "execs.jsonl", tmp_path / "exits.jsonl"
    common = ("--json", "--bpftrace", engine, "--duration", "300")
    with started(tool_command("execve", "-o", str(execs_out), *common)) as (_, exec_lines), \
            started(tool_command("exit", "-o", str(exits_out), *common)) as (_, exit_lines):
        exec_lines.wait_for(lambda line: line.startswith("Tracing"))
        exit_lines.wait_for(lambda line: line.startswith("Tracing"))
        shell = subprocess.Popen(["sh", "-c", f"{marker} 1; {marker} 2; exit 3"])
        assert shell.wait(timeout=60) == 3

        def mine(path: Path, event: str) -> list[dict[str, object]]:
            return [e for e in json_records(path.read_text()) if e.get("event") == event
                    and (e.get("pid") == shell.pid or e.get("ppid") == shell.pid)]
        exits = wait_until(lambda: len(found := mine(exits_out, "exit")) == 3 and found,
                           "the ends of the shell and its two children")
        execs = wait_until(lambda: len(found := mine(execs_out, "exec")) >= 3 and found,
                           "the shell's and its children's execs")
    shell_exec = [e for e in execs if e["pid"] == shell.pid and e["ret"] == 0][-1]
    children = [e for e in execs if e.get("filename") == str(marker)]
    assert [c["argv"] for c in children] == [[str(marker), "1"], [str(marker), "2"]]
    assert all(c["parent_exec_id"] == shell_exec["exec_id"] for c in children)
    last_image = {e["pid"]: e["exec_id"] for e in execs if e["ret"] == 0}
    assert {e["pid"]: e["exec_id"] for e in exits} == last_image
    [shell_exit] = [e for e in exits if e["pid"] == shell.pid]
    assert shell_exit["status"] == 3


def test_counts_by_effective_user_and_terminal_agree_everywhere(
        engine: str, tmp_path: Path, markers: Path, nothing_left_running: None) -> None:
    """Counted in the kernel (--stats), from a recording (--replay --stats) and from JSON
    lines (--stats --from): the same counts by euid and by tty, for a workload run on a
    terminal of the test's own, three programs run by nobody and one setuid root."""
    plain, raised = markers / "plain", markers / "raised"
    shutil.copy("/bin/true", plain)
    shutil.copy("/bin/true", raised)
    os.chown(raised, 0, 0)
    raised.chmod(0o4755)
    nobody = f"setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups"
    workload = ["--", "sh", "-c", f"for i in 1 2 3; do {nobody} {plain}; done; {nobody} {raised}"]
    profile = tmp_path / "who.yaml"
    profile.write_text("version: 1\nstats:\n  by: [euid, tty]\n")
    rec, events, kernel = tmp_path / "run.rec", tmp_path / "events.jsonl", tmp_path / "k.json"

    def on_terminal(*args: str) -> str:
        """Runs the tool on a terminal of its own; the terminal's name."""
        child = pexpect.spawn(tool_command(*args)[0], tool_command(*args)[1:], timeout=120)
        tty = os.readlink(f"/proc/{child.pid}/fd/0")  # /dev/pts/N (spawn returns once
        # the child has exec'd)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, child.before
        return tty
    recorded = on_terminal(str(profile), "--json", "-o", str(events), "--record", str(rec),
                           "--bpftrace", engine, *workload)
    counted = on_terminal(str(profile), "--stats", "--export", str(kernel), "--bpftrace",
                          engine, *workload)
    # and by the light program, which counts successful execs as their programs start
    light_profile, light = tmp_path / "light.yaml", tmp_path / "light.json"
    light_profile.write_text("version: 1\nfilters: {succeeded: true}\n"
                             "stats: {by: [euid, tty], latency: false}\n")
    counted_light = on_terminal(str(light_profile), "--stats", "--export", str(light),
                                "--bpftrace", engine, *workload)
    replayed, from_json = tmp_path / "r.json", tmp_path / "j.json"
    for args in (("--replay", str(rec)), ("--from", str(events), str(profile))):
        done = subprocess.run(tool_command(*args, "--stats", "--export",
                                           str(replayed if args[0] == "--replay" else from_json)),
                              capture_output=True, check=False, timeout=120)
        assert done.returncode == 0, done.stderr
    reports = [json.loads(p.read_text())["breakdowns"]
               for p in (kernel, replayed, from_json, light)]
    counts = [{name: {r["key"]: r["count"] for r in b[name]["top"]} for name in ("euid", "tty")}
              for b in reports]
    # every exec succeeds: the same counts, but by the terminal of each run (a run's
    # bpftrace may still hold a terminal of its own as the next run starts)
    terminals = (counted, recorded, recorded, counted_light)
    assert all(c["euid"] == counts[0]["euid"] for c in counts), counts
    # sh, four setpriv and what they run: nobody's euid only for the three plain ones
    assert counts[0]["euid"]["65534"] == 3 and counts[0]["euid"]["0"] >= 6
    # the command runs on the tool's terminal, and so does everything it starts
    for each, terminal in zip(counts, terminals, strict=True):
        assert each["tty"] == {terminal.removeprefix("/dev/"): sum(each["euid"].values())}, counts


def test_execs_and_exits_in_one_stream(engine: str, tmp_path: Path, markers: Path,
                                       nothing_left_running: None) -> None:
    """The process profile (execve --exits): each process's end carries its status as
    waitpid gave it, and the exec id of the last program it ran; replayed as a table,
    the ends are marked."""
    marker = markers / "marker"
    shutil.copy("/bin/true", marker)
    rec = tmp_path / "run.rec"
    script = f"{marker} 1; {marker} 2; sleep 30 & kill -KILL $!; wait; exit 3"
    run = run_tool("process", "--json", "--record", str(rec), "--bpftrace", engine, "--",
                   "sh", "-c", script)
    assert run.returncode == 3, run.stderr  # the command's status, as waitpid gave it
    execs = [e for e in run.records if e["event"] == "exec"]
    exits = [e for e in run.records if e["event"] == "exit"]
    last_image = {e["pid"]: e["exec_id"] for e in execs if e["ret"] == 0}
    shell = next(e for e in execs if e["argv"][:2] == ["sh", "-c"])
    by_pid = {e["pid"]: e for e in exits}
    assert (by_pid[shell["pid"]]["status"], by_pid[shell["pid"]]["ret"]) == (3, 3)
    markers_run = [e for e in execs if e["filename"] == str(marker)]
    assert len(markers_run) == 2
    for e in markers_run:
        assert (by_pid[e["pid"]]["status"], by_pid[e["pid"]]["signal"]) == (0, "0")
        assert by_pid[e["pid"]]["exec_id"] == e["exec_id"]
        assert e["parent_exec_id"] == shell["exec_id"]
    # killed as sleep, or before: a forked shell that never exec'd has its parent's count
    [killed] = [e for e in exits if e["signal"] == "SIGKILL"]
    assert killed["ret"] == 137 and killed["parent_exec_id"] == shell["exec_id"]
    assert killed["exec_id"] == last_image.get(killed["pid"], ":".join(
        [*str(killed["exec_id"]).split(":")[:3], str(shell["exec_id"]).split(":")[3]]))
    assert all(by_pid[pid]["exec_id"] == image for pid, image in last_image.items())
    assert all(e["lifetime_ns"] > 0 and "filename" not in e for e in exits)
    end = run.end()
    assert (end["execs"], end["exits"]) == (len(execs), len(exits))
    assert end["missing_events"] == 0 and end["kernel_events"] == len(execs) + len(exits)
    table = subprocess.run(tool_command("--replay", str(rec)), capture_output=True,
                           text=True, check=True, timeout=60).stdout
    assert "[exit 3]" in table and "[killed by SIGKILL]" in table
    # the tree of the recorded run: the shell, and under it every other process once
    drawn = subprocess.run(tool_command("--replay", str(rec), "--tree", "--json"),
                           capture_output=True, text=True, check=True, timeout=60).stdout
    tree, *after = map(json.loads, drawn.splitlines())
    [root] = tree["processes"]
    assert root["status"] == 3 and len(root["children"]) == len(exits) - 1
    # drawn at the recorded run's end, not at the replay's
    assert [r["time"] for r in after if r["event"] == "end"] == [tree["time"]]
    # the same from the JSON lines of the run, as a tree, in text and JSON, and a timeline
    lines = tmp_path / "run.jsonl"
    subprocess.run(tool_command("--replay", str(rec), "--json", "-o", str(lines)), check=True,
                   timeout=60)
    for shown in (["--json"], []):
        replayed, drawn_again = (subprocess.run(
            tool_command(*source, "--tree", *shown), capture_output=True, text=True,
            check=True, timeout=60).stdout for source in (["--replay", str(rec)],
                                                          ["--from", str(lines)]))
        assert drawn_again.splitlines() == replayed.splitlines()[:len(drawn_again.splitlines())]
        assert len(drawn_again.splitlines()) == (1 if shown else len(exits) + 1)
    pictures = [tmp_path / "replayed.svg", tmp_path / "from.svg"]
    for source, picture in zip((["--replay", str(rec)], ["--from", str(lines)]), pictures,
                               strict=True):
        subprocess.run(tool_command(*source, "--timeline", str(picture)), check=True,
                       capture_output=True, timeout=60)
    # the same bars, of the same processes (their places within 0.1 px: JSON's times are
    # to the microsecond)
    bars = [re.findall(r"<title>(.*?)</title>", p.read_text(), re.S) for p in pictures]
    assert bars[0] == bars[1] and len(bars[0]) == len(exits)
    assert len(by_pid) == len(exits)  # each process ended once


def test_the_tree_of_a_command(engine: str, markers: Path,
                               nothing_left_running: None) -> None:
    """--tree: each process once, under its parent, with how it ended, as waitpid saw it
    (the shell's 3, the killed child's SIGKILL, the missing program's 127)."""
    marker = markers / "marker"
    shutil.copy("/bin/true", marker)
    script = (f"{marker} 1; {markers}/missing 2>/dev/null; sleep 30 & kill -KILL $!; wait; "
              f"sh -c '{marker} 2'; exit 3")
    run = run_tool("--tree", "--json", "--bpftrace", engine, "--", "sh", "-c", script)
    assert run.returncode == 3, run.stderr
    [tree] = [r for r in run.records if r["event"] == "tree"]
    [root] = tree["processes"]
    assert (root["argv"][:2], root["status"], root["failed_execs"]) == (["sh", "-c"], 3, 0)
    kids = root["children"]
    [killed] = [k for k in kids if k["signal"]]
    assert killed["signal"] == "SIGKILL" and killed["status"] == 0
    # the shell's race: its child killed before it could exec sleep, or just after
    assert not killed["argv"] or killed["argv"] == ["sleep", "30"], killed
    assert [k["argv"] for k in kids if k["argv"] and k is not killed] == [
        [str(marker), "1"], ["sh", "-c", f"{marker} 2"]]
    [missing] = [k for k in kids if k["failed_execs"]]
    assert (missing["argv"], missing["status"]) == (None, 127)  # sh's child, exec failed
    [inner] = [k for k in kids if k["argv"] and k["argv"][0] == "sh"]
    assert [g["argv"] for g in inner["children"]] == [[str(marker), "2"]]
    assert all(k["lifetime_ns"] > 0 for k in [root, *kids])
    text = run_tool("--tree", "--bpftrace", engine, "--", "sh", "-c", script).stdout
    assert text.splitlines()[0].split() == ["PID", "LIFE(ms)", "END", "COMMAND"]
    assert "\u2717 sh -c" in text and "SIGKILL" in text and f"\u2514\u2500 {marker} 2" in text


def test_an_end_a_filter_dropped_is_unknown_in_the_tree(engine: str, markers: Path,
                                                        nothing_left_running: None) -> None:
    """--comm sh keeps the shell's exec of the marker, not the marker's end (its name is
    the marker's by then): the tree cannot say it was running at the end."""
    marker = markers / "marker"
    shutil.copy("/bin/true", marker)
    run = run_tool("--tree", "--comm", "sh", "--bpftrace", engine, "--", "sh", "-c",
                   f"{marker}; exit 0")
    assert run.returncode == 0, run.stderr
    [line] = [line for line in run.stdout.splitlines() if line.endswith(f"\u2500 {marker}")]
    assert line.split()[1:3] == ["-", "unknown"], run.stdout


def test_the_tree_places_a_subshell_that_never_exec_d(engine: str, tmp_path: Path,
                                                      nothing_left_running: None) -> None:
    """A background subshell still running when its shell ends: it neither exec'd nor
    ended while traced, its child did; the child is shown under it, a `(sh)` under the
    shell, not as a root of its own."""
    started = tmp_path / "started"
    os.mkfifo(started)
    script = (f"(sh -c 'echo > {started}; exec sleep 60'; true) >/dev/null 2>&1 & "
              f"read x < {started}")
    run = run_tool("--tree", "--json", "--bpftrace", engine, "--", "sh", "-c", script)
    [tree] = [r for r in run.records if r["event"] == "tree"]
    for pid in marked_processes(os.environ[TEST_MARK]):  # the subshell and its child
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert run.returncode == 0, run.stderr
    [root] = tree["processes"]
    assert len(root["children"]) == 1, tree
    assert root["argv"] == ["sh", "-c", script]
    [subshell] = root["children"]
    assert (subshell["argv"], subshell["comm"], subshell["status"]) == (None, "sh", None)
    [child] = subshell["children"]
    assert child["argv"] in (["sh", "-c", f"echo > {started}; exec sleep 60"],
                             ["sleep", "60"])


def test_a_command_whose_thread_execs_is_followed_to_its_end(
        engine: str, exec_cases: str, nothing_left_running: None) -> None:
    """A thread other than the leader execs /bin/echo: the process keeps its pid under the
    leader's id, and its end is traced as the command's."""
    run = run_tool("process", "--json", "--bpftrace", engine, "--", exec_cases, "thread")
    assert run.returncode == 0, run.stderr
    [echo] = [e for e in run.records if e["event"] == "exec" and e["ret"] == 0
              and e["argv"] == ["/bin/echo", "from-thread"]]
    [end] = [e for e in run.records if e["event"] == "exit" and e["pid"] == echo["pid"]]
    assert (end["status"], end["exec_id"]) == (0, echo["exec_id"])


CPU_CHILD = """
import os, time
pid = os.fork()
if pid == 0:
    start = time.monotonic()  # read without a syscall
    while time.monotonic() - start < 0.3:  # in user space
        pass
    for _ in range(30000):  # in the kernel
        os.stat("/")
    os._exit(0)
_, status, usage = os.wait4(pid, 0)
print(pid, int(usage.ru_utime * 1e9), int(usage.ru_stime * 1e9))
"""


def test_an_exit_says_its_cpu_time_as_getrusage_does(engine: str, tmp_path: Path,
                                                      nothing_left_running: None) -> None:
    out = tmp_path / "process.jsonl"
    run = run_tool("process", "--json", "-o", str(out), "--bpftrace", engine, "--",
                   sys.executable, "-c", CPU_CHILD, output=out)
    assert run.returncode == 0, run.stderr
    pid, user, system = map(int, run.stdout.split())
    [end] = [r for r in run.records if r.get("event") == "exit" and r["pid"] == pid]
    # read as the process ends; wait() adds what it ran after that (its last few us)
    assert user * 0.9 - 2e6 <= end["cpu_user_ns"] <= user + 1e6, (end, user)
    assert system * 0.9 - 2e6 <= end["cpu_system_ns"] <= system + 1e6, (end, system)
    assert user > 200e6 and system > 10e6, "the child ran in both"
