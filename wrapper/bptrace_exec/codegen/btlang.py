"""The only way values enter generated bpftrace text: checked numbers, escaped strings."""

from __future__ import annotations

import re
import string

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")

# Bytes written as themselves inside a bpftrace string literal; everything else becomes a
# three-digit octal escape, which both 0.17 and 0.23 read and which never runs on into a
# following digit (unlike \x, whose length is open-ended in C).
_PLAIN = frozenset(
    (string.ascii_letters + string.digits + " _-.,:/@+=%#~^[](){}<>!?*&|;'").encode())


def string_literal(value: str) -> str:
    """A bpftrace string literal whose bytes are exactly value's UTF-8 bytes."""
    raw = value.encode("utf-8", "surrogateescape")
    if b"\0" in raw:
        raise ValueError("a NUL byte cannot be part of a bpftrace string")
    return '"' + "".join(chr(b) if b in _PLAIN else f"\\{b:03o}" for b in raw) + '"'


def int_literal(value: int, low: int, high: int) -> str:
    """A decimal literal, refused outside [low, high] (and for anything not an int)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{value!r} is not a whole number in [{low}, {high}]")
    return str(value)


def comment_text(value: str) -> str:
    """Text safe inside a /* */ comment: printable, never closing it early, and never
    opening another (in case a lexer nests them)."""
    printable = "".join(c if c.isprintable() else "?" for c in value)
    return printable.replace("*/", "*\\/").replace("/*", "/\\*")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """A bpftrace version, from `bpftrace --version` or what a header says (v0.23.2)."""
    match = _VERSION.search(text)
    if not match:
        return None
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch
