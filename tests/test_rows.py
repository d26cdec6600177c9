"""The table's rows: by time of call within the window, PATH searches folded, fit to a
terminal."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pexpect

from bptrace_exec.event import Event
from bptrace_exec.output import tree
from bptrace_exec.output.render import CUT_MARK, PLAIN, RED, Renderer, Terminal
from bptrace_exec.output.rows import WINDOW_NS, Rows, can_fold
from bptrace_exec.spec import load_profile
from bptrace_exec.spec.model import Filters
from conftest import json_records, tool_command
from test_record import recording
from test_tree import event as tree_event


def exec_event(at_ms: int, tid: int, path: bytes, argv: tuple[bytes, ...], ret: int = 0
               ) -> Event:
    return Event(at_ms * 1_000_000, "execve", tid, tid, 1, 0, b"sh", ret, 1000,
                 values={"filename": path, "argv": argv})


def shown(rows: Rows, events: list[Event]) -> list[tuple[bytes, int]]:
    out = [r for e in events for r in rows.add(e)] + rows.flush()
    return [(r.event.values["filename"], r.tried) for r in out]  # type: ignore[misc]


def test_rows_come_by_time_of_call_within_the_window() -> None:
    late = exec_event(5, 1, b"/bin/b", (b"b",))
    early = exec_event(3, 2, b"/bin/a", (b"a",))
    rows = Rows()
    assert rows.add(late) == [] and rows.add(early) == []  # held: the window is not over
    after = exec_event(5 + WINDOW_NS // 1_000_000 + 1, 3, b"/bin/c", (b"c",))
    assert [r.event for r in rows.add(after)] == [early, late]
    assert [r.event for r in rows.flush()] == [after]


def test_calls_whose_records_come_in_reverse_are_shown_in_the_order_made(tmp_path: Path
                                                                         ) -> None:
    """As the records of calls on two CPUs can come: JSON lines and table rows are by
    time of call all the same."""
    path, _ = recording(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    calls = [i for i, ln in enumerate(lines) if b'"printf"' in ln and b'"ready' not in ln]
    reverse = tmp_path / "reverse.rec"
    reverse.write_bytes(b"".join(lines[:calls[0]] + lines[calls[-1]:calls[0] - 1:-1]
                                 + lines[calls[-1] + 1:]))

    def shown(rec: Path, *options: str) -> list[str]:
        return subprocess.run(tool_command("--replay", str(rec), "-q", *options),
                              capture_output=True, text=True, check=True).stdout.splitlines()

    as_made = json_records("\n".join(shown(path, "--json", "--summary", "none")))
    assert len(as_made) > 10 and as_made == sorted(as_made, key=lambda r: r["time"])
    assert json_records("\n".join(shown(reverse, "--json", "--summary", "none"))) == as_made
    assert shown(reverse, "--wide") == shown(path, "--wide")
    assert json.loads(reverse.read_bytes().splitlines()[calls[0]])["data"] != json.loads(
        lines[calls[0]])["data"]  # the records did come in another order


def test_a_search_folds_into_the_exec_that_ends_it() -> None:
    argv = (b"as", b"-o", b"x.o")
    search = [exec_event(1, 7, b"/usr/local/bin/as", argv, -2),
              exec_event(2, 7, b"/usr/bin/as", argv, -13),
              exec_event(3, 7, b"/bin/as", argv)]
    assert shown(Rows(), search) == [(b"/bin/as", 2)]
    assert shown(Rows(fold=False), search) == [(b"/usr/local/bin/as", 0),
                                               (b"/usr/bin/as", 0), (b"/bin/as", 0)]


def test_only_the_same_search_folds() -> None:
    other_thread = [exec_event(1, 7, b"/a/x", (b"x",), -2), exec_event(2, 8, b"/b/x", (b"x",))]
    other_argv = [exec_event(1, 7, b"/a/x", (b"x",), -2), exec_event(2, 7, b"/b/x", (b"y",))]
    other_name = [exec_event(1, 7, b"/a/x", (b"x",), -2), exec_event(2, 7, b"/b/z", (b"x",))]
    not_a_search = [exec_event(1, 7, b"/a/x", (b"x",), -7), exec_event(2, 7, b"/b/x", (b"x",))]
    for events in (other_thread, other_argv, other_name, not_a_search):
        assert [tried for _, tried in shown(Rows(), events)] == [0, 0]


def test_no_fold_where_a_filter_may_drop_the_searchs_end() -> None:
    assert can_fold(Filters()) and can_fold(Filters(comm=("sh",), uid=(0,), succeeded=True))
    for dropping in (Filters(failed=True), Filters(euid=(1000,)), Filters(exe=("/usr/*",)),
                     Filters(args=(("filename", (b"/usr/local/bin/true",)),))):
        assert not can_fold(dropping), dropping


def test_a_table_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal: rows cut to its width (marked), failures in red unless $NO_COLOR;
    --wide keeps rows whole."""
    path, _ = recording(tmp_path)

    def table(*extra: str, **env: str) -> list[str]:
        # the terminal's own width: $COLUMNS, which would override it, is left out
        inherited = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        child = pexpect.spawn(sys.executable, ["-m", "bptrace_exec", "--replay", str(path),
                                               "-q", *extra], env={**inherited, **env},
                              dimensions=(50, 80), encoding="utf-8", timeout=60)
        out = child.read()
        child.close()
        return out.splitlines()

    def plain(line: str) -> str:
        return re.sub(r"\x1b\[\d+m", "", line)

    cut = table(NO_COLOR="")
    assert all(len(plain(ln)) <= 80 for ln in cut) and any(ln.endswith(CUT_MARK) for ln in cut)
    assert any(f"{RED}ENOENT{PLAIN}" in ln for ln in cut)
    assert not any("\x1b[" in ln for ln in table(NO_COLOR="1"))
    assert any(RED in ln for ln in table("--color", "always", NO_COLOR="1"))
    assert not any("\x1b[" in ln for ln in table("--color", "never"))
    whole = table("--wide", NO_COLOR="1")
    assert any(len(ln) > 80 for ln in whole) and not any(ln.endswith(CUT_MARK) for ln in whole)


