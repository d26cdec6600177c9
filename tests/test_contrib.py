"""The files shipped for running it as a service (bptrace_exec/contrib), each checked by
the real tool it is for: systemd's verifier, logrotate rotating a live run's file, and
rsyslog forwarding its JSON lines to a second rsyslog (both on 127.0.0.1), every line
arriving intact."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import exec_as, free_port, numbered, started, tool_command, wait_until

CONTRIB = Path(__file__).resolve().parents[1] / "wrapper" / "bptrace_exec" / "contrib"
TOOL = Path(sys.executable).parent / "bptrace-exec"


def needs(*tools: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not all(shutil.which(t) for t in tools),
                              reason=f"{', '.join(tools)}: scripts/setup --test installs them")


@needs("systemd-analyze")
def test_the_unit_template_verifies(tmp_path: Path) -> None:
    """systemd's own verifier, on an instance of the template as shipped (ExecStart: this
    checkout's command, which the verifier requires to exist)."""
    unit = (CONTRIB / "bptrace-exec@.service").read_text()
    assert "ExecStart=/usr/local/bin/bptrace-exec %I $BPTRACE_EXEC_OPTIONS" in unit
    instance = tmp_path / "bptrace-exec@execve.service"
    instance.write_text(unit.replace("/usr/local/bin/bptrace-exec", str(TOOL)))
    check = subprocess.run(["systemd-analyze", "verify", "--man=no", str(instance)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and not check.stdout + check.stderr, \
        check.stdout + check.stderr


@pytest.mark.root
@needs("logrotate", "setpriv")
def test_logrotate_rotates_a_live_run_losing_nothing(engine: str, markers: Path,
                                                      tmp_path: Path,
                                                      nothing_left_running: None) -> None:
    logs, marker = tmp_path / "logs", markers / "marker-rotated"
    logs.mkdir()
    shutil.copy("/bin/true", marker)
    out = logs / "execve.jsonl"
    with started(tool_command("--json", "-o", str(out), "--uid", "4246", "--bpftrace", engine,
                              "--duration", "300")) as (proc, lines):
        lines.wait_for(lambda line: line.startswith("Tracing"))
        exec_as(4246, marker, range(1, 11))
        wait_until(lambda: len(numbered(out, marker)) == 10, "the first 10 execs")
        # the snippet as shipped, for this folder, signalling this run rather than a unit
        snippet = (CONTRIB / "bptrace-exec.logrotate").read_text()
        shipped_signal = ("systemctl kill --signal=SIGUSR1 --kill-who=main "
                          "'bptrace-exec@*.service' || true")
        assert "/var/log/bptrace-exec/*.jsonl {" in snippet and shipped_signal in snippet
        config = tmp_path / "logrotate.conf"
        config.write_text(snippet.replace("/var/log/bptrace-exec", str(logs))
                          .replace(shipped_signal, f"kill -USR1 {proc.pid}"))
        rotate = subprocess.run(["logrotate", "--force", "--state", str(tmp_path / "state"),
                                 str(config)], capture_output=True, text=True, timeout=60)
        assert rotate.returncode == 0, rotate.stderr
        exec_as(4246, marker, range(11, 21))
        wait_until(lambda: len(numbered(out, marker)) == 10, "the next 10, in the new file")
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    assert numbered(logs / "execve.jsonl.1", marker) == list(range(1, 11))
    assert numbered(out, marker) == list(range(11, 21))


RECEIVER = """
global(workDirectory="{work}" maxMessageSize="4m")
module(load="imtcp")
template(name="line" type="string" string="%msg%\\n")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="in")
ruleset(name="in") {{ action(type="omfile" file="{received}" template="line") }}
"""


@pytest.mark.root
@needs("rsyslogd")
def test_rsyslog_forwards_every_line_intact(engine: str, tmp_path: Path,
                                            nothing_left_running: None) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    out = logs / "execve.jsonl"
    # execs whose lines are long, not ASCII, and full of what syslog could mangle
    script = ("import os\n"
              "for argv in (['/bin/true', 'caf\\u00e9', 'tab\\tand\\nnewline', '\"q\" \\\\ <>'],"
              " ['/bin/true', '\\x01' * 6000], ['/bin/true', '\\u202e', '#011 %msg%']):\n"
              "    os.waitpid(os.posix_spawn(argv[0], argv, {}), 0)\n")
    run = subprocess.run(tool_command("--json", "-o", str(out), "--argv-bytes", "6144",
                                      "--bpftrace", engine, "--", sys.executable, "-c",
                                      script),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    sent = out.read_bytes().splitlines()
    # longer than syslog's 8 KiB, once each control byte is written \u0001
    assert len(sent) >= 5 and max(len(line) for line in sent) > 30000
    port, received = free_port(), tmp_path / "received.jsonl"
    for name in ("receiver", "sender"):
        (tmp_path / name).mkdir()
    (tmp_path / "receiver.conf").write_text(RECEIVER.format(
        work=tmp_path / "receiver", port=port, received=received))
    forward = (CONTRIB / "bptrace-exec-forward.conf").read_text()
    assert 'Target="collector.example.org" Port="6514"' in forward
    (tmp_path / "sender.conf").write_text(
        f'global(workDirectory="{tmp_path / "sender"}")\n' + forward
        .replace("/var/log/bptrace-exec", str(logs))
        .replace('Target="collector.example.org" Port="6514"',
                 f'Target="127.0.0.1" Port="{port}"'))
    rsyslogd = shutil.which("rsyslogd")
    assert rsyslogd
    with started([rsyslogd, "-n", "-f", str(tmp_path / "receiver.conf"),
                  "-i", str(tmp_path / "receiver.pid")], end=signal.SIGTERM):
        # the collector listens before anything is sent (else the first send is retried
        # after omfwd's resume interval)
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=5).close()
                   or True, "the collector listening")
        with started([rsyslogd, "-n", "-f", str(tmp_path / "sender.conf"),
                      "-i", str(tmp_path / "sender.pid")], end=signal.SIGTERM):
            wait_until(lambda: received.exists() and
                       received.read_bytes().count(b"\n") >= len(sent), "every line forwarded")
    got = received.read_bytes().splitlines()
    assert got == sent, (len(got), len(sent), next(
        (i for i, (a, b) in enumerate(zip(got, sent, strict=False)) if a != b), None))
