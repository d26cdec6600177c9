"""The kernel types a program reads, defined in its text from this kernel's BTF: laid out
as the kernel lays them out (a C compiler says so), left to bpftrace where they cannot
be, and read the same by a real run as the types bpftrace finds itself."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import bptrace_exec
from bptrace_exec.codegen.kerneltypes import NO_TYPES_BTF, Btf, definitions
from bptrace_exec.run.cache import CacheDir
from bptrace_exec.run.engine import find_engine
from bptrace_exec.run.kerneltypes import (
    BTF_PATH,
    KEPT,
    SWITCH,
    UNFIT,
    _name,
    _valid,
    with_kernel_types,
)
from bptrace_exec.run.session import Finished, Session, explain_failure
from conftest import run_tool, tool_command

PROGRAM = """
  $a = curtask->cred->euid.val + curtask->mm->arg_start + curtask->real_parent->tgid;
  $d = (struct dentry *)$x; $n = $d->d_name.name; $p = curtask->fs->pwd.mnt;
  $u = curtask->nsproxy->uts_ns->name.nodename; $s = curtask->pending.signal.sig[0];
"""
FORMAT = """format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:pid_t pid;\toffset:8;\tsize:4;\tsigned:1;
\tfield:umode_t mode;\toffset:12;\tsize:2;\tsigned:0;
\tfield:const struct sockaddr * addr;\toffset:16;\tsize:8;\tsigned:0;
\tfield:__data_loc char[] name;\toffset:24;\tsize:4;\tsigned:0;
"""


@pytest.fixture(scope="module")
def btf() -> Btf:
    return Btf(BTF_PATH.read_bytes())


def layout(btf: Btf, struct: str, path: list[str]) -> tuple[int, int]:
    """(offset, size of the struct) of a member path, walked in BTF itself, anonymous
    members included."""
    tid = btf.named(struct, [4, 5])
    size, offset = btf.type(tid)[4], 0
    for name in path:
        found = _find(btf, tid, name)
        assert found is not None, f"{struct} has no {name}"
        bits, tid = found
        offset += bits // 8
        while btf.type(tid)[1] in (8, 9, 10, 11, 18):
            tid = btf.type(tid)[4]
    return offset, size


def _find(btf: Btf, tid: int, name: str) -> tuple[int, int] | None:
    for n, t, bits, _ in btf.members(tid):
        if n == name:
            return bits, t
        inner = t
        while btf.type(inner)[1] in (8, 9, 10, 11, 18):
            inner = btf.type(inner)[4]
        if not n and btf.type(inner)[1] in (4, 5):
            found = _find(btf, inner, name)
            if found:
                return bits + found[0], found[1]
    return None


def pointer_to_array(btf: Btf) -> tuple[str, str, str]:
    """A struct of this kernel's with a member that points to an array, and the member
    after it."""
    for tid in range(1, len(btf.at)):
        name, kind, *_ = btf.type(tid)
        if kind != 4 or not name:
            continue
        for (n, t, _, _), (later, _, _, bits) in itertools.pairwise(btf.members(tid)):
            _, k, _, _, target = btf.type(t)
            if n and later and not bits and k == 2 and btf.type(target)[1] == 3:
                return name, n, later
    raise AssertionError("no member of this kernel points to an array")


def test_the_types_are_laid_out_as_the_kernel_lays_them_out(btf: Btf, tmp_path: Path) -> None:
    checks = {("task_struct", ("cred",)), ("task_struct", ("mm",)),
              ("task_struct", ("real_parent",)), ("task_struct", ("tgid",)),
              ("task_struct", ("pending", "signal")), ("cred", ("euid", "val")),
              ("mm_struct", ("arg_start",)), ("dentry", ("d_name", "name")),
              ("fs_struct", ("pwd", "mnt")), ("uts_namespace", ("name", "nodename"))}
    # a member after a pointer to an array, such as char (*names)[256]
    struct, pointer, after = pointer_to_array(btf)
    program = PROGRAM + f"$v = (struct {struct} *)$x; $m = $v->{pointer}; $n = $v->{after};"
    checks.add((struct, (after,)))
    text = definitions(btf, program, [FORMAT])
    assert text is not None and f"(*{pointer})[" in text
    assert "#define pid_t int" in text and "#define umode_t short unsigned int" in text
    assert "sockaddr" not in text  # a pointer to it is all the format holds
    assert _valid(text, program)  # as a kept copy is read back
    asserts = []
    for name, path in sorted(checks):
        offset, size = layout(btf, name, list(path))
        member = ".".join(path)
        asserts += [f"_Static_assert(offsetof(struct {name}, {member}) == {offset}, "
                    f'"{name}.{member}");',
                    f'_Static_assert(sizeof(struct {name}) == {size}, "{name}");']
    assert layout(btf, "mm_struct", ["arg_start"])[0] > 0  # inside an anonymous struct
    source = tmp_path / "types.c"
    source.write_text("#include <stddef.h>\n" + text + "\n".join(asserts) + "\n")
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "a C compiler checks the layout"
    compiled = subprocess.run([cc, "-fsyntax-only", "-Wall", str(source)],
                              capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr


def test_what_cannot_be_defined_is_left_to_bpftrace(btf: Btf) -> None:
    assert definitions(btf, "curtask->pid", []) is not None
    # a bitfield; a typedef that is not a number; a type this kernel does not have
    assert definitions(btf, "curtask->sched_reset_on_fork", []) is None
    assert definitions(btf, "curtask->pid", [FORMAT.replace(
        "umode_t mode", "cap_user_header_t header")]) is None
    assert definitions(btf, "(struct no_such_type_here *)0", []) is None
    # a union's members share offsets; a packed struct's size is no multiple of its
    # members' alignment (struct bvec_iter: 20 bytes, a u64 first)
    assert definitions(btf, "((union sigval *)$x)->sival_int", []) is None
    assert definitions(btf, "((struct bio *)$x)->bi_iter.bi_sector", []) is None
    # what only the kernel's BTF gives: a tracepoint's field followed to its struct (at
    # once, or through a variable), a cast to a kernel typedef; a word in brackets in a
    # comment or a string, or a condition's, is neither
    assert definitions(btf, "$f = args->uservaddr->sa_family;", [FORMAT]) is None
    assert definitions(btf, "$f = args.uservaddr->sa_family;", [FORMAT]) is None
    assert definitions(btf, "$s = args->addr; $f = $s->sa_family;", [FORMAT]) is None
    assert definitions(btf, "$p = (pid_t)curtask->pid;", []) is None
    assert definitions(btf, '$p = (uint32)curtask->pid; // (sa_t)x ->sa_family\n'
                            'printf("(x)y"); if (comm) { @[args->mode] = 1; }',
                       [FORMAT]) is not None
    assert "struct sockaddr {" in definitions(btf, "$n = sizeof(struct sockaddr);", [])


@pytest.mark.root
def test_bpftrace_is_handed_no_kernel_type_when_the_program_defines_its_own(
        engine: str, nothing_left_running: None) -> None:
    """So it never searches the kernel's: a program that reads a kernel type it does
    not define fails then, and runs with its definitions."""
    program = PROGRAM_TEXT.replace("BEGIN {", 'BEGIN { printf("ready\\n");')
    defined, lines = with_kernel_types(program, None)
    assert lines > 0
    ended = {}
    for name, text in (("bare", program), ("defined", defined)):
        session = Session(text, find_engine(engine), buffer_pages=8, strlen=64,
                          own_types=True)
        session.deadline = time.monotonic() + 60
        try:
            for line in session.lines():
                if line and b'"ready\\n"' in line:
                    session.request_stop()
        finally:
            ended[name] = session.close()
    assert ended["defined"].engine_status == 0, ended["defined"].diagnostics
    assert ended["bare"].engine_status != 0
    assert any("Unknown struct/union: 'struct task_struct'" in d
               for d in ended["bare"].diagnostics), ended["bare"].diagnostics


@pytest.mark.root
def test_every_program_generated_defines_its_kernel_types(tmp_path: Path) -> None:
    """Each runs without the kernel's BTF (no search of its types by bpftrace): a change
    that made one need it would add half a second and more to its every start. And each
    one's definitions are kept, so that the next start skips indexing BTF (0.1 s)."""
    goldens = sorted((Path(__file__).parent / "golden").glob("*.bt"))
    assert len(goldens) > 20
    assert [g.name for g in goldens if with_kernel_types(g.read_text(), None)[1] == 0] == []
    cache = CacheDir(tmp_path, "kerneltypes")
    for golden in goldens:
        text = golden.read_text()
        assert with_kernel_types(text, golden.name, cache)[1] > 0
        assert cache.read(_name(text, golden.name) or "") not in (None, UNFIT), golden.name


