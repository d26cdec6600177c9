"""Record layouts (bptrace_exec.records) compiled into parsers: a record's text -> its key
and, for each part of a call it fills, the handler and the part's fields in the part's
order (records.PARTS), so that no field is found by a position written here.

Parsers are built once per run, for the profile (how many numbers each probe's closing
record has) and the record version; a record that does not have its layout's shape
raises ValueError, IndexError or KeyError, which the joiner counts as malformed.
"""

from __future__ import annotations

import platform
import struct
from collections.abc import Callable, Mapping
from typing import Any

from bptrace_exec.records import PACKED, PARTS, VERSIONS, WORDS, Closing, Field, Layout

# (text, the calls in flight by key, now) -> the key and the call's parts, the record taken
Parser = Callable[[bytes, dict[tuple[bytes, bytes], Any], int], tuple[tuple[bytes, bytes], Any]]
# Compiled into every parser: how each part is stored (a statement over its fields, by
# name), and what those statements use (their names start with _, fields' never do):
# _Parts(tid, id, now), the parts of a call first seen; _full, how many calls may be in
# flight, _evict() making room for one more.
Stores = Mapping[str, str]
COMM_LEN = 16
_COMM_HEX = 3 * COMM_LEN - 1  # "62 61 ..." with a space between each byte
_NUMBERS = ("u64", "s64", "u8", "u32x2")
_REPEATED = ("u64*", "i32x2*")
# syscall numbers of version 1's exec records, for the architectures Debian ships bpftrace on
_SYSCALL_NAMES = {
    "x86_64": {59: "execve", 322: "execveat"},
    "aarch64": {221: "execve", 281: "execveat"},
}.get(platform.machine(), {})


def parsers(version: int, probes: tuple[str, ...], ints_per_probe: list[int],
            stores: Stores, scope: Mapping[str, Any]) -> dict[bytes, Parser]:
    """Each keyed record kind of that version -> its parser."""
    return {layout.kind.encode(): compile_layout(layout, probes, ints_per_probe, stores,
                                                 scope)
            for layout in VERSIONS[version] if layout.keyed}


def comm_from_hex(hex_tokens: bytes) -> bytes:
    raw = bytes.fromhex(hex_tokens.decode("ascii"))
    if len(raw) != COMM_LEN:
        raise ValueError("comm is not 16 bytes")
    return raw.split(b"\0", 1)[0]


def comm_from_padded(field: bytes) -> bytes:
    """records.FORMATS["comm32"] -> the comm: the right-padded half gives its leading
    spaces, the left-padded one its trailing ones. A comm of spaces only reads as ""."""
    if len(field) != 2 * COMM_LEN:
        raise ValueError("a padded comm is not 32 bytes")
    left, right = field[:COMM_LEN], field[COMM_LEN:]
    core = left.strip(b" ")
    if not core:
        return b""
    leading = len(left) - len(left.lstrip(b" "))
    trailing = len(right) - len(right.rstrip(b" "))
    return b" " * leading + core + b" " * trailing


def unpacked(word: int, field: Field) -> list[int]:
    """A number of records.PACKED's -> the numbers in it, lowest first."""
    bits = PACKED[field.type]
    mask = (1 << bits) - 1
    return [(word >> (bits * i)) & mask for i in range(len(field.names))]


_HIGH32 = 0xFFFFFFFF00000000


def unpacked_ints(words: list[bytes], count: int) -> tuple[int, ...]:
    """records.FORMATS["i32x2*"]: `count` numbers, two in each word, each the 64 bits its
    32 say as a signed number (what the kernel's int gave as u64 before)."""
    out: list[int] = []
    for word in words:
        value = int(word)
        for half in (value & 0xFFFFFFFF, value >> 32):
            out.append(half | _HIGH32 if half & 0x80000000 else half)
    if len(out) - count not in (0, 1) or (len(out) > count and out[-1]):
        raise ValueError("not as many numbers as its probe has")
    return tuple(out[:count])


_PACK = struct.Struct(f"<{WORDS}Q").pack  # records.WORDS little-endian words


def _as_bytes(words: list[bytes]) -> bytes:
    try:
        return _PACK(*map(int, words))
    except struct.error as exc:  # not as many words, or one past 64 bits: malformed
        raise ValueError(f"not {WORDS} words of 64 bits: {exc}") from None


