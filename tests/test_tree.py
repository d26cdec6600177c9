"""The process tree (--tree) from events, no root: placing, marks, widths and JSON."""

from __future__ import annotations

from bptrace_exec.event import Event
from bptrace_exec.output import tree
from bptrace_exec.output.timeline import svg
from bptrace_exec.parse.join import identity
from bptrace_exec.records import Who


def event(syscall: str, pid: int, ppid: int, start: int, execs: int, pstart: int,
          pexecs: int, *, ret: int = 0, argv: tuple[bytes, ...] | None = None,
          status: int | None = None, signal: int = 0, life: int = 0) -> Event:
    values: dict[str, object] = ({"argv": argv} if syscall == "execve" else
                                 {"status": status, "signal": signal})
    who = identity(Who(0, 0, 0, 2**32 - 1, 2**32 - 1, 0, start, execs, pstart, pexecs),
                   pid, ppid, "b00t")
    return Event(0, syscall, pid, pid, ppid, 0, b"sh", ret, life, values,  # type: ignore[arg-type]
                 who=who)


def test_each_process_once_under_its_parent() -> None:
    events = [
        event("execve", 10, 1, 100, 3, 5, 2, argv=(b"sh", b"-c", b"x")),
        event("execve", 11, 10, 200, 3, 100, 3, argv=(b"make",)),  # forked then exec'd
        event("execve", 11, 10, 200, 4, 100, 3, argv=(b"cc", b"a b.c")),  # exec'd again
        event("execve", 12, 10, 300, 3, 100, 3, ret=-2, argv=(b"nope",)),  # never ran
        event("process_exit", 12, 10, 300, 3, 100, 3, ret=127, status=127, life=2_000_000),
        event("process_exit", 11, 10, 200, 4, 100, 3, ret=137, signal=9, life=5_000_000),
    ]
    [root] = tree.build(events)
    assert (root.pid, root.argv, root.end()) == (10, (b"sh", b"-c", b"x"), "running")
    assert [c.pid for c in root.children] == [11, 12]  # in the order they started
    cc, nope = root.children
    assert (cc.argv, cc.end(), cc.exec_id, cc.failed) == (
        (b"cc", b"a b.c"), "SIGKILL", "b00t:11:200:4", True)
    assert (nope.argv, nope.end(), nope.failed_execs) == (None, "exit 127", 1)
    text = tree.lines([root])
    assert text[1].split()[:4] == ["10", "-", "running", "sh"]
    assert text[2].endswith("\u251c\u2500 cc 'a b.c'") and "\u2717" in text[2]
    assert text[3].endswith("\u2514\u2500 (sh) [1 failed exec]")
    narrow = tree.lines([root], 40)
    assert all(len(line) <= 40 for line in narrow) and narrow[1].endswith("\u2026")
    [as_json] = tree.to_dicts([root])
    assert [c["signal"] for c in as_json["children"]] == ["SIGKILL", None]  # type: ignore[index]


def test_events_without_identity_are_not_placed() -> None:
    old = Event(0, "execve", 1, 1, 0, 0, b"sh", 0, 0, {"argv": (b"sh",)})
    assert tree.build([old]) == []


def test_a_path_search_that_found_its_program_is_no_failure() -> None:
    events = [event("execve", 20, 1, 100, 3, 5, 2, ret=-2, argv=(b"cc",)),  # /usr/local/bin
              event("execve", 20, 1, 100, 4, 5, 2, argv=(b"cc",)),
              event("process_exit", 20, 1, 100, 4, 5, 2, status=0, life=1)]
    [cc] = tree.build(events)
    assert (cc.failed_execs, cc.failed, cc.end()) == (0, False, "exit 0")


def test_a_process_first_seen_at_its_end() -> None:
    """A forked shell that never exec'd: its exit is all there is of it."""
    events = [event("execve", 10, 1, 100, 3, 5, 2, argv=(b"sh",)),
              event("process_exit", 11, 10, 200, 3, 100, 3, status=0, life=1)]
    [sh] = tree.build(events)
    [child] = sh.children
    assert (child.argv, child.exec_id, child.end()) == (None, "b00t:11:200:3", "exit 0")
    assert tree.lines([sh])[2].endswith("\u2514\u2500 (sh)")


