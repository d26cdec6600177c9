"""The generated program: golden files (update with --update-goldens), and its safety."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from bptrace_exec.codegen import generate
from bptrace_exec.codegen.btlang import comment_text, int_literal, string_literal
from bptrace_exec.codegen.program import header_length
from bptrace_exec.spec import (
    Filters,
    Profile,
    StatsSpec,
    parse_profile,
    with_overrides,
)

GOLDEN = Path(__file__).parent / "golden"
BASE = parse_profile("version: 1\ndescription: Trace every execve and execveat on the host.\n",
                     source="probes/execve.yaml", name="execve")

CASES = {
    "default": (BASE, False),
    "filters": (dataclasses.replace(BASE, filters=Filters(
        comm=("bash", 'we"ird\\na*/me'), uid=(0, 1000), pid=(42,), ppid=(1,))), False),
    "failed-only": (dataclasses.replace(BASE, filters=Filters(failed=True)), False),
    "follow-command": (BASE, True),
    "execve-only-small-limits": (parse_profile(
        "version: 1\nprobes: [execve]\nlimits: {max_args: 4, argv_bytes: 200}\n",
        source="probes/execve.yaml", name="execve"), False),
    "stats": (dataclasses.replace(BASE, stats=dataclasses.replace(BASE.stats, enabled=True)),
              False),
    "context-parents-container": (with_overrides(BASE, parents=3, context=True), False),
    "stats-failed-by-uid-every-5s": (dataclasses.replace(
        BASE, filters=Filters(failed=True, comm=("make",)),
        stats=StatsSpec(enabled=True, by=("uid", "errno"), interval=5)), True),
    "stats-by-euid-tty": (dataclasses.replace(BASE, stats=StatsSpec(
        enabled=True, by=("euid", "tty", "errno"))), False),
    "filters-filename-euid": (dataclasses.replace(BASE, filters=Filters(
        euid=(0,), args=(("filename", ("/usr/bin/make", "/usr/local/*")),))), False),
    "process-follow": (parse_profile(
        (GOLDEN.parents[1] / "probes" / "process.yaml").read_text(),
        source="probes/process.yaml", name="process"), True),
    "process-filename": (dataclasses.replace(with_overrides(BASE, exits=True), filters=Filters(
        args=(("filename", ("/usr/bin/make",)),))), False),
    "succeeded-only": (dataclasses.replace(BASE, filters=Filters(succeeded=True)), False),
    "paths-cwd-exe": (with_overrides(BASE, cwd=True, exe=True), False),
    "env-path-ld-preload": (with_overrides(BASE, env=["PATH", "LD_PRELOAD"]), False),
    "paths-cwd-failed-only": (with_overrides(BASE, cwd=True, failed=True), False),
    "stats-light": (dataclasses.replace(BASE, filters=Filters(succeeded=True), stats=StatsSpec(
        enabled=True, by=("program", "uid", "ppid", "cgroup"), latency=False)), False),
    "stats-light-by-uid-every-5s-follow": (dataclasses.replace(
        BASE, filters=Filters(succeeded=True, uid=(1000,)),
        stats=StatsSpec(enabled=True, by=("uid",), interval=5, latency=False)), True),
}
LIGHT = CASES["stats-light"][0]



def _call_cases() -> dict[str, tuple[Profile, bool]]:
    from bptrace_exec.spec.overrides import adhoc_profile, apply_where
    from calls_fixtures import lookup, shipped

    cases = {f"call-{n}": (shipped(n), False) for n in ("openat", "connect", "clone", "kill",
                                                         "exit")}
    filtered = apply_where(shipped("openat"), [
        "comm=make", "path=/usr/*", "path=" + "/a-path-longer-than-one-literal" * 3,
        "flags=O_CREAT", "flags=O_WRONLY", "dfd=AT_FDCWD"])
    cases["call-openat-filters-failed-follow"] = (dataclasses.replace(
        filtered, filters=dataclasses.replace(filtered.filters, failed=True)), True)
    cases["call-openat-paths"] = (with_overrides(shipped("openat"), cwd=True, exe=True), False)
    cases["call-kill-context"] = (with_overrides(
        shipped("kill"), in_container=False, parents=4,
        context=True), False)
    cases["call-openat-context"] = (with_overrides(shipped("openat"), parents=3, context=True),
                                    False)
    # two strings: both in `str` records, the closing record with who alone (`callw`)
    cases["call-renameat2"] = (adhoc_profile(
        ["renameat2"], ["olddfd:fd", "oldname:str", "newdfd:fd", "newname:str", "flags:hex"],
        lookup=lookup), False)
    return cases


CASES.update(_call_cases())


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str, request: pytest.FixtureRequest) -> None:
    profile, follow = CASES[name]
    text = generate(profile, follow=follow).text
    path = GOLDEN / f"{name}.bt"
    if request.config.getoption("--update-goldens"):
        path.write_text(text)
    assert path.exists(), "run pytest --update-goldens to create it"
    assert text == path.read_text()
    assert generate(profile, follow=follow).text == text, "generation is deterministic"


@pytest.mark.parametrize("version", ["v0.17.0", "v0.21.3", "v0.22.0", "v0.23.2", None])
def test_bpftrace_0_22_and_later_keep_values_on_the_stack_not_in_scratch_maps(
        version: str | None) -> None:
    """0.22+ would keep every value over 32 bytes in a scratch map (a lookup each, which
    LLVM compiles and the verifier walks): its settings follow the header, where the
    kernel types' definitions go before them (a config block must follow C)."""
    for profile, follow in (CASES["default"], CASES["stats"], CASES["call-openat"]):
        text = generate(profile, version, follow=follow).text
        settings = text[header_length(text):].startswith("config = { on_stack_limit = 256 }\n")
        assert settings == (version in ("v0.22.0", "v0.23.2")), version


