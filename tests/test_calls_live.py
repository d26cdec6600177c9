"""Integration: the shipped syscall profiles, real bpftrace (every installed version),
against the syscalls a workload makes and writes down (tests/workloads/syscall_driver.py)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, Lines, ToolRun, json_records, run_tool, tool_command

STRING_CHUNK = 127  # a syscall profile's string read, less its NUL

pytestmark = pytest.mark.root
DRIVER = str(ROOT / "tests" / "workloads" / "syscall_driver.py")


def traced(engine: str, tmp_path: Path, *args: str) -> tuple[list[dict[str, Any]], dict[str, Any],
                                                            ToolRun]:
    """Run the driver under bptrace-exec ARGS --json; its calls and the driver's facts."""
    facts_file = tmp_path / "facts.json"
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    run = run_tool(*args, "--json", "--bpftrace", engine, "--", sys.executable, DRIVER,
                   str(work), str(facts_file))
    assert run.returncode == 0, run.stderr
    facts = json.loads(facts_file.read_text())
    calls = [r for r in run.records if r.get("event") == "call"]
    assert all(c["pid"] in (facts["pid"], facts["child"]) or c["ppid"] == facts["pid"]
               or c["tid"] == facts["thread"] for c in calls), "only the command is traced"
    end = [r for r in run.records if r.get("event") == "end"][0]
    assert end["calls"] == (end["kernel_calls"] or 0) == len(calls) and end["lost_events"] == 0
    return calls, facts, run


def test_openat_paths_flags_and_results(engine: str, tmp_path: Path,
                                        nothing_left_running: None) -> None:
    calls, facts, run = traced(engine, tmp_path, "openat")
    by_path = {c["args"]["path"]: c for c in calls}
    long = by_path[facts["long_path"]]  # 200+ bytes, non-ASCII: several chunks, exact
    assert len(facts["long_path"].encode()) > 2 * 127
    assert long["ret"] == facts["long_fd"] and long["errno"] is None
    assert long["args"]["flags"] == "O_RDONLY|O_CLOEXEC" and long["args"]["dfd"] == -100
    assert long["truncated"] == [] and not long["incomplete"]
    missing = by_path[facts["missing"]]
    assert missing["ret"] == -2 and missing["errno"] == "ENOENT"
    created = by_path[facts["created"]]
    assert created["args"]["flags"] == "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC"
    assert created["args"]["mode"] == "0640" and created["ret"] == facts["created_fd"]
    assert all(c["syscall"] in ("openat", "openat2") and c["latency_ns"] > 0 for c in calls)


def printed_kinds(recording: Path) -> list[str]:
    """The kind of each record a recording's program printed."""
    return [json.loads(line)["data"].split(" ", 1)[0]
            for line in recording.read_text().splitlines() if '"printf"' in line]


