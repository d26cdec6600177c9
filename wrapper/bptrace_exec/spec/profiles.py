"""Finding profiles: a path to a YAML file, or the name of a shipped one."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bptrace_exec.errors import SpecError, UsageError
from bptrace_exec.limits import PROFILE_BYTES, out_of_memory, too_large

if TYPE_CHECKING:
    from bptrace_exec.spec.model import Profile

PROFILE_SUFFIXES = (".yaml", ".yml")


def shipped_profile_dirs() -> list[Path]:
    """Where profiles are found by name: $BPTRACE_EXEC_PATH, then the shipped probes/ (in
    the source tree, or installed under sys.prefix by a non-editable install)."""
    dirs = [Path(p) for p in os.environ.get("BPTRACE_EXEC_PATH", "").split(":") if p]
    source_tree = Path(__file__).resolve().parents[3] / "probes"
    dirs.append(source_tree if source_tree.is_dir()
                else Path(sys.prefix) / "share" / "bptrace-exec" / "probes")
    return dirs


def available_profiles() -> list[str]:
    names: set[str] = set()
    for d in shipped_profile_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.iterdir() if p.suffix in PROFILE_SUFFIXES)
    return sorted(names)


def resolve_profile(arg: str) -> Path:
    path = Path(arg)
    hint = "give a path to a YAML profile or the name of a shipped one"
    try:
        if path.suffix in PROFILE_SUFFIXES or os.sep in arg or path.is_file():
            if path.is_dir():
                raise UsageError(f"{arg} is a folder, not a profile", hint=hint)
            if not path.exists():  # a pipe (/dev/fd/N) is read as a file is
                raise UsageError(f"profile file not found: {arg}", hint=hint)
            return path
    except OSError as exc:  # a name too long
        raise UsageError(f"cannot read the profile {arg}: {exc.strerror or exc}",
                         hint=hint) from None
    for d in shipped_profile_dirs():
        for suffix in PROFILE_SUFFIXES:
            candidate = d / f"{arg}{suffix}"
            if candidate.is_file():
                return candidate
    names = ", ".join(available_profiles()) or "none found"
    hint = f"shipped profiles: {names}"
    import shutil  # only for a name in error

    if shutil.which(arg):  # `bptrace-exec make`: a command to trace, without its --
        hint = f"to trace the command {arg}, put it after --: bptrace-exec -- {arg} ...; {hint}"
    raise UsageError(f"no profile named {arg!r}", hint=hint)


def load_profile(arg: str | os.PathLike[str]) -> Profile:
    from bptrace_exec.spec.parse import parse_profile  # YAML: only when a profile is read

    path = resolve_profile(os.fspath(arg))
    return parse_profile(read_profile(path), source=str(path), name=path.stem)


def read_profile(path: Path) -> str:
    """The file's text; one larger than a profile may be is refused unread, beyond the
    limit (its size, which a pipe or /proc does not tell, is only what bounds the read)."""
    try:
        with path.open("rb") as f:
            data = f.read(PROFILE_BYTES.most + 1)
            if len(data) > PROFILE_BYTES.most:
                raise too_large(str(path), os.fstat(f.fileno()).st_size)
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), f"cannot read profile: {exc}") from None
    except MemoryError:
        raise out_of_memory(f"the profile {path}") from None
