"""printf records of a syscall profile -> CallEvents, joined by (tid, entry time).

The `call` record closes a call and says how many records it has; `str` and `addr`
records may come before or after it (another CPU's buffer). See codegen.calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bptrace_exec.codegen.calls import CHUNK
from bptrace_exec.events import CallEvent
from bptrace_exec.joiner import COMM_LEN, Joiner, Pending, comm_from_hex, join_chunks
from bptrace_exec.spec import Profile

_HEAD = 7  # RECORDS SYSCALL RET LAT PID PPID UID, then the comm's 16 hex tokens, then ints


@dataclass(slots=True)
class _Call(Pending):
    strings: dict[int, dict[int, tuple[bytes, int]]] = field(default_factory=dict)
    addrs: dict[int, bytes] = field(default_factory=dict)
    summary: list[int] | None = None  # RECORDS SYSCALL RET LAT PID PPID UID INT...
    comm: bytes = b""


class CallAssembler(Joiner[_Call, CallEvent]):
    """Feed it printf texts; it returns CallEvents as each call becomes complete."""

    summary_kind = b"call"

    def __init__(self, profile: Profile, *, wall_offset_ns: int) -> None:
        super().__init__({b"call": self._on_call, b"str": _on_str, b"addr": _on_addr})
        self.profile = profile
        self.wall_offset_ns = wall_offset_ns
        self.limit = profile.limits.string_bytes
        # per syscall: the profile's argument numbers, in the order the ints come
        self.int_slots = [[i for i, a in enumerate(profile.args)
                           if a.read == "int" and a.source(s) is not None]
                          for s in profile.probes]

    def new(self, tid: int, entry_ns: int, now_ns: int) -> _Call:
        return _Call(tid, entry_ns, now_ns)

    def _on_call(self, call: _Call, body: bytes) -> None:
        tokens = body.split()
        head = _HEAD
        if len(tokens) < head + COMM_LEN:
            raise ValueError("call record too short")
        numbers = [int(t) for t in tokens[:head]] + [int(t) for t in tokens[head + COMM_LEN:]]
        syscall = numbers[1]
        if not 0 <= syscall < len(self.int_slots) or \
                len(numbers) != head + len(self.int_slots[syscall]):
            raise ValueError("call record with a wrong number of fields")
        call.comm = comm_from_hex(b" ".join(tokens[head:head + COMM_LEN]))
        call.summary = numbers
        call.expected = numbers[0]

    def build(self, call: _Call, *, incomplete: bool) -> CallEvent:
        s = call.summary
        assert s is not None
        _records, index, ret, latency, pid, ppid, uid = s[:_HEAD]
        syscall = self.profile.probes[index]
        ints = dict(zip(self.int_slots[index], s[_HEAD:], strict=True))
        values: list[int | bytes | None] = []
        cut: list[str] = []
        for number, arg in enumerate(self.profile.args):
            if arg.source(syscall) is None:
                values.append(None)
            elif arg.read == "int":
                values.append(ints[number])
            elif arg.read == "sockaddr":
                values.append(call.addrs.get(number, b""))
            else:
                text, was_cut = join_chunks(call.strings.get(number, {}), CHUNK,
                                            self.limit)
                values.append(text)
                if was_cut:
                    cut.append(arg.name)
        return CallEvent(
            time_ns=call.entry_ns + self.wall_offset_ns, pid=pid, ppid=ppid, uid=uid,
            tid=call.tid, comm=call.comm, syscall=syscall, values=tuple(values),
            truncated=tuple(cut), ret=ret, latency_ns=latency, incomplete=incomplete,
            ancestors=call.parents(), context=call.context())


def _on_str(call: _Call, body: bytes) -> None:
    slot_s, chunk_s, next_s, rest = body.split(b" ", 3)
    call.strings.setdefault(int(slot_s), {})[int(chunk_s)] = (rest[:-1], int(next_s))


def _on_addr(call: _Call, body: bytes) -> None:
    slot_s, hex_tokens = body.split(b" ", 1)
    call.addrs[int(slot_s)] = bytes.fromhex(hex_tokens.decode("ascii"))
