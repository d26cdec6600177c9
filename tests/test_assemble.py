"""Records -> exec events: joining by key, completeness, and argv reconstruction. Records
are written from their layouts, field by field (recordtext)."""

from __future__ import annotations

import pytest

from bptrace_exec.codegen.readers import FAILED_ARG_CHUNKS
from bptrace_exec.event import Event
from bptrace_exec.parse.join import COMPLETE_WAIT_NS, Assembler
from bptrace_exec.parse.values import exec_name
from bptrace_exec.records import (
    ARGC_UNSURE,
    ARGV_CHUNK,
    BYTES_WORDS,
    CALL,
    DROP,
    ELEM,
    EXEC,
    FIRST,
    STR,
    UNREADABLE_NEXT,
)
from bptrace_exec.spec import parse_profile, with_overrides
from recordtext import record

EXECVE = parse_profile("version: 1\n", source="probes/execve.yaml", name="execve")
FILENAME, ARGV = 0, 1  # the exec arguments' slots
CHUNK = EXECVE.kind.strlen - 1  # a string read
EXECVE_PROBE, EXECVEAT_PROBE = 0, 1
AT_FDCWD = (1 << 64) - 100  # as a closing record has it: -100, sign-extended
AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW = 0x1000, 0x100


def closing(tid: int, ident: int, records: int, *, ret: int = 0, caller_argc: int = 1,
            argc: int = 1, more: int = 0, size: int = 0, comm: bytes = b"bash",
            probe: int = EXECVE_PROBE, dirfd: int = 0, flags: int = 0) -> bytes:
    """An execve's closes with dirfd and flags too (padded: 0), so that it reads alike."""
    return record(CALL, tid, ident, probe=probe, records=records, ret=ret, latency=5000,
                  pid=tid, ppid=1, uid=0 if ret == 0 else 1000,
                  ints=[caller_argc, argc, more, size, dirfd, flags], comm=comm)


def pieces(text: bytes, after: int = 0, reads: int = 64) -> list[tuple[int, bytes, int]]:
    """A string read CHUNK bytes at a time, at most `reads` times: (chunk, text, the byte
    after it); `after` is the byte after the string."""
    read, rest = text[:CHUNK * reads], [*text[CHUNK * reads:], after]
    return [(c, read[at:at + CHUNK], [*read[at + CHUNK:], *rest][0])
            for c, at in enumerate(range(0, max(len(read), 1), CHUNK))]


def success(tid: int, ident: int, argv: list[bytes], *, caller_argc: int | None = None,
            argv0: bytes | None = None, path: bytes = b"/bin/prog", limit: int = 4096,
            comm: bytes = b"bash", probe: int = EXECVE_PROBE, dirfd: int = 0,
            flags: int = 0) -> list[bytes]:
    """As the program prints it: a script's caller argv[0] (`argv0`), the parts of argv
    (up to `limit` bytes) and of the path that do not fit the `exec` record, then it."""
    block = b"".join(a + b"\0" for a in argv)
    caller = len(argv) if caller_argc is None else caller_argc
    recs = [record(FIRST, tid, ident, slot=ARGV, next=0, text=argv0)] if argv0 is not None else []
    recs += [record(BYTES_WORDS, tid, ident, slot=ARGV, offset=off,
                    length=len(block[off:off + ARGV_CHUNK]), data=block[off:off + ARGV_CHUNK])
             for off in range(ARGV_CHUNK, min(len(block), limit), ARGV_CHUNK)]
    (_, head, after), *rest = pieces(path)
    recs += [record(STR, tid, ident, slot=FILENAME, chunk=c, next=n, text=t) for c, t, n in rest]
    recs.append(record(EXEC, tid, ident, probe=probe, records=len(recs) + 1, latency=5000,
                       pid=tid, ppid=1, uid=0,
                       ints=[caller, len(argv), 0, len(block), dirfd, flags],
                       length=min(len(block), ARGV_CHUNK), next=after, comm=comm,
                       data=block[:ARGV_CHUNK], text=head))
    return recs


def failure(tid: int, ident: int, args: list[tuple[bytes, int]], path: bytes, *,
            ret: int = -2, caller_argc: int | None = None, more: int = 0,
            path_next: int = 0, **at: int) -> list[bytes]:
    """Each (argument, the byte after it) read as the program reads it."""
    recs = [record(ELEM, tid, ident, slot=ARGV, item=i, chunk=c, next=n, text=t)
            for i, (text, after) in enumerate(args)
            for c, t, n in pieces(text, after, FAILED_ARG_CHUNKS)]
    recs += [record(STR, tid, ident, slot=FILENAME, chunk=c, next=n, text=t)
             for c, t, n in pieces(path, path_next)]
    recs.append(closing(tid, ident, len(recs) + 1, ret=ret, more=more, argc=len(args),
                        caller_argc=len(args) if caller_argc is None else caller_argc, **at))
    return recs


