"""Rendering: bash reads the quoted argv back byte for byte; JSON is lossless; no raw
control character ever reaches a terminal."""

from __future__ import annotations

import json
import subprocess

import pytest

from bptrace_exec.event import Event, tty_name
from bptrace_exec.output.render import Renderer
from bptrace_exec.output.text import exact_strings, iso_time, json_line, safe_text, shell_quote
from bptrace_exec.parse.join import identity
from bptrace_exec.records import Who
from bptrace_exec.spec import parse_profile, with_overrides
from workloads.exec_driver import HARD_ARGS

EXECVE = parse_profile("version: 1\n", source="probes/execve.yaml", name="execve")
RENDER = Renderer(EXECVE)


def event(argv: tuple[bytes, ...], *, filename: bytes = b"/bin/x", cut: bool = False,
          dirfd: int | None = None, flags: int | None = None, **kw: object) -> Event:
    """An execve's event (an execveat's with dirfd and flags)."""
    base: dict[str, object] = dict(
        time_ns=1_764_000_000_123_456_789, syscall="execve", pid=10, tid=10, ppid=1, uid=0,
        comm=b"bash", ret=0, latency_ns=1_234_567)
    base.update(kw)
    values = {"filename": filename, "argv": argv, "dirfd": dirfd, "flags": flags}
    return Event(**base, values=values,  # type: ignore[arg-type]
                 truncated=frozenset({"argv"} if cut else ()))


def command_line(e: Event) -> str:
    """The ARGS column's cell."""
    [args] = [c for c in RENDER.columns if c.name == "argv"]
    return args.cell(e)


def test_bash_reads_the_quoted_argv_back_exactly() -> None:
    line = command_line(event(HARD_ARGS))
    out = subprocess.run(["bash", "-c", f"printf '%s\\0' {line}"], capture_output=True,
                         check=True).stdout
    assert out.split(b"\0")[:-1] == list(HARD_ARGS)


@pytest.mark.parametrize("raw", [b"\x1b[2J", b"a\x07b", b"\xff", "\u202e".encode(),
                                 b"\x9b31m", "\u2028".encode(), b"\r"])
def test_nothing_unsafe_reaches_the_terminal(raw: bytes) -> None:
    row = RENDER.row(event((b"x", raw), comm=raw, filename=raw))
    assert all(c.isprintable() or c == " " for c in row), repr(row)
    assert not any(0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069 for c in row)


def test_safe_text_is_unambiguous() -> None:
    assert safe_text(b"a\\x00") != safe_text(b"a\x00")
    assert safe_text(b"plain") == "plain"


