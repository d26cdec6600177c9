"""Events shown in the order of the calls; in the table, a PATH search as one row.

Records of calls on different CPUs reach the reader a little out of order, so rows are
held for WINDOW_NS and given out by the time of the call. While held, the failed
attempts of one execvp(3) search (the same thread trying the same argv under each PATH
directory, one failure after another) fold into the exec that ends the search: that row
says how many attempts came before it (`tried N`).
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass, field
from itertools import count

from bptrace_exec.event import Event
from bptrace_exec.spec.model import Filters

WINDOW_NS = 100_000_000  # how late a call's records may come, and still be in order
# errnos on which execvp goes on to the next PATH directory
SEARCH_ERRNOS = frozenset({"ENOENT", "ENOTDIR", "EACCES", "ESTALE", "ENODEV", "ETIMEDOUT"})


@dataclass(slots=True)
class Row:
    event: Event
    tried: int = 0  # failed attempts of the same search folded into this row


@dataclass
class Rows:
    """Events in, rows out: by time of call, searches folded (unless `fold` is off)."""

    fold: bool = True
    _held: list[tuple[int, int, Row]] = field(default_factory=list)  # a heap by time
    _by_tid: dict[int, list[Row]] = field(default_factory=dict)  # held, by thread, to fold
    _order: count[int] = field(default_factory=count)
    _latest_ns: int = 0
    folded: int = 0  # attempts folded into a later row, so far

    def add(self, event: Event) -> list[Row]:
        row = Row(event)
        heapq.heappush(self._held, (event.time_ns, next(self._order), row))
        if self.fold:
            self._by_tid.setdefault(event.tid, []).append(row)
        if event.time_ns > self._latest_ns:
            self._latest_ns = event.time_ns
        return self.ready(self._latest_ns)

    def ready(self, now_ns: int) -> list[Row]:
        """The rows of calls made more than WINDOW_NS before now_ns (wall clock)."""
        out = []
        while self._held and self._held[0][0] <= now_ns - WINDOW_NS:
            row = heapq.heappop(self._held)[2]
            if not self.fold:
                out.append(row)
                continue
            same_thread = self._by_tid[row.event.tid]
            same_thread.remove(row)  # its first, as a thread's calls follow each other
            if not same_thread:
                del self._by_tid[row.event.tid]
            if not self._folded(row, same_thread):
                out.append(row)
        return out

    def flush(self) -> list[Row]:
        """Every row still held, at the end."""
        return self.ready(max(self._latest_ns, 0) + WINDOW_NS)

    def _folded(self, row: Row, same_thread: list[Row]) -> bool:
        """Whether the row is an attempt of a search whose next attempt is held: that
        one takes it over."""
        e = row.event
        if not same_thread or e.errno not in SEARCH_ERRNOS or not _searched(e):
            return False
        later = same_thread[0]  # the thread's next call
        if not _same_search(e, later.event):
            return False
        later.tried += row.tried + 1
        self.folded += 1
        return True


def can_fold(filters: Filters) -> bool:
    """Whether a search's attempts may fold into the row of its last: not where a filter
    may drop the exec that ended it and keep the failures before (failed calls only, the
    program's path, the effective uid a set-uid program takes, the executable): the last
    failure shown, with `tried N`, would say the search failed where it found its
    program."""
    return not (filters.failed or filters.euid or filters.exe
                or any(name == "filename" for name, _ in filters.args))


def _searched(e: Event) -> bool:
    return isinstance(e.values.get("filename"), bytes) and isinstance(e.values.get("argv"),
                                                                      tuple)


def _same_search(first: Event, then: Event) -> bool:
    if not _searched(then) or first.syscall != then.syscall:
        return False
    a, b = first.values, then.values
    return a["argv"] == b["argv"] and _name(a["filename"]) == _name(b["filename"])


def _name(path: object) -> bytes:
    assert isinstance(path, bytes)
    return os.path.basename(path)