def feed(a: Assembler, records: list[bytes], now: int = 0) -> list[Event]:
    out: list[Event] = []
    for r in records:
        out += a.feed(r, now)
    return out


def new(max_args: int = 64) -> Assembler:
    profile = with_overrides(EXECVE, max_args=max_args)
    return Assembler(profile, wall_offset_ns=1_000)


def test_one_successful_exec() -> None:
    [e] = feed(new(), success(10, 500, [b"ls", b"-l", b""]))
    assert (e["argv"], e.truncated, e.ret, e.errno) == ((b"ls", b"-l", b""), frozenset(), 0,
                                                        None)
    assert (e.pid, e.ppid, e.comm, e["filename"], e.time_ns) == (10, 1, b"bash", b"/bin/prog",
                                                                 1500)
    assert e.syscall == "execve" and e.latency_ns == 5000 and not e.incomplete


def test_interleaved_execs_are_joined_by_key() -> None:
    a, b = success(1, 100, [b"a", b"x" * 500]), success(2, 200, [b"b"])
    mixed = [r for pair in zip(a, b, strict=False) for r in pair] + a[len(b):]
    events = feed(new(), mixed[::-1])  # the closing record can even come first
    assert sorted(e["argv"] for e in events) == [(b"a", b"x" * 500), (b"b",)]  # type: ignore[type-var]


def test_same_thread_two_execs_do_not_mix() -> None:
    events = feed(new(), success(5, 1, [b"one"]) + success(5, 2, [b"two"]))
    assert [e["argv"] for e in events] == [(b"one",), (b"two",)]


def test_a_script_keeps_the_callers_argv0() -> None:
    # the kernel's argv: interpreter, script path, then the caller's argv[1:]
    recs = success(3, 9, [b"/bin/sh", b"./x.sh", b"a b"], caller_argc=2, argv0=b"x.sh",
                   path=b"./x.sh")
    [e] = feed(new(), recs)
    assert e["argv"] == (b"x.sh", b"a b")


def test_a_count_that_is_not_sure_never_hides_the_images_arguments() -> None:
    """The caller's array ended early at entry (a page not present), so the kernel's
    argv is longer: it is shown whole, never taken for a script's."""
    argv = [b"/bin/sh", b"-c", b": hidden", b"sh", b"harmless-looking"]
    recs = success(3, 9, argv, caller_argc=2 + ARGC_UNSURE, argv0=b"/bin/sh", path=b"/bin/sh")
    [e] = feed(new(), recs)
    assert e["argv"] == tuple(argv) and not e.truncated


def test_a_longer_image_without_a_scripts_layout_is_shown_whole() -> None:
    argv = [b"/bin/sh", b"-c", b": hidden", b"sh", b"harmless-looking"]
    [e] = feed(new(), success(3, 9, argv, caller_argc=2, argv0=b"/bin/sh", path=b"/bin/sh"))
    assert e["argv"] == tuple(argv)


def test_an_empty_argv_stays_empty() -> None:
    [e] = feed(new(), success(3, 9, [b""], caller_argc=0, argv0=b""))
    assert e["argv"] == ()


def test_argv_cut_by_the_byte_limit_is_flagged() -> None:
    limit = 10 * ARGV_CHUNK
    [e] = feed(new(), success(3, 9, [b"p", b"y" * 1000], limit=limit))
    argv = e["argv"]
    assert isinstance(argv, tuple)
    assert "argv" in e.truncated and argv[0] == b"p" and argv[1] == b"y" * (limit - 2)


@pytest.mark.parametrize("comm", [b"bash", b"a b", b" lead", b"trail ", b"  both  ",
                                  b"x" * 15, b"\xff\n\t caf\xe9", b""])
def test_a_padded_comm_keeps_its_spaces(comm: bytes) -> None:
    [e] = feed(new(), success(3, 9, [b"ls"], comm=comm))
    assert e.comm == comm


def test_a_short_exec_is_one_record() -> None:
    [only] = success(3, 9, [b"ls", b"-l", b"a b"], path=b"/usr/bin/ls", comm=b"ba sh")
    [e] = feed(new(), [only])
    assert (e["argv"], e["filename"], e.comm, e.ret) == ((b"ls", b"-l", b"a b"), b"/usr/bin/ls",
                                                       b"ba sh", 0)