def from_words(words: list[bytes], length: int) -> bytes:
    """records.FORMATS["words"] -> the `length` bytes; those past it must be zero."""
    raw = _as_bytes(words)
    if length > len(raw) or raw[length:].strip(b"\0"):
        raise ValueError("not the words of as many bytes as its length")
    return raw[:length]


def string_from_words(words: list[bytes]) -> bytes:
    """records.FORMATS["cwords"] -> the string: the bytes before the first NUL."""
    return _as_bytes(words).split(b"\0", 1)[0]


_WORDS = {"words": "_from_words(f[{at}:{end}], length)",
          "cwords": "_string_from_words(f[{at}:{end}])"}


def compile_layout(layout: Layout, probes: tuple[str, ...], ints_per_probe: list[int],
                   stores: Stores, scope: Mapping[str, Any]) -> Parser:
    names = list(layout.names())
    fast = _generated(layout, stores, ints_per_probe, scope)
    if fast is not None:
        return fast

    def probe_of_nr(nr: int) -> int:
        return probes.index(_SYSCALL_NAMES.get(nr, f"syscall_{nr}"))

    split = _splitter(layout.fields, names, ints_per_probe, probe_of_nr)
    fills = [(_handler(part, stores[part], scope), _arranger(part, names, layout.constants))
             for part in layout.parts]

    def parse(text: bytes, pending: dict[tuple[bytes, bytes], Any], now: int
              ) -> tuple[tuple[bytes, bytes], Any]:
        tid, ident, values = split(text)
        key = (tid, ident)
        parts = pending.get(key)
        fresh = parts is None
        if fresh:
            if len(pending) >= scope["_full"]:
                scope["_evict"]()
            parts = scope["_Parts"](int(tid), int(ident), now)
        for handler, arrange in fills:
            handler(parts, *(arrange(values) if arrange else values))
        if fresh:
            pending[key] = parts
        return key, parts
    return parse


def _compiled(source: str, name: str, scope: Mapping[str, Any], function: str) -> Any:
    space = dict(scope)
    exec(compile(source, f"<{name}>", "exec"), space)
    made = space[function]
    made.__doc__ = source  # what was generated, for whoever debugs it
    return made


def _handler(part: str, store: str, scope: Mapping[str, Any]) -> Callable[..., None]:
    """A part's store statement as a function of the part's fields."""
    fields: tuple[str, ...] = PARTS[part]._fields  # type: ignore[attr-defined]
    source = (f"def store(parts, {', '.join(fields)}):\n"
              f"    {store.format(**{f: f for f in fields})}\n")
    return _compiled(source, f"store {part}", scope, "store")  # type: ignore[no-any-return]


def _part_fields(layout: Layout, part: str) -> dict[str, str] | None:
    """The part's fields as expressions: a field of the layout by name, or a constant;
    None when the layout does not say one of them (an earlier version's shape)."""
    names = set(layout.names())
    out = {}
    for name in PARTS[part]._fields:  # type: ignore[attr-defined]
        if name in names:
            out[name] = name
        elif f"{part}.{name}" in layout.constants:
            out[name] = repr(layout.constants[f"{part}.{name}"])
        elif name in layout.constants:
            out[name] = repr(layout.constants[name])
        else:
            return None
    return out


