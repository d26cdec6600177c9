"""One line of `bpftrace -f json` output -> one typed record, with the traced bytes exact.

bpftrace's JSON escaper (0.17 through at least 0.27) prints every byte >= 0x80 as
`\\uffffffXX` (a sign-extended char). JSON-decoded, that is U+FFFF followed by the text
"ffXX"; since a real U+FFFF in traced data would itself arrive as three such escapes, every
U+FFFF in a decoded string comes from this bug and is turned back into byte XX. A literal
backslash in traced text arrives as `\\\\` and is never mistaken for one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# Records are built once per line on the hot path: plain slotted dataclasses (a frozen one
# costs an object.__setattr__ call per field).

_SIGNED_BYTE = re.compile("\uffffff([0-9a-fA-F]{2})")
_DECODER = json.JSONDecoder(strict=False)
# Most records are printf text with nothing to unescape but the final newline: those are
# sliced out of the line as they are, without a JSON parser.
_PRINTF_HEAD = b'{"type": "printf", "data": "'
_PRINTF_TAIL = b'\\n"}'
_HEAD_LEN, _TAIL_LEN = len(_PRINTF_HEAD), len(_PRINTF_TAIL)


@dataclass(slots=True)
class Printf:
    text: bytes  # what the program's printf produced, byte for byte, but its final newline


@dataclass(slots=True)
class Attached:
    probes: int


@dataclass(slots=True)
class Lost:
    count: int


@dataclass(slots=True)
class MapData:
    """A map bpftrace printed (at exit, or by print()): its name and JSON value as is."""

    name: str
    value: object


@dataclass(slots=True)
class Note:
    """A record the tracer does not use (helper_error, an unknown type, a garbled line):
    counted and reported, never silently dropped."""

    kind: str
    detail: str


Record = Printf | Attached | Lost | MapData | Note


def restore_bytes(text: str) -> bytes:
    """A JSON-decoded bpftrace string -> the bytes the kernel handed to bpftrace.
    Raises UnicodeEncodeError for a lone surrogate that no byte could have produced."""
    if "\uffff" in text:
        text = _SIGNED_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), text)
    # surrogateescape also round-trips raw high bytes (arm64 prints them unescaped).
    return text.encode("utf-8", "surrogateescape")


def decode_line(line: bytes) -> Record | None:
    """None for the blank lines bpftrace writes at exit; a Note for anything unreadable."""
    if line[-_TAIL_LEN:] == _PRINTF_TAIL and line[:_HEAD_LEN] == _PRINTF_HEAD:
        body = line[_HEAD_LEN:-_TAIL_LEN]
        # find() is twice as fast as `in` on bytes, and these lines are long.
        if body.find(b"\\") < 0 and body.find(b'"') < 0:
            return Printf(body)
    stripped = line.strip()
    if not stripped:
        return None
    try:
        obj = _DECODER.decode(stripped.decode("utf-8", "surrogateescape"))
        kind, data = obj["type"], obj.get("data")
    except (ValueError, TypeError, KeyError, RecursionError):  # RecursionError: deep nesting
        return Note("garbled", _preview(stripped))
    if kind == "printf" and isinstance(data, str):
        if not data.endswith("\n"):  # every format the programs print ends with one
            return Note("garbled", _preview(stripped))
        try:
            return Printf(restore_bytes(data[:-1]))
        except UnicodeEncodeError:  # a \\udXXX escape bpftrace never writes
            return Note("garbled", _preview(stripped))
    if kind == "lost_events":
        count = data.get("events") if isinstance(data, dict) else None
        if isinstance(count, int) and count < 0:  # no bpftrace counts that way
            return Note("garbled", _preview(stripped))
        # Watchpoint code can report lost events as a bare string: still a loss.
        return Lost(count if isinstance(count, int) else 1)
    if kind == "attached_probes" and isinstance(data, dict):
        probes = data.get("probes", 0)
        return Attached(probes if isinstance(probes, int) else 0)
    if kind in ("map", "hist", "stats") and isinstance(data, dict) and len(data) == 1:
        [(name, value)] = data.items()
        return MapData(str(name).lstrip("@"), value)
    return Note(str(kind), _preview(stripped))


def _preview(raw: bytes, limit: int = 300) -> str:
    text = raw[:limit].decode("utf-8", "backslashreplace")
    return text + ("..." if len(raw) > limit else "")
