"""What a syscall's entry tracepoint carries on this kernel, read from its format file.

A profile that names an argument is checked against these fields, so that a typo is
refused with the list of valid names before bpftrace is ever started.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TRACEFS_ROOTS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
_FIELD = re.compile(r"^\s*field:(?P<decl>[^;]+);\s*offset:\d+;\s*size:(?P<size>\d+);")


@dataclass(frozen=True)
class Field:
    name: str
    ctype: str  # as the kernel declares it: "const char *", "int", "struct sockaddr *"

    @property
    def pointer(self) -> bool:
        return self.ctype.endswith("*")


def parse_format(text: str) -> tuple[Field, ...]:
    """The syscall's own arguments: common_* fields and __syscall_nr are left out."""
    fields = []
    for line in text.splitlines():
        m = _FIELD.match(line)
        if not m:
            continue
        decl = m.group("decl").strip()
        split = max(decl.rfind(" "), decl.rfind("*"))
        ctype, name = decl[:split + 1].strip(), decl[split + 1:].strip()
        if name.startswith("common_") or name == "__syscall_nr":
            continue
        fields.append(Field(name, ctype))
    return tuple(fields)


# A lookup answers with the fields, None for "no such syscall tracepoint", or UNKNOWN
# when the format cannot be read here (no tracefs, not root): checks are left to bpftrace.
UNKNOWN = ("unknown",)
FieldLookup = Callable[[str], "tuple[Field, ...] | None | tuple[str]"]


def _events_dir() -> Path | None:
    for root in TRACEFS_ROOTS:
        d = root / "events" / "syscalls"
        try:
            if d.is_dir():
                return d
        except OSError:
            continue
    return None


def syscall_fields(name: str) -> tuple[Field, ...] | None | tuple[str]:
    d = _events_dir()
    if d is None:
        return UNKNOWN
    try:
        return parse_format((d / f"sys_enter_{name}" / "format").read_text())
    except FileNotFoundError:
        return None if d.joinpath("sys_enter_openat").exists() else UNKNOWN
    except OSError:
        return UNKNOWN


def available_syscalls() -> list[str]:
    d = _events_dir()
    if d is None:
        return []
    try:
        return sorted(p.name[len("sys_enter_"):] for p in d.iterdir()
                      if p.name.startswith("sys_enter_"))
    except OSError:
        return []