@pytest.mark.root
def test_a_run_hands_bpftrace_btf_with_no_types(engine: str, monkeypatch: pytest.MonkeyPatch,
                                                 nothing_left_running: None) -> None:
    """As the tool runs a program: bpftrace holds a file in memory of NO_TYPES_BTF, named
    by BPFTRACE_BTF; with the types left to bpftrace, it has none."""
    handed = {}
    for switch in ("", "bpftrace"):
        monkeypatch.setenv(SWITCH, switch)
        trace = bptrace_exec.trace("execve", command=["sh", "-c", "while :; do :; done"],
                                   bpftrace=engine)
        try:
            assert trace.session is not None
            pid = trace.session.child.pid
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            names = [e.split(b"=", 1)[1] for e in env if e.startswith(b"BPFTRACE_BTF=")]
            handed[switch] = [Path(f"/proc/{pid}/{n.decode().removeprefix('/dev/')}")
                              .read_bytes() for n in names]
        finally:
            trace.close()
    assert handed == {"": [NO_TYPES_BTF], "bpftrace": []}


def test_a_failure_in_the_program_is_located_in_the_text_as_generated() -> None:
    generated = "#!/usr/bin/env bpftrace\n/*\n * x\n */\n\nBEGIN\n{\n  oops;\n}\n"
    # as run: two lines of definitions after the header comment, the error at line 10
    finished = Finished(requested=False, engine_status=1, command_status=None,
                        diagnostics=["/dev/fd/5:10:3-7: ERROR: oops"])
    failure = explain_failure(finished, generated, tracing=False, defined_lines=2)
    assert "generated program line 8: oops;" in str(failure), str(failure)
    assert SWITCH in failure.hint
    inside = dataclasses.replace(finished, diagnostics=["/dev/fd/5:6:1: ERROR: x"])
    assert f"line 6, in the kernel types defined for it (set {SWITCH}=bpftrace" in str(
        explain_failure(inside, generated, tracing=False, defined_lines=2))


