"""ExecEvents -> text: aligned table rows for people, JSON lines for programs.

Traced bytes are hostile by default: in the table every control character, bidi override
and invalid byte is escaped, and argv is quoted the way bash would read it back. In JSON,
text is exact: bytes that are not UTF-8 become lone surrogates U+DC80..U+DCFF (Python's
"surrogateescape"), written as \\udcXX escapes, which valid UTF-8 text can never contain.
"""

from __future__ import annotations

import functools
import json
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone

from bptrace_exec.context import parent_chain
from bptrace_exec.events import ExecEvent

_SAFE_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_SURROGATE = re.compile("[\udc80-\udcff]")
# Events are fresh trees of dicts and lists: no cycle to look for (8% of the encoding).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def decode_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _unsafe(ch: str) -> bool:
    """Characters that must not reach a terminal as they are."""
    if "\udc80" <= ch <= "\udcff":
        return True
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    named = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\x1b": "\\E"}
    if ch in named:
        return named[ch]
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}" if code <= 0xFFFF \
        else f"\\U{code:08x}"


def shell_quote(raw: bytes) -> str:
    """One argument as bash would read it back: bare, '...' or $'...'."""
    text = decode_text(raw)
    if _SAFE_WORD.fullmatch(text):
        return text
    if not any(_unsafe(c) for c in text):
        return "'" + text.replace("'", "'\\''") + "'"
    out = []
    for ch in text:
        if ch in "\\'":
            out.append("\\" + ch)
        elif _unsafe(ch):
            out.append(_escape_char(ch))
        else:
            out.append(ch)
    return "$'" + "".join(out) + "'"


def safe_text(raw: bytes) -> str:
    """Traced text for a table cell: readable, with anything unsafe escaped."""
    text = decode_text(raw)
    if not any(_unsafe(c) or c == "\\" for c in text):
        return text
    return "".join(_escape_char(c) if _unsafe(c) else "\\\\" if c == "\\" else c for c in text)


def command_line(event: ExecEvent) -> str:
    words = [shell_quote(a) for a in event.argv]
    if event.argv_truncated:
        words.append("[...]")
    if event.incomplete:
        words.append("[records lost]")
    return " ".join(words)


# --- JSON lines --------------------------------------------------------------------------

def event_to_dict(event: ExecEvent) -> dict[str, object]:
    out: dict[str, object] = {
        "event": "exec",
        "time": iso_time(event.time_ns),
        "syscall": event.syscall,
        "pid": event.pid,
        "ppid": event.ppid,
        "uid": event.uid,
        "tid": event.tid,
        "comm": decode_text(event.comm),
        "filename": decode_text(event.filename),
        "filename_truncated": event.filename_truncated,
        "argv": [a.decode("utf-8", "surrogateescape") for a in event.argv],
        "argv_truncated": event.argv_truncated,
        "ret": event.ret,
        "errno": event.errno_name,
        "latency_ns": event.latency_ns,
        "incomplete": event.incomplete,
    }
    if event.ancestors:
        out["parents"] = [{"pid": pid, "comm": decode_text(comm)}
                          for pid, comm in event.ancestors]
    if event.context:
        out["context"] = event.context.to_dict()
    return out


def json_line(obj: dict[str, object]) -> str:
    text = _ENCODER.encode(obj)
    if text.isascii():
        return text
    # ensure_ascii=False keeps UTF-8 readable, but would leave lone surrogates raw, which
    # no encoder can write: they become \\udcXX escapes, which is what they mean.
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def iso_time(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return f"{_utc_second(seconds)}.{rest // 1000:06d}Z"


@functools.lru_cache(maxsize=4)
def _utc_second(seconds: int) -> str:
    """Execs come in bursts within the same second: format each second once."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


# --- the table ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    title: str
    width: int
    right: bool = False


COLUMNS = (
    Column("TIME", 12),
    Column("PID", 7, right=True),
    Column("PPID", 7, right=True),
    Column("UID", 5, right=True),
    Column("COMM", 15),
    Column("RET", 7),
    Column("LAT(ms)", 8, right=True),
    Column("PROGRAM", 20),
    Column("ARGS", 0),
)


CONTAINER_COLUMN = Column("CONTAINER", 12)
PARENTS_COLUMN = Column("PARENTS", 40)


def columns_for(parents: bool, container: bool) -> tuple[Column, ...]:
    """The table's columns; with process context, CONTAINER after COMM and PARENTS before
    PROGRAM."""
    cols = list(COLUMNS)
    if parents:
        cols.insert(cols.index(COLUMNS[-2]), PARENTS_COLUMN)
    if container:
        cols.insert(cols.index(COLUMNS[4]) + 1, CONTAINER_COLUMN)
    return tuple(cols)


def _line(cells: list[str], columns: tuple[Column, ...] = COLUMNS) -> str:
    out = []
    for col, cell in zip(columns, cells, strict=True):
        if col.width == 0:
            out.append(cell)
        elif col.right:
            out.append(cell.rjust(col.width))
        else:
            out.append(cell.ljust(col.width))
    return " ".join(out).rstrip()


def table_header(columns: tuple[Column, ...] = COLUMNS) -> str:
    return _line([c.title for c in columns], columns)


def table_row(event: ExecEvent, columns: tuple[Column, ...] = COLUMNS) -> str:
    cells = _cells(event)
    return _line(cells if columns is COLUMNS else _with_context(event, cells, columns),
                 columns)


def _cells(event: ExecEvent) -> list[str]:
    local = time.localtime(event.time_ns // 1_000_000_000)
    millis = event.time_ns // 1_000_000 % 1000
    return [
        time.strftime("%H:%M:%S", local) + f".{millis:03d}",
        str(event.pid),
        str(event.ppid),
        str(event.uid),
        safe_text(event.comm),
        event.errno_name or str(event.ret),
        f"{event.latency_ns / 1e6:.3f}",
        safe_text(event.filename) + (" [...]" if event.filename_truncated else ""),
        command_line(event),
    ]


def _with_context(event: ExecEvent, base: list[str], columns: tuple[Column, ...]
                  ) -> list[str]:
    cells = dict(zip(COLUMNS, base, strict=True))
    cells[PARENTS_COLUMN] = parent_chain(event.ancestors, safe_text)
    cells[CONTAINER_COLUMN] = safe_text(event.context.short().encode(
        "utf-8", "surrogateescape")) if event.context else "-"
    return [cells[c] for c in columns]
