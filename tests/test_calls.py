"""Syscall profiles without bpftrace: the schema's checks, argument types, the assembler
and the renderer, ad-hoc profiles and --where."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct

import pytest

from bptrace_exec.errors import SpecError, UsageError
from bptrace_exec.output.render import Renderer
from bptrace_exec.parse.join import Assembler
from bptrace_exec.parse.values import join_chunks
from bptrace_exec.records import (
    ANC,
    BYTES_WORDS,
    CALL,
    CALL_ADDR,
    CALL_STR,
    CALL_WHO,
    CGRP,
    STR,
    UTS,
)
from bptrace_exec.spec import profile_from_dict, profile_to_dict
from bptrace_exec.spec import types as argtypes
from bptrace_exec.spec.overrides import adhoc_profile, apply_where, with_exits
from bptrace_exec.spec.tracepoint import parse_format
from calls_fixtures import FORMATS, ROOT, lookup, parse, shipped
from recordtext import record

CHUNK = 127  # a syscall profile's string read, less its NUL

SHIPPED = ["openat", "connect", "clone", "kill", "exit"]


def test_tracepoint_format_gives_the_syscall_arguments() -> None:
    fields = parse_format((FORMATS / "connect").read_text())
    assert [(f.name, f.ctype, f.pointer) for f in fields] == [
        ("fd", "int", False), ("uservaddr", "struct sockaddr *", True),
        ("addrlen", "int", False)]
    assert parse_format((FORMATS / "fork").read_text()) == ()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_validate_against_the_kernel_format(name: str) -> None:
    profile = shipped(name)
    assert profile.kind.unit in ("calls", "exits") and profile.args and profile.columns
    assert set(profile.stats.by) <= {"syscall", "comm", "uid", "ppid", "errno",
                                     *(a.name for a in profile.args)}


@pytest.mark.parametrize("doc,where,words", [
    ("probes: [openat]\nargs: {filenme: str}\n", "p.yaml:3", "openat has no argument "
     "'filenme'"),
    ("probes: [openat]\nargs: {filename: strr}\n", "p.yaml:3", "unknown type 'strr'"),
    ("probes: [openat]\nargs: {flags: str}\n", "p.yaml:3", "flags is a int, not a pointer"),
    ("probes: [openat]\nargs: {x: {type: int, from: 'flags[0]'}}\n", "p.yaml:3",
     "not a pointer"),
    ("probes: [openat]\nargs: {x: {type: str, from: 'filename[1]'}}\n", "p.yaml:3",
     "FIELD[N] reads a number"),
    ("probes: [openat]\nargs: {x: {type: int, from: 'a); system(1'}}\n", "p.yaml:3",
     "is not a field of openat"),
    ("probes: [openat]\nargs: {comm: str}\n", "p.yaml:3", "cannot name an argument"),
    ("probes: [kill]\nargs: {a: {type: sockaddr, from: pid}}\n", "p.yaml:3", "not a pointer"),
    ("probes: [openat]\nargs: {a: {type: sockaddr, from: filename}}\n", "p.yaml:3",
     "holds the address's length"),
    ("probes: [nosuchcall]\n", "p.yaml:2", "no tracepoint syscalls:sys_enter_nosuchcall"),
    ("probes: [exit_group]\n", "p.yaml:2", "exit_group never returns"),
    ("probes: [openat, exit]\n", "p.yaml:2", "exit never returns"),
    ("probes: [openat, execve]\n", "p.yaml:2", "cannot share a profile"),
    ("probes: [execve]\nargs: {x: int}\n", "p.yaml:3", "arguments are filename and argv"),
    ("probes: [kill]\nargs: {sig: signal}\nfilters: {args: {sig: [SIGNOPE]}}\n", "p.yaml:4",
     "unknown signal 'SIGNOPE'"),
    ("probes: [kill]\nargs: {sig: signal}\nfilters: {args: {pid: [1]}}\n", "p.yaml:4",
     "no argument 'pid' to filter on"),
    ("probes: [openat]\nargs: {flags: open_flags}\nfilters: {args: {flags: [O_NOPE]}}\n",
     "p.yaml:4", "expected a flag name"),
    ("probes: [openat]\nargs: {filename: str}\nfilters: {args: {filename: ['" + "x" * 127
     + "']}}\n", "p.yaml:4", "at most 126 bytes"),
    ("probes: [openat]\nargs: {filename: str}\ncolumns: [time, nope]\n", "p.yaml:4",
     "unknown column 'nope'"),
    ("probes: [openat]\nresult: bytes\n", "p.yaml:3", "unknown result type"),
    ("probes: [openat]\nstats: {by: [program]}\n", "p.yaml:3", "unknown breakdown"),
    ("probes: [clone]\nargs: {f: {type: hex, from: {fork: x}}}\n", "p.yaml:3",
     "'fork' is not one of the profile's probes"),
])
def test_bad_syscall_profiles_say_where_and_what(doc: str, where: str, words: str) -> None:
    with pytest.raises(SpecError) as err:
        parse("version: 1\n" + doc)
    assert str(err.value).startswith(where + ":"), str(err.value)
    assert words in str(err.value)


def test_a_wrong_argument_lists_the_valid_ones() -> None:
    with pytest.raises(SpecError) as err:
        parse("version: 1\nprobes: [connect]\nargs: {addr: sockaddr}\n")
    assert err.value.hint == ("connect's arguments on this kernel: fd (int), "
                              "uservaddr (struct sockaddr *), addrlen (int)")


def test_arguments_may_differ_per_syscall() -> None:
    profile = shipped("clone")
    flags = profile.args[0]
    assert flags.source("clone").field == "clone_flags"
    assert (flags.source("clone3").field, flags.source("clone3").index) == ("uargs", 0)
    assert flags.source("fork") is None


def test_recordings_keep_syscall_profiles_whole() -> None:
    for name in SHIPPED:
        profile = apply_where(shipped(name), ["comm=x"])
        assert profile_from_dict(profile_to_dict(profile)) == profile
    profile = apply_where(shipped("openat"), ["path=/etc/*", "flags=O_CREAT", "dfd=AT_FDCWD"])
    assert profile_from_dict(profile_to_dict(profile)) == profile


# --- argument types ----------------------------------------------------------------------

def test_flags_and_signals_by_name() -> None:
    show = lambda t, v: argtypes.TYPES[t].show(v)  # noqa: E731
    assert show("open_flags", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC) == \
        "O_WRONLY|O_CREAT|O_CLOEXEC"
    assert show("open_flags", 0) == "O_RDONLY"
    assert show("open_flags", os.O_RDWR | os.O_SYNC) == "O_RDWR|O_SYNC"
    assert show("open_flags", os.O_RDONLY | 0x40000000) == "O_RDONLY|0x40000000"
    assert show("clone_flags", 0x1200011) == "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD"
    assert show("clone_flags", 0) == "0"
    assert show("signal", signal.SIGTERM) == "SIGTERM"
    assert show("signal", signal.SIGRTMIN + 2) == "SIGRTMIN+2"
    assert show("signal", 0) == "0"
    assert show("fd", 4294967196) == "AT_FDCWD"  # -100 as the tracepoint's 32-bit int
    assert show("pid", 0xFFFFFFFF) == "-1"
    assert show("octal", 0o640) == "0640" and show("octal", 0) == "0"


def test_every_signal_shown_by_name_is_a_filter_value_of_that_signal() -> None:
    """--where signal=NAME takes what the table shows: SIGRTMIN+2 too, and SIGRTMAX-N
    as `kill -l` says it."""
    signal_type = argtypes.TYPES["signal"]
    assert signal_type.filter_value is not None
    for number in range(1, signal.SIGRTMAX + 1):
        shown = signal_type.show(number)
        if not shown.isdigit():  # 32 and 33 are glibc's own: numbers
            assert signal_type.filter_value(shown) == number, shown
    assert signal_type.filter_value("rtmax-1") == signal.SIGRTMAX - 1
    for beyond in ("SIGRTMIN+31", "SIGRTMAX-31"):
        with pytest.raises(argtypes.FilterValueError, match="SIGRTMIN\\+0 to SIGRTMIN\\+30"):
            signal_type.filter_value(beyond)


def _sockaddr_in(host: str, port: int) -> bytes:
    return struct.pack("<H", socket.AF_INET) + struct.pack("!H", port) + \
        socket.inet_aton(host) + b"\0" * 8


def test_socket_addresses() -> None:
    v6 = (struct.pack("<H", socket.AF_INET6) + struct.pack("!H", 443) + b"\0" * 4
          + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + b"\0" * 4)
    assert argtypes.sockaddr_text(_sockaddr_in("127.0.0.1", 8080)) == "127.0.0.1:8080"
    assert argtypes.sockaddr_text(v6) == "[2001:db8::1]:443"
    assert argtypes.sockaddr_parts(v6) == {"family": "AF_INET6", "address": "2001:db8::1",
                                           "port": 443}
    unix = struct.pack("<H", socket.AF_UNIX) + b"/run/x.sock\0garbage"
    assert argtypes.sockaddr_text(unix) == "/run/x.sock"
    abstract = struct.pack("<H", socket.AF_UNIX) + b"\0name"
    assert argtypes.sockaddr_text(abstract) == "@name"
    assert argtypes.sockaddr_text(b"") == "(none)"
    assert argtypes.sockaddr_text(struct.pack("<H", 99)) == "family 99"


def test_addresses_read_as_ss_and_strace_write_them_in_the_table_and_json() -> None:
    """An IPv4-mapped address with its IPv4 dotted, a link-local one with its scope, a
    family known by name: the same in the table as in JSON (and --from's reports)."""
    def v6(host: str, scope: int) -> bytes:
        return (struct.pack("<H", socket.AF_INET6) + struct.pack("!H", 9) + b"\0" * 4
                + socket.inet_pton(socket.AF_INET6, host) + struct.pack("<I", scope))
    assert argtypes.sockaddr_text(v6("::ffff:127.0.0.1", 0)) == "[::ffff:127.0.0.1]:9"
    assert argtypes.sockaddr_parts(v6("::ffff:127.0.0.1", 0))["address"] == \
        "::ffff:127.0.0.1"
    assert argtypes.sockaddr_text(v6("fe80::1", 2)) == "[fe80::1%2]:9"
    assert argtypes.sockaddr_parts(v6("fe80::1", 2)) == {
        "family": "AF_INET6", "address": "fe80::1%2", "port": 9}
    netlink = struct.pack("<HHII", socket.AF_NETLINK, 0, 0, 0)
    assert argtypes.sockaddr_text(netlink) == argtypes.sockaddr_parts(netlink)["family"] \
        == "AF_NETLINK"


# --- assembly and rendering -------------------------------------------------------------

def closing(probe: int, records: int, ret: int, ints: list[int], *, tid: int = 7,
            comm: bytes = b"cat") -> bytes:
    return record(CALL, tid, 100, probe=probe, records=records, ret=ret, latency=5000,
                  pid=tid, ppid=1, uid=0, ints=ints, comm=comm)


def test_records_join_in_any_order_and_strings_are_exact() -> None:
    profile = shipped("openat")
    asm = Assembler(profile, wall_offset_ns=0)
    path = b"/tmp/" + "é".encode() * 100  # 205 bytes: two chunks
    first, second = path[:CHUNK], path[CHUNK:]
    flags = os.O_RDONLY | os.O_CLOEXEC
    assert asm.feed(record(STR, 7, 100, slot=1, chunk=1, next=0, text=second), 1) == []
    assert asm.feed(closing(0, 3, 3, [4294967196, flags, 0]), 2) == []
    [event] = asm.feed(record(STR, 7, 100, slot=1, chunk=0, next=65, text=first), 3)
    assert event.values == {"dfd": 4294967196, "path": path, "flags": flags, "mode": 0}
    assert event.comm == b"cat" and event.ret == 3 and not event.incomplete
    row = Renderer(profile).row(event)
    assert "O_RDONLY|O_CLOEXEC" in row and path.decode() in row and row.split()[-2] == "3"
    as_json = Renderer(profile).to_dict(event)
    assert as_json["args"] == {"dfd": -100, "path": path.decode(),
                               "flags": "O_RDONLY|O_CLOEXEC", "mode": "0"}


def test_a_call_closes_with_who_made_it_and_its_strings_first_chunk() -> None:
    openat = shipped("openat")
    asm = Assembler(openat, wall_offset_ns=0)
    path = b"/etc/" + b"p" * 200  # two chunks: the closing record holds the first
    who = {"gid": 5, "euid": 1000, "egid": 6, "loginuid": 1000, "sessionid": 3,
           "tty": (136 << 20) + 2, "started": 111, "execs": 2, "parent_started": 99,
           "parent_execs": 1}
    flags = os.O_RDONLY
    # the chunk after the first comes first: it is printed after the closing record
    assert asm.feed(record(STR, 7, 100, slot=1, chunk=1, next=0, text=path[CHUNK:]), 1) == []
    [event] = asm.feed(record(CALL_STR, 7, 100, probe=0, records=2, ret=3, latency=50, pid=7,
                              ppid=1, uid=1000, slot=1, next=path[CHUNK], ints=[5, flags, 0],
                              comm=b" my cat ", text=path[:CHUNK], **who), 2)
    assert event.values == {"dfd": 5, "path": path, "flags": flags, "mode": 0}
    assert (event.comm, event.ret, event.uid, event.truncated) == (b" my cat ", 3, 1000, set())
    assert event.who is not None and event.who.tty == "pts/2"
    assert (event.who.euid, event.who.loginuid) == (1000, 1000)
    assert event.who.exec_id.endswith(":7:111:2")
    kill = Assembler(shipped("kill"), wall_offset_ns=0)
    [sent] = kill.feed(record(CALL_WHO, 8, 100, probe=0, records=1, ret=-3, latency=9, pid=8,
                              ppid=1, uid=0, ints=[4242, 9], comm=b"kill", **who), 1)
    assert (sent.ret, sent.errno, sent.comm, sent.values["target"]) == (-3, "ESRCH", b"kill", 4242)
    assert sent.who is not None and sent.who.sessionid == 3


def test_an_address_comes_in_records_of_words() -> None:
    """A unix socket path of 100 bytes: its first 80 in the closing record, the rest in
    a `bytesw` record printed after it; an IPv4 address, the closing record alone."""
    connect = shipped("connect")
    asm = Assembler(connect, wall_offset_ns=0)
    path = b"/run/" + b"s" * 95
    raw = struct.pack("<H", socket.AF_UNIX) + path
    assert asm.feed(record(CALL_ADDR, 7, 100, probe=0, records=2, ret=-2, latency=9, pid=7,
                           ppid=1, uid=0, slot=1, length=80, ints=[3], data=raw[:80],
                           comm=b"nc"), 1) == []
    [event] = asm.feed(record(BYTES_WORDS, 7, 100, slot=1, offset=80, length=len(raw) - 80,
                              data=raw[80:]), 2)
    assert Renderer(connect).to_dict(event)["args"]["address"] == {
        "family": "AF_UNIX", "path": path.decode()}
    v4 = _sockaddr_in("127.0.0.1", 8080)
    [event] = asm.feed(record(CALL_ADDR, 8, 100, probe=0, records=1, ret=0, latency=9, pid=8,
                              ppid=1, uid=0, slot=1, length=len(v4), ints=[3], data=v4,
                              comm=b"curl"), 3)
    assert Renderer(connect).to_dict(event)["args"]["address"] == {
        "family": "AF_INET", "address": "127.0.0.1", "port": 8080}


def test_a_call_with_records_lost_is_shown_incomplete_on_expiry() -> None:
    asm = Assembler(shipped("openat"), wall_offset_ns=0)
    asm.feed(closing(0, 2, -2, [0, 0, 0]), 0)
    [event] = list(asm.expire(5_000_000_000))
    assert event.incomplete and event["path"] == b"" and event.errno == "ENOENT"
    assert asm.stats.incomplete == 1


def test_malformed_and_unknown_records_are_counted() -> None:
    asm = Assembler(shipped("kill"), wall_offset_ns=0)
    assert asm.feed(b"call 1 2 0 1 0", 0) == []  # too short
    assert asm.feed(closing(9, 1, 0, [1, 2]), 0) == []  # no probe 9
    assert asm.feed(b"wat 1 2 3", 0) == []
    assert (asm.stats.malformed, asm.stats.unknown) == (2, 1)


def test_chunks_past_a_strings_end_are_ignored() -> None:
    # the kernel cannot see a NUL inside a chunk: it may read on; a short chunk ends it
    assert join_chunks({0: (b"short", 120), 1: (b"garbage", 0)}, CHUNK, 4096) == (b"short", False)
    full = b"a" * CHUNK
    assert join_chunks({0: (full, 98)}, CHUNK, 4096) == (full, True)  # the loop's limit
    assert join_chunks({0: (full, 0)}, CHUNK, 4096) == (full, False)  # exactly one chunk
    assert join_chunks({0: (full, 98), 1: (b"bc", 0)}, CHUNK, 130) == (full + b"bc", False)
    assert join_chunks({0: (full, 98), 1: (b"bcdef", 0)}, CHUNK, 130) == (full + b"bcd", True)
    assert join_chunks({1: (b"x", 0)}, CHUNK, 4096) == (b"", True)


# --- the command line's forms -----------------------------------------------------------

def test_adhoc_profile_is_the_yaml_it_stands_for() -> None:
    adhoc = adhoc_profile(["openat"], ["filename:str", "flags:open_flags"], result="fd",
                          lookup=lookup)
    yaml_form = parse("version: 1\nprobes: [openat]\nargs: {filename: str, flags: "
                      "open_flags}\nresult: fd\n", name="openat")
    assert adhoc.args == yaml_form.args and adhoc.result == "fd"
    assert adhoc.columns == yaml_form.columns


@pytest.mark.parametrize("args,words", [
    (["filename"], "expected NAME:TYPE"),
    (["filename:str:"], "expected NAME:TYPE"),
    (["x:str:nosuchfield"], "openat has no argument 'nosuchfield'"),
    (["filename:strr"], "unknown type"),
])
def test_adhoc_arguments_are_checked(args: list[str], words: str) -> None:
    with pytest.raises(UsageError) as err:
        adhoc_profile(["openat"], args, lookup=lookup)
    assert words in str(err.value)


def test_where_filters_base_fields_and_arguments() -> None:
    profile = apply_where(shipped("kill"), ["comm=bash", "comm='sh'", "uid=0",
                                            "signal=KILL", "signal=15"])
    assert profile.filters.comm == ("bash", "sh") and profile.filters.uid == (0,)
    assert profile.filters.args == (("signal", (9, 15)),)
    for bad, words in [("sig=9", "nothing called 'sig'"), ("signal", "expected NAME=VALUE"),
                       ("uid=x", "not a number"), ("comm=" + "x" * 16, "the kernel keeps"),
                       ("signal=99", "not a signal number")]:
        with pytest.raises(UsageError) as err:
            apply_where(shipped("kill"), [bad])
        assert words in str(err.value)


def test_filters_on_an_end_take_only_what_an_end_can_hold() -> None:
    """A status past 255 or a core flag past 1 would match nothing: refused, on the
    command line and in a profile, for the exit profile and for execve's --exits."""
    exits = apply_where(shipped("exit"), ["status=255", "core=1", "status=0"])
    assert exits.filters.args == (("status", (255, 0)), ("core", (1,)))
    for base in (shipped("exit"), with_exits(shipped("execve"))):
        for bad, words in [("status=256", "256 is not an exit status (0-255)"),
                           ("status=-1", "-1 is not an exit status (0-255)"),
                           ("core=2", "2 is not a core flag (0-1)")]:
            with pytest.raises(UsageError) as err:
                apply_where(base, [bad])
            assert words in str(err.value)
    text = (ROOT / "probes" / "exit.yaml").read_text().replace(
        "    signal: []", "    status: [0, 300]")
    with pytest.raises(SpecError) as spec_err:
        parse(text)
    assert "filter on status: 300 is not an exit status (0-255)" in str(spec_err.value)


# --- process context --------------------------------------------------------------------

def test_containers_are_recognised_from_their_cgroup_names() -> None:
    from bptrace_exec.event import ProcContext, container_of
    from bptrace_exec.output.text import parent_chain

    ident = "0123456789abcdef" * 4
    assert container_of(f"docker-{ident}.scope") == ("docker", ident)
    assert container_of(f"cri-containerd-{ident}.scope") == ("containerd", ident)
    assert container_of(f"crio-{ident}.scope") == ("cri-o", ident)
    assert container_of(f"libpod-{ident}.scope") == ("podman", ident)
    assert container_of(ident) == ("cgroupfs", ident)
    assert container_of("nginx.service") is None and container_of(ident[:-1]) is None
    ctx = ProcContext(7, "nginx.service", 4026531836, 4026531832, "web")
    assert ctx.short() == "nginx.service" and not ctx.in_container
    assert ProcContext(1, "", 4026531836, 1, "h").short() == "host"
    assert ProcContext(1, f"docker-{ident}.scope", 4026532000, 1, "h").short() == ident[:12]
    assert parent_chain(((812, b"bash"), (700, b"ss\x1bhd"), (1, b"systemd"))) == \
        "bash(812) > ss\\Ehd(700) > systemd(1)"


def test_context_records_join_the_call() -> None:
    import dataclasses

    from bptrace_exec.spec import Context

    profile = dataclasses.replace(shipped("kill"), context=Context(parents=2, container=True))
    asm = Assembler(profile, wall_offset_ns=0)
    for text in (record(ANC, 7, 100, depth=2, pid=1, comm=b"sh"),
                 record(ANC, 7, 100, depth=1, pid=6, comm=b"sh"),
                 record(CGRP, 7, 100, cgroup_id=42, pidns=4026532000, mntns=4026532001,
                        name=b"crio-" + b"ab" * 32 + b".scope"),
                 record(UTS, 7, 100, hostname=b"web-1")):
        assert asm.feed(text, 0) == []
    [event] = asm.feed(closing(0, 5, 0, [9, 15]), 0)
    assert event.parents == ((6, b"sh"), (1, b"sh"))
    assert event.context is not None and event.context.container == ("cri-o", "ab" * 32)
    out = Renderer(profile).to_dict(event)
    assert out["parents"] == [{"pid": 6, "comm": "sh"}, {"pid": 1, "comm": "sh"}]
    assert out["context"]["hostname"] == "web-1"  # type: ignore[index]


@pytest.mark.parametrize("doc,words", [
    ("probes: [kill]\ncontext: {parents: 17}\n", "out of range"),
    ("probes: [kill]\ncontext: {container: yes please}\n", "expected true or false"),
    ("probes: [kill]\ncolumns: [time, parents]\n", "unknown column 'parents'"),
    ("probes: [kill]\nstats: {by: [container]}\n", "unknown breakdown 'container'"),
    ("probes: [execve]\nfilters: {failed: true}\ncontext: {container: true}\n",
     "cannot show container context of failed execs only"),
    ("probes: [kill]\nfilters: {cgroup: [relative/path]}\n", "is not a cgroup directory"),
])
def test_bad_context_says_what(doc: str, words: str) -> None:
    with pytest.raises(SpecError) as err:
        parse("version: 1\n" + doc)
    assert words in str(err.value)


def test_context_filters_reach_the_kernel_predicate() -> None:
    from bptrace_exec.codegen import generate
    from bptrace_exec.codegen.program import NOT_SELF
    from bptrace_exec.spec import with_overrides

    profile = with_overrides(shipped("kill"), cgroup=["/sys/fs/cgroup/a b"],
                             in_container=True, parents=3, context=True)
    text = generate(profile).text
    assert ('/cgroup == cgroupid("/sys/fs/cgroup/a b") && '
            "curtask->nsproxy->pid_ns_for_children->ns.inum != 4026531836 && "
            f"{NOT_SELF}/") in text
    assert "while ($d <= 3)" in text and 'printf("uts %lu' in text
    assert profile.columns[-1] == "parents" and "container" in profile.columns
    with pytest.raises(UsageError):
        with_overrides(shipped("kill"), parents=17)


def test_exec_records_carry_context_too() -> None:
    from bptrace_exec.records import ELEM
    from bptrace_exec.spec import parse_profile

    profile = parse_profile("version: 1\ncontext: {parents: 1, container: true}\n",
                            source="e", name="e")
    asm = Assembler(profile, wall_offset_ns=0)
    records = [record(ANC, 5, 9, depth=1, pid=4, comm=b"sh"),
               record(CGRP, 5, 9, cgroup_id=77, pidns=4026531836, mntns=4026531832,
                      name=b"cron.service"),
               record(UTS, 5, 9, hostname=b"box"),
               record(STR, 5, 9, slot=0, chunk=0, next=0, text=b"/bin/x"),
               record(ELEM, 5, 9, slot=1, item=0, chunk=0, next=0, text=b"x"),
               record(CALL, 5, 9, probe=0, records=6, ret=-2, latency=100, pid=5, ppid=4,
                      uid=0, ints=[1, 1, 0, 0, 0, 0], comm=b"sh")]  # argv's, dirfd, flags
    [event] = [e for r in records for e in asm.feed(r, 0)]
    assert event.parents == ((4, b"sh"),) and event.context is not None
    assert event.context.cgroup == "cron.service" and event.context.hostname == "box"
    renderer = Renderer(profile)
    assert "CONTAINER" in renderer.header() and "PARENTS" in renderer.header()
    row = renderer.row(event)
    assert "cron.service" in row and "sh(4)" in row and row.split()[-2:] == ["/bin/x", "x"]


# --- corner cases found in review ---------------------------------------------------------

def test_length_is_a_field_name_even_when_the_format_cannot_be_read() -> None:
    from bptrace_exec.spec import parse_profile
    from bptrace_exec.spec.tracepoint import UNKNOWN

    doc = ("version: 1\nprobes: [connect]\nargs:\n  a: {type: sockaddr, from: uservaddr, "
           "length: 'addrlen); printf(\"x\"); (1'}\n")
    with pytest.raises(SpecError, match="is not a field name"):
        parse_profile(doc, source="p.yaml", name="p", lookup=lambda _n: UNKNOWN)
    with pytest.raises(SpecError, match="`length` is for sockaddr"):
        parse("version: 1\nprobes: [connect]\nargs: {fd: {type: fd, length: addrlen}}\n")


def test_per_syscall_lengths_survive_a_recording() -> None:
    profile = parse("version: 1\nprobes: [connect, bind]\nargs:\n  a: {type: sockaddr, from: "
                    "{connect: uservaddr, bind: umyaddr}, length: {bind: addrlen}}\n")
    assert profile_from_dict(profile_to_dict(profile)) == profile


def test_a_filter_on_an_argument_drops_syscalls_without_it() -> None:
    from bptrace_exec.codegen import generate

    text = generate(apply_where(shipped("clone"), ["flags=CLONE_THREAD"])).text
    fork = text[text.index("tracepoint:syscalls:sys_exit_fork"):]
    assert "if (!@stop[0] && 0) {" in fork[:fork.index("\n}")]


def test_context_options_keep_chosen_columns_and_zero_parents_is_a_value() -> None:
    from bptrace_exec.spec import with_overrides

    chosen = adhoc_profile(["openat"], ["filename:str"], columns="pid,filename",
                           lookup=lookup)
    assert with_overrides(chosen, parents=2, context=True).columns == (
        "pid", "filename", "container", "parents")
    deeper = with_overrides(shipped("clone"), parents=3)
    assert with_overrides(deeper, parents=0).context.parents == 0
    assert "parents" not in with_overrides(deeper, parents=0).columns
    with pytest.raises(UsageError, match="for exec profiles"):
        with_overrides(shipped("clone"), max_args=3)
    with pytest.raises(SpecError, match="`columns` is empty"):
        adhoc_profile(["openat"], ["filename:str"], columns=",", lookup=lookup)
    with pytest.raises(UsageError, match="given 2 times"):
        adhoc_profile(["openat"], ["filename:str", "filename:int"], lookup=lookup)


def test_where_reads_modes_in_octal() -> None:
    profile = apply_where(shipped("openat"), ["mode=0644"])
    assert profile.filters.args == (("mode", (0o644,)),)


def test_exit_stats_from_json_lines_count_non_zero_status_as_failed() -> None:
    from bptrace_exec.output.tally import from_json_events

    lines = [{"event": "exit", "syscall": "process_exit", "ret": r, "lifetime_ns": 5,
              "status": r % 128, "signal": "SIGKILL" if r > 128 else "0"} for r in (0, 1, 137)]
    stats = from_json_events(lines, by_kind=lambda _kind: ["syscall", "signal"])
    assert stats.failed == 2 and stats.unit == "exits"
    assert dict(stats.breakdowns["signal"]) == {"0": 2, "SIGKILL": 1}
    from bptrace_exec.output.report import render_report
    assert "Lifetime, start to exit (3 exits)" in render_report(stats, top=3, title="t")


def test_where_in_the_shape_of_a_bpftrace_predicate_and_errno_arguments() -> None:
    profile = apply_where(shipped("openat"), ['comm == "nginx"', "path==/etc/*"])
    assert profile.filters.comm == ("nginx",)
    assert profile.filters.args == (("path", ("/etc/*",)),)
    errno_type = argtypes.TYPES["errno"]
    assert errno_type.show(4294967294) == "ENOENT" and errno_type.show(13) == "EACCES"
    assert errno_type.filter_value is not None and errno_type.filter_value("eperm") == 1


def test_columns_option_on_a_shipped_profile() -> None:
    from bptrace_exec.spec.overrides import apply_columns

    assert apply_columns(shipped("openat"), "time, comm,path").columns == ("time", "comm",
                                                                           "path")
    with pytest.raises(SpecError, match="unknown column 'nope'"):
        apply_columns(shipped("openat"), "time,nope")
    with pytest.raises(SpecError, match="column 'comm' is listed twice"):
        apply_columns(shipped("openat"), "comm,time,comm")


def test_unchecked_arguments_are_said_when_the_formats_cannot_be_read(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from bptrace_exec import cli
    from bptrace_exec.spec import tracepoint

    monkeypatch.setattr(tracepoint, "_events_dir", lambda: None)  # as without root
    assert cli.main(["--syscall", "openat", "--arg", "flagz:str", "--emit", "script"]) == 0
    err = capsys.readouterr().err
    assert "were not checked against this kernel" in err
    assert cli.main(["execve", "--emit", "script"]) == 0
    assert "not checked" not in capsys.readouterr().err


def test_every_argument_type_has_a_table_column() -> None:
    profile = adhoc_profile(["kill"], ["errno_:errno:sig", "signal_:signal:sig"],
                            lookup=lookup)
    assert "ERRNO_" in Renderer(profile).header()


@pytest.mark.parametrize("result, clause", [
    ("failed", "$ret < 0"), ("succeeded", "$ret >= 0")])
def test_result_filters_of_syscall_profiles(result: str, clause: str) -> None:
    import dataclasses

    from bptrace_exec.codegen import generate
    from bptrace_exec.spec import with_overrides

    text = generate(with_overrides(shipped("kill"), **{result: True})).text
    # kill, tkill and tgkill read alike at return: one probe for the three
    assert text.count(f"  if (!@stop[0] && {clause}) {{\n") == 1, text
    assert all(f"tracepoint:syscalls:sys_exit_{p}" in text for p in shipped("kill").probes)
    assert ("failed calls only" if result == "failed" else "successful calls only") in text
    exits = generate(dataclasses.replace(shipped("exit"), filters=dataclasses.replace(
        shipped("exit").filters, **{result: True}))).text
    assert f"curtask->exit_code {'!=' if result == 'failed' else '=='} 0" in exits
    assert f"{'failed' if result == 'failed' else 'successful'} exits only" in exits


def test_stats_from_a_stream_of_execs_and_exits_count_the_execs() -> None:
    from bptrace_exec.api import stats_from_json

    exit_line = {"event": "exit", "syscall": "process_exit", "ret": 0, "lifetime_ns": 5,
                 "status": 0, "signal": "0", "core": 0, "pid": 1, "ppid": 0, "uid": 0,
                 "tid": 1, "comm": "x", "time": "2026-12-05T00:00:00Z"}
    exec_line = {**exit_line, "event": "exec", "syscall": "execve", "argv": ["x"],
                 "filename": "/x", "latency_ns": 5}
    lines = [json.dumps(o) for o in (exit_line, exec_line, exit_line)]
    stats, counted, skipped = stats_from_json(iter(lines))
    assert (stats.unit, stats.count, skipped) == ("execs", 1, 0)
    assert counted is not None and counted.name == "execve"
    exits, counted, skipped = stats_from_json(iter([json.dumps(exit_line)]))
    assert (exits.unit, exits.count, skipped) == ("exits", 1, 0)
    assert counted is not None and counted.name == "exit"