@pytest.mark.parametrize("change", [
    {"filters": Filters()},  # failed execs are counted too
    {"filters": Filters(succeeded=True, comm=("sh",))},  # the caller's name, gone at start
    {"stats": StatsSpec(enabled=True, by=("program", "comm"), latency=False)},
    {"stats": StatsSpec(enabled=True, by=("program", "errno"), latency=False)},
    {"stats": StatsSpec(enabled=True, by=("program",), latency=True)},
    {"probes": ("execve",)},  # the start of a program does not say which syscall it was
])
def test_stats_go_back_to_the_syscall_tracepoints_for_what_only_they_know(
        change: dict[str, object]) -> None:
    text = generate(dataclasses.replace(LIGHT, **change)).text  # type: ignore[arg-type]
    assert "tracepoint:syscalls:sys_exit_execve" in text
    assert "tracepoint:sched:sched_process_exec\n{\n  @stat_execs" not in text


def test_light_stats_enable_no_syscall_tracepoint() -> None:
    text = generate(LIGHT).text
    assert "tracepoint:syscalls:" not in text and "tracepoint:sched:sched_process_exec" in text


def test_an_exec_prints_nothing_at_entry_so_a_failure_not_asked_for_prints_nothing() -> None:
    text = (GOLDEN / "succeeded-only.bt").read_text()
    entry = text[text.index("sys_enter_execve\n"):]
    assert "printf" not in entry[:entry.index("\n}\n")]
    failure = text[text.index("  if ($ret != 0) {\n"):]
    failure = failure[:failure.index("\n}\n")]
    assert "printf" not in failure and "delete(@call[$key]);" in failure


def test_filters_become_one_kernel_predicate() -> None:
    text = (GOLDEN / "filters.bt").read_text()
    assert ('/(comm == "bash" || comm == "we\\042ird\\134na*/me") && (uid == 0 || uid == 1000)'
            ' && curtask->tgid == 42 && curtask->real_parent->tgid == 1 && ($1 == 0 ||') in text


def test_header_says_what_and_how() -> None:
    text = (GOLDEN / "default.bt").read_text()
    assert text.startswith("#!/usr/bin/env bpftrace\n/*\n * execve\tTrace every execve")
    assert "Generated by bptrace-exec" in text and "from probes/execve.yaml" in text
    assert "tracepoint:syscalls:sys_exit_execve,\ntracepoint:syscalls:sys_exit_execveat" in text


