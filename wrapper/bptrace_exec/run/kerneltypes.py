"""A program as it is run here: the kernel types it reads defined in its text, from this
kernel's BTF (codegen.kerneltypes), so that bpftrace starts without parsing them. The
definitions are kept for the next run of the same program in the same boot (BTF and the
tracepoints' formats are the running kernel's), which spares indexing BTF (0.1 s).

BPTRACE_EXEC_KERNEL_TYPES=bpftrace leaves the program as generated: bpftrace then finds
the types itself, about 0.5 s slower, as a way round a kernel whose types these definitions
get wrong.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from bptrace_exec.codegen import kerneltypes as codegen_kerneltypes
from bptrace_exec.codegen.kerneltypes import Btf, Unfit, definitions
from bptrace_exec.codegen.program import header_length
from bptrace_exec.run.cache import CacheDir
from bptrace_exec.spec.tracepoint import TRACEFS_ROOTS

BTF_PATH = Path("/sys/kernel/btf/vmlinux")
SWITCH = "BPTRACE_EXEC_KERNEL_TYPES"
_TRACEPOINT = re.compile(r"^tracepoint:(\w+):(\w+)", re.M)
KEPT = 32  # programs whose definitions are kept
UNFIT = "// none\n"  # kept for a program these definitions cannot serve
# what a kept file may hold: nothing else reaches bpftrace from it (the macros' names are
# checked against the program's words)
_NUMBER = r"(?:(?:signed|unsigned|short|long|char|int|_Bool|__int128)\b ?)+"
_DEFINITION = re.compile(rf"(#define (?P<macro>\w+) {_NUMBER}|(struct|union) \w+( \{{)?;?|"
                         r"  [\w ]+ (\**\w+|\(\*+\w+\))(\[\d+\])*;|\};)")
# the definitions as this version writes them: a change to how they are made is a new key
_MAKER = Path(codegen_kerneltypes.__file__)


def with_kernel_types(text: str, boot: str | None, cache: CacheDir | None = None
                      ) -> tuple[str, int]:
    """The program to run, and how many lines were put in before its first probe (0:
    none, as when there is no BTF here or the program needs what cannot be defined).
    `boot`: this boot's id (None: nothing is kept)."""
    end = header_length(text)  # the definitions follow the header comment
    if os.environ.get(SWITCH) == "bpftrace" or not end:
        return text, 0
    cache = cache or CacheDir.default("kerneltypes")
    name = _name(text, boot)
    kept = cache.read(name) if name else None
    if kept is None or not (kept == UNFIT or _valid(kept, text)):
        kept = _defined(text) or UNFIT
        if name and (kept == UNFIT or _valid(kept, text)) and cache.write(name, kept):
            cache.keep_newest(KEPT)
    if kept == UNFIT:
        return text, 0
    return text[:end] + kept + text[end:], kept.count("\n")


def _name(text: str, boot: str | None) -> str | None:
    """The kept file's, None where nothing is kept."""
    if boot is None:
        return None
    try:
        maker = _MAKER.read_bytes()
    except OSError:
        return None
    return hashlib.sha256(maker + f"\0{boot}\0{text}".encode()).hexdigest()[:32]


def _defined(text: str) -> str | None:
    try:
        btf = Btf(BTF_PATH.read_bytes())
        formats = [_format(category, name) for category, name in
                   dict.fromkeys(_TRACEPOINT.findall(text))]
    except (OSError, Unfit):
        return None
    return definitions(btf, text, formats)


def _valid(kept: str, program: str) -> bool:
    matches = [_DEFINITION.fullmatch(line) for line in kept.split("\n")[:-1]]
    if not kept.endswith("\n") or not all(matches):
        return False
    macros = {m["macro"] for m in matches if m and m["macro"]}
    return not macros & set(re.findall(r"\w+", program))


def _format(category: str, name: str) -> str:
    for root in TRACEFS_ROOTS:
        path = root / "events" / category / name / "format"
        if path.exists():
            return path.read_text()
    raise Unfit(f"no format for tracepoint:{category}:{name}")
