"""Profiles: every bad input is refused with the file, the line and a way out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bptrace_exec.errors import SpecError, UsageError
from bptrace_exec.spec import (
    Filters,
    Limits,
    available_profiles,
    load_profile,
    parse_profile,
    with_overrides,
)
from bptrace_exec.spec.overrides import apply_where


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
    with pytest.raises(UsageError, match="nothing called 'dirfd' to filter on"):
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
