"""Traced bytes -> text that is safe to show, and times.

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
from datetime import datetime, timezone

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


def safe_str(text: str) -> str:
    """safe_text for text already decoded (surrogateescape)."""
    return safe_text(text.encode("utf-8", "surrogateescape"))


def parent_chain(ancestors: tuple[tuple[int, bytes], ...]) -> str:
    """bash(812) > sshd(700) > systemd(1)."""
    return " > ".join(f"{safe_text(comm)}({pid})" for pid, comm in ancestors)


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
    """Calls come in bursts within the same second: format each second once."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def local_time(ns: int) -> str:
    """HH:MM:SS.mmm, local time."""
    local = time.localtime(ns // 1_000_000_000)
    return time.strftime("%H:%M:%S", local) + f".{ns // 1_000_000 % 1000:03d}"
