"""Profiles: every bad input is refused with the file, the line and a way out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bptrace_exec.codegen import counts_in_kernel
from bptrace_exec.codegen.oneliner import oneliner
from bptrace_exec.errors import SpecError, UsageError
from bptrace_exec.limits import FILTER_STRING_BYTES, FILTER_VALUES, PROFILE_BYTES, PROFILE_NODES
from bptrace_exec.parse.values import ints_per_probe
from bptrace_exec.spec import (
    Filters,
    Limits,
    available_profiles,
    load_profile,
    parse_profile,
    with_overrides,
)
from bptrace_exec.spec.captures import as_recorded
from bptrace_exec.spec.overrides import apply_where
from bptrace_exec.spec.parse import argv_patterns, profile_from_dict, profile_to_dict
from bptrace_exec.spec.tracepoint import UNKNOWN
from bptrace_exec.spec.types import STR_FILTER_MAX


def parse(text: str):  # noqa: ANN201
    return parse_profile(text, source="p.yaml", name="p")


def test_shipped_profile_loads_by_name_and_path() -> None:
    by_name = load_profile("execve")
    by_path = load_profile(str(Path(__file__).parents[1] / "probes" / "execve.yaml"))
    assert by_name.probes == by_path.probes == ("execve", "execveat")
    assert by_name.filters == Filters() and by_name.limits == Limits()
    assert "execve" in available_profiles()
    assert by_name.description.startswith("Trace every execve")


def test_smallest_profile() -> None:
    p = parse("version: 1\nprobes: [execve, execveat]\n"
              "filters:\n  comm: [bash, sh]\n  uid: [1000]\n")
    assert p.filters.comm == ("bash", "sh") and p.filters.uid == (1000,)
    assert p.output_format == "table"


def test_execveat_has_dirfd_and_flags_and_execve_carries_their_places() -> None:
    """Given by the probes: execveat's dirfd and flags, padded in a profile with execve
    (so that both keep one return probe), absent from an execve-only one; columns only
    when asked for."""
    both = parse("version: 1\n")
    assert [(a.name, a.type, a.padded, [s.field for s in a.sources]) for a in both.args] == [
        ("filename", "exec_path", False, ["filename", "filename"]),
        ("argv", "argv", False, ["argv", "argv"]),
        ("dirfd", "exec_dirfd", True, ["fd"]), ("flags", "exec_flags", True, ["flags"])]
    assert both.columns[-2:] == ("filename", "argv") and "dirfd" not in both.columns
    assert with_overrides(both, columns=("dirfd", "flags")).columns == ("dirfd", "flags")
    only_at = parse("version: 1\nprobes: [execveat]\n")
    assert [(a.name, a.padded) for a in only_at.args][2:] == [("dirfd", False),
                                                            ("flags", False)]
    only_execve = parse("version: 1\nprobes: [execve]\n")
    assert [a.name for a in only_execve.args] == ["filename", "argv"]
    with pytest.raises(SpecError, match="unknown column 'dirfd'"):
        parse("version: 1\nprobes: [execve]\ncolumns: [time, dirfd]\n")
    with pytest.raises(UsageError, match="dirfd cannot be filtered on"):
        apply_where(both, ["dirfd=3"])


def test_single_values_are_one_element_lists() -> None:
    assert parse("version: 1\nfilters: {comm: bash, pid: 7}").filters == Filters(
        comm=("bash",), pid=(7,))


@pytest.mark.parametrize("text,where,words", [
    ("version: 1\nprobes: [execve\n", "p.yaml:3", "not valid YAML"),
    ("", "p.yaml", "empty"),
    ("probes: [execve]\n", "p.yaml", "`version` is missing"),
    ("version: 2\n", "p.yaml:1", "unsupported schema version 2"),
    ("version: 1\nprobez: [execve]\n", "p.yaml:2", "unknown key `probez`"),
    ("version: 1\nprobes: [execve, openat]\n", "p.yaml:2", "cannot share a profile"),
    ("version: 1\nprobes: []\n", "p.yaml:2", "`probes` is empty"),
    ("version: 1\nprobes: [execve, execve]\n", "p.yaml:2", "listed twice"),
    ("version: 1\nprobes: execve\n", "p.yaml:2", "expected a list"),
    ("version: 1\nfilters:\n  uid: [abc]\n", "p.yaml:3", "expected a whole number"),
    ("version: 1\nfilters:\n  uid: [-1]\n", "p.yaml:3", "out of range"),
    ("version: 1\nfilters:\n  pid: [0]\n", "p.yaml:3", "out of range"),
    ("version: 1\nfilters:\n  uid: [true]\n", "p.yaml:3", "expected a whole number"),
    ("version: 1\nfilters:\n  comm: [a-very-long-command-name]\n", "p.yaml:3", "15"),
    ("version: 1\nfilters:\n  comm: ['']\n", "p.yaml:3", "non-empty"),
    ("version: 1\nfilters:\n  comm: [[nested]]\n", "p.yaml:3", "single value"),
    ("version: 1\nfilters:\n  failed: yes please\n", "p.yaml:3", "true or false"),
    ("version: 1\nfilters:\n  gid: [1]\n", "p.yaml:3", "unknown key `gid`"),
    ("version: 1\nfilters: [comm]\n", "p.yaml:2", "must be a mapping"),
    ("version: 1\nlimits:\n  max_args: 0\n", "p.yaml:3", "out of range"),
    ("version: 1\nlimits:\n  max_args: 1.5\n", "p.yaml:3", "whole number"),
    ("version: 1\nlimits:\n  argv_bytes: 99999999\n", "p.yaml:3", "out of range"),
    ("version: 1\noutput:\n  format: xml\n", "p.yaml:3", "unknown output format"),
    ("version: 1\nversion: 1\n", "p.yaml:2", "given twice"),
    ("version: 1\ndescription: [a]\n", "p.yaml:2", "single value"),
    ("- 1\n- 2\n", "p.yaml:1", "must be a mapping"),
])
def test_bad_profiles(text: str, where: str, words: str) -> None:
    with pytest.raises(SpecError) as err:
        parse(text)
    assert str(err.value).startswith(where + ":") or str(err.value).startswith(where + " ")
    assert words in str(err.value)


def test_every_problem_is_reported_at_once_up_to_a_few() -> None:
    fields = ["filters: {uid: [x]}", "limits: {max_args: 0}", "output: {format: xml}",
              "colour: red", "description: [a]", "result: nope", "context: {parents: 99}"]
    with pytest.raises(SpecError) as err:
        parse("version: 1\n" + "\n".join(fields) + "\n")
    text = str(err.value)
    assert text.startswith("7 problems:") and text.endswith("... and 2 more")
    assert [int(n) for n in re.findall(r"^p\.yaml:(\d+):", text, re.M)] == [2, 3, 4, 5, 6]
    assert text.count("hint:") >= 3


def test_errors_carry_a_hint() -> None:
    with pytest.raises(SpecError) as err:
        parse("version: 1\nprobes: [openat, execve]\n")
    assert "have a profile of their own" in str(err.value)


def test_unknown_profile_name_lists_the_shipped_ones() -> None:
    with pytest.raises(UsageError) as err:
        load_profile("nosuchprofile")
    assert ("shipped profiles: clone, connect, exec-counts, execve, exit, kill, openat"
            in str(err.value))


def test_missing_file() -> None:
    with pytest.raises(UsageError, match="not found"):
        load_profile("./missing.yaml")


def test_failed_and_succeeded_exclude_each_other() -> None:
    assert parse("version: 1\nfilters: {succeeded: true}\n").filters.succeeded
    with pytest.raises(SpecError, match="both true") as err:
        parse("version: 1\nfilters: {succeeded: true, failed: true}\n")
    assert err.value.hint and "keep one" in err.value.hint
    # on the command line, one replaces the profile's other
    failed = parse("version: 1\nfilters: {failed: true}\n")
    assert with_overrides(failed, succeeded=True).filters == Filters(succeeded=True)
    assert with_overrides(with_overrides(failed, succeeded=True), failed=True).filters == \
        Filters(failed=True)


def test_overrides_replace_and_are_validated() -> None:
    base = parse("version: 1\nfilters: {comm: [bash], uid: [1]}\n")
    p = with_overrides(base, comm=["sh"], failed=True, max_args=8)
    assert p.filters == Filters(comm=("sh",), uid=(1,), failed=True)
    assert p.limits.max_args == 8
    with pytest.raises(SpecError, match="--uid -5"):
        with_overrides(base, uid=[-5])
    with pytest.raises(SpecError, match="--max-args"):
        with_overrides(base, max_args=100000)
    with pytest.raises(SpecError, match="15"):
        with_overrides(base, comm=["x" * 16])


def test_yaml_number_forms_are_never_changed_silently() -> None:
    """YAML 1.1 reads 017 as 15, 0x1F as 31, 1_000 as 1000 and 1:30 as 90: a name stays
    as written, a number not written in decimal is refused."""
    names = parse("version: 1\nfilters: {comm: [017, 0x1F, 1_000, 1:30, 12]}\n").filters.comm
    assert names == ("017", "0x1F", "1_000", "1:30", "12")
    for uid in ("1:30", "0x10", "017", "1_000"):
        with pytest.raises(SpecError, match="not written in decimal"):
            parse(f"version: 1\nfilters: {{uid: [{uid}]}}\n")
    assert parse("version: 1\nfilters: {uid: [-0, 1000]}\n").filters.uid == (0, 1000)


@pytest.mark.parametrize("where", ["target=4294967297", "target=-2147483649",
                                   "signal=4294967305"])
def test_filter_values_out_of_the_arguments_range_are_refused(where: str) -> None:
    with pytest.raises(UsageError, match="does not fit|not a signal"):
        apply_where(load_profile("kill"), [where])
    assert apply_where(load_profile("kill"), ["target=4294967295"])  # -1, read unsigned


@pytest.mark.parametrize(("where", "error"), [
    ("pid=-1", "--where pid=-1: -1 is out of range"),
    ("uid=4294967295", "--where uid=4294967295: 4294967295 is out of range"),
    ("comm=averyveryverylongname", "--where comm=averyveryverylongname: command name")])
def test_a_where_value_refused_is_named_as_it_was_given(where: str, error: str) -> None:
    with pytest.raises(SpecError) as refused:
        apply_where(load_profile("execve"), [where])
    assert str(refused.value).startswith(error), refused.value


# --- limits: each refused with the file, the line, the limit and its reason -------------

def _list(values: list[str]) -> str:
    return "[" + ", ".join(values) + "]"


OVER = FILTER_VALUES.most + 1  # values: one more than a filter holds
FULL_LISTS = {
    "comm": [f"c{i}" for i in range(FILTER_VALUES.most)],
    "uid": [str(i) for i in range(FILTER_VALUES.most)],
    "pid": [str(i + 1) for i in range(FILTER_VALUES.most)],
    "ppid": [str(i) for i in range(FILTER_VALUES.most)],
    "cgroup": [f"/sys/fs/cgroup/g{i}" for i in range(FILTER_VALUES.most)],
}


@pytest.mark.parametrize("key", list(FULL_LISTS))
def test_a_filter_holds_its_limit_and_no_more(key: str) -> None:
    full = FULL_LISTS[key]
    assert len(getattr(parse(f"version: 1\nfilters:\n  {key}: {_list(full)}\n").filters,
                       key)) == FILTER_VALUES.most
    with pytest.raises(SpecError) as err:
        parse(f"version: 1\nfilters:\n  {key}: {_list([*full, full[-1]])}\n")
    text = str(err.value)
    assert text.startswith(f"p.yaml:3: `filters.{key}`: {OVER} values, "
                           f"over the limit of {FILTER_VALUES.text}")
    assert "verifier" in text and "hint:" in text


def test_the_fullest_profile_is_within_the_limit_on_values() -> None:
    """Every filter list full and six arguments filtered: well within the limit on YAML
    values, which only input that no profile needs reaches."""
    args = "".join(f"  a{k}: {{type: int, from: dfd}}\n" for k in range(6))
    numbers = _list(FULL_LISTS["uid"])
    full = "".join(f"  {key}: {_list(values)}\n" for key, values in FULL_LISTS.items())
    profile = parse_profile(
        f"version: 1\nprobes: [openat]\nargs:\n{args}filters:\n{full}  args:\n"
        + "".join(f"    a{k}: {numbers}\n" for k in range(6)),
        source="p.yaml", name="p", lookup=lambda _name: UNKNOWN)
    assert [len(v) for _, v in profile.filters.args] == [FILTER_VALUES.most] * 6


def _openat(path_filter: str) -> str:
    return ("version: 1\nprobes: [openat]\nargs:\n  path: {type: str, from: filename}\n"
            f"  dfd: fd\nfilters:\n  args:\n    path: {path_filter}\n")


def test_string_filters_on_arguments_are_bounded_in_bytes() -> None:
    def strings(size: int) -> list[str]:  # values of STR_FILTER_MAX bytes, then the rest
        return ["/" + "x" * (min(STR_FILTER_MAX, size - n) - 1)
                for n in range(0, size, STR_FILTER_MAX)]

    def read(values: list[str]) -> object:
        return parse_profile(_openat(_list(values)), source="p.yaml", name="p",
                             lookup=lambda _name: UNKNOWN)

    at_limit = strings(FILTER_STRING_BYTES.most)
    assert sum(len(v) for v in at_limit) == FILTER_STRING_BYTES.most
    assert read(at_limit)
    with pytest.raises(SpecError) as err:
        read(strings(FILTER_STRING_BYTES.most + 1))
    assert f"{FILTER_STRING_BYTES.most + 1:,} bytes, over the limit of " \
           f"{FILTER_STRING_BYTES.text}" in str(err.value)
    with pytest.raises(SpecError, match=rf"p\.yaml:8: `filters\.args\.path`: {OVER} values"):
        read([f"/p{i}" for i in range(OVER)])


def test_command_line_filters_have_the_same_limits() -> None:
    base = load_profile("openat")
    for key in ("comm", "uid", "pid", "ppid", "cgroup"):
        values = [v if key in ("comm", "cgroup") else int(v) for v in FULL_LISTS[key]]
        assert with_overrides(base, **{key: values})
        option = "--cgroup/--container" if key == "cgroup" else f"--{key}"
        with pytest.raises(SpecError, match=f"^{option}: {OVER} values, over the limit"):
            with_overrides(base, **{key: [*values, values[0]]})
    with pytest.raises(SpecError, match=rf"^--where path=\.\.\.: {OVER} values"):
        apply_where(base, [f"path=/p{i}" for i in range(OVER)])
    with pytest.raises(SpecError, match=rf"^--where uid=\.\.\.: {OVER} values"):
        apply_where(base, [f"uid={i}" for i in range(OVER)])
    longest = "path=/" + "x" * (STR_FILTER_MAX - 1)
    count = FILTER_STRING_BYTES.most // STR_FILTER_MAX + 1
    with pytest.raises(SpecError, match="string filters on arguments, together: "
                                        f"{count * STR_FILTER_MAX:,} bytes"):
        apply_where(base, [longest] * count)
    full = apply_where(base, [f"path=/p{i}" for i in range(FILTER_VALUES.most)])
    assert len(dict(full.filters.args)["path"]) == FILTER_VALUES.most


def test_a_profile_file_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("version: 1\n" + "[" * PROFILE_BYTES.most)  # read, it would not parse
    with pytest.raises(SpecError) as err:
        load_profile(big)
    size = big.stat().st_size
    assert str(err.value).startswith(f"{big}: a profile file is {PROFILE_BYTES.text} at "
                                     f"most; this one is {size:,} bytes\n  hint: ")
    at_limit = tmp_path / "at-limit.yaml"  # comments fill it: a profile all the same
    at_limit.write_text("version: 1\n" + "#" * (PROFILE_BYTES.most - 12) + "\n")
    assert at_limit.stat().st_size == PROFILE_BYTES.most
    assert load_profile(at_limit).filters == Filters()


def test_yaml_aliases_are_refused() -> None:
    laughs = ("version: 1\ndescription: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
              "x: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
              "y: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n")
    with pytest.raises(SpecError, match=r"^p\.yaml:3: a YAML alias \(\*name\)"):
        parse(laughs)
    assert parse("version: 1\ndescription: &a unused\n").description == "unused"


def test_a_profile_of_too_many_values_is_refused_as_it_is_read() -> None:
    many = "version: 1\nfilters: {uid: [" + "1, " * 1_000_000 + "1]}\n"  # 3 MB, 1M values
    with pytest.raises(SpecError) as err:
        parse_profile(many[:PROFILE_BYTES.most - 2] + "]}", source="p.yaml", name="p")
    assert str(err.value).startswith(f"p.yaml:2: the profile: over the limit of "
                                     f"{PROFILE_NODES.text}")
    with pytest.raises(SpecError) as err:  # before PyYAML sees any of it
        parse_profile(many, source="p.yaml", name="p")
    assert f"{PROFILE_BYTES.text} at most; this one is {len(many):,} bytes" in str(err.value)


def test_filters_on_what_an_exec_runs() -> None:
    profile = parse("version: 1\nfilters:\n  euid: [0]\n  args:\n    filename: [/usr/bin/*]\n"
                    "    argv: ['*.c', '-O?']\n")
    assert profile.filters.euid == (0,)
    assert dict(profile.filters.args) == {"filename": ("/usr/bin/*",), "argv": ("*.c", "-O?")}
    assert argv_patterns(profile) == ("*.c", "-O?")
    # a recording keeps them, and replays with them
    assert profile_from_dict(profile_to_dict(profile)) == profile
    where = apply_where(parse("version: 1\n"), ["euid=0", "filename=/bin/sh", "argv=x*"])
    assert where.filters.euid == (0,) and argv_patterns(where) == ("x*",)
    with pytest.raises(UsageError, match="dirfd cannot be filtered on") as err:
        apply_where(parse("version: 1\n"), ["dirfd=3"])
    assert "filename, argv" in str(err.value.hint)
    # argv is matched in bptrace-exec: its counts are of the events kept, not the kernel's;
    # a one-liner cannot have it
    counted = parse("version: 1\nfilters: {args: {argv: ['*.c']}}\nstats: {enabled: true}\n")
    assert not counts_in_kernel(counted)
    assert counts_in_kernel(parse("version: 1\nstats: {enabled: true}\n"))
    with pytest.raises(UsageError, match="one-liner cannot have it"):
        oneliner(where)
    assert "euid.val == 0" in oneliner(apply_where(parse("version: 1\n"), ["euid=0"]))


def test_exits_in_an_exec_profile() -> None:
    process = load_profile("process")
    assert process.exits and process.calls == ("execve", "execveat")
    # CPU times since record version 6: a recording made before closes exits without them
    assert ints_per_probe(process)[-1] == 5 and ints_per_probe(as_recorded(process, 5))[-1] == 3
    assert [a.name for a in process.args][-5:] == ["status", "signal", "core", "cpu_user_ns",
                                                  "cpu_system_ns"]
    execve = load_profile("execve")
    with_exits = with_overrides(execve, exits=True)
    assert (with_exits.probes, with_exits.args) == (process.probes, process.args)
    # listed first or last, the ends of processes come last
    assert parse("version: 1\nprobes: [process_exit, execve]\n").probes == (
        "execve", "process_exit")
    with pytest.raises(SpecError, match="process_exit is traced alone, or with execve"):
        parse("version: 1\nprobes: [openat, process_exit]\n")
    with pytest.raises(UsageError, match="--exits, --tree and --timeline are for exec profiles"):
        with_overrides(load_profile("openat"), exits=True)
    with pytest.raises(SpecError, match="reports no counts"):
        with_overrides(execve, exits=True, stats=True)
    with pytest.raises(UsageError, match="not both"):
        oneliner(process)
    with pytest.raises(UsageError, match="a one-liner shows no environment"):
        oneliner(with_overrides(execve, env=("PATH",)))
    # it reads 64 bytes of argv: limits it cannot keep are refused, not dropped
    for limit in ({"max_args": 8}, {"argv_bytes": 1000}):
        with pytest.raises(UsageError, match="shows the first 64 bytes of argv"):
            oneliner(with_overrides(execve, **limit))
    assert "bpftrace -e" in oneliner(with_overrides(execve, max_args=64, argv_bytes=4096))


def test_arguments_may_share_a_name_with_the_identity() -> None:
    """setresuid's tracepoint has an argument euid: it is the profile's to name (its
    column and breakdown are the argument's; JSON keeps it under "args")."""
    profile = parse_profile("version: 1\nprobes: [setresuid]\nargs: {euid: int}\n"
                            "columns: [pid, euid]\nstats: {by: [euid]}\n", source="p.yaml",
                            name="p", lookup=lambda _name: UNKNOWN)
    assert [a.name for a in profile.args] == ["euid"] and profile.stats.by == ("euid",)
