"""Finding cgroup v2 directories on this machine: where cgroup2 is mounted, and which
directory a container id names (resolved once, before tracing, into a kernel filter)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bptrace_exec.errors import UsageError
from bptrace_exec.event import container_of

MOUNTS = Path("/proc/self/mounts")


def cgroup2_mount() -> Path | None:
    try:
        for line in MOUNTS.read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return Path(fields[1].replace("\\040", " "))
    except OSError:
        return None
    return None


def container_cgroups(container: str) -> list[str]:
    """The cgroup directories named after the container whose id starts with `container`."""
    root = cgroup2_mount()
    if root is None:
        raise UsageError("--container needs cgroup v2, and no cgroup2 file system is mounted",
                         hint="filter on --cgroup PATH instead")
    found = []
    for path in all_cgroups().values():
        match = container_of(Path(path).name)
        if match and match[1].startswith(container):
            found.append(str(root) + path)
    if not found:
        raise UsageError(f"no container whose id starts with {container!r} has a cgroup "
                         f"under {root}", hint="is it running? `docker ps --no-trunc` "
                                               "shows full ids")
    return found


def cgroup_names(ids: set[int]) -> dict[int, str]:
    """cgroup ids -> their paths under the cgroup2 mount (a cgroup v2 id is the inode
    number of its directory); ids not found (a cgroup already removed) are left out."""
    return {i: p for i, p in all_cgroups().items() if i in ids} if ids else {}


class CgroupPaths:
    """cgroup ids -> paths, for the events of a run: the tree is walked again, at most
    once a second, only when an id is not known yet."""

    RESCAN_S = 1.0

    def __init__(self) -> None:
        self.known: dict[int, str] = {}
        self.scanned = -self.RESCAN_S

    def path(self, cgroup_id: int) -> str | None:
        if cgroup_id not in self.known and time.monotonic() - self.scanned >= self.RESCAN_S:
            self.scanned = time.monotonic()
            self.known.update(all_cgroups())
        return self.known.get(cgroup_id)


def all_cgroups() -> dict[int, str]:
    root = cgroup2_mount()
    found: dict[int, str] = {}
    if root is None:
        return found
    for folder, _dirs, _files in os.walk(root):
        try:
            found[os.stat(folder).st_ino] = "/" + os.path.relpath(folder, root).removeprefix(".")
        except OSError:
            continue
    return found


def check_cgroups(paths: tuple[str, ...]) -> None:
    """Each path a cgroup v2 directory: bpftrace's cgroupid() takes nothing else."""
    if not paths:
        return
    root = cgroup2_mount()
    where = f"cgroup v2 is mounted at {root}" if root else "no cgroup2 file system is mounted"
    for path in paths:
        if not Path(path).is_dir():
            raise UsageError(f"cgroup {path} does not exist", hint=where)
        if root is None or not Path(path).resolve().is_relative_to(root.resolve()):
            raise UsageError(f"{path} is not a cgroup v2 directory", hint=where)