def test_a_row_of_wide_characters_fits_the_terminal() -> None:
    """East Asian characters take two columns, combining ones none: a row is cut to the
    columns it takes on the terminal, not to its count of characters."""
    wide = "日本語".encode() * 20
    combined = "e\u0301".encode() * 80  # é as two characters, one column
    renderer = Renderer(load_profile("execve"), Terminal(width=120))
    for argv in ((b"echo", wide), (b"echo", combined)):
        row = renderer.row(exec_event(1, 7, b"/bin/echo", argv))
        # a wide character that would end on the last column is cut too
        assert 119 <= columns(row) <= 120 and row.endswith(CUT_MARK), row
    short = renderer.row(exec_event(1, 7, b"/bin/echo", (b"echo", "e\u0301".encode() * 2)))
    assert not short.endswith(CUT_MARK)
    [root] = tree.build([tree_event("execve", 10, 1, 100, 3, 5, 2, argv=(b"echo", wide))])
    header, line = tree.lines([root], 40)
    assert 39 <= columns(line) <= 40 and line.endswith(CUT_MARK), line


def columns(line: str) -> int:
    """The terminal columns a line takes, as a terminal counts them."""
    return sum(0 if unicodedata.combining(ch) else
               2 if unicodedata.east_asian_width(ch) == "W" else 1 for ch in line)


def test_wide_characters_keep_the_columns_in_line() -> None:
    """A program named in East Asian characters (its comm, its path) pads its cells to
    the columns they take: ARGS starts at the same column on every row."""
    renderer = Renderer(load_profile("execve"))
    named = "日本語".encode()
    rows = [renderer.header(), renderer.row(exec_event(1, 7, b"/bin/echo", (b"echo", b"x"))),
            renderer.row(dataclasses.replace(
                exec_event(2, 8, b"/opt/" + named, (named, b"x")), comm=named))]
    starts = [columns(row[:row.rindex(args)])
              for row, args in zip(rows, ("ARGS", "echo x", "'日本語' x"), strict=True)]
    assert len(set(starts)) == 1, rows
