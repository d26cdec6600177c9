"""Records -> execs: joining by key, completeness, and argv reconstruction."""

from __future__ import annotations

from bptrace_exec.assemble import Assembler
from bptrace_exec.codegen import ARGC_UNSURE
from bptrace_exec.events import ExecEvent
from bptrace_exec.joiner import COMPLETE_WAIT_NS

COMM = b"62 61 73 68 00 00 00 00 00 00 00 00 00 00 00 00"  # "bash"


def hexed(raw: bytes) -> bytes:
    return " ".join(f"{b:02x}" for b in raw).encode()


def success(tid: int, ident: int, argv: list[bytes], *, caller_argc: int | None = None,
            argv0: bytes | None = None, path: bytes = b"/bin/prog",
            chunk: int = 192) -> list[bytes]:
    block = b"".join(a + b"\0" for a in argv)
    caller = len(argv) if caller_argc is None else caller_argc
    first = argv0 if argv0 is not None else (argv[0] if argv else b"")
    recs = [b"enter %d %d %d 0 %s %s\n" % (tid, ident, caller, COMM, first)]
    for off in range(0, len(block), chunk):
        recs.append(b"argv %d %d %d %s\n" % (tid, ident, off, hexed(block[off:off + chunk])))
    recs.append(b"file %d %d 0 0 %s\n" % (tid, ident, path))
    total = len(recs) + 1
    recs.append(b"exec %d %d 0 5000 %d 1 0 %d %d 0 %d %d 59\n" % (
        tid, ident, tid, caller, len(argv), len(block), total))
    return recs


def feed(a: Assembler, records: list[bytes], now: int = 0) -> list[ExecEvent]:
    out: list[ExecEvent] = []
    for r in records:
        out += a.feed(r, now)
    return out


def new() -> Assembler:
    return Assembler(wall_offset_ns=1_000, max_args=64)


def test_one_successful_exec() -> None:
    [e] = feed(new(), success(10, 500, [b"ls", b"-l", b""]))
    assert (e.argv, e.argv_truncated, e.ret, e.errno_name) == ((b"ls", b"-l", b""), False, 0, None)
    assert (e.pid, e.ppid, e.comm, e.filename, e.time_ns) == (10, 1, b"bash", b"/bin/prog", 1500)
    assert e.syscall == "execve" and e.latency_ns == 5000 and not e.incomplete


def test_interleaved_execs_are_joined_by_key() -> None:
    a, b = success(1, 100, [b"a", b"x" * 500]), success(2, 200, [b"b"])
    mixed = [r for pair in zip(a, b, strict=False) for r in pair] + a[len(b):]
    events = feed(new(), mixed[::-1])  # the summary can even come first
    assert sorted(e.argv for e in events) == [(b"a", b"x" * 500), (b"b",)]


def test_same_thread_two_execs_do_not_mix() -> None:
    events = feed(new(), success(5, 1, [b"one"]) + success(5, 2, [b"two"]))
    assert [e.argv for e in events] == [(b"one",), (b"two",)]


def test_a_script_keeps_the_callers_argv0() -> None:
    # the kernel's argv: interpreter, script path, then the caller's argv[1:]
    recs = success(3, 9, [b"/bin/sh", b"./x.sh", b"a b"], caller_argc=2, argv0=b"x.sh",
                   path=b"./x.sh")
    [e] = feed(new(), recs)
    assert e.argv == (b"x.sh", b"a b")


def test_a_count_that_is_not_sure_never_hides_the_images_arguments() -> None:
    """The caller's array ended early at entry (a page not present), so the kernel's
    argv is longer: it is shown whole, never taken for a script's."""
    argv = [b"/bin/sh", b"-c", b": hidden", b"sh", b"harmless-looking"]
    recs = success(3, 9, argv, caller_argc=2 + ARGC_UNSURE, argv0=b"/bin/sh", path=b"/bin/sh")
    [e] = feed(new(), recs)
    assert e.argv == tuple(argv) and not e.argv_truncated


def test_a_longer_image_without_a_scripts_layout_is_shown_whole() -> None:
    argv = [b"/bin/sh", b"-c", b": hidden", b"sh", b"harmless-looking"]
    [e] = feed(new(), success(3, 9, argv, caller_argc=2, argv0=b"/bin/sh", path=b"/bin/sh"))
    assert e.argv == tuple(argv)


def test_an_empty_argv_stays_empty() -> None:
    [e] = feed(new(), success(3, 9, [b""], caller_argc=0, argv0=b""))
    assert e.argv == ()


