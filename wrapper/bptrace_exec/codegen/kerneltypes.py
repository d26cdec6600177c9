"""The kernel types a program reads, defined in its own text from the kernel's BTF.

Given `curtask->cred->euid.val`, bpftrace turns every type the access reaches into C
from BTF and has clang parse it, again and again as more are found missing: about 0.5 s
of each start. A program that defines those types itself skips all of it. These
definitions are the kernel's own layout cut down to what the program names: each struct
it reaches has the members of the names it uses (`->name`, `.name`) at their offsets,
padding for the rest, its own size; members of anonymous structs and unions are lifted
into their parent, as C lets them be named there. The typedefs of the tracepoints'
fields, which bpftrace would also take from BTF, are macros.

A program so defined needs no other type from the kernel: bpftrace is handed NO_TYPES_BTF
instead of the kernel's BTF, which bpftrace 0.17 searches, one by one of its ~125,000
types, for the name of every cast and every `curtask` (0.17 s of each start).

Pure: the caller reads BTF (/sys/kernel/btf/vmlinux) and the format files. Whatever
falls outside this plan (a union, a packed struct, a bitfield or overlapping members
named, two types of one name, a typedef that is not a number, a macro the program would
expand, a tracepoint's field followed to a struct, a member named of a type not defined
here, a cast to a type not bpftrace's own) gives None: bpftrace then finds the types
itself in the kernel's BTF, as slowly as ever.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator

_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM, _FWD, _TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
_FUNC_PROTO, _FLOAT, _ENUM64 = 13, 16, 19
_QUALIFIERS = {9, 10, 11, 18}  # volatile, const, restrict, type tag
_AGGREGATES = {_STRUCT, _UNION}
# bytes after a type's 12-byte head: fixed, or per member (vlen of them)
_FIXED = {_INT: 4, _ARRAY: 12, 14: 4, 17: 4}
_EACH = {_STRUCT: 12, _UNION: 12, _ENUM: 8, _FUNC_PROTO: 8, 15: 12, _ENUM64: 12}
_UNSIGNED = {1: "unsigned char", 2: "unsigned short", 4: "unsigned int",
             8: "unsigned long long"}
# what bpftrace writes for a syscall's 8-byte argument declared int or long
_BPFTRACE_TYPES = {"s8": "signed char", "u8": "unsigned char", "s16": "short",
                   "u16": "unsigned short", "s32": "int", "u32": "unsigned int",
                   "s64": "long long", "u64": "unsigned long long"}
_C_WORDS = {"const", "volatile", "unsigned", "signed", "char", "short", "int", "long",
            "bool", "_Bool", "void", "__data_loc"}
_NAMED = re.compile(r"(?:->|\.)\s*([A-Za-z_]\w*)")
_TAGGED = re.compile(r"\b(?:struct|union)\s+(\w+)")
# what only the kernel's BTF could give: a tracepoint's field followed (its struct is
# in no format file), a cast to a name neither a struct's nor one of bpftrace's integers
_BEYOND = re.compile(r"\bargs\s*(?:->|\.)\s*\w+\s*(?:->|\.)\s*[A-Za-z_]|"
                     r"\(\s*(?!u?int(?:8|16|32|64)\b)[A-Za-z_]\w*\s*\**\s*\)\s*[\w$@(]")
_NOT_CODE = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:[^"\\\n]|\\.)*"', re.S)
_FIELD_TYPE = re.compile(r"^\s*field:([^;]+?)\s*[\w\[\]]+;", re.M)
_FIELD_NAME = re.compile(r"^\s*field:[^;]*?(\w+)(?:\[\d*\])?;", re.M)
_MEMBER = re.compile(r"^  .*?\(?\**(\w+)\)?(?:\[\d+\])*;$", re.M)  # of a definition

# BTF with no type at all (its strings: the empty name)
NO_TYPES_BTF = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 0, 0, 1) + b"\0"


class Unfit(Exception):
    """The program needs what these definitions do not give."""


class Btf:
    """An index of a BTF blob's types, by id."""

    def __init__(self, data: bytes) -> None:
        magic, _, _, head, types, types_len, strings, strings_len = struct.unpack_from(
            "<HBBIIIII", data)
        if magic != 0xEB9F:
            raise Unfit("not BTF")
        self.data = data
        self.strings = data[head + strings: head + strings + strings_len]
        self.at = [0]  # where each type starts; id 0 is void
        p, end = head + types, head + types + types_len
        unpack = struct.unpack_from
        while p < end:
            self.at.append(p)
            info = unpack("<I", data, p + 4)[0]
            kind = info >> 24 & 0x1F
            p += 12 + _FIXED.get(kind, 0) + _EACH.get(kind, 0) * (info & 0xFFFF)

    def type(self, tid: int) -> tuple[str, int, int, bool, int]:
        """(name, kind, vlen, kind flag, size or referenced type)."""
        name, info, size = struct.unpack_from("<III", self.data, self.at[tid])
        return self._name(name), info >> 24 & 0x1F, info & 0xFFFF, bool(info >> 31), size

    def _name(self, offset: int) -> str:
        return self.strings[offset:self.strings.index(b"\0", offset)].decode()

    def named(self, name: str, kinds: Iterable[int]) -> int:
        """The id of the type of that name and one of those kinds."""
        wanted = set(kinds)
        offset = self.strings.find(b"\0" + name.encode() + b"\0") + 1
        if offset > 0:
            for tid in range(1, len(self.at)):
                n, info = struct.unpack_from("<II", self.data, self.at[tid])
                if n == offset and info >> 24 & 0x1F in wanted:
                    return tid
        raise Unfit(f"no type {name}")

    def members(self, tid: int) -> Iterator[tuple[str, int, int, int]]:
        """(name, type, offset in bits, bitfield size) of a struct or union."""
        _, _, vlen, bitfields, _ = self.type(tid)
        for i in range(vlen):
            name, t, offset = struct.unpack_from("<III", self.data, self.at[tid] + 12 + 12 * i)
            yield (self._name(name), t, offset & 0xFFFFFF if bitfields else offset,
                   offset >> 24 if bitfields else 0)

    def array(self, tid: int) -> tuple[int, int]:
        """(element type, count)."""
        element, _, count = struct.unpack_from("<III", self.data, self.at[tid] + 12)
        return element, count