@pytest.mark.parametrize("value", ['"', "\\", "\n", 'a"; system("x"); "', "é", "\x01", "*/"])
def test_string_literal_is_closed_and_exact(value: str) -> None:
    lit = string_literal(value)
    inner = lit[1:-1]
    assert lit[0] == lit[-1] == '"' and '"' not in inner
    assert "\n" not in lit and all(32 <= ord(c) < 127 for c in lit)
    decoded = bytes(int(inner[i + 1:i + 4], 8) if inner[i] == "\\" else ord(inner[i])
                    for i in _starts(inner))
    assert decoded == value.encode()


def _starts(inner: str) -> list[int]:
    out, i = [], 0
    while i < len(inner):
        out.append(i)
        i += 4 if inner[i] == "\\" else 1
    return out


def test_string_literal_refuses_nul() -> None:
    with pytest.raises(ValueError):
        string_literal("a\0b")


@pytest.mark.parametrize("value", [-1, 11, True, "5", 2.0])
def test_int_literal_refuses_anything_out_of_range(value: object) -> None:
    with pytest.raises(ValueError):
        int_literal(value, 0, 10)  # type: ignore[arg-type]


def test_comment_text_cannot_close_the_comment() -> None:
    assert "*/" not in comment_text("evil */ BEGIN { exit(); } /*\n")


def test_every_record_printed_has_its_declared_layout() -> None:
    """The printf of each record in every golden program has the fields its layout
    declares (bptrace_exec.records), in order: the parser reads them by the same table."""
    from bptrace_exec.records import DROP, FORMATS, LAYOUTS, MARK, WORDS

    layouts = {layout.kind: layout for layout in (*LAYOUTS, MARK, DROP)}
    seen = set()
    for golden in GOLDEN.glob("*.bt"):
        for fmt in re.findall(r'printf\("(\w+ [^"]*)\\n"', golden.read_text()):
            kind, *conversions = fmt.split()
            if kind not in layouts:
                continue
            layout, seen = layouts[kind], seen | {kind}
            head = ["%lu", "%lu"] if layout.keyed else []
            types = [t for f in layout.fields  # bytes as WORDS numbers
                     for t in [f.type] * (WORDS if f.type in ("words", "cwords") else 1)]
            fields = [FORMATS[t] for t in types]
            repeated = [t for t in types if t in ("u64*", "i32x2*")]
            if repeated:  # as many as the probe has (two in each, packed)
                at = types.index(repeated[0])
                count = len(conversions) - len(head) - len(fields) + 1
                fields[at:at + 1] = ["%lu"] * count
            assert conversions == head + fields, (golden.name, fmt)
    assert seen == set(layouts), f"records no golden prints: {set(layouts) - seen}"


@pytest.mark.parametrize("changes", [
    {}, {"failed": True}, {"succeeded": True}, {"cwd": True}],
    ids=lambda c: ",".join(c) or "none")
@pytest.mark.parametrize("where", [[], ["euid=0"], ["filename=/usr/bin/*"]],
                         ids=lambda w: ",".join(w) or "none")
def test_the_return_finds_the_key_the_image_left(changes: dict[str, bool],
                                                 where: list[str]) -> None:
    """The image probe sets @moved for every exec exactly when the successful return
    takes its key from @moved only (filters on the new program): else a leader's exec
    would be looked up under key 0 and its maps, or its entry's records, left behind."""
    from bptrace_exec.spec.overrides import apply_where
    from bptrace_exec.spec.profiles import load_profile

    profile = with_overrides(apply_where(load_profile("execve"), where) if where
                             else load_profile("execve"), **changes)
    text = generate(profile).text
    always = "  if ($id) {\n    @moved[(uint64)curtask->pid] = $key;\n" in text
    only_moved = "  $key = @moved[$tid];\n  delete(@moved[$tid]);\n" in text
    assert always == only_moved
    assert always == bool(where and not changes.get("failed")), text
