"""--serve [ADDR:]PORT: the run's metrics over HTTP, at /metrics, by prometheus_client's
own server (Prometheus text, or OpenMetrics when the scraper asks for it)."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bptrace_exec.errors import EnvironmentProblem, UsageError
from bptrace_exec.output.tally import Stats
from bptrace_exec.spec.model import Profile

if TYPE_CHECKING:  # prometheus_client takes 80 ms to import: only a server needs it
    from bptrace_exec.output.metrics import RunState

DEFAULT_ADDRESS = "127.0.0.1"  # anything wider is the user's explicit choice


@dataclass(frozen=True)
class Address:
    host: str
    port: int  # 0: any free port (the one bound is in the status line)

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


def parse_address(text: str) -> Address:
    """`PORT`, `ADDR:PORT` or `[IPV6]:PORT`; ADDR may be a name (localhost)."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]") if sep else DEFAULT_ADDRESS
    if not (port.isascii() and port.isdecimal()) or not 0 <= int(port) <= 65535:
        raise UsageError(f"--serve {text}: the port must be a number from 0 to 65535",
                         hint="for instance --serve 9435 or --serve 127.0.0.1:9435 "
                              "(0: any free port)")
    return Address(host or DEFAULT_ADDRESS, int(port))


class Serving:
    """What a scrape gets: the last counts and run state given, served from a thread of
    prometheus_client's own until closed."""

    def __init__(self, address: Address, profile: Profile, host: str) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        from bptrace_exec.output.metrics import Exporter, Keys, RunState

        self.profile, self.labels = profile, {"host": host, "profile": profile.name}
        self.keys = Keys(profile.stats.top)
        self.stats = Stats(count=0, failed=None if profile.filters.succeeded else 0,
                           duration_s=0.0, breakdowns={n: [] for n in profile.stats.by},
                           unit=profile.kind.unit)
        self.run = RunState(up=False)
        self.exporter = Exporter()
        self.update()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.exporter)
        try:
            self._server: Any
            self._server, self._thread = start_http_server(address.port, address.host,
                                                           registry)
        except OSError as exc:  # a name not found (gaierror), an address not here, a port taken
            if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
                raise UsageError(f"--serve {address.host}:{address.port}: {exc.strerror}",
                                 hint="give an address of this host (127.0.0.1, ::1, "
                                      "0.0.0.0) or a name it resolves") from None
            raise EnvironmentProblem(
                f"cannot serve metrics on {address.url_host}:{address.port}: "
                f"{exc.strerror or exc}",
                hint="choose another port with --serve, or stop what listens there "
                     "(nothing was traced)") from None
        self.address = Address(address.host, self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.address.url_host}:{self.address.port}/metrics"

    def update(self, stats: Stats | None = None, run: RunState | None = None) -> None:
        from bptrace_exec.output.metrics import families

        self.stats, self.run = stats or self.stats, run or self.run
        self.exporter.publish(families(self.stats, self.keys, self.labels, self.run,
                                       latency_kept=self.profile.stats.latency))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
