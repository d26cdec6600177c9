"""Syscall tracepoint formats captured from the test machine's kernel (6.18, x86_64), so
that profiles are checked the same way without root or tracefs."""

from __future__ import annotations

import functools
from pathlib import Path

from bptrace_exec.spec import Profile, parse_profile
from bptrace_exec.spec.tracepoint import Field, parse_format

FORMATS = Path(__file__).parent / "fixtures" / "syscall-formats"
ROOT = Path(__file__).parent.parent


def lookup(name: str) -> tuple[Field, ...] | None:
    path = FORMATS / name
    return parse_format(path.read_text()) if path.exists() else None


def parse(text: str, name: str = "p") -> Profile:
    return parse_profile(text, source="p.yaml", name=name, lookup=lookup)


@functools.cache
def shipped(name: str) -> Profile:
    text = (ROOT / "probes" / f"{name}.yaml").read_text()
    return parse_profile(text, source=f"probes/{name}.yaml", name=name, lookup=lookup)
