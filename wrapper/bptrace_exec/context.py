"""Process context as people read it: the parent chain, and which container a cgroup is.

Container runtimes name the cgroup they put a container in after its id:
  docker (systemd driver)    docker-<64 hex>.scope       (cgroupfs driver: <64 hex>)
  containerd / CRI           cri-containerd-<64 hex>.scope
  CRI-O                      crio-<64 hex>.scope
  podman                     libpod-<64 hex>.scope       (and libpod-conmon-... for conmon)
and systemd names units: nginx.service, session-3.scope, user@1000.service.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bptrace_exec.codegen.common import HOST_PID_NS

_CONTAINER = re.compile(
    r"^(?:(?P<runtime>docker|cri-containerd|crio|libpod)-)?(?P<id>[0-9a-f]{64})(?:\.scope)?$")
_RUNTIMES = {"docker": "docker", "cri-containerd": "containerd", "crio": "cri-o",
             "libpod": "podman", None: "cgroupfs"}


@dataclass(frozen=True, slots=True)
class ProcContext:
    cgroup_id: int
    cgroup: str  # the last name of the caller's cgroup v2 path ("" at the root)
    pidns: int
    mntns: int
    hostname: str
    path: str | None = None  # the cgroup's path under the cgroup2 mount, when found here

    @property
    def in_container(self) -> bool:
        return self.pidns != HOST_PID_NS

    @property
    def container(self) -> tuple[str, str] | None:
        return container_of(self.cgroup)

    def short(self) -> str:
        """For a table cell: the container id's first 12 characters, as docker ps shows
        it, else the cgroup's name (a systemd unit), else "host" or "-"."""
        found = self.container
        if found:
            return found[1][:12]
        if self.cgroup:
            return self.cgroup
        return "-" if self.in_container else "host"

    def to_dict(self) -> dict[str, object]:
        found = self.container
        return {"cgroup_id": self.cgroup_id, "cgroup": self.cgroup, "cgroup_path": self.path,
                "container_id": found[1] if found else None,
                "runtime": found[0] if found else None, "in_container": self.in_container,
                "pidns": self.pidns, "mntns": self.mntns, "hostname": self.hostname}


def container_of(cgroup_name: str) -> tuple[str, str] | None:
    """(runtime, container id), when a cgroup is named the way a runtime names it."""
    m = _CONTAINER.match(cgroup_name)
    return (_RUNTIMES[m.group("runtime")], m.group("id")) if m else None


def parent_chain(ancestors: tuple[tuple[int, bytes], ...],
                 show: Callable[[bytes], str]) -> str:
    """bash(812) > sshd(700) > systemd(1); `show` makes a comm safe to print."""
    return " > ".join(f"{show(comm)}({pid})" for pid, comm in ancestors)
