"""What every traced exec of tests/workloads/exec_driver.py must look like: shared by the
live integration tests and by the tests that parse recorded transcripts."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from workloads.exec_driver import CASES, Case

DEFAULT_MAX_ARGS = 64


def as_bytes(text: str) -> bytes:
    """JSON text back to the traced bytes (lone surrogates carry the non-UTF-8 ones)."""
    return text.encode("utf-8", "surrogateescape")


def find(events: Iterable[Mapping[str, Any]], marker: str) -> Mapping[str, Any]:
    hits = [e for e in events if len(e["argv"]) > 1 and e["argv"][1] == marker]
    assert len(hits) == 1, f"{len(hits)} records for {marker}: {hits}"
    return hits[0]


# the bytes of each argument read from a failed exec: 3 reads of 80 (one of 199 before
# record version 4)
FAILED_ARG_BYTES = 240
EARLIER_FAILED_ARG_BYTES = 199


def expected_argv(case: Case, failed_arg_bytes: int) -> tuple[list[bytes], bool]:
    argv = list(case.argv)
    if case.name == "toolong":  # 4096 bytes of argv are read from a successful exec
        return argv, True
    if len(argv) > DEFAULT_MAX_ARGS:
        return argv[:DEFAULT_MAX_ARGS], True
    if case.errno and any(len(a) > failed_arg_bytes for a in argv):
        return [a[:failed_arg_bytes] for a in argv], True
    return argv, False


def check_case(events: Iterable[Mapping[str, Any]], case: Case, workdir: str,
               failed_arg_bytes: int = FAILED_ARG_BYTES) -> None:
    event = find(events, f"case-{case.name}")
    argv = [as_bytes(a) for a in event["argv"]]
    want, truncated = expected_argv(case, failed_arg_bytes)
    if case.name == "toolong":
        assert argv[:2] == want[:2]
        assert want[2].startswith(argv[2]) and len(argv[2]) < len(want[2])
    else:
        assert argv == want
    assert event["argv_truncated"] is truncated
    assert event["errno"] == case.errno
    assert (event["ret"] == 0) == (case.errno is None)
    assert as_bytes(event["filename"]) == case.path.replace("{dir}", workdir).encode()
    assert event["latency_ns"] > 0
    assert event["incomplete"] is False


def check_all(events: list[Mapping[str, Any]], workdir: str, version: int | None = None
              ) -> None:
    """`version`: a recording's record version (None: this one's)."""
    failed_arg_bytes = (EARLIER_FAILED_ARG_BYTES if version is not None and version < 4
                        else FAILED_ARG_BYTES)
    for case in CASES:
        check_case(events, case, workdir, failed_arg_bytes)
    fexec = find(events, "case-execveat")
    assert fexec["syscall"] == "execveat" and fexec["filename"].startswith("/dev/fd/")
    assert fexec["argv"] == ["/bin/true", "case-execveat"]
    # A fresh child passing literals: naive reads at entry see "" for all of these.
    literal = [e for e in events if e["argv"][:1] == ["literal-argv0"]]
    assert [e["filename"] for e in literal] == ["/bin/echo", "/nonexistent/literal-prog"]
    for e in literal:
        assert e["argv"] == ["literal-argv0", "first literal", "second\tliteral"]
    assert [e["errno"] for e in literal] == [None, "ENOENT"]
    thread = [e for e in events if e["argv"] == ["/bin/echo", "from-thread"]]
    assert len(thread) == 1 and thread[0]["ret"] == 0
    empty = [e for e in events if e["filename"] == "/bin/true" and e["argv"] == []]
    assert len(empty) == 1


HIDDEN_ARGV = ["/bin/sh", "-c", ": HIDDEN", "sh", "case-hidden-argv"]


def check_hidden_argv(events: list[Mapping[str, Any]]) -> None:
    """exec_cases hidden-argv: the pointer array runs on into a page that is not present
    at entry; the kernel copied every argument, and every one is shown."""
    [hidden] = [e for e in events if e["argv"][-1:] == ["case-hidden-argv"]]
    assert hidden["argv"] == HIDDEN_ARGV and hidden["argv_truncated"] is False
    assert hidden["ret"] == 0 and hidden["filename"] == "/bin/sh"


def check_paths(events: list[Mapping[str, Any]], workdir: str) -> None:
    """With --cwd --exe: every case ran in the driver's working directory; the file the
    kernel ran is the real path of the one named (/bin is a link to /usr/bin here), a
    script's interpreter, and none for a failed exec."""
    for case in CASES:
        event = find(events, f"case-{case.name}")
        assert (event["cwd"], event["cwd_truncated"]) == (workdir, False), case.name
        if case.errno:
            want = None
        elif case.name == "script":
            want = os.path.realpath("/bin/sh")
        else:
            want = os.path.realpath(case.path.replace("{dir}", workdir))
        assert (event["exe"], event["exe_truncated"]) == (want, False), case.name
    fexec = find(events, "case-execveat")
    assert (fexec["cwd"], fexec["exe"]) == (workdir, os.path.realpath("/bin/true"))
    # the driver's own exec came from elsewhere: the case's is its own directory's
    assert any(e["cwd"] != workdir for e in events)
