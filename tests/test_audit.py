"""Integration: the identity and the paths of each exec against what the kernel's audit
subsystem records for the same execs (auditd's SYSCALL and CWD records), on every
bpftrace version: a second oracle, independent of /proc. An auditd of the test's own
runs in the foreground for the test; the audit rule it adds and the audit switch are put
back as they were."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import json_records, started, tool_command, wait_until

pytestmark = pytest.mark.root

NOBODY = 65534
CONFIG = """local_events = yes
write_logs = no
log_format = RAW
flush = INCREMENTAL_ASYNC
freq = 1
space_left = 2
space_left_action = IGNORE
admin_space_left = 1
admin_space_left_action = IGNORE
disk_full_action = IGNORE
disk_error_action = IGNORE
"""
FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')


def audit_status() -> dict[str, str]:
    out = subprocess.run(["auditctl", "-s"], capture_output=True, text=True, check=True)
    return dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)


@contextlib.contextmanager
def auditing(tmp: Path, key: str) -> Iterator[Path]:
    """An auditd of the test's own, in the foreground (its records on its stderr, in the
    file yielded), with a rule for every execve keyed `key`; all undone after."""
    if shutil.which("auditd") is None:
        pytest.fail("auditd is needed (scripts/setup --test installs it)")
    if audit_status().get("pid", "0") != "0":
        pytest.fail("another audit daemon runs: the test needs the kernel's records")
    (tmp / "auditd.conf").write_text(CONFIG)
    (tmp / "auditd.conf").chmod(0o600)
    records = tmp / "records.txt"
    enabled = audit_status().get("enabled", "0")
    rule = ["always,exit", "-F", "arch=b64", "-S", "execve", "-F", f"key={key}"]
    with records.open("wb") as sink:
        daemon = subprocess.Popen(["auditd", "-f", "-c", str(tmp)], stdout=sink, stderr=sink,
                                  start_new_session=True)
    try:
        wait_until(lambda: audit_status().get("pid") == str(daemon.pid), "auditd registered")
        subprocess.run(["auditctl", "-e", "1"], check=True, capture_output=True)
        subprocess.run(["auditctl", "-a", *rule], check=True, capture_output=True)
        try:
            yield records
        finally:
            subprocess.run(["auditctl", "-d", *rule], check=True, capture_output=True)
            subprocess.run(["auditctl", "-e", enabled], check=True, capture_output=True)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


def audited(records: Path, key: str) -> dict[int, dict[str, str]]:
    """The keyed execve SYSCALL records by pid, with their CWD record's cwd."""
    by_serial: dict[str, dict[str, str]] = {}
    for line in records.read_bytes().decode("utf-8", "surrogateescape").splitlines():
        m = re.match(r"type=(\w+) msg=audit\([\d.]+:(\d+)\): (.*)", line)
        if m:
            fields = {k: v for k, v in FIELD.findall(m.group(3))}
            by_serial.setdefault(m.group(2), {}).update(
                fields if m.group(1) == "SYSCALL" else
                {"cwd": fields.get("cwd", "")} if m.group(1) == "CWD" else {})
    return {int(r["pid"]): r for r in by_serial.values()
            if r.get("key") == f'"{key}"' and r.get("success") == "yes"}


def unquoted(value: str) -> str:
    """auditd's form of a string: "text", or its bytes in hex."""
    if value.startswith('"'):
        return value[1:-1]
    return bytes.fromhex(value).decode("utf-8", "surrogateescape")


def test_identity_and_paths_match_the_audit_records(engine: str, tmp_path: Path,
                                                    markers: Path,
                                                    nothing_left_running: None) -> None:
    key = f"bpx-{uuid.uuid4().hex[:8]}"
    here = tmp_path / "a dir with spaces"
    here.mkdir()
    raised = markers / "raises-privileges"
    shutil.copy("/bin/true", raised)
    os.chown(raised, 0, 0)
    raised.chmod(0o6755)
    out = tmp_path / "execs.jsonl"
    with auditing(tmp_path, key) as records, started(tool_command(
            "--json", "-o", str(out), "--cwd", "--exe", "--bpftrace", engine,
            "--duration", "300")) as (_, lines):
        lines.wait_for(lambda line: line.startswith("Tracing"))
        procs = [subprocess.Popen(["/bin/true", "plain"], cwd=here),
                 subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                                   "--clear-groups", str(raised)], cwd=here),
                 subprocess.Popen(["sh", "-c", "echo 777 > /proc/self/loginuid && "
                                   "exec /bin/true login"], cwd=here)]
        for p in procs:
            p.wait(timeout=30)
        pids = [p.pid for p in procs]

        def both() -> tuple[dict[int, dict[str, object]], dict[int, dict[str, str]]] | None:
            ours = {}
            for e in json_records(out.read_text()):
                if e["pid"] in pids and e["ret"] == 0 and e["argv"][0] not in ("setpriv",
                                                                               "sh"):
                    ours[e["pid"]] = e  # the last program each ran
            theirs = audited(records, key)
            done = set(pids) <= set(ours) and set(pids) <= set(theirs)
            return (ours, theirs) if done else None
        ours, theirs = wait_until(both, "the execs' records, ours and the audit's")
    for pid in pids:
        e, a = ours[pid], theirs[pid]
        assert (e["uid"], e["gid"], e["euid"], e["egid"]) == tuple(
            int(a[k]) for k in ("uid", "gid", "euid", "egid")), (e, a)
        unset = 2**32 - 1
        assert (e["loginuid"], e["sessionid"]) == tuple(
            None if int(a[k]) == unset else int(a[k]) for k in ("auid", "ses"))
        assert e["tty"] == (None if a["tty"] == "(none)" else
                            re.sub(r"^pts(\d+)$", r"pts/\1", a["tty"]))
        assert e["exe"] == unquoted(a["exe"]) and e["cwd"] == unquoted(a["cwd"]) == str(here)
    assert ours[pids[1]]["euid"] == 0 and ours[pids[1]]["uid"] == NOBODY
    assert ours[pids[2]]["loginuid"] == 777
