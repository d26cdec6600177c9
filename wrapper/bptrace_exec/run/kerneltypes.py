"""A program as it is run here: the kernel types it reads defined in its text, from this
kernel's BTF (codegen.kerneltypes), so that bpftrace starts without parsing them.

BPTRACE_EXEC_KERNEL_TYPES=bpftrace leaves the program as generated: bpftrace then finds
the types itself, 0.6 s slower, as a way round a kernel whose types these definitions
get wrong.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from bptrace_exec.codegen.kerneltypes import Btf, Unfit, definitions
from bptrace_exec.spec.tracepoint import TRACEFS_ROOTS

BTF_PATH = Path("/sys/kernel/btf/vmlinux")
SWITCH = "BPTRACE_EXEC_KERNEL_TYPES"
_TRACEPOINT = re.compile(r"^tracepoint:(\w+):(\w+)", re.M)


def with_kernel_types(text: str) -> tuple[str, int]:
    """The program to run, and how many lines were put in before its first probe (0:
    none, as when there is no BTF here or the program needs what cannot be defined)."""
    if os.environ.get(SWITCH) == "bpftrace":
        return text, 0
    try:
        btf = Btf(BTF_PATH.read_bytes())
        formats = [_format(category, name) for category, name in
                   dict.fromkeys(_TRACEPOINT.findall(text))]
    except (OSError, Unfit):
        return text, 0
    defined = definitions(btf, text, formats)
    end = text.find("\n */\n")  # the header comment's: the definitions follow it
    if defined is None or end < 0:
        return text, 0
    end += len("\n */\n")
    return text[:end] + defined + text[end:], defined.count("\n")


def _format(category: str, name: str) -> str:
    for root in TRACEFS_ROOTS:
        path = root / "events" / category / name / "format"
        if path.exists():
            return path.read_text()
    raise Unfit(f"no format for tracepoint:{category}:{name}")