def test_max_args_cuts_and_flags() -> None:
    [e] = feed(new(max_args=2), success(1, 1, [b"a", b"b", b"c"]))
    assert e["argv"] == (b"a", b"b") and "argv" in e.truncated


def test_failed_exec_with_a_cut_argument() -> None:
    longest = CHUNK * FAILED_ARG_CHUNKS
    recs = failure(7, 70, [(b"f", 0), (b"9" * (longest + 5), 0)], b"/nope")
    [e] = feed(new(), recs)
    assert e.errno == "ENOENT" and e.uid == 1000 and "argv" in e.truncated
    assert e["argv"] == (b"f", b"9" * longest) and e["filename"] == b"/nope"


def test_strings_that_could_not_be_read_are_named_not_passed_off_as_empty() -> None:
    recs = failure(7, 70, [(b"", UNREADABLE_NEXT), (b"", 0), (b"", UNREADABLE_NEXT)], b"",
                   path_next=UNREADABLE_NEXT)
    [e] = feed(new(), recs)
    assert e["argv"] == (b"", b"", b"") and e.unreadable == ("filename", "argv/0", "argv/2")
    assert not e.truncated


def test_a_scripts_argv0_that_could_not_be_read_leaves_the_images_argv() -> None:
    recs = success(3, 9, [b"/bin/sh", b"./x.sh", b"a b"], caller_argc=2, argv0=b"",
                   path=b"./x.sh")
    recs[0] = record(FIRST, 3, 9, slot=ARGV, next=UNREADABLE_NEXT, text=b"")
    [e] = feed(new(), recs)
    assert e["argv"] == (b"/bin/sh", b"./x.sh", b"a b") and e.unreadable == ()


@pytest.mark.parametrize("size", [CHUNK - 1, CHUNK, CHUNK + 1, CHUNK * FAILED_ARG_CHUNKS])
def test_a_failed_execs_argument_as_long_as_its_reads_is_not_cut(size: int) -> None:
    recs = failure(7, 70, [(b"9" * size, 0), (b"x", 0)], b"/" * size, ret=-13)
    [e] = feed(new(), recs)
    assert not e.truncated and e.errno == "EACCES" and e.comm == b"bash"
    assert e["argv"] == (b"9" * size, b"x") and e["filename"] == b"/" * size


def test_text_fields_keep_spaces_newlines_and_emptiness() -> None:
    recs = failure(7, 70, [(b"", 0), (b" two  spaces \n", 0)], b"/a b")
    [e] = feed(new(), recs)
    assert e["argv"] == (b"", b" two  spaces \n") and e["filename"] == b"/a b"


def test_long_path_in_chunks() -> None:
    path = b"/" + b"p" * 500
    [e] = feed(new(), success(1, 1, [b"x"], path=path))
    assert e["filename"] == path and "filename" not in e.truncated