def normalized(records: list[dict[str, Any]]) -> list[str]:
    """The events without what differs from run to run."""
    out = []
    for r in records:
        if r.get("event") not in ("exec", "exit"):
            continue
        for key in ("time", "pid", "ppid", "tid", "exec_id", "parent_exec_id", "latency_ns",
                    "lifetime_ns", "cpu_user_ns", "cpu_system_ns", "parents"):
            r.pop(key, None)
        out.append(json.dumps(r, sort_keys=True))
    return sorted(out)


@pytest.mark.root
def test_a_run_reads_the_same_with_the_types_defined_here(engine: str, tmp_path: Path,
                                                          nothing_left_running: None) -> None:
    """Every context a program can read, with the types defined here and with the ones
    bpftrace finds itself."""
    options = ("execve", "--cwd", "--exe", "--context", "--parents", "3", "--exits",
               "--env", "HOME", "--bpftrace", engine)
    program = subprocess.run(tool_command(*options, "--emit", "script"), capture_output=True,
                             text=True, check=True).stdout
    assert with_kernel_types(program, None)[1] > 20  # these runs do differ
    (tmp_path / "sub").mkdir()
    work = f"cd {tmp_path}/sub && /bin/true a 'b c' && ls -d . > /dev/null; exit 3"
    runs = {}
    for switch in ("", "bpftrace"):
        run = run_tool(*options, "--json", "-q", "--", "sh", "-c", work,
                       env={**os.environ, SWITCH: switch})
        assert run.returncode == 3, run.stderr
        runs[switch] = normalized(run.records)
    assert len(runs[""]) == 6 and runs[""] == runs["bpftrace"]
    assert any(f'"cwd": "{tmp_path}/sub"' in r for r in runs[""])


