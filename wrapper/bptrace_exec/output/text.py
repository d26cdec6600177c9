"""Traced bytes -> text that is safe to show, and times.

Traced bytes are hostile by default: in the table every control character, bidi override
and invalid byte is escaped, and argv is quoted the way bash would read it back. In JSON
lines, every string is UTF-8 that any parser reads, with control and format characters
(DEL, C1, bidi overrides, zero-width) as \\uXXXX escapes; a string whose bytes are not
UTF-8 is shown with U+FFFD in their place, and its exact bytes are in the line's "b64"
object, base64 under the string's JSON Pointer: {"b64": {"/argv/1": "Y2Fm6SD/"}}.
In memory, such text holds the bytes as lone surrogates (Python's "surrogateescape").
"""

from __future__ import annotations

import base64
import functools
import json
import re
import time
import unicodedata
from datetime import datetime, timezone
from typing import Any

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


def _plain(text: str) -> bool:
    """ASCII without control characters: nothing _unsafe, known without a look at each
    character (most of what is traced)."""
    return text.isascii() and text.isprintable()


def _columns(ch: str) -> int:
    """How many terminal columns a safe character takes: 2 for East Asian wide ones, 0
    for those that combine with the one before."""
    if unicodedata.combining(ch) or unicodedata.category(ch) == "Me":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def pad(cell: str, width: int, *, right: bool = False) -> str:
    """`cell` (safe text) padded with spaces to `width` terminal columns: a wide
    character takes two, as ljust/rjust do not count it."""
    room = width - (len(cell) if cell.isascii() else sum(_columns(ch) for ch in cell))
    if room <= 0:
        return cell
    return " " * room + cell if right else cell + " " * room


def fit(line: str, width: int | None, mark: str) -> str:
    """`line` (safe text) as it fits in `width` terminal columns: cut, ending in `mark`
    (one column), when it is wider; whole when `width` is None."""
    if not width or len(line) <= width and line.isascii():
        return line
    if sum(_columns(ch) for ch in line) <= width:
        return line
    used = 0
    for i, ch in enumerate(line):
        used += _columns(ch)
        if used > width - 1:
            return line[:i] + mark
    return line  # not reached: the line is wider than width - 1


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
    if _plain(text) or not any(_unsafe(c) for c in text):
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
    if "\\" not in text and (_plain(text) or not any(_unsafe(c) for c in text)):
        return text
    return "".join(_escape_char(c) if _unsafe(c) else "\\\\" if c == "\\" else c for c in text)


def safe_str(text: str) -> str:
    """safe_text for text already decoded (surrogateescape)."""
    return safe_text(text.encode("utf-8", "surrogateescape"))


def parent_chain(ancestors: tuple[tuple[int, bytes], ...]) -> str:
    """bash(812) > sshd(700) > systemd(1)."""
    return " > ".join(f"{safe_text(comm)}({pid})" for pid, comm in ancestors)


EXACT_KEY = "b64"  # exact bytes of the strings that are not UTF-8, by JSON Pointer


def json_line(obj: dict[str, object], encoder: json.JSONEncoder = _ENCODER) -> str:
    """JSON text, one line by default: UTF-8 that every parser reads, and the exact bytes
    of any string that is not UTF-8 (see the module's doc)."""
    text = encoder.encode(obj)
    if text.isascii() and "\x7f" not in text:
        return text
    if _SURROGATE.search(text):
        text = encoder.encode(with_exact_bytes(obj))
    chars = _JSON_CHARS
    for c in {*_NOT_ASCII.findall(text), "\x7f"}:  # a few characters, each replaced once
        if chars[ord(c)] != c:
            text = text.replace(c, chars[ord(c)])
    return text


_NOT_ASCII = re.compile("[^\x00-\x7f]")


class _JsonChars(dict[int, str]):
    """For str.translate: a character as JSON writes it, found once per character."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        if ch != "\x7f" and (code < 0x80 or unicodedata.category(ch) not in (
                "Cc", "Cf", "Zl", "Zp", "Co", "Cn")):
            out = ch
        elif code <= 0xFFFF:
            out = f"\\u{code:04x}"
        else:
            code -= 0x10000
            out = f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
        self[ord(ch)] = out
        return out


_JSON_CHARS = _JsonChars()


def with_exact_bytes(obj: dict[str, object]) -> dict[str, object]:
    """The object with each string that is not UTF-8 shown with U+FFFD, and its bytes
    under EXACT_KEY."""
    exact: dict[str, str] = {}

    def walk(value: object, pointer: str) -> object:
        if isinstance(value, str):
            if not _SURROGATE.search(value):
                return value
            raw = value.encode("utf-8", "surrogateescape")
            exact[pointer] = base64.b64encode(raw).decode("ascii")
            return raw.decode("utf-8", "replace")
        if isinstance(value, dict):
            return {k: walk(v, f"{pointer}/{k.replace('~', '~0').replace('/', '~1')}")
                    for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{pointer}/{i}") for i, v in enumerate(value)]
        return value

    out = walk(obj, "")
    assert isinstance(out, dict)
    return {**out, EXACT_KEY: exact}


def exact_strings(obj: dict[str, object]) -> dict[str, object]:
    """A JSON line read back: the strings EXACT_KEY holds the bytes of, as they were
    (surrogateescape); the inverse of with_exact_bytes."""
    exact = obj.pop(EXACT_KEY, None)
    if not isinstance(exact, dict):
        return obj
    for pointer, b64 in exact.items():
        if not isinstance(pointer, str) or not pointer.startswith("/"):
            continue  # not a pointer into this line: nothing to put back
        *path, last = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
        node: Any = obj
        try:
            for token in path:
                node = node[int(token)] if isinstance(node, list) else node[token]
            key: Any = int(last) if isinstance(node, list) else last
            node[key] = base64.b64decode(b64).decode("utf-8", "surrogateescape")
        except (KeyError, IndexError, ValueError, TypeError):
            continue  # not a pointer into this line: its string stays as shown
    return obj


def iso_time(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return f"{_utc_second(seconds)}.{rest // 1000:06d}Z"


@functools.lru_cache(maxsize=4)
def _utc_second(seconds: int) -> str:
    """Calls come in bursts within the same second: format each second once."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def local_time(ns: int) -> str:
    """HH:MM:SS.mmm, local time."""
    local = time.localtime(ns // 1_000_000_000)
    return time.strftime("%H:%M:%S", local) + f".{ns // 1_000_000 % 1000:03d}"


def cut_path(text: str, cut: bool) -> str:
    """A path as tables and reports show it: one whose top is missing (cut at the limit
    of a walk) starts with [...]/."""
    return "[...]/" + text if cut else text
