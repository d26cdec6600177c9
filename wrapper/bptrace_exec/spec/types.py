"""Argument types: how each is read in the kernel, filtered and shown.

A type has a read class, which is all codegen and the parser need to know:
  int        the tracepoint field as a 64-bit number, printed in the closing record
  str        a NUL-terminated string at a user pointer, read at return in chunks
  sockaddr   the bytes of a struct sockaddr at a user pointer (length from the syscall's
             addrlen argument), read at return
  exec_path  an exec's filename: the kernel's copy in the new image when the exec
             succeeds, the caller's string when it fails
  argv       an exec's argv: the new image's argv block, every byte, when it succeeds;
             each string from the caller's array when it fails
and a way to show a value and to read a filter value, which are pure Python. The last
two, and execveat's dirfd and flags (numbers, read as int), are what make a profile of
execve and execveat an exec profile: they are its arguments, and no other probe's.
"""

from __future__ import annotations

import errno
import os
import signal
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

AT_FDCWD = -100
SOCKADDR_MAX = 128  # sizeof(struct sockaddr_storage)
STR_FILTER_MAX = 126  # two 63-byte literals: what one 128-byte read holds, on any bpftrace


def signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _flags(table: tuple[tuple[str, int], ...], value: int, rest: str = "") -> str:
    names = []
    for name, bit in table:
        if bit and value & bit == bit:
            names.append(name)
            value &= ~bit
    if value:
        names.append(hex(value))
    return "|".join(names) or rest or "0"


def _os_flags(*names: str) -> tuple[tuple[str, int], ...]:
    # this machine's values: O_DIRECTORY and friends differ between architectures
    return tuple((n, getattr(os, n)) for n in names if getattr(os, n, 0))


# composite flags first, so that O_SYNC is not shown as O_DSYNC|0x100000
_OPEN_FLAGS = _os_flags("O_TMPFILE", "O_SYNC", "O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC",
                        "O_APPEND", "O_NONBLOCK", "O_DSYNC", "O_ASYNC", "O_DIRECT",
                        "O_LARGEFILE", "O_DIRECTORY", "O_NOFOLLOW", "O_NOATIME",
                        "O_CLOEXEC", "O_PATH")
_ACCESS = ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE")


def open_flags(value: int) -> str:
    access = _ACCESS[value & os.O_ACCMODE]
    rest = _flags(_OPEN_FLAGS, value & ~os.O_ACCMODE)
    return access if rest == "0" else f"{access}|{rest}"


_CLONE_FLAGS = tuple((f"CLONE_{n}", 1 << b) for b, n in enumerate((
    "VM", "FS", "FILES", "SIGHAND", "PIDFD", "PTRACE", "VFORK", "PARENT", "THREAD",
    "NEWNS", "SYSVSEM", "SETTLS", "PARENT_SETTID", "CHILD_CLEARTID", "DETACHED",
    "UNTRACED", "CHILD_SETTID", "NEWCGROUP", "NEWUTS", "NEWIPC", "NEWUSER", "NEWPID",
    "NEWNET", "IO", "CLEAR_SIGHAND", "INTO_CGROUP"), start=8))


def clone_flags(value: int) -> str:
    """The low byte is the signal sent to the parent when the child exits."""
    names = _flags(_CLONE_FLAGS, value & ~0xFF, rest="")
    exit_signal = value & 0xFF
    parts = [p for p in (names, signal_name(exit_signal) if exit_signal else "") if p]
    return "|".join(parts) or "0"


# execveat(2)'s flags: include/uapi/linux/fcntl.h, the same on every architecture
_AT_FLAGS = (("AT_SYMLINK_NOFOLLOW", 0x100), ("AT_EMPTY_PATH", 0x1000))


def at_flags(value: int) -> str:
    return _flags(_AT_FLAGS, value & 0xFFFFFFFF)


def signal_name(value: int) -> str:
    try:
        return signal.Signals(value).name
    except ValueError:
        if signal.SIGRTMIN <= value <= signal.SIGRTMAX:
            return f"SIGRTMIN+{value - signal.SIGRTMIN}"
        return str(value)


def _realtime_signal(name: str) -> int | None:
    """SIGRTMIN+N and SIGRTMAX-N, as signal_name and `kill -l` name them; None: neither."""
    for base, sign in (("SIGRTMIN+", 1), ("SIGRTMAX-", -1)):
        offset = name.removeprefix(base)
        if offset != name and offset.isascii() and offset.isdigit():
            number = int(signal.SIGRTMIN if sign > 0 else signal.SIGRTMAX) + sign * int(offset)
            if not signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                raise FilterValueError(f"{name} is not a real-time signal: SIGRTMIN+0 to "
                                       f"SIGRTMIN+{signal.SIGRTMAX - signal.SIGRTMIN}")
            return number
    return None


def fd_text(value: int) -> str:
    value = signed(value, 32)
    return "AT_FDCWD" if value == AT_FDCWD else str(value)