def _generated(layout: Layout, stores: Stores, ints_per_probe: list[int],
               scope: Mapping[str, Any]) -> Parser | None:
    """For a layout of numbers (one of them maybe repeated, as many times as the probe in
    its first field has numbers), then fields of known width (a comm, bytes as many as
    `length` says) and the rest of the line, or of numbers only, as this version's are: a
    parser written for it, each field converted and stored where it is, which is twice as
    fast as going through the general one. None for other shapes."""
    types = [f.type for f in layout.fields]
    rest = types[-1] in ("text", "hex")
    numbers = len(types) - rest
    while numbers and types[numbers - 1] in ("comm16", "comm32", "hexlen"):
        numbers -= 1
    tail = numbers < len(types)  # fields of known width, or the rest, after the numbers
    repeats = [t for t in types if t in _REPEATED]
    if any(t not in (*_NUMBERS, *_REPEATED, *_WORDS) for t in types[:numbers]) \
            or len(repeats) > 1:
        return None
    takes = [fields for part in layout.parts if (fields := _part_fields(layout, part))]
    if len(takes) < len(layout.parts):
        return None
    repeated = bool(repeats)
    if repeated and layout.fields[0].type not in ("u64", "s64", "u8"):
        return None
    fixed = numbers - repeated + (WORDS - 1) * sum(map(types.count, _WORDS))  # tokens once
    lines = ["def parse(line, pending, now):"]
    if repeated:  # the first field says how many numbers are repeated
        lines += ["    count = _ints[int(line.split(b' ', 4)[3])]",
                  "    words = (count + 1) // 2" if repeats == ["i32x2*"] else "    words = count",
                  f"    f = line.split(b' ', {3 + fixed} + words)" if tail else
                  "    f = line.split(b' ')",
                  f"    if len(f) != {3 + fixed + tail} + words:",
                  "        raise ValueError('not as many numbers as its probe has')"]
    elif tail:
        lines += [f"    f = line.split(b' ', {3 + fixed})"]
    else:
        lines += ["    f = line.split(b' ')",
                  f"    if len(f) != {3 + fixed}:",
                  "        raise ValueError('not as many numbers as its layout has')"]
    at = "3"  # each field converted into a local of its name, before anything is kept
    for field in layout.fields[:numbers]:
        if field.type in _REPEATED:
            value = (f"tuple(map(int, f[{at}:{at} + count]))" if field.type == "u64*" else
                     f"_unpacked_ints(f[{at}:{at} + words], count)")
            at = f"{at} + words"
        elif field.type in _WORDS:
            end = str(int(at) + WORDS) if at.isdigit() else f"{at} + {WORDS}"
            value = _WORDS[field.type].format(at=at, end=end)
            at = end
        else:
            value = f"int(f[{at}])"
            at = str(int(at) + 1) if at.isdigit() else f"{at} + 1"
        if field.type in PACKED and field.type not in _REPEATED:
            bits = PACKED[field.type]
            lines.append(f"    _word = {value}")
            lines += [f"    {name} = (_word >> {bits * i}) & {hex((1 << bits) - 1)}"
                      for i, name in enumerate(field.names)]
        else:
            lines.append(f"    {field.name} = {value}")
    if numbers < len(types) - rest:  # the widths of the fields after the numbers
        lines.append(f"    rest, pos = f[{at}], 0")
        at = "rest[pos:]"
    else:
        at = f"f[{at}]"
    for field in layout.fields[numbers:]:
        if field.type == "comm16":
            lines += [f"    {field.name} = _comm(rest[pos:pos + {_COMM_HEX}])",
                      f"    pos += {_COMM_HEX + 1}"]
        elif field.type == "comm32":
            lines += [f"    {field.name} = _padded(rest[pos:pos + {2 * COMM_LEN}])",
                      f"    pos += {2 * COMM_LEN + 1}"]
        elif field.type == "hexlen":  # %rh of no bytes is nothing, and then the space
            lines += ["    end = pos + 3 * length - 1 if length else pos",
                      f"    {field.name} = bytes.fromhex(rest[pos:end].decode('ascii'))",
                      f"    if len({field.name}) != length or rest[end:end + 1] != b' ':",
                      "        raise ValueError('not as many bytes as its length')",
                      "    pos = end + 1"]
        elif field.type == "text":
            lines.append(f"    {field.name} = {at}")
        else:
            lines.append(f"    {field.name} = bytes.fromhex({at}.decode('ascii'))")
    if tail and not rest:  # fields of known width last: nothing after them
        lines += ["    if pos != len(rest) + 1:",
                  "        raise ValueError('the record goes on after its last field')"]
    take = "; ".join(stores[part].format(**fields)
                     for part, fields in zip(layout.parts, takes, strict=True))
    lines += ["    key = (f[1], f[2])",
              "    parts = pending.get(key)",
              "    if parts is None:",  # kept only once the record is taken
              "        if len(pending) >= _full:",
              "            _evict()",
              "        parts = _Parts(int(f[1]), int(f[2]), now)",
              f"        {take}",
              "        pending[key] = parts",
              "    else:",
              f"        {take}",
              "    return key, parts"]
    return _compiled("\n".join(lines) + "\n", f"layout {layout.kind}",  # type: ignore[no-any-return]
                     {**scope, "_ints": ints_per_probe, "_comm": comm_from_hex,
                      "_padded": comm_from_padded, "_unpacked_ints": unpacked_ints,
                      "_from_words": from_words, "_string_from_words": string_from_words},
                     "parse")