def test_argv_cut_by_the_byte_limit_is_flagged() -> None:
    recs = success(3, 9, [b"p", b"y" * 1000])
    recs = [r for r in recs if not r.startswith(b"argv 3 9 768 ")]
    summary = recs[-1].split()
    summary[-2] = str(int(summary[-2]) - 1).encode()
    recs[-1] = b" ".join(summary) + b"\n"
    [e] = feed(new(), recs)
    assert e.argv_truncated and e.argv[0] == b"p" and e.argv[1] == b"y" * (768 - 2)


def test_max_args_cuts_and_flags() -> None:
    a = Assembler(wall_offset_ns=0, max_args=2)
    [e] = feed(a, success(1, 1, [b"a", b"b", b"c"]))
    assert e.argv == (b"a", b"b") and e.argv_truncated


def test_failed_exec_with_a_cut_argument() -> None:
    recs = [
        b"enter 7 70 2 0 %s f\n" % COMM,
        b"arg 7 70 0 0 f\n",
        b"arg 7 70 1 57 " + b"9" * 199 + b"\n",
        b"file 7 70 0 0 /nope\n",
        b"exec 7 70 -2 100 7 1 1000 2 2 0 0 5 59\n",
    ]
    [e] = feed(new(), recs)
    assert e.errno_name == "ENOENT" and e.uid == 1000 and e.argv_truncated
    assert e.argv == (b"f", b"9" * 199) and e.filename == b"/nope"


def test_exactly_199_bytes_is_not_cut() -> None:
    recs = [
        b"arg 7 70 0 0 " + b"9" * 199 + b"\n",
        b"file 7 70 0 0 /nope\n",
        b"comm 7 70 %s\n" % COMM,
        b"exec 7 70 -13 100 7 1 0 1 1 0 0 4 59\n",
    ]
    [e] = feed(new(), recs)
    assert not e.argv_truncated and e.errno_name == "EACCES" and e.comm == b"bash"


def test_text_fields_keep_spaces_newlines_and_emptiness() -> None:
    recs = [
        b"arg 7 70 0 0 \n",
        b"arg 7 70 1 0  two  spaces \n\n",
        b"file 7 70 0 0 /a b\n",
        b"comm 7 70 %s\n" % COMM,
        b"exec 7 70 -2 100 7 1 0 2 2 0 0 5 59\n",
    ]
    [e] = feed(new(), recs)
    assert e.argv == (b"", b" two  spaces \n") and e.filename == b"/a b"


def test_long_path_in_chunks() -> None:
    path = b"/" + b"p" * 500
    recs = success(1, 1, [b"x"], path=b"IGNORED")
    recs = [r for r in recs if not r.startswith(b"file")]
    recs.insert(1, b"file 1 1 0 112 " + path[:199] + b"\n")
    recs.insert(1, b"file 1 1 1 112 " + path[199:398] + b"\n")
    recs.insert(1, b"file 1 1 2 0 " + path[398:] + b"\n")
    summary = recs[-1].split()
    summary[-2] = str(int(summary[-2]) + 2).encode()
    recs[-1] = b" ".join(summary) + b"\n"
    [e] = feed(new(), recs)
    assert e.filename == path and not e.filename_truncated


def test_lost_records_show_the_exec_as_incomplete_after_a_wait() -> None:
    a = new()
    recs = success(1, 1, [b"a", b"b"])
    assert feed(a, recs[:1] + recs[2:], now=0) == []
    assert list(a.expire(COMPLETE_WAIT_NS // 2)) == []
    [e] = a.expire(COMPLETE_WAIT_NS * 2)
    assert e.incomplete and e.argv_truncated and a.stats.incomplete == 1


def test_records_without_a_summary_are_counted_at_the_end() -> None:
    a = new()
    feed(a, success(1, 1, [b"a"])[:-1])
    assert list(a.flush()) == [] and a.stats.orphaned == 1


def test_malformed_and_unknown_records_are_counted() -> None:
    a = new()
    feed(a, [b"exec 1 2 x\n", b"argv 1 2 0 zz\n", b"novel 1 2 3\n", b"enter 1\n", b"no newline",
             b"enter 1 3 1 0 61 62 /bin/true\n",  # a comm of 2 bytes, not 16
             b"enter 1 4 1 0 " + b"6x " * 16 + b"/bin/true\n"])  # not hex
    assert a.stats.unknown == 1 and a.stats.malformed == 6


def test_the_start_mark_is_neither_an_exec_nor_unknown() -> None:
    a = new()
    assert feed(a, [b"ready\n"]) == []
    assert a.stats.unknown == a.stats.malformed == 0