# Linux's address families; socket and ipaddress are imported only for the addresses shown,
# as --help and --emit import this module for its types alone
AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6 = 0, 1, 2, 10


def sockaddr_text(raw: bytes) -> str:
    """AF_INET 1.2.3.4:80, AF_INET6 [::1]:80, AF_UNIX /path or @abstract, else the family."""
    import ipaddress
    import socket

    if len(raw) < 2:
        return "(none)" if not raw else f"? {raw.hex()}"
    family = int.from_bytes(raw[:2], "little")
    if family == AF_INET and len(raw) >= 8:
        port = struct.unpack("!H", raw[2:4])[0]
        return f"{ipaddress.IPv4Address(raw[4:8])}:{port}"
    if family == AF_INET6 and len(raw) >= 24:
        port = struct.unpack("!H", raw[2:4])[0]
        # as ss and strace write it: ::ffff:127.0.0.1, fe80::1%2 (the interface's index)
        scope = int.from_bytes(raw[24:28], "little") if len(raw) >= 28 else 0
        host = socket.inet_ntop(socket.AF_INET6, raw[8:24]) + (f"%{scope}" if scope else "")
        return f"[{host}]:{port}"
    if family == AF_UNIX:
        path = raw[2:]
        if path[:1] == b"\0":  # abstract: the name is every byte of the given length
            return "@" + path[1:].decode("utf-8", "backslashreplace")
        return path.split(b"\0", 1)[0].decode("utf-8", "backslashreplace") or "(unnamed)"
    name = _family_name(family) or ""
    return f"family {family}" if name.isdigit() else name  # AF_UNSPEC, AF_NETLINK, ...


def sockaddr_parts(raw: bytes) -> dict[str, object]:
    """The JSON form: family, and address and port, or path."""
    family = int.from_bytes(raw[:2], "little") if len(raw) >= 2 else None
    out: dict[str, object] = {"family": _family_name(family)}
    text = sockaddr_text(raw)
    if family in (AF_INET, AF_INET6) and text.rfind(":") > 0:
        host, _, port = text.rpartition(":")
        out.update(address=host.strip("[]"), port=int(port))
    elif family == AF_UNIX:
        out["path"] = text
    return out


def _family_name(family: int | None) -> str | None:
    import socket

    if family is None:
        return None
    try:
        return socket.AddressFamily(family).name
    except ValueError:
        return str(family)


# --- filter values: what a user may write, turned into what the kernel compares ---------

class FilterValueError(ValueError):
    pass


def _int_filter(value: object, bits: int = 64) -> int:
    """A number the argument can hold: signed, or the same bits read unsigned. Anything
    wider is refused, never wrapped (4294967297 is not 1 for a 32-bit argument)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FilterValueError("expected a whole number")
    if not -(1 << (bits - 1)) <= value < (1 << bits):
        raise FilterValueError(f"{value} does not fit in the argument's {bits} bits")
    return value


def _int32_filter(value: object) -> int:
    return _int_filter(value, 32)


def _signal_filter(value: object) -> int:
    if isinstance(value, str):
        name = value.upper() if value.upper().startswith("SIG") else "SIG" + value.upper()
        number = _realtime_signal(name)
        if number is None:
            try:
                return int(signal.Signals[name])
            except KeyError:
                raise FilterValueError(f"unknown signal {value!r} (e.g. SIGTERM, KILL, 9, "
                                       "SIGRTMIN+2)") from None
    else:
        number = _int_filter(value)
    if not 0 <= number <= signal.SIGRTMAX:
        raise FilterValueError(f"{number} is not a signal number (0-{signal.SIGRTMAX})")
    return number


def errno_text(value: int) -> str:
    number = abs(signed(value, 32))
    return errno.errorcode.get(number, str(number)) if number else "0"


def _errno_filter(value: object) -> int:
    if isinstance(value, str):
        number = getattr(errno, value.upper(), None)
        if not isinstance(number, int):
            raise FilterValueError(f"unknown error name {value!r} (e.g. ENOENT, EPERM, 2)")
        return number
    return _int_filter(value, 32)


def _fd_filter(value: object) -> int:
    if value == "AT_FDCWD":
        return AT_FDCWD
    return _int_filter(value, 32)


def _flag_filter(table: tuple[tuple[str, int], ...]) -> Callable[[object], int]:
    names = dict(table)

    def parse(value: object) -> int:
        if isinstance(value, str) and value in names:
            return names[value]
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 64:
            return value  # a mask, as recordings keep it
        raise FilterValueError("expected a flag name: " + ", ".join(names))
    return parse


def _str_filter(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or "\0" in value:
        raise FilterValueError("expected a non-empty string without NUL bytes")
    if len(value.encode("utf-8", "surrogateescape")) > STR_FILTER_MAX + value.endswith("*"):
        raise FilterValueError(f"a string filter compares at most {STR_FILTER_MAX} bytes "
                               "(end a shorter one with * to match by prefix)")
    return value


def _glob_filter(value: object) -> str:
    """A shell glob (fnmatch) that any one argument must match."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or "\0" in value:
        raise FilterValueError("expected a non-empty pattern without NUL bytes")
    return value


