"""bpftrace's view of tracefs' `available_events`, narrowed to its program's tracepoints.

bpftrace reads that list (2,300 lines here, which the kernel formats at every read) each
time it checks a tracepoint of the program: 0.17 about 250 times for an exec profile's
program, 0.23 about 80. Here that was 0.17 s of 0.85 until the first exec was shown on
0.17, 0.06 s of 1.2 on 0.23. In a mount namespace of its own, bpftrace finds instead a
file that lists the program's tracepoints alone. Everything else it sees is the host's,
and the command a run follows is not in that namespace.

It is an optimization only: where a step cannot be taken (no cache to keep the list in,
no right to make a namespace, a program with a tracepoint named by a pattern) bpftrace
reads the kernel's list as it otherwise would.
"""

from __future__ import annotations

import hashlib
import os
import re

from bptrace_exec.run.cache import CacheDir
from bptrace_exec.run.spawn import Listing
from bptrace_exec.spec.tracepoint import TRACEFS_ROOTS

_LITERAL = re.compile(r"^tracepoint:(\w+):(\w+)\s*[,{/\n]", re.M)
_NAMED = re.compile(r"\b(?:tracepoint|tp):")
KEPT = 32  # lists kept


def listing(program_text: str) -> str | None:
    """The program's tracepoints as `available_events` lists them; None when one of them
    is not named literally at the start of a line."""
    found = _LITERAL.findall(program_text)
    if not found or len(found) != len(_NAMED.findall(program_text)):
        return None
    return "".join(f"{group}:{event}\n" for group, event in dict.fromkeys(found))


def kept_listing(program_text: str, cache: CacheDir | None = None) -> Listing | None:
    """The program's listing, written once to the cache, or None. bpftrace's process
    mounts it over tracefs' own (run.spawn)."""
    text = listing(program_text)
    if text is None:
        return None
    cache = cache or CacheDir.default("events")
    name = hashlib.sha256(text.encode()).hexdigest()[:32]
    if cache.read(name) != text:
        if not cache.write(name, text):
            return None
        cache.keep_newest(KEPT)
    found = cache.located(name)
    if found is None:
        return None
    targets = tuple(os.path.join(root, "available_events") for root in TRACEFS_ROOTS)
    return Listing(*found, targets)