PROGRAM_TEXT = "#!/usr/bin/env bpftrace\n/*\n */\n\nBEGIN { @ = curtask->cred->euid.val; }\n"


def test_definitions_are_kept_for_the_same_program_in_the_same_boot(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path, "kerneltypes")
    folder = tmp_path / "bptrace-exec" / "kerneltypes"
    program = PROGRAM_TEXT
    ran, lines = with_kernel_types(program, "boot-1", cache)
    [kept] = folder.iterdir()
    assert lines > 5 and ran.count("\n") == program.count("\n") + lines
    assert kept.read_text() in ran and kept.stat().st_mode & 0o777 == 0o600
    kept.write_text("struct cred;\n")  # what the next run finds is what it uses
    assert with_kernel_types(program, "boot-1", cache) == (
        program.replace(" */\n", " */\nstruct cred;\n"), 1)
    assert with_kernel_types(program, "boot-2", cache) == (ran, lines)  # another boot
    for bad in ('struct cred;\n}\nBEGIN { system("id") }\n',  # not definitions
                "#define curtask int\n",  # a word of the program's
                "#define pid_t uid\n"):  # not a number
        kept.write_text(bad)
        assert with_kernel_types(program, "boot-1", cache) == (ran, lines), bad
    kept.write_text("struct cred;\n")
    kept.chmod(0o620)  # others could have written it: not read, replaced
    assert with_kernel_types(program, "boot-1", cache) == (ran, lines)
    assert kept.stat().st_mode & 0o777 == 0o600 and kept.read_text() in ran
    kept.write_text("struct cred;\n")
    for unsafe in (0o770, 0o707):  # a folder others can write to: not used at all
        folder.chmod(unsafe)
        assert with_kernel_types(program, "boot-1", cache) == (ran, lines)
        assert kept.read_text() == "struct cred;\n"
        folder.chmod(0o700)
    folder.rename(tmp_path / "elsewhere")
    folder.symlink_to(tmp_path / "elsewhere")  # a link: not followed
    assert with_kernel_types(program, "boot-1", cache) == (ran, lines)
    assert (tmp_path / "elsewhere" / kept.name).read_text() == "struct cred;\n"
    folder.unlink()
    (tmp_path / "elsewhere").rename(folder)
    assert len(list(folder.iterdir())) == 2
    unfit = program.replace("euid.val", "sched_reset_on_fork")  # a bitfield
    assert with_kernel_types(unfit, "boot-1", cache) == (unfit, 0)
    assert UNFIT in [f.read_text() for f in folder.iterdir()]
    assert with_kernel_types(program, None, CacheDir(tmp_path / "x")) == (ran, lines)
    assert not (tmp_path / "x").exists()  # no boot id: nothing kept
    for n in range(KEPT + 3):
        with_kernel_types(program.replace("BEGIN", f"// {n}\nBEGIN"), "boot-1", cache)
    assert len(list(folder.iterdir())) == KEPT


def test_a_relative_cache_home_is_no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    cache = CacheDir.default("kerneltypes")
    assert cache.read("x") is None and not cache.write("x", "y")
    assert with_kernel_types(PROGRAM_TEXT, "boot-1")[1] > 0  # defined, not kept
