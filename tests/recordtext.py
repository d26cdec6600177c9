"""Records as a program prints them, written from their layouts (bptrace_exec.records) by
field name: the tests' way to make records without repeating where each field goes."""

from __future__ import annotations

from bptrace_exec.records import PACKED, WORDS, Layout, Who


def record(layout: Layout, tid: int = 0, ident: int = 0, **values: object) -> bytes:
    """Who's numbers, when an exec record has them and they are not given: 0."""
    out = [layout.kind.encode()] + ([b"%d" % tid, b"%d" % ident] if layout.keyed else [])
    for f in layout.fields:
        if f.type in PACKED:
            numbers = [values.get(n, 0) if n in Who._fields else values[n] for n in f.names] \
                if "/" in f.name else list(values[f.name])  # type: ignore[call-overload]
            bits = PACKED[f.type]
            mask = (1 << bits) - 1
            out += [b"%d" % sum((int(n) & mask) << (bits * j)  # type: ignore[call-overload]
                                for j, n in enumerate(numbers[i:i + 2]))
                    for i in range(0, len(numbers), 2)]
            continue
        value = values.get(f.name, 0) if f.name in Who._fields else values[f.name]
        if f.type in ("words", "cwords"):  # records.WORDS little-endian words, zeros past
            raw = (bytes(value) + (b"\0" if f.type == "cwords" else b""))[:8 * WORDS]  # type: ignore[call-overload]
            raw = raw.ljust(8 * WORDS, b"\0")
            out += [b"%d" % int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw), 8)]
            continue
        if f.type == "u64*":
            out += [b"%d" % v for v in value]  # type: ignore[attr-defined]
        elif f.type in ("hex", "comm16", "hexlen"):
            raw = bytes(value)  # type: ignore[call-overload]
            if f.type == "comm16":
                raw = raw.ljust(16, b"\0")
            out.append(" ".join(f"{b:02x}" for b in raw).encode())
        elif f.type == "comm32":
            raw = bytes(value)  # type: ignore[call-overload]
            out.append(raw.ljust(16) + raw.rjust(16))
        elif f.type == "text":
            out.append(bytes(value))  # type: ignore[call-overload]
        else:
            out.append(b"%d" % value)  # type: ignore[str-bytes-safe]
    return b" ".join(out)  # as parse.decode gives it: without the printf's final newline