def definitions(btf: Btf, program: str, formats: Iterable[str]) -> str | None:
    """The text to put before the program's first probe, or None (see above). `formats`:
    the format files of the tracepoints it attaches to."""
    code = _NOT_CODE.sub(" ", program)
    if _BEYOND.search(code):
        return None
    formats = list(formats)
    try:
        text = _Definer(btf, set(_NAMED.findall(code))).text(
            ["task_struct", *_TAGGED.findall(code)], formats, program)
    except Unfit:
        return None
    # every member the code names is one of these types' or a tracepoint's field: else
    # it belongs to a type reached some other way ($v = args->ptr; $v->name)
    fields = {name for fmt in formats for name in _FIELD_NAME.findall(fmt)}
    members = set(_MEMBER.findall(text))
    return text if set(_NAMED.findall(code)) <= members | fields else None


class _Definer:
    def __init__(self, btf: Btf, used: set[str]) -> None:
        self.btf, self.used = btf, used
        self.defined: dict[int, None] = {}  # defined, or being defined
        self.bodies: list[str] = []
        self.tags: dict[int, str] = {}  # anonymous structs a typedef names
        self.owners: dict[str, int] = {}  # the type each tag stands for

    def text(self, roots: list[str], formats: Iterable[str], program: str) -> str:
        for name in dict.fromkeys(roots):
            self._define(self.btf.named(name, _AGGREGATES))
        macros = dict(_BPFTRACE_TYPES)
        for fmt in formats:
            for ctype in _FIELD_TYPE.findall(fmt):
                for word in re.findall(r"[A-Za-z_]\w*", re.sub(r"struct\s+\w+", "", ctype)):
                    if word not in _C_WORDS and word not in macros:
                        macros[word] = self._number(word)
        words = set(re.findall(r"\w+", program))
        if words & macros.keys():  # bpftrace expands a macro in the program too
            raise Unfit(f"the program names {sorted(words & macros.keys())}")
        lines = [f"#define {name} {ctype}" for name, ctype in macros.items()]
        lines += sorted({f"{self._tag(t)};" for t in self.defined})
        return "\n".join(lines) + "\n" + "\n".join(self.bodies) + "\n"

    def _number(self, typedef: str) -> str:
        """The integer type a tracepoint field's typedef stands for."""
        tid = self._bare(self.btf.named(typedef, [_TYPEDEF]))
        name, kind, _, _, size = self.btf.type(tid)
        if kind == _INT:
            return name
        if kind in (_ENUM, _ENUM64) and size in _UNSIGNED:
            return _UNSIGNED[size]
        raise Unfit(f"{typedef} is not a number")

    def _tag(self, tid: int) -> str:
        name, kind, *_ = self.btf.type(tid)
        keyword = "union" if kind == _UNION else "struct"
        tag = f"{keyword} {name or self.tags.setdefault(tid, f'anon_{tid}')}"
        if self.owners.setdefault(tag, tid) != tid:  # BTF has a few names twice
            raise Unfit(f"two types named {tag}")
        return tag

    def _bare(self, tid: int) -> int:
        """The type without typedefs and qualifiers; an anonymous struct keeps the name
        of its typedef (kuid_t)."""
        while tid:
            name, kind, _, _, target = self.btf.type(tid)
            if kind == _TYPEDEF:
                if self.btf.type(target)[1] in _AGGREGATES and not self.btf.type(target)[0]:
                    self.tags.setdefault(target, name)
            elif kind not in _QUALIFIERS:
                return tid
            tid = target
        return 0

    def _declare(self, tid: int, what: str, needs: list[int]) -> str:
        tid = self._bare(tid)
        if tid == 0:
            return f"void {what}"
        name, kind, _, _, size = self.btf.type(tid)
        if kind == _INT:
            return f"{name} {what}"
        if kind in (_ENUM, _ENUM64) and size in _UNSIGNED:
            return f"{_UNSIGNED[size]} {what}"
        if kind == _ARRAY:
            element, count = self.btf.array(tid)
            return self._declare(element, f"{what}[{count}]", needs)
        if kind in _AGGREGATES:
            needs.append(tid)
            return f"{self._tag(tid)} {what}"
        if kind == _FWD:
            return f"struct {name} {what}"
        if kind == _PTR:
            target = self._bare(size)
            target_kind = self.btf.type(target)[1] if target else 0
            if target == 0 or target_kind == _FUNC_PROTO:
                return f"void *{what}"
            pointer = f"(*{what})" if target_kind == _ARRAY else f"*{what}"
            return self._declare(target, pointer, needs)
        raise Unfit(f"a member of kind {kind}")

    def _size(self, tid: int) -> int:
        tid = self._bare(tid)
        _, kind, _, _, size = self.btf.type(tid)
        if kind == _PTR:
            return 8
        if kind == _ARRAY:
            element, count = self.btf.array(tid)
            return self._size(element) * count
        return size

    def _align(self, tid: int) -> int:
        """Where C places a member of this type, as defined here: padding is chars."""
        tid = self._bare(tid)
        kind = self.btf.type(tid)[1]
        if kind == _ARRAY:
            return self._align(self.btf.array(tid)[0])
        if kind in _AGGREGATES:
            return max((self._align(t) for _, _, t in self._members(tid, 0)), default=1)
        return min(self._size(tid), 8) or 1

    def _members(self, tid: int, base: int) -> Iterator[tuple[int, str, int]]:
        """(byte offset, name, type) of the members named, anonymous ones lifted."""
        for name, t, bits, bitfield in self.btf.members(tid):
            if not name:
                inner = self._bare(t)
                if self.btf.type(inner)[1] in _AGGREGATES:
                    yield from self._members(inner, base + bits)
            elif name in self.used:
                if bitfield or (base + bits) % 8:
                    raise Unfit(f"{name} is a bitfield")
                yield (base + bits) // 8, name, t

    def _define(self, tid: int) -> None:
        if tid in self.defined:
            return
        if self.btf.type(tid)[1] == _UNION:  # its members share offsets: not cut down
            raise Unfit(f"{self._tag(tid)} is a union")
        self.defined[tid] = None  # before its members: a pointer back to it is fine
        lines, at, needs, align = [], 0, [], 1
        for offset, name, t in sorted(self._members(tid, 0)):
            if offset < at:
                raise Unfit(f"{name} overlaps another member")
            member_align = self._align(t)
            if offset % member_align:  # a packed struct's: C would move it
                raise Unfit(f"{name} is not aligned")
            align = max(align, member_align)
            if offset > at:
                lines.append(f"  char __pad{at}[{offset - at}];")
            embedded: list[int] = []
            lines.append(f"  {self._declare(t, name, embedded)};")
            needs += embedded
            at = offset + self._size(t)
        size = self.btf.type(tid)[4]
        if size % align:  # a packed struct's: C would round its size up
            raise Unfit(f"{self._tag(tid)} is packed")
        if size > at:
            lines.append(f"  char __pad{at}[{size - at}];")
        for need in needs:
            self._define(need)
        self.bodies.append("\n".join([f"{self._tag(tid)} {{", *lines, "};"]))