@dataclass(frozen=True)
class ArgType:
    name: str
    read: str  # int, str, sockaddr, exec_path or argv: how it is read and decoded
    summary: str  # one line for the schema documentation and error hints
    show: Callable[[Any], str]  # a number or an address as the table shows it
    filter_value: Callable[[object], object] | None  # None: cannot be filtered on
    width: int  # its table column's width
    signed_bits: int = 0  # int types: the C width the value is taken as (0: unsigned 64)
    json_number: bool = False  # int types: a number in JSON (else the text shown)
    title: str = ""  # its table column's title (default: the argument's name, capitalised)


def _show_int(bits: int) -> Callable[[Any], str]:
    return lambda v: str(signed(v, bits)) if bits else str(v)


def _show_bytes(v: Any) -> str:
    return bytes(v).decode("utf-8", "surrogateescape")


_OPEN_FILTER_TABLE = tuple((n, getattr(os, n)) for n in _ACCESS[:3]) + _OPEN_FLAGS

TYPES: dict[str, ArgType] = {t.name: t for t in (
    ArgType("int", "int", "a signed number (C int)", _show_int(32), _int32_filter, 6, 32,
            True),
    ArgType("long", "int", "a signed 64-bit number", _show_int(64), _int_filter, 8, 64, True),
    ArgType("uint", "int", "an unsigned 64-bit number", _show_int(0), _int_filter, 8,
            json_number=True),
    ArgType("hex", "int", "a number shown in hex, e.g. an address", lambda v: hex(int(v)),
            _int_filter, 14),
    ArgType("octal", "int", "a mode shown in octal, e.g. 0644",
            lambda v: f"0{v & 0o7777:o}" if v & 0o7777 else "0", _int_filter, 6),
    ArgType("fd", "int", "a file descriptor (AT_FDCWD shown by name)",
            lambda v: fd_text(int(v)), _fd_filter, 8, 32, True),
    ArgType("pid", "int", "a process id (negative: a process group, -1: all)",
            _show_int(32), _int32_filter, 7, 32, True),
    ArgType("errno", "int", "an error number shown by name, e.g. ENOENT (or -ENOENT)",
            errno_text, _errno_filter, 8, 32),
    ArgType("signal", "int", "a signal number shown by name, e.g. SIGTERM",
            lambda v: signal_name(signed(int(v), 32)), _signal_filter, 9, 32),
    ArgType("open_flags", "int", "open(2) flags, e.g. O_WRONLY|O_CREAT|O_CLOEXEC",
            lambda v: open_flags(int(v) & 0xFFFFFFFF), _flag_filter(_OPEN_FILTER_TABLE), 24),
    ArgType("clone_flags", "int", "clone(2) flags and exit signal, e.g. CLONE_VM|SIGCHLD",
            lambda v: clone_flags(int(v)), _flag_filter(_CLONE_FLAGS), 30),
    ArgType("str", "str", "a NUL-terminated string in the caller's memory, e.g. a path",
            _show_bytes, _str_filter, 28),
    ArgType("sockaddr", "sockaddr", "a socket address: IPv4/IPv6 address and port, or a "
            "unix socket path", lambda v: sockaddr_text(bytes(v)), None, 24),
)}
# An exec's own: the arguments of every exec profile, given by its probes.
EXEC_TYPES: dict[str, ArgType] = {t.name: t for t in (
    # filtered on as the caller passed it, in the kernel, at entry
    ArgType("exec_path", "exec_path", "the path an exec was asked to run", _show_bytes,
            _str_filter, 20, title="PROGRAM"),
    # filtered on by a glob any argument matches, in user space
    ArgType("argv", "argv", "an exec's argument vector, exact", _show_bytes, _glob_filter, 0,
            title="ARGS"),
    # numbers in JSON, as the kernel has them (AT_FDCWD is -100); by name in the table
    ArgType("exec_dirfd", "int", "the directory an execveat's path is relative to",
            lambda v: fd_text(int(v)), None, 8, 32, True, title="DIRFD"),
    ArgType("exec_flags", "int", "execveat's flags, e.g. AT_EMPTY_PATH",
            lambda v: at_flags(int(v)), None, 20, 32, True, title="FLAGS"),
)}
TYPE_ALIASES = {"path": "str", "string": "str", "mode": "octal", "flags": "hex"}
RESULT_TYPES = ("int", "fd", "pid", "hex")  # what a non-negative return value is


def lookup(name: str) -> ArgType | None:
    """A type a profile may name (an exec's own are given, never named)."""
    return TYPES.get(TYPE_ALIASES.get(name, name))


def of(name: str) -> ArgType:
    return TYPES.get(name) or EXEC_TYPES[name]


def describe_types() -> str:
    return "; ".join(f"{t.name}: {t.summary}" for t in TYPES.values())