def test_lost_records_show_the_exec_as_incomplete_after_a_wait() -> None:
    a = new()
    recs = success(1, 1, [b"a", b"b" * 200])
    assert feed(a, recs[1:], now=0) == []  # a piece of its argv block lost
    assert list(a.expire(COMPLETE_WAIT_NS // 2)) == []
    [e] = a.expire(COMPLETE_WAIT_NS * 2)
    assert e.incomplete and "argv" in e.truncated and a.stats.incomplete == 1


def test_records_without_a_closing_one_are_counted_at_the_end() -> None:
    a = new()
    feed(a, success(1, 1, [b"a" * 200])[:-1])
    assert list(a.flush()) == [] and a.stats.unfinished == 1


def test_malformed_and_unknown_records_are_counted() -> None:
    a = new()
    feed(a, [b"call 1 2 x", b"bytesw 1 2 1 0 zz", b"novel 1 2 3", b"first 1",
             b"nospace", b"call 1 3 0 1 0 5 1 1 0 1",  # too few numbers
             b"call 1 4 7 1 0 5 1 1 0 1 1 0 0 sh",  # no probe 7
             b"str 1 5 0 x 0 text"])  # not a number
    assert a.stats.unknown == 1 and a.stats.malformed == 7


def test_an_exec_record_whose_words_do_not_add_up_is_malformed() -> None:
    """The argv and path words of an exec record (records.WORDS each): too few, one past
    64 bits, bytes past the length it says, or anything after its comm, are a malformed
    record, not a crash."""
    [good] = success(1, 1, [b"true"])
    first = b"%d" % int.from_bytes(b"true\0".ljust(8, b"\0"), "little")
    data = b" " + first + b" 0" * 9 + b" "  # "true\0": one word, nine of zeros
    assert good.count(data) == 1
    cases = [good.replace(data, b" " + first + b" 0" * 8 + b" "),  # a word short
             good.replace(data, b" %d" % 2**64 + b" 0" * 9 + b" "),
             good.replace(data, b" " + first + b" %d" % 2**40 + b" 0" * 8 + b" "),
             good + b" junk"]  # after its last field
    a = new()
    assert feed(a, cases) == [] and a.stats.malformed == 4
    assert [e["argv"] for e in feed(a, [good])] == [(b"true",)]


def test_the_start_mark_is_neither_an_exec_nor_unknown() -> None:
    a = new()
    assert feed(a, [b"ready"]) == []
    assert a.stats.unknown == a.stats.malformed == 0


def test_a_dropped_call_is_forgotten_whichever_comes_first() -> None:
    """A call filtered out at return after printing at entry: its records go, whether
    its `drop` comes after them or (from another CPU) before; it is not "unfinished"."""
    first = record(FIRST, 7, 100, slot=ARGV, next=0, text=b"sh")
    drop = record(DROP, 7, 100)
    for order in ([first, drop], [drop, first]):
        a = new()
        assert feed(a, order) == [] and list(a.expire(0)) == []
        assert a.pending == {} or order[0] is drop
        assert list(a.flush()) == [] and a.stats.unfinished == 0 and a.pending == {}
    a = new()  # a drop long before: the records after it are a call of their own
    feed(a, [drop])
    list(a.expire(COMPLETE_WAIT_NS + 1))
    feed(a, [first])
    assert list(a.flush()) == [] and a.stats.unfinished == 1


# --- execveat: dirfd, flags, and the name the kernel gives what it runs ---------------

@pytest.mark.parametrize("name,dirfd,shown", [
    (b"true", AT_FDCWD, b"true"),  # relative to the working directory: as given
    (b"true", (-100) & 0xFFFFFFFF, b"true"),  # AT_FDCWD, 32 bits zero-extended
    (b"/bin/true", 3, b"/bin/true"),  # absolute: the dirfd plays no part
    (b"true", 3, b"/dev/fd/3/true"),
    (b"sub/dir/x", 12, b"/dev/fd/12/sub/dir/x"),
    (b"", 3, b"/dev/fd/3"),  # AT_EMPTY_PATH: the fd is the program
    (b"\xff\n caf\xe9", 4, b"/dev/fd/4/\xff\n caf\xe9"),  # any bytes, kept
    (b"x", (1 << 64) - 1, b"/dev/fd/-1/x"),  # a bad fd, as the kernel would name it
])
def test_exec_name_follows_the_kernels_rule(name: bytes, dirfd: int, shown: bytes) -> None:
    assert exec_name(name, dirfd) == shown


def test_a_failed_execveat_shows_what_a_successful_one_would() -> None:
    """The caller's relative name under its dirfd, as the kernel names it in the new
    image; dirfd and flags are the numbers the caller passed."""
    relative = failure(7, 70, [(b"true", 0)], b"true", probe=EXECVEAT_PROBE, dirfd=3,
                       flags=AT_SYMLINK_NOFOLLOW)
    empty = failure(8, 80, [(b"x", 0)], b"", ret=-13, probe=EXECVEAT_PROBE, dirfd=5,
                    flags=AT_EMPTY_PATH)
    at_cwd = failure(9, 90, [(b"x", 0)], b"x", probe=EXECVEAT_PROBE, dirfd=AT_FDCWD)
    events = feed(new(), relative + empty + at_cwd)
    assert [(e.syscall, e["filename"], e["dirfd"], e["flags"], e.errno) for e in events] == [
        ("execveat", b"/dev/fd/3/true", 3, AT_SYMLINK_NOFOLLOW, "ENOENT"),
        ("execveat", b"/dev/fd/5", 5, AT_EMPTY_PATH, "EACCES"),
        ("execveat", b"x", AT_FDCWD, 0, "ENOENT")]
    assert not any(e.truncated for e in events)


def test_a_cut_relative_name_stays_flagged() -> None:
    recs = failure(7, 70, [(b"f", 0)], b"n" * CHUNK, path_next=ord("n"), probe=EXECVEAT_PROBE,
                   dirfd=3)
    [e] = feed(new(), recs)
    assert e["filename"] == b"/dev/fd/3/" + b"n" * CHUNK and "filename" in e.truncated


def test_a_successful_execveat_shows_the_images_name_as_it_is() -> None:
    recs = success(3, 9, [b"true"], path=b"/dev/fd/3/true", probe=EXECVEAT_PROBE, dirfd=3)
    [e] = feed(new(), recs)
    assert (e["filename"], e["dirfd"], e["flags"], e["argv"]) == (b"/dev/fd/3/true", 3, 0,
                                                                  (b"true",))


def test_an_execve_has_neither_dirfd_nor_flags() -> None:
    """Its closing record carries their places (padded) so that its return probe is
    execveat's; what is there is not read."""
    [e] = feed(new(), failure(7, 70, [(b"x", 0)], b"x", dirfd=3, flags=1))
    assert (e["filename"], e["dirfd"], e["flags"]) == (b"x", None, None)


def test_a_recording_of_version_2_is_read_as_it_was_written() -> None:
    """Its execveat closed a call with argv's numbers only, and had no dirfd or flags."""
    v2 = Assembler(EXECVE, wall_offset_ns=0, version=2)
    recs = [record(STR, 7, 70, slot=FILENAME, chunk=0, next=0, text=b"true"),
            record(CALL, 7, 70, probe=EXECVEAT_PROBE, records=2, ret=-2, latency=1, pid=7,
                   ppid=1, uid=0, ints=[0, 0, 0, 0], comm=b"sh")]
    [e] = feed(v2, recs)
    assert (e["filename"], e["dirfd"], e["flags"], e.syscall) == (b"true", None, None,
                                                                  "execveat")
    assert v2.stats.malformed == 0


def test_paths_from_their_walks() -> None:
    """A path's names come by the walk's step (the last name first), long ones in pieces;
    the root itself is one `path` record; a path not walked (a recording without it, a
    column asked for at replay) is None, never "/"."""
    from bptrace_exec.records import PATH, PATH_CUT, PATH_DELETED, PATH_NONE, SEG

    profile = with_overrides(EXECVE, cwd=True, exe=True)
    cwd, exe = 0, 1
    long_name = b"n" * (CHUNK + 5)
    lines = [record(SEG, 1, 10, which=cwd, depth=1, offset=0, text=long_name[:CHUNK]),
             record(SEG, 1, 10, which=cwd, depth=3, offset=0, text=b"srv"),
             record(SEG, 1, 10, which=cwd, depth=1, offset=CHUNK, text=long_name[CHUNK:]),
             record(SEG, 1, 10, which=cwd, depth=2, offset=0, text=b"\xff dir"),
             record(PATH, 1, 10, which=exe, flags=0),
             closing(1, 10, 6, ret=-2)]
    [event] = joined(Assembler(profile, wall_offset_ns=0), lines)
    assert (event.cwd, event.exe) == (b"/srv/\xff dir/" + long_name, b"/")
    [cut] = joined(Assembler(profile, wall_offset_ns=0), [
        record(SEG, 2, 10, which=cwd, depth=1, offset=0, text=b"deep"),
        record(PATH, 2, 10, which=cwd, flags=PATH_CUT | PATH_DELETED),
        record(PATH, 2, 10, which=exe, flags=PATH_NONE), closing(2, 10, 4, ret=-2)])
    assert (cut.cwd, cut.exe, "cwd" in cut.truncated) == (b"deep (deleted)", None, True)
    [unwalked] = joined(Assembler(profile, wall_offset_ns=0), [closing(3, 10, 1, ret=-2)])
    assert unwalked.cwd is unwalked.exe is None


def joined(assembler: Assembler, lines: list[bytes]) -> list[Event]:
    return [e for line in lines for e in assembler.feed(line, 0)] + list(assembler.flush())


def test_an_exec_in_its_call_at_the_stop_is_not_partial() -> None:
    """Its entry printed its working directory; its return, after the stop, shows it not:
    not a call whose records were lost."""
    from bptrace_exec.records import SEG

    assembler = Assembler(with_overrides(EXECVE, cwd=True), wall_offset_ns=0)
    assert assembler.feed(record(SEG, 4, 10, which=0, depth=1, offset=0, text=b"tmp"), 0) == []
    assert list(assembler.flush()) == [] and assembler.stats.unfinished == 0
    assembler.feed(record(BYTES_WORDS, 5, 10, slot=ARGV, offset=80, length=1, data=b"x"), 0)
    assert list(assembler.flush()) == [] and assembler.stats.unfinished == 1