def _splitter(fields: tuple[Field, ...], names: list[str], ints_per_probe: list[int],
              probe_of_nr: Callable[[int], int]
              ) -> Callable[[bytes], tuple[bytes, bytes, Any]]:
    """The record's text -> TID, ID and its fields' values in the layout's order (those
    packed in one, each): the way for any layout (those of earlier versions), field after
    field."""
    probe = names.index("probe") if "probe" in names else 0

    def general(text: bytes) -> tuple[bytes, bytes, tuple[Any, ...]]:
        f = text.split(b" ", 3)
        body = f[3]
        values: list[Any] = []
        pos = 0
        for field in fields:
            t = field.type
            if t in ("text", "hex"):
                rest = body[pos:]
                values.append(bytes.fromhex(rest.decode("ascii")) if t == "hex" else rest)
                pos = len(body)
            elif t == "comm16":
                values.append(comm_from_hex(body[pos:pos + _COMM_HEX]))
                pos += _COMM_HEX + 1
            elif t == "comm32":
                values.append(comm_from_padded(body[pos:pos + 2 * COMM_LEN]))
                pos += 2 * COMM_LEN + 1
            elif t == "hexlen":
                length = values[names.index("length")]
                end = pos + 3 * length - 1 if length else pos
                values.append(bytes.fromhex(body[pos:end].decode("ascii")))
                pos = end + 1
            elif t in _REPEATED:
                count = ints_per_probe[int(values[probe])]
                items = []
                for _ in range(count if t == "u64*" else (count + 1) // 2):
                    pos, value = _number(body, pos)
                    items.append(value)
                values.append(tuple(items) if t == "u64*" else
                              unpacked_ints([str(i).encode() for i in items], count))
            elif t in PACKED:
                pos, value = _number(body, pos)
                values += unpacked(value, field)
            elif t in _WORDS:
                tokens = []
                for _ in range(WORDS):
                    pos, value = _number(body, pos)
                    tokens.append(b"%d" % value)
                values.append(from_words(tokens, values[names.index("length")])
                              if t == "words" else string_from_words(tokens))
            else:
                pos, value = _number(body, pos)
                values.append(probe_of_nr(value) if t == "nr" else value)
        if pos < len(body):
            raise ValueError("the record goes on after its last field")
        return f[1], f[2], tuple(values)
    return general


def _number(body: bytes, pos: int) -> tuple[int, int]:
    end = body.find(b" ", pos)
    if end < 0:
        end = len(body)
    return end + 1, int(body[pos:end])


def _arranger(part: str, names: list[str], constants: dict[str, int]
              ) -> Callable[[tuple[Any, ...]], tuple[Any, ...]] | None:
    """The layout's values -> the part's fields, by name (constants where implied); None
    when they are already the same."""
    fields: tuple[str, ...] = PARTS[part]._fields  # type: ignore[attr-defined]
    if list(fields) == names:
        return None
    if part == "call":  # recordings of version 1: numbers named one by one, comm elsewhere
        ints = [i for i, n in enumerate(names) if n == "ints"]
        comm = names.index("comm") if "comm" in names else -1
        head = [names.index(f) for f in Closing._fields[:-2]]

        def closing(values: tuple[Any, ...]) -> tuple[Any, ...]:
            numbers = tuple(values[i] for i in ints)
            if len(numbers) == 1 and isinstance(numbers[0], tuple):
                numbers = numbers[0]
            return (*(values[i] for i in head), numbers, values[comm] if comm >= 0 else None)
        return closing
    sources = [(names.index(f), 0) if f in names else
               (-1, constants.get(f"{part}.{f}", constants.get(f, 0))) for f in fields]
    return lambda values: tuple(values[i] if i >= 0 else c for i, c in sources)