def test_a_subshell_never_seen_is_placed_under_the_process_that_forked_it() -> None:
    """`sh -c '(sleep 9; true) & sh -c "(sleep 9; true) &"'`, still running: neither
    subshell exec'd or ended, their sleeps did; each is a `(sh)` under its shell. The
    exec of bptrace-exec's child names a parent no process of the run can have forked."""
    events = [
        event("execve", 10, 1, 100, 3, 5, 2, argv=(b"sh", b"-c", b"x")),  # from image 2
        event("execve", 12, 11, 300, 4, 200, 3, argv=(b"sleep", b"9")),  # subshell 11's
        event("execve", 13, 10, 400, 4, 100, 3, argv=(b"sh", b"-c", b"y")),
        event("execve", 15, 14, 600, 5, 500, 4, argv=(b"sleep", b"9")),  # subshell 14's
    ]
    for e in events:
        e.values["filename"] = b"/usr/bin/" + e.values["argv"][0]  # type: ignore[index]
    [sh] = tree.build(events)
    subshell, inner = sh.children
    assert (subshell.pid, subshell.end(), subshell.exec_id) == (11, "running", "b00t:11:200:3")
    assert [c.argv for c in subshell.children] == [(b"sleep", b"9")]
    [subshell2] = inner.children
    assert subshell2.pid == 14 and [c.pid for c in subshell2.children] == [15]
    text = tree.lines([sh])
    assert [line.split(None, 3)[3] for line in text[2:4]] == [
        "\u251c\u2500 (sh)", "\u2502  \u2514\u2500 sleep 9"]


def test_a_process_still_running_is_named_as_its_program() -> None:
    """Its exec's comm is the caller's (sh, before the exec): the process is named by
    the program it runs, as the kernel names it (the path's last part, 15 bytes)."""
    running = event("execve", 10, 1, 100, 3, 5, 2, argv=(b"x",))
    running.values["filename"] = b"/usr/lib/gcc/x86_64-linux-gnu/12/collect2-wrapper"
    [proc] = tree.build([running])
    assert proc.comm == b"collect2-wrappe"
    assert tree.to_dicts([proc])[0]["comm"] == "collect2-wrappe"


def test_an_argv_cut_by_the_limits_is_marked() -> None:
    """--max-args 5 keeps `/bin/echo 1 2 3 4` of 31 arguments: the tree, its JSON and
    the timeline say it is not the whole command line, as the table does."""
    cut = event("execve", 10, 1, 100, 3, 5, 2, argv=(b"/bin/echo", b"1", b"2", b"3", b"4"))
    cut.truncated = frozenset({"argv"})
    whole = event("execve", 11, 10, 200, 3, 100, 3, argv=(b"/bin/true",))
    [root] = tree.build([cut, whole])
    assert [line.split(None, 3)[3] for line in tree.lines([root])[1:]] == [
        "/bin/echo 1 2 3 4 [...]", "\u2514\u2500 /bin/true"]
    as_json = tree.to_dicts([root])[0]
    assert as_json["argv_truncated"] is True
    assert as_json["children"][0]["argv_truncated"] is False  # type: ignore[index]
    root.began_ns, root.children[0].began_ns = 1, 2
    assert "/bin/echo 1 2 3 4 [...]\npid 10" in svg([root], 0, 10, "t")


def test_a_core_dump_is_said() -> None:
    """Killed by SIGSEGV with a core dumped, as a shell says it: in the row of its end
    and in the tree; killed without one, the signal alone."""
    from bptrace_exec.output.render import ended

    dumped = event("process_exit", 10, 1, 100, 3, 5, 2, signal=11, life=1)
    dumped.values["core"] = 1
    killed = event("process_exit", 11, 1, 200, 3, 5, 2, signal=9, life=1)
    killed.values["core"] = 0
    assert [ended(e) for e in (dumped, killed)] == [
        "killed by SIGSEGV, core dumped", "killed by SIGKILL"]
    roots = tree.build([dumped, killed])
    assert [p.end() for p in roots] == ["SIGSEGV core", "SIGKILL"]
    assert [p["core"] for p in tree.to_dicts(roots)] == [True, False]
