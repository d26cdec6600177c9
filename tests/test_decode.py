"""One bpftrace JSON line -> one record, with traced bytes restored exactly."""

from __future__ import annotations

import json

import pytest

from bptrace_exec.parse.decode import Attached, Lost, Note, Printf, decode_line, restore_bytes


def bpftrace_escape(raw: bytes) -> str:
    """What bpftrace's json_escape prints for these bytes (signed-char bug included)."""
    out = []
    for b in raw:
        c = chr(b)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif b <= 0x1F:
            out.append(f"\\u{b:04x}")
        elif b >= 0x80:
            out.append(f"\\u{0xFFFFFF00 | b:08x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def line_for(raw: bytes) -> bytes:
    """A printf of these bytes, and the final newline every format has."""
    return ('{"type": "printf", "data": ' + bpftrace_escape(raw + b"\n") + "}").encode()


@pytest.mark.parametrize("raw", [
    "ü".encode(), b"\xff\xfe\x80", b"literal \\uffffffc3 text", b"literal \\x00",
    b"back\\\\slashes\\", b'"quoted"', b"\x01\x1b[31m\n\t\r", "\uffff".encode(),
    bytes(range(1, 256)),
])
def test_printf_bytes_round_trip(raw: bytes) -> None:
    record = decode_line(line_for(raw))
    assert record == Printf(raw)


def test_a_real_signed_char_escape() -> None:
    line = b'{"type": "printf", "data": "\\uffffffc3\\uffffffbc and \\\\uffffffc3\\n"}'
    assert decode_line(line) == Printf("ü and \\uffffffc3".encode())


def test_raw_high_bytes_as_arm64_prints_them() -> None:
    line = b'{"type": "printf", "data": "\xc3\xbc\xff\\n"}'
    assert decode_line(line) == Printf(b"\xc3\xbc\xff")


@pytest.mark.parametrize("line,record", [
    (b'{"type": "attached_probes", "data": {"probes": 10}}', Attached(10)),
    (b'{"type": "lost_events", "data": {"events": 123}}', Lost(123)),
    (b'{"type": "lost_events", "data": "watchpoint"}', Lost(1)),
])
def test_control_records(line: bytes, record: object) -> None:
    assert decode_line(line) == record


@pytest.mark.parametrize("line", [b"", b"   ", b"\r\n"])
def test_blank_lines_are_skipped(line: bytes) -> None:
    assert decode_line(line) is None


@pytest.mark.parametrize("line,kind", [
    (b'{"type":"helper_error","msg":"Map full","helper":"map_update_elem","retcode":-7}',
     "helper_error"),
    (b'{"type": "value", "data": [1, 2]}', "value"),
    (b'{"type": "printf", "data": "cut', "garbled"),
    (b'{"type": "printf", "data": "no newline"}', "garbled"),
    (b'{"type": "lost_events", "data": {"events": -5}}', "garbled"),  # edited, not lost
    (b"[" * 100_000 + b"]" * 100_000, "garbled"),  # past Python's recursion limit
    (b"ERROR: something", "garbled"),
    (b'["not", "an", "object"]', "garbled"),
    (b'{"data": 1}', "garbled"),
])
def test_everything_else_is_a_note_not_an_exception(line: bytes, kind: str) -> None:
    record = decode_line(line)
    assert isinstance(record, Note) and record.kind == kind


def test_restore_bytes_leaves_plain_text_alone() -> None:
    assert restore_bytes("plain") == b"plain"
    assert restore_bytes(json.loads('"\\uffffffe2\\uffffff9c\\uffffff93"')) == "✓".encode()