def chunks(text: str) -> int:
    return max(1, -(-len(text.encode()) // STRING_CHUNK))  # "" is one


# Each name starting at each place in a word, after NULs in the same word, and followed
# by its NUL and then bytes that are not (what follows a string is anything)
OPENS = """\
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.open.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
for at in range(8):
    for name in sys.argv[1:]:
        buf = ctypes.create_string_buffer(b"\\0" * (8 + at) + name.encode() + b"\\0"
                                          + b"\\x01" * 300)
        fd = libc.open(ctypes.addressof(buf) + 8 + at, os.O_CREAT | os.O_RDONLY, 0o600)
        if fd < 0:
            sys.exit(f"open: {os.strerror(ctypes.get_errno())}")
        os.close(fd)
"""


def test_a_call_is_one_record_and_a_string_as_many_chunks_as_it_has(
        engine: str, tmp_path: Path, nothing_left_running: None) -> None:
    """Paths around the 127-byte chunk: each exact, and no record more than its chunks
    (bytes past a string's NUL are anything, and were once read as more of it): the
    closing record holds who and the first chunk, a `str` record each further one."""
    base = str(tmp_path / "d")
    os.mkdir(base)
    paths = [base + "/" + "x" * (length - len(base) - 1) for length in
             (len(base) + 2, STRING_CHUNK - 1, STRING_CHUNK, STRING_CHUNK + 1, 200,
              2 * STRING_CHUNK, 2 * STRING_CHUNK + 1)]
    rec = tmp_path / "openat.rec"
    run = run_tool("openat", "--json", "--record", str(rec), "--bpftrace", engine, "--",
                   sys.executable, "-c", OPENS, *paths)
    assert run.returncode == 0, run.stderr
    calls = [r for r in run.records if r.get("event") == "call"]
    shown = [c["args"]["path"] for c in calls]
    assert [p for p in shown if p in paths] == paths * 8
    assert all(c["truncated"] == [] and not c["incomplete"] for c in calls)
    printed = printed_kinds(rec)
    assert printed.count("calls") == len(calls)
    assert printed.count("str") == sum(chunks(p) for p in shown) - len(calls)
    assert not {"call", "who"} & set(printed)


RENAMES = """\
import ctypes, os, platform, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                         ctypes.c_void_p, ctypes.c_uint]
RENAMEAT2 = {"x86_64": 316, "aarch64": 276}[platform.machine()]  # glibc's wrapper: renameat
for at in range(8):  # as OPENS
    for old, new in zip(sys.argv[1::2], sys.argv[2::2]):
        names = [ctypes.create_string_buffer(16 + len(n) + 1) for n in (old, new)]
        for buf, name in zip(names, (old, new)):
            ctypes.memmove(ctypes.addressof(buf) + 8 + at, name.encode(), len(name))
        os.close(os.open(old, os.O_CREAT | os.O_WRONLY))
        if libc.syscall(RENAMEAT2, -100, ctypes.addressof(names[0]) + 8 + at, -100,
                        ctypes.addressof(names[1]) + 8 + at, 0) != 0:
            sys.exit(f"renameat2: {os.strerror(ctypes.get_errno())}")
        os.unlink(new)
"""


def test_two_strings_each_exact_wherever_they_start(engine: str, tmp_path: Path,
                                                    nothing_left_running: None) -> None:
    """Two strings, each starting at every place in a word, with NULs before it in that
    word, and context records: each string's chunks as `str` records, the closing record
    with who (0.17's stack has no room for a string's chunk in it beside all that)."""
    base = str(tmp_path / "r")
    os.mkdir(base)
    names = [base + "/" + c * (length - len(base) - 1)
             for length, c in ((len(base) + 2, "a"), (130, "b"), (127, "c"), (255, "d"),
                               (128, "e"), (126, "f"))]
    rec = tmp_path / "rename.rec"
    run = run_tool("--syscall", "renameat2", "--arg", "olddfd:fd", "--arg", "oldname:str",
                   "--arg", "newdfd:fd", "--arg", "newname:str", "--arg", "flags:hex",
                   "--parents", "2", "--context", "--json", "--record", str(rec),
                   "--bpftrace", engine, "--",
                   sys.executable, "-c", RENAMES, *names)
    assert run.returncode == 0, run.stderr
    calls = [r for r in run.records if r.get("event") == "call"]
    pairs = list(zip(names[::2], names[1::2], strict=True))
    assert [(c["args"]["oldname"], c["args"]["newname"]) for c in calls] == pairs * 8
    assert all(c["ret"] == 0 and c["truncated"] == [] and not c["incomplete"] for c in calls)
    assert all(len(c["parents"]) == 2 and c["context"]["hostname"] for c in calls)
    printed = printed_kinds(rec)
    assert printed.count("callw") == len(calls) == 24 and "calls" not in printed
    assert printed.count("str") == sum(chunks(a) + chunks(b) for a, b in pairs) * 8


NULLS = ("import ctypes, socket\n"
         "libc = ctypes.CDLL(None, use_errno=True)\n"
         "libc.syscall(257, -100, None, 0)  # openat(AT_FDCWD, NULL, 0)\n"
         "libc.syscall(257, -100, b'', 0)\n"
         "libc.syscall(316, -100, None, -100, b'/nonexistent/bpx-null', 0)  # renameat2\n"
         "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
         "libc.connect(s.fileno(), None, 16)\n"
         "libc.connect(s.fileno(), bytes(16), 16)  # AF_UNSPEC: dissolves an association\n")


def test_a_null_string_is_no_string(engine: str, nothing_left_running: None) -> None:
    """A NULL pointer for a string, in the closing record (openat's path) or in a record
    of its own (renameat2's first): null in JSON, NULL in the table as strace shows it;
    "" is the empty string."""
    run = run_tool("openat", "--json", "--bpftrace", engine, "--", sys.executable, "-c", NULLS)
    assert run.returncode == 0, run.stderr
    calls = [r["args"] for r in run.records if r.get("event") == "call"]
    assert [c["path"] for c in calls if c["path"] in (None, "")] == [None, ""]
    adhoc = run_tool("--syscall", "renameat2", "--arg", "olddfd:fd", "--arg", "oldname:str",
                     "--arg", "newdfd:fd", "--arg", "newname:str", "--json",
                     "--bpftrace", engine, "--", sys.executable, "-c", NULLS)
    [renamed] = [r for r in adhoc.records if r.get("event") == "call"]
    assert (renamed["args"]["oldname"], renamed["args"]["newname"], renamed["errno"]) == (
        None, "/nonexistent/bpx-null", "EFAULT")
    table = run_tool("openat", "--bpftrace", engine, "--", sys.executable, "-c", NULLS)
    assert [ln.split()[5] for ln in table.stdout.splitlines() if "EFAULT" in ln] == ["NULL"]


def test_a_null_address_is_no_address(engine: str, nothing_left_running: None) -> None:
    """connect(fd, NULL, 16) has no address; it read as AF_UNSPEC, its page's zeros,
    which a real AF_UNSPEC address is."""
    run = run_tool("connect", "--json", "--bpftrace", engine, "--", sys.executable, "-c", NULLS)
    assert run.returncode == 0, run.stderr
    calls = [(r["args"]["address"], r["errno"]) for r in run.records if r.get("event") == "call"]
    assert calls[-2:] == [({"family": None}, "EFAULT"), ({"family": "AF_UNSPEC"}, None)]


def test_connect_addresses_v4_v6_and_unix(engine: str, tmp_path: Path,
                                          nothing_left_running: None) -> None:
    rec = tmp_path / "connect.rec"
    calls, facts, _ = traced(engine, tmp_path, "connect", "--record", str(rec))
    addresses = [(c["args"]["address"], c["errno"]) for c in calls]
    # one record a connect, the first 80 bytes of its address in it; the 100-byte path's
    # (and maybe the other's) rest in a record of its own
    printed = printed_kinds(rec)
    assert printed.count("calla") == len(calls) and not any(c["incomplete"] for c in calls)
    for size, (path, errno) in facts["sized_unix_paths"].items():
        assert ({"family": "AF_UNIX", "path": path}, errno) in addresses, size
    ports = facts["ports"]
    assert ({"family": "AF_INET", "address": "127.0.0.1", "port": ports["127.0.0.1"]},
            None) in addresses
    assert ({"family": "AF_INET6", "address": "::1", "port": ports["::1"]}, None) in addresses
    assert ({"family": "AF_UNIX", "path": facts["unix_path"]}, "ENOENT") in addresses
    assert ({"family": "AF_UNIX", "path": facts["long_unix_path"]}, "ENOENT") in addresses


def test_clone_child_and_thread(engine: str, tmp_path: Path, nothing_left_running: None) -> None:
    calls, facts, _ = traced(engine, tmp_path, "clone")
    fork = [c for c in calls if c["ret"] == facts["child"]]
    thread = [c for c in calls if c["ret"] == facts["thread"]]
    assert len(fork) == 1 and len(thread) == 1, calls
    assert fork[0]["pid"] == facts["pid"] and fork[0]["args"]["flags"].endswith("SIGCHLD")
    assert "CLONE_THREAD" in thread[0]["args"]["flags"]
    assert "CLONE_VM" in thread[0]["args"]["flags"]


def test_kill_target_signal_and_errors(engine: str, tmp_path: Path,
                                       nothing_left_running: None) -> None:
    calls, facts, _ = traced(engine, tmp_path, "kill")
    sent = {(c["syscall"], c["args"]["target"], c["args"]["signal"], c["errno"]) for c in calls}
    assert ("kill", facts["child"], "SIGUSR1", None) in sent
    assert ("kill", facts["free_pid"], "0", "ESRCH") in sent


def test_filters_on_arguments_run_in_the_kernel(engine: str, tmp_path: Path,
                                                nothing_left_running: None) -> None:
    work = tmp_path / "work"
    calls, facts, _ = traced(engine, tmp_path, "openat", "--where", f"path={work}/*",
                             "--where", "flags=O_CREAT")
    # under the work folder and with O_CREAT: the two files written, not the one read
    assert [c["args"]["path"] for c in calls] == [facts["long_path"], facts["created"]]
    signals, facts, _ = traced(engine, tmp_path, "kill", "--where", "signal=SIGUSR1")
    assert [c["args"]["target"] for c in signals] == [facts["child"]]


def test_a_flag_of_several_bits_keeps_the_opens_that_have_them_all(
        engine: str, tmp_path: Path, nothing_left_running: None) -> None:
    """O_TMPFILE is O_DIRECTORY and a bit of its own, O_SYNC O_DSYNC and one: a filter on
    either keeps the opens that have every bit, not a directory's or an O_DSYNC's."""
    opener = ("import os, sys\n"
              "folder = sys.argv[1]\n"
              "for flags in (os.O_RDONLY | os.O_DIRECTORY, os.O_RDWR | os.O_TMPFILE,\n"
              "              os.O_WRONLY | os.O_CREAT | os.O_DSYNC,\n"
              "              os.O_WRONLY | os.O_CREAT | os.O_SYNC):\n"
              "    os.close(os.open(folder if flags & os.O_DIRECTORY else\n"
              "                     os.path.join(folder, str(flags)), flags, 0o600))\n")
    for flag, kept in (("O_TMPFILE", "O_RDWR|O_TMPFILE"), ("O_SYNC", "O_WRONLY|O_SYNC|O_CREAT")):
        kept += "|O_CLOEXEC"  # as Python opens every file
        run = run_tool("openat", "--json", "--where", f"path={tmp_path}*", "--where",
                       f"flags={flag}", "--bpftrace", engine, "--", sys.executable, "-c",
                       opener, str(tmp_path))
        assert run.returncode == 0, run.stderr
        calls = [r for r in run.records if r.get("event") == "call"]
        assert [c["args"]["flags"] for c in calls] == [kept], calls


def test_result_filters_keep_failed_or_successful_calls(engine: str, tmp_path: Path,
                                                       nothing_left_running: None) -> None:
    work = tmp_path / "work"
    where = ("--where", f"path={work}/*")
    failed, facts, _ = traced(engine, tmp_path, "openat", "--failed", *where)
    assert [(c["args"]["path"], c["errno"]) for c in failed] == [(facts["missing"], "ENOENT")]
    succeeded, facts, _ = traced(engine, tmp_path, "openat", "--succeeded", *where)
    paths = [c["args"]["path"] for c in succeeded]
    assert facts["missing"] not in paths and facts["created"] in paths
    assert all(c["ret"] >= 0 for c in succeeded)


def test_adhoc_profile_traces_what_it_names(engine: str, tmp_path: Path,
                                            nothing_left_running: None) -> None:
    calls, facts, _ = traced(engine, tmp_path, "--syscall", "unlink", "--syscall", "unlinkat",
                             "--arg", "path:str:pathname")
    assert [(c["syscall"], c["args"]["path"], c["ret"]) for c in calls] == \
        [("unlink", facts["created"], 0)]


def test_stats_and_export_of_a_syscall_profile(engine: str, tmp_path: Path,
                                               nothing_left_running: None) -> None:
    prom, work = tmp_path / "kill.prom", tmp_path / "work"
    work.mkdir()
    run = run_tool("kill", "--export", str(prom), "--bpftrace", engine, "--",
                   sys.executable, DRIVER, str(work), str(tmp_path / "facts.json"))
    assert run.returncode == 0, run.stderr
    assert "calls 2 " in run.stdout and "SIGUSR1" in run.stdout, run.stdout
    series = {(s.name, s.labels.get("signal", s.labels.get("errno"))): s.value
              for f in text_string_to_metric_families(prom.read_text()) for s in f.samples}
    assert series[("bptrace_exec_calls_total", None)] == 2
    assert series[("bptrace_exec_calls_by_signal_total", "SIGUSR1")] == 1
    assert series[("bptrace_exec_calls_by_errno_total", "ESRCH")] == 1


def test_replay_of_a_syscall_profile_equals_the_live_run(engine: str, tmp_path: Path,
                                                         nothing_left_running: None) -> None:
    rec = tmp_path / "connect.rec"
    calls, _, run = traced(engine, tmp_path, "connect", "--record", str(rec))
    replay = subprocess.run(tool_command("--replay", str(rec), "--json"), capture_output=True,
                            text=True, check=True)
    replayed = json_records(replay.stdout)
    assert [r for r in replayed if r.get("event") == "call"] == calls
    table = subprocess.run(tool_command("--replay", str(rec)), capture_output=True, text=True,
                           check=True)
    assert "ADDRESS" in table.stdout.splitlines()[0] and "127.0.0.1:" in table.stdout


def test_exit_status_signal_and_lifetime(engine: str, tmp_path: Path,
                                         nothing_left_running: None) -> None:
    script = "sleep 0.3; sh -c 'exit 5'; sleep 30 & kill -KILL $!; wait; exit 0"
    run = run_tool("exit", "--json", "--parents", "1", "--bpftrace", engine, "--",
                   "bash", "-c", script)
    assert run.returncode == 0, run.stderr
    exits = [r for r in run.records if r.get("event") == "exit"]
    statuses = sorted((e["status"], e["signal"], e["ret"]) for e in exits)
    # sleep 0.3, sh -c 'exit 5', the killed child, and bash itself
    assert statuses == [(0, "0", 0), (0, "0", 0), (0, "SIGKILL", 137), (5, "0", 5)], exits
    sleeper = [e for e in exits if e["comm"] == "sleep" and e["ret"] == 0][0]
    assert 300_000_000 <= sleeper["lifetime_ns"] < 30_000_000_000
    bash = [e for e in exits if e["comm"] == "bash" and e["ret"] == 0][0]
    assert all(e["parents"][0]["pid"] == bash["pid"] for e in exits if e is not bash)
    killed = run_tool("exit", "--failed", "--where", "signal=SIGKILL", "--json",
                      "--bpftrace", engine, "--", "bash", "-c", script)
    assert [(e["signal"], e["ret"]) for e in killed.records
            if e.get("event") == "exit"] == [("SIGKILL", 137)]


@pytest.mark.parametrize("profile", ["openat", "connect", "clone", "kill", "exit"])
def test_oneliner_runs_under_plain_bpftrace(engine: str, profile: str, tmp_path: Path,
                                            nothing_left_running: None) -> None:
    line = subprocess.run(tool_command(profile, "--emit", "oneliner", "--bpftrace", engine),
                          capture_output=True, text=True, check=True).stdout
    proc = subprocess.Popen(shlex.split(line), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    lines, log = Lines(proc.stdout), Lines(proc.stderr)  # neither pipe may fill up
    try:
        lines.wait_for(lambda ln: ln.startswith("PID"))  # BEGIN: every probe is attached
        work = tmp_path / "work"
        work.mkdir()
        subprocess.run([sys.executable, DRIVER, str(work), str(tmp_path / "f.json")],
                       check=True)
        facts = json.loads((tmp_path / "f.json").read_text())
        created = facts["created"].encode()[:63].decode()  # the text program reads 63 bytes
        expected = {"openat": f"path={created}", "connect": "address=0a 00",
                    "exit": "status=0", "clone": f"= {facts['child']} (",
                    "kill": f"target={facts['child']} signal=10"}[profile]
        lines.wait_for(lambda ln: ln.split()[:1] == [str(facts["pid"])] and expected in ln)
    finally:
        os.killpg(proc.pid, 2)
        proc.wait(timeout=30)
    out, err = lines.text(), log.text()
    mine = [ln for ln in out.splitlines() if ln.split()[:1] == [str(facts["pid"])]]
    assert any(expected in ln for ln in mine), (out[-2000:], err[-2000:])
    if profile == "openat":  # O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC
        assert any(f"path={created}" in ln and "flags=0x80241" in ln for ln in mine)


@pytest.fixture
def container_cgroup() -> Any:
    """A real cgroup v2 directory named the way docker names a container's."""
    from bptrace_exec.run.cgroups import cgroup2_mount

    root = cgroup2_mount()
    assert root is not None, "cgroup v2 is mounted on the test machines"
    ident = os.urandom(32).hex()
    path = root / f"docker-{ident}.scope"
    path.mkdir()
    try:
        yield path, ident
    finally:
        for _ in range(50):  # its last process may still be exiting
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def test_container_context_from_real_namespaces_and_cgroup(
        engine: str, tmp_path: Path, container_cgroup: Any, nothing_left_running: None) -> None:
    """The driver runs in a cgroup of its own, in new pid, uts and mount namespaces; a
    kill made before it moves there is filtered out in the kernel."""
    path, ident = container_cgroup
    work, facts_file = tmp_path / "work", tmp_path / "facts.json"
    work.mkdir()
    inner = (f"hostname bptrace-ns-test && exec {shlex.quote(sys.executable)} "
             f"{shlex.quote(DRIVER)} {shlex.quote(str(work))} {shlex.quote(str(facts_file))}")
    script = (f"kill -0 $$; echo $$ > {shlex.quote(str(path / 'cgroup.procs'))} && "
              f"exec unshare --uts --pid --mount --fork --mount-proc sh -c {shlex.quote(inner)}")
    run = run_tool("kill", "--container", ident[:12], "--in-container", "--context",
                   "--parents", "3", "--json", "--bpftrace", engine, "--", "sh", "-c", script)
    assert run.returncode == 0, run.stderr
    facts = json.loads(facts_file.read_text())
    calls = [r for r in run.records if r.get("event") == "call"]
    assert {(c["args"]["target"], c["args"]["signal"]) for c in calls} == {
        (facts["child"], "SIGUSR1"), (facts["free_pid"], "0")}, calls  # not the outer kill
    for call in calls:
        ctx = call["context"]
        assert (ctx["container_id"], ctx["runtime"], ctx["cgroup"], ctx["cgroup_path"]) == (
            ident, "docker", path.name, "/" + path.name)
        assert ctx["hostname"] == "bptrace-ns-test" and ctx["in_container"] is True
        assert ctx["pidns"] != 4026531836 and ctx["cgroup_id"] == path.stat().st_ino
        assert [p["comm"] for p in call["parents"]][:1] == ["unshare"]
        assert call["pid"] != facts["pid"] == 1  # global pid in records, 1 inside
    execs = run_tool("execve", "--container", ident[:12], "--context", "--parents", "2",
                     "--json", "--bpftrace", engine, "--", "sh", "-c", script)
    rows = [r for r in execs.records if r.get("event") == "exec" and r["ret"] == 0]
    assert [r["argv"][0] for r in rows] == ["unshare", "sh", "hostname", sys.executable]
    assert [r["context"]["hostname"] for r in rows][3:] == ["bptrace-ns-test"]
    assert all(r["context"]["container_id"] == ident for r in execs.records
               if r.get("event") == "exec")
    assert [r["context"]["in_container"] for r in rows] == [False, True, True, True]
    assert rows[3]["parents"][0]["comm"] == "unshare" and len(rows[3]["parents"]) == 2
    table = run_tool("kill", "--container", ident[:12], "--context", "--parents", "2",
                     "--bpftrace", engine, "--", "sh", "-c", script)
    rows = [ln for ln in table.stdout.splitlines() if "SIGUSR1" in ln]
    assert len(rows) == 1 and ident[:12] in rows[0] and "> unshare(" not in rows[0] \
        and "unshare(" in rows[0], table.stdout


def test_exec_stats_by_cgroup(engine: str, tmp_path: Path, container_cgroup: Any,
                              nothing_left_running: None) -> None:
    path, _ident = container_cgroup
    profile = tmp_path / "by-cgroup.yaml"
    profile.write_text("version: 1\nstats: {enabled: true, by: [cgroup, comm]}\n")
    script = f"echo $$ > {shlex.quote(str(path / 'cgroup.procs'))} && /bin/true && /bin/true"
    run = run_tool(str(profile), "--json", "--bpftrace", engine, "--", "sh", "-c", script)
    assert run.returncode == 0, run.stderr
    [report] = run.records
    cgroups = {row["key"]: row["count"] for row in report["breakdowns"]["cgroup"]["top"]}
    assert cgroups.get("/" + path.name) == 2, cgroups  # sh itself execs outside it


def test_host_wide_run_leaves_the_tracer_out(engine: str, nothing_left_running: None) -> None:
    """Stopping bpftrace is a kill() of bptrace-exec's own: it is not reported, and not
    counted as a call lost on the way."""
    proc = subprocess.Popen(tool_command("kill", "--json", "--bpftrace", engine),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stderr is not None
        status = proc.stderr.readline()  # "Tracing ...": every probe is attached
        assert status.startswith("Tracing"), status
        sleeper = subprocess.Popen(["sleep", "30"])
        os.kill(sleeper.pid, signal.SIGUSR2)
        sleeper.wait()  # its kill() returned before the stop: it must be reported
    finally:
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    err = status + err
    records = json_records(out)
    calls = [r for r in records if r["event"] == "call"]
    assert proc.pid not in {c["pid"] for c in calls} | {c["ppid"] for c in calls}
    assert any(c["args"]["target"] == sleeper.pid for c in calls), (out, err)
    assert records[-1]["missing_calls"] == 0, err
