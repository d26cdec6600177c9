"""bpftrace's `available_events`, narrowed to its program's tracepoints in a mount
namespace of its own (run.eventlist): what it lists, where it is seen, and the host's
list and the command a run follows untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bptrace_exec.run.cache import CacheDir
from bptrace_exec.run.eventlist import kept_listing, listing
from conftest import Lines, bpftrace_of, children, json_records, tool_command, wait_until

HERE = Path(__file__).parent
HOST_EVENTS = Path("/sys/kernel/tracing/available_events")


def test_a_program_lists_each_of_its_tracepoints_once_in_the_kernels_form() -> None:
    text = (HERE / "golden" / "default.bt").read_text()
    assert listing(text) == ("syscalls:sys_enter_execve\nsyscalls:sys_enter_execveat\n"
                             "sched:sched_process_exec\nsyscalls:sys_exit_execve\n"
                             "syscalls:sys_exit_execveat\nsched:sched_process_exit\n"
                             "task:task_rename\n")


@pytest.mark.parametrize("text", [
    "tracepoint:syscalls:sys_enter_open*\n{ }\n",  # a pattern bpftrace expands
    "tracepoint:sched:sched_process_exec { }\ntp:sched:sched_process_exit { }\n",
    "tracepoint:sched:sched_process_exec\n{ }\n// tracepoint:sched:sched_switch\n",
    "BEGIN { }\n",
])
def test_a_program_with_a_tracepoint_not_named_plainly_keeps_the_kernels_list(
        text: str) -> None:
    assert listing(text) is None


def test_the_listing_is_kept_once_and_found_by_its_path(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path, "events")
    text = "tracepoint:sched:sched_process_exec\n{ }\n"
    kept = kept_listing(text, cache)
    assert kept is not None and Path(kept.path).read_text() == "sched:sched_process_exec\n"
    assert (kept.device, kept.inode) == (os.stat(kept.path).st_dev, os.stat(kept.path).st_ino)
    assert kept_listing(text, cache) == kept  # the same file, not written again
    assert kept_listing(text, CacheDir(None, "events")) is None  # no cache: no listing
    os.chmod(kept.path, 0o666)  # one that others may write is not used: written anew
    again = kept_listing(text, cache)
    assert again is not None and again.inode != kept.inode
    assert os.stat(again.path).st_mode & 0o777 == 0o600


def _mount_ns(pid: int | str) -> str:
    return os.readlink(f"/proc/{pid}/ns/mnt")


@pytest.mark.parametrize("cache", ["kept", "none"])
def test_bpftrace_sees_its_programs_tracepoints_alone_and_the_command_the_hosts(
        engine: str, tmp_path: Path, cache: str, nothing_left_running: None) -> None:
    host_count = len(HOST_EVENTS.read_text().splitlines())
    go = tmp_path / "go"
    env = dict(os.environ)
    if cache == "none":
        env["XDG_CACHE_HOME"] = "not/absolute"  # no cache: nothing to list from
    waiter = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
    tool = subprocess.Popen(
        tool_command("execve", "--json", "--bpftrace", engine, "--", sys.executable, "-c",
                     waiter),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert tool.stdout is not None and tool.stderr is not None
    out, err = Lines(tool.stdout), Lines(tool.stderr)
    try:
        err.wait_for(lambda line: line.startswith("Tracing"))
        bpftrace = bpftrace_of(tool.pid)
        [command] = wait_until(lambda: [c for c in children(tool.pid) if c != bpftrace],
                               "the command, started")
        seen = Path(f"/proc/{bpftrace}/root{HOST_EVENTS}").read_text()
        if cache == "kept":
            assert _mount_ns(bpftrace) != _mount_ns("self")
            assert "syscalls:sys_enter_execve\n" in seen and len(seen.splitlines()) < 20
        else:
            assert _mount_ns(bpftrace) == _mount_ns("self") and len(seen.splitlines()) > 100
        assert _mount_ns(command) == _mount_ns("self")  # the command: the host's view
        host = HOST_EVENTS.read_text().splitlines()  # whole, but other tools may add some
        assert len(host) >= host_count and "sched:sched_switch" in host
    finally:
        go.touch()
    assert tool.wait(timeout=120) == 0, err.text()
    execs = [r for r in json_records(out.text()) if r.get("event") == "exec"]
    assert [r["argv"][:2] for r in execs] == [[sys.executable, "-c"]], err.text()
