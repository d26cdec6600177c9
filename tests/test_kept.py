"""The filters bptrace-exec applies to events itself (argv, cwd, exe): what each keeps,
what it cannot judge, and how the end of a process follows its last program."""

from __future__ import annotations

from bptrace_exec.event import Event, Identity
from bptrace_exec.pipeline import Kept
from bptrace_exec.spec import load_profile, with_overrides
from bptrace_exec.spec.overrides import apply_where
from bptrace_exec.spec.parse import run_here


def event(pid: int, count: int, *, cwd: bytes | None = None, exe: bytes | None = None,
          argv: tuple[bytes, ...] = (b"true",), ret: int = 0, end: bool = False,
          cut: frozenset[str] = frozenset(), incomplete: bool = False) -> Event:
    who = Identity(0, 0, 0, None, None, None, f"b:{pid}:7:{count}", "b:1:1:1")
    values = {"status": 0, "signal": 0, "core": 0} if end else {"argv": argv}
    return Event(0, "process_exit" if end else "execve", pid, pid, 1, 0, b"c", ret, 1,
                 values, cut, incomplete, who=who, cwd=cwd, exe=exe)


def test_paths_exact_or_by_prefix_and_what_cannot_be_judged() -> None:
    profile = apply_where(with_overrides(load_profile("execve"), cwd=True),
                          ["cwd=/srv/", "cwd=/home/*", "exe=/usr/bin/make"])
    assert profile.filters.cwd == ("/srv", "/home/*")  # as the kernel names a directory
    assert run_here(profile) == ("cwd", "exe")
    kept = Kept.of(profile)
    assert kept is not None
    make = b"/usr/bin/make"
    assert kept(event(1, 1, cwd=b"/srv", exe=make))
    assert kept(event(2, 1, cwd=b"/home/me/src", exe=make))
    assert not kept(event(3, 1, cwd=b"/srv/www", exe=make))  # exact: not below it
    assert not kept(event(4, 1, cwd=b"/srv", exe=b"/usr/bin/cc"))
    assert not kept(event(5, 1, cwd=b"/srv", exe=None, ret=-2))  # a failed exec ran nothing
    assert kept(event(6, 1, cwd=b"www/x", exe=make, cut=frozenset({"cwd"})))  # top unknown
    assert kept(event(7, 1, cwd=b"/tmp", exe=make, incomplete=True))


def test_an_exit_goes_as_its_last_program_went() -> None:
    profile = apply_where(load_profile("process"), ["argv=*.c"])
    kept = Kept.of(profile)
    assert kept is not None
    assert kept(event(1, 1, argv=(b"cc", b"a.c")))
    assert not kept(event(2, 1, argv=(b"ls",)))
    assert kept(event(1, 1, end=True)) and not kept(event(2, 1, end=True))
    assert kept(event(3, 1, end=True))  # its exec was not traced: kept
    # a process that ran a dropped program, then a kept one: its end is kept
    assert not kept(event(4, 1, argv=(b"sh",))) and kept(event(4, 2, argv=(b"x.c",)))
    assert kept(event(4, 2, end=True))
    assert kept.dropped == {}, "a process is forgotten at its end"