def test_plain_text_takes_the_short_way_to_the_same_cell(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """ASCII text is escaped without a look at each character: with that way closed, every
    ASCII character (alone, in words, beside quotes and backslashes) reads the same."""
    from bptrace_exec.output import text

    samples = [b"a%cb c'd\\" % i for i in range(128)] + [bytes([i]) for i in range(128)]
    short = [(safe_text(raw), shell_quote(raw)) for raw in samples]
    monkeypatch.setattr(text, "_plain", lambda _text: False)
    assert short == [(safe_text(raw), shell_quote(raw)) for raw in samples]


def test_json_is_lossless_and_ascii_safe() -> None:
    e = event(HARD_ARGS, ret=-2)
    line = json_line(RENDER.to_dict(e))
    line.encode("utf-8")  # no lone surrogate left raw
    back = exact_strings(json.loads(line))
    assert [a.encode("utf-8", "surrogateescape") for a in back["argv"]] == list(HARD_ARGS)
    assert back["errno"] == "ENOENT" and back["ret"] == -2
    assert back["time"] == "2025-11-24T16:00:00.123456Z"
    assert set(back) >= {"time", "pid", "ppid", "uid", "comm", "filename", "argv",
                         "argv_truncated", "ret", "errno", "latency_ns"}


def test_bytes_not_utf8_are_shown_replaced_and_kept_exact_in_b64() -> None:
    line = json_line(RENDER.to_dict(event((b"\xff", b"ok", b"\\udcff"))))
    assert '"argv":["\ufffd","ok","\\\\udcff"]' in line
    assert line.endswith(',"b64":{"/argv/0":"/w=="}}')
    assert json_line({"a": "del\x7f rtl\u202e bom\ufeff tag\U000e0041"}) == \
        '{"a":"del\\u007f rtl\\u202e bom\\ufeff tag\\udb40\\udc41"}'
    assert json.loads(json_line({"k/~": "\udcff"}))["b64"] == {"/k~1~0": "/w=="}


def test_table_columns_line_up() -> None:
    header, row = RENDER.header(), RENDER.row(event((b"ls", b"-l"), ret=-13))
    assert header.split() == [c.title for c in RENDER.columns]
    assert row.index("EACCES") == header.index("RET")
    assert row.endswith("/bin/x               ls -l")


def test_what_context_adds_to_process_lines_up_before_program_and_args() -> None:
    """process lists its columns; --parents, --cwd and --exe add theirs before PROGRAM and
    ARGS, whose width varies, as execve --exits's defaults place them: after ARGS, every
    row put them where its ARGS ended, and an exit's marker after them."""
    from bptrace_exec import profile_of

    process = Renderer(profile_of("process", parents=1, cwd=True, exe=True))
    execve = Renderer(profile_of("execve", exits=True, parents=1, cwd=True, exe=True))
    header = process.header()
    titles = header.split()
    assert titles[titles.index("LAT(ms)") + 1:] == ["PARENTS", "CWD", "EXE", "PROGRAM",
                                                    "ARGS"]
    assert [t for t in titles if t != "SYSCALL"] == execve.header().split()
    seen = {"cwd": b"/srv/www", "exe": b"/usr/bin/ls", "parents": ((1, b"init"),)}
    started = process.row(event((b"ls", b"-l", b"a long argument"), filename=b"/bin/ls",
                                **seen))
    ended = process.row(Event(
        time_ns=1_764_000_000_223_456_789, syscall="process_exit", pid=10, tid=10, ppid=1,
        uid=0, comm=b"ls", ret=2, latency_ns=9_234_567,
        values={"status": 2, "signal": 0, "core": 0, "filename": None, "argv": None},
        **seen))  # type: ignore[arg-type]
    for row in (started, ended):
        assert row.index("init(1)") == header.index("PARENTS"), row
        assert row.index("/srv/www") == header.index("CWD"), row
        assert row.index("/usr/bin/ls") == header.index("EXE"), row
    assert started.endswith("ls -l 'a long argument'") and ended.endswith("- [exit 2]")


def test_execveat_dirfd_and_flags_are_numbers_and_null_for_an_execve() -> None:
    execve = RENDER.to_dict(event((b"true",), filename=b"/bin/true"))
    assert execve["dirfd"] is None and execve["flags"] is None
    assert "dirfd_truncated" not in execve and "flags_truncated" not in execve
    assert list(execve)[list(execve).index("argv_truncated") + 1:][:3] == ["dirfd", "flags",
                                                                           "ret"]
    at = RENDER.to_dict(event((b"true",), filename=b"true", syscall="execveat",
                              dirfd=(1 << 64) - 100, flags=0x1100))
    assert (at["dirfd"], at["flags"], at["filename"]) == (-100, 0x1100, "true")  # AT_FDCWD
    fexecve = RENDER.to_dict(event((b"x",), filename=b"/dev/fd/3", syscall="execveat",
                                   dirfd=3, flags=0x1000))
    assert (fexecve["dirfd"], fexecve["flags"]) == (3, 4096)


def test_dirfd_and_flags_are_columns_only_when_asked_for() -> None:
    assert not {"dirfd", "flags"} & {c.name for c in RENDER.columns}
    chosen = Renderer(with_overrides(EXECVE, columns=("syscall", "dirfd", "flags", "result",
                                                      "filename")))
    assert chosen.header().split() == ["SYSCALL", "DIRFD", "FLAGS", "RET", "PROGRAM"]
    rows = [chosen.row(event((b"a",), filename=b"/dev/fd/7/a", syscall="execveat", dirfd=7,
                             flags=0x1100)),
            chosen.row(event((b"a",), filename=b"a", syscall="execveat",
                             dirfd=(1 << 64) - 100, flags=0)),
            chosen.row(event((b"a",), filename=b"/bin/a"))]
    assert [r.split() for r in rows] == [
        ["execveat", "7", "AT_SYMLINK_NOFOLLOW|AT_EMPTY_PATH", "0", "/dev/fd/7/a"],
        ["execveat", "AT_FDCWD", "0", "0", "a"],
        ["execve", "-", "-", "0", "/bin/a"]]


def test_truncation_is_shown() -> None:
    assert command_line(event((b"a",), cut=True)) == "a [...]"
    assert shell_quote(b"") == "''"


def test_iso_time() -> None:
    assert iso_time(0) == "1970-01-01T00:00:00.000000Z"


@pytest.mark.parametrize(("dev", "name"), [
    (0, None), (136 << 20 | 3, "pts/3"), (137 << 20 | 1, "pts/257"), (4 << 20 | 1, "tty1"),
    (4 << 20 | 64, "ttyS0"), (5 << 20 | 1, "console"), (188 << 20 | 2, "ttyUSB2"),
    (250 << 20 | 7, "250:7")])
def test_terminals_are_named_as_ps_names_them(dev: int, name: str | None) -> None:
    assert tty_name(dev) == name


def test_identity_fields_and_a_privilege_change_in_the_table() -> None:
    unset = 2**32 - 1
    who = identity(Who(65534, 0, 0, unset, unset, 136 << 20 | 4, 500, 7, 400, 6),
                      pid=10, ppid=1, boot="1a2b3c4d")
    setuid = event((b"passwd",), uid=65534, who=who)
    out = RENDER.to_dict(setuid)
    assert {k: out[k] for k in ("uid", "gid", "euid", "egid", "loginuid", "sessionid", "tty",
                                "exec_id", "parent_exec_id")} == {
        "uid": 65534, "gid": 65534, "euid": 0, "egid": 0, "loginuid": None,
        "sessionid": None, "tty": "pts/4", "exec_id": "1a2b3c4d:10:500:7",
        "parent_exec_id": "1a2b3c4d:1:400:6"}
    assert RENDER.row(setuid).endswith(" [euid 0 egid 0]")
    plain = event((b"ls",), who=identity(Who(0, 0, 0, 1000, 3, 0, 5, 1, 4, 1), 10, 1, "0"))
    assert not RENDER.row(plain).endswith("]")
    assert RENDER.to_dict(plain)["loginuid"] == 1000
    # recorded before identity was read: the fields are there, null
    assert {RENDER.to_dict(event((b"ls",)))[k] for k in ("euid", "tty", "exec_id")} == {None}
    shown = Renderer(with_overrides(EXECVE, columns="pid,uid,euid,tty,loginuid,argv"))
    assert shown.row(setuid).split()[:5] == ["10", "65534", "0", "pts/4", "-"]
