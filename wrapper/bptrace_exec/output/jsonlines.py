"""JSON lines --json wrote, read back into the Events they were written from: the execs
and the ends of processes, which --from draws as a tree or a timeline.

A line gives its time to the microsecond, and its strings exact (output.text.exact_strings
puts back the bytes JSON cannot hold); what is read back is the fields every exec and end
has, who ran it, its arguments and its paths (not its parents, context or environment,
which a tree does not show)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from bptrace_exec.event import KILLED, Event, Identity, Value
from bptrace_exec.output.text import exact_strings
from bptrace_exec.records import KILLED_RET
from bptrace_exec.spec import types
from bptrace_exec.spec.captures import EXIT_ARGS
from bptrace_exec.spec.model import EXEC_ARGS, KINDS, PATHS, PROCESS_EXIT

# event -> (name, type) of its arguments, as render writes them: fields of their own
_ARGS = {KINDS["exec"].event: tuple((a.name, a.type) for a in EXEC_ARGS),
         KINDS[PROCESS_EXIT].event: EXIT_ARGS}
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST_NS = 253_402_300_800 * 1_000_000_000  # 10000-01-01: a time past it has no ISO form
_IDENTITY = ("gid", "euid", "egid", "loginuid", "sessionid", "tty", "exec_id",
             "parent_exec_id")


class NotAnEvent(ValueError):
    """A line that is JSON but not an exec's or an end's as --json writes them."""


def event_of(obj: dict[str, object]) -> Event | None:
    """The Event an exec's or an end's line was written from; None for the other lines
    --json writes (a call's, `lost`, `end`, `tree`); NotAnEvent for one that only looks
    like an exec or an end."""
    args = _ARGS.get(str(obj.get("event", "exec")))
    if args is None or "syscall" not in obj:
        return None
    e = exact_strings(obj)
    try:
        killed = e[KILLED] is True
        latency_key = "lifetime_ns" if e["event"] == KINDS[PROCESS_EXIT].event \
            else "latency_ns"
        event = Event(
            time_ns=parse_time(e["time"]), syscall=_text(e["syscall"]),
            pid=_int(e["pid"]), tid=_int(e["tid"]), ppid=_int(e["ppid"]), uid=_int(e["uid"]),
            comm=_bytes(e["comm"]), ret=KILLED_RET if killed else _int(e["ret"]),
            latency_ns=_int(e[latency_key]),
            values={name: _value(e.get(name), arg_type) for name, arg_type in args},
            truncated=frozenset(name for name in (*(n for n, _ in args), *PATHS)
                                if e.get(f"{name}_truncated") is True),
            incomplete=e.get("incomplete") is True, killed=killed,
            unreadable=tuple(str(p).lstrip("/") for p in _list(e.get("unreadable", []))),
            who=_who(e))
        for which in PATHS:  # written with --cwd, --exe
            setattr(event, which, None if e.get(which) is None else _bytes(e[which]))
        return event
    except KeyError as exc:
        raise NotAnEvent(f"no {exc.args[0]!r}") from None
    except ValueError as exc:
        raise NotAnEvent(str(exc)) from None


def _who(e: Mapping[str, object]) -> Identity | None:
    if e.get("exec_id") is None:  # written from a recording that did not read it
        return None
    gid, euid, egid, loginuid, sessionid, tty, exec_id, parent = (e.get(k) for k in _IDENTITY)
    return Identity(gid=_int(gid), euid=_int(euid), egid=_int(egid),
                    loginuid=None if loginuid is None else _int(loginuid),
                    sessionid=None if sessionid is None else _int(sessionid),
                    tty=None if tty is None else _text(tty), exec_id=_exec_id(exec_id),
                    parent_exec_id=_exec_id(parent))


def _exec_id(value: object) -> str:
    """BOOT:PID:START:EXECS, as parse.join.identity writes it."""
    text = _text(value)
    boot, *numbers = text.split(":")
    if not boot or len(numbers) != 3 or not all(n.isdigit() for n in numbers):
        raise ValueError(f"an exec id (BOOT:PID:START:EXECS) where {text!r} is")
    return text


def _value(value: object, arg_type: str) -> Value:
    """render's JSON form of an argument -> the value: exact bytes, numbers as the kernel
    gave them (a signal by its name)."""
    kind = types.of(arg_type)
    if value is None:
        return None
    if kind.read == "argv":
        return tuple(_bytes(a) for a in _list(value))
    if kind.read in ("str", "exec_path"):
        return _bytes(value)
    if isinstance(value, str) and not value.lstrip("-").isdigit():  # a name: SIGKILL
        return _int(kind.filter_value(value) if kind.filter_value else None)
    number = int(str(value))  # a digit string, or a number (not true or false: str() words)
    return number % (1 << kind.signed_bits) if kind.signed_bits else number


def parse_time(text: object) -> int:
    """An ISO time as --json writes it (UTC, to the microsecond) -> ns since the epoch."""
    moment = datetime.fromisoformat(_text(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"a time without its zone: {text!r}")
    ns = (moment - EPOCH) // timedelta(microseconds=1) * 1000
    if not 0 <= ns < LATEST_NS:
        raise ValueError(f"a time since 1970 where {text!r} is")
    return ns


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"a number where {value!r} is")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"a string where {value!r} is")
    return value


def _bytes(value: object) -> bytes:
    return _text(value).encode("utf-8", "surrogateescape")


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"a list where {value!r} is")
    return value
