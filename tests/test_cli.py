"""The command line without root: help, --emit, and every usage error (exit 2, no
traceback, the file and line, a way out)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bptrace_exec.cli import build_parser, main
from bptrace_exec.errors import EXIT_ENVIRONMENT
from bptrace_exec.limits import FILTER_VALUES, JSON_LINE_BYTES, PROFILE_BYTES
from conftest import tool_command


def run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tool_command(*args), capture_output=True, text=True, check=False,
                          **{"timeout": 60, **kw})  # type: ignore[call-overload]


def test_every_option_has_help_and_help_ends_with_examples() -> None:
    parser = build_parser()
    for action in parser._actions:
        assert action.help, action.option_strings
    text = parser.format_help()
    assert "examples:" in text and "exit status:" in text
    for option in ("--comm", "--uid", "--pid", "--ppid", "--failed", "--json", "--duration",
                   "--max-args", "--emit"):
        assert f"bptrace-exec execve {option}" in text or f"{option} " in text


def test_emit_script_needs_no_root(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("PATH", "/nonexistent")  # and no bpftrace either
    assert main(["execve", "--comm", "bash", "--emit", "script"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#!/usr/bin/env bpftrace")
    assert '/comm == "bash" && ' in out


def test_not_root_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["execve"]) == 3
    err = capsys.readouterr().err
    assert "needs root" in err and "sudo" in err


@pytest.mark.parametrize("args,words", [
    (["--uid", "abc"], "invalid int value"),
    (["--uid", "-1"], "--uid -1"),
    (["--comm", "x" * 20], "15"),
    (["--max-args", "0"], "--max-args"),
    (["--duration", "-3"], "--duration"),
    (["--buffer-pages", "3"], "power of 2"),
    (["nosuchprofile"], "no profile named"),
    (["ls"], "to trace the command ls, put it after --: bptrace-exec -- ls"),
    (["--timeline", "run.png"], "--timeline draws SVG, not PNG: run.png"),
    (["--host", "a\x1b[31mb", "--json"], "a host's name is printable text"),
    (["--host", "", "--json"], "a host's name is printable text"),
    (["--"], "nothing after --"),
    (["--emit", "program"], "invalid choice"),
    (["--uid", "0", "--where", "uid=65534"], "--uid and --where uid=... both filter on uid"),
    (["--comm", "make", "--where", "comm=sh"], "--comm and --where comm=..."),
    (["--stats", "--export-format", "csv"],
     "0 given\n  hint: add --export PATH, or drop --export-format csv"),
    (["--export", "a.x", "--export", "b.y", "--export-format", "csv"],
     "2 given\n  hint: give each --export PATH the extension of its format"),
])
def test_usage_errors(args: list[str], words: str) -> None:
    out = run(*args)
    assert out.returncode == 2, out.stderr
    assert words in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("args,filters", [
    (["--exits", "--where", "status=1"], "status in [1]"),
    (["--exits", "--where", "signal=SIGKILL"], "signal in [9]"),
    (["process", "--where", "core=1"], "core in [1]"),
    (["--where", "uid=0", "--comm", "sh"], "comm in [sh]; uid in [0]"),
])
def test_where_filters_what_the_options_trace(args: list[str], filters: str) -> None:
    """--where on the fields of the exits --exits adds (they were not known to it yet,
    and refused), and beside the options on other names."""
    out = run(*args, "--emit", "script")
    assert out.returncode == 0, out.stderr
    assert f"Filters, applied in the kernel: {filters}." in out.stdout


def test_bad_profile_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nfilters:\n  uid: [root]\n")
    out = run(str(bad))
    assert out.returncode == 2
    assert f"{bad}:3: expected a whole number" in out.stderr
    assert "Traceback" not in out.stderr


def test_malformed_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nprobes: [execve\nfilters: {}\n")
    out = run(str(bad))
    assert out.returncode == 2 and f"{bad}:" in out.stderr and "not valid YAML" in out.stderr


def test_missing_bpftrace(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the root check comes first")
    out = run("--bpftrace", str(tmp_path / "nope"), "--duration", "1")
    assert out.returncode == 3 and "bpftrace not found" in out.stderr


def test_profile_values_flow_into_the_program(tmp_path: Path) -> None:
    prof = tmp_path / "mine.yaml"
    prof.write_text("version: 1\nprobes: [execve]\nfilters:\n  uid: [1000]\n"
                    "limits:\n  max_args: 5\n")
    text = run(str(prof), "--emit", "script").stdout
    assert "/uid == 1000 && " in text and "while ($item < 5)" in text
    assert "sys_enter_execveat" not in text


def test_bpftrace_from_the_environment(tmp_path: Path) -> None:
    fake = tmp_path / "fake-bpftrace"
    fake.write_text("#!/bin/sh\necho 'bpftrace v0.42.1'\n")
    fake.chmod(0o755)
    out = run("--emit", "script", env={**os.environ, "BPFTRACE": str(fake)})
    assert "for bpftrace v0.42.1." in out.stdout
    old = tmp_path / "old-bpftrace"
    old.write_text("#!/bin/sh\necho 'bpftrace v0.9.4'\n")
    old.chmod(0o755)
    if os.geteuid() == 0:
        out = run("--bpftrace", str(old), "--duration", "1")
        assert out.returncode == 3 and "needs v0.17.0 or newer" in out.stderr


def _fake_bpftrace(path: Path, version: str, asked: Path) -> None:
    """A binary at `path` that says it is bpftrace `version`, noting each call in `asked`."""
    source = path.with_suffix(".c")
    source.write_text(f'#include <stdio.h>\nint main(void) {{ FILE *f = fopen("{asked}", "a");'
                      f' fputs("{version}\\n", f); fclose(f);'
                      f' puts("bpftrace v{version}"); return 0; }}\n')
    built = path.with_suffix(".new")
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.fail("a C compiler is needed to build a fake bpftrace")
    subprocess.run([gcc, "-o", str(built), str(source)], check=True)
    built.replace(path)  # a new file at the same path, as an upgrade leaves


def test_a_bpftrace_version_is_asked_once_per_binary(tmp_path: Path) -> None:
    """The version of a binary seen before is not asked again; a binary replaced at the
    same path is, and a script (a wrapper of some other binary) always is; a cache
    folder someone else owns is not used."""
    asked = tmp_path / "asked"
    fake = tmp_path / "fake-bpftrace"
    _fake_bpftrace(fake, "0.42.1", asked)
    env = {**os.environ, "BPFTRACE": str(fake), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    for _ in range(3):
        assert "for bpftrace v0.42.1." in run("--emit", "script", env=env).stdout
    assert asked.read_text() == "0.42.1\n"
    _fake_bpftrace(fake, "0.43.0", asked)
    for _ in range(2):
        assert "for bpftrace v0.43.0." in run("--emit", "script", env=env).stdout
    assert asked.read_text() == "0.42.1\n0.43.0\n"
    cache = tmp_path / "cache" / "bptrace-exec"
    assert json.loads((cache / "engines.json").read_text())[str(fake)]["version"] == "0.43.0"
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(f"#!/bin/sh\nexec {fake} \"$@\"\n")
    wrapper.chmod(0o755)
    for _ in range(2):
        run("--emit", "script", env={**env, "BPFTRACE": str(wrapper)})
    assert asked.read_text() == "0.42.1\n0.43.0\n0.43.0\n0.43.0\n"
    if os.geteuid() == 0:
        os.chown(cache, 12345, 12345)
        run("--emit", "script", env=env)
        assert asked.read_text().count("\n") == 5


def test_tracefs_that_cannot_be_mounted(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    from bptrace_exec.errors import EnvironmentProblem
    from bptrace_exec.run import session as runner

    not_a_dir = tmp_path / "tracing"
    not_a_dir.write_text("")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(runner, "TRACEFS", not_a_dir)
    monkeypatch.setattr(runner, "DEBUGFS_TRACING", tmp_path / "none")
    with pytest.raises(EnvironmentProblem, match="tracefs is not mounted"):
        runner.check_environment()


def test_readme_cli_reference_and_limits_are_current() -> None:
    import importlib.util

    path = Path(__file__).parents[1] / "scripts" / "update-readme"
    loader = importlib.machinery.SourceFileLoader("update_readme", str(path))
    spec = importlib.util.spec_from_loader("update_readme", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for block in module.blocks():
        assert block in readme, f"run scripts/update-readme: {block.splitlines()[0]}"
    assert module.MANPAGE.read_text() == module.manpage(), "run scripts/update-readme"


@pytest.mark.skipif(not shutil.which("groff") or not shutil.which("man"),
                    reason="man-db and groff: Debian installs them")
def test_the_man_page_reads_without_a_warning() -> None:
    page = Path(__file__).parents[1] / "wrapper" / "bptrace_exec" / "man" / "bptrace-exec.1"
    lint = subprocess.run(["groff", "-k", "-man", "-ww", "-z", str(page)],
                          capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0 and not lint.stderr, lint.stderr
    shown = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True,
                           timeout=60, env={**os.environ, "MANWIDTH": "80"})
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    for section in ("SYNOPSIS", "DESCRIPTION", "EXAMPLES", "EXIT STATUS", "FIELDS",
                    "OVERHEAD", "SEE ALSO"):
        assert f"\n{section}\n" in text, section
    for action in build_parser()._actions:
        for option in action.option_strings:
            assert option in text, option
    assert "argv_truncated" in text and "--serve [ADDR:]PORT" in text


def test_stats_from_json_lines_written_by_the_tool(tmp_path: Path) -> None:
    lines = [
        '{"event":"exec","time":"2026-01-01T00:00:00.000000Z","filename":"/bin/true",'
        '"comm":"sh","uid":0,"ppid":1,"ret":0,"errno":null,"latency_ns":5000,"argv":["t"]}',
        '{"event":"lost","time":"2026-01-01T00:00:00.500000Z","count":3}',
        '{"event":"exec","time":"2026-01-01T00:00:01.000000Z","filename":"/nope",'
        '"comm":"sh","uid":0,"ppid":1,"ret":-2,"errno":"ENOENT","latency_ns":7000,"argv":["n"]}',
        '{"event":"end","time":"2026-01-01T00:00:02.000000Z","execs":2}',
        "not json",
    ]
    src = tmp_path / "events.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = run("--stats", "--from", str(src), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["execs"] == 2 and report["failed"] == 1 and report["duration_s"] == 1.0
    assert "1 line(s)" in out.stderr  # only the line that is not JSON


# JSON lines as --json writes them (trimmed): openat's calls, execs, a process's exit
OPEN_LINE = ('{"event":"call","time":"2026-12-07T13:11:5%d.000000Z","host":"vm",'
             '"syscall":"openat","pid":7,"ppid":1,"uid":0,"tid":7,"comm":"cat",'
             '"args":{"dfd":-100,"path":"/etc/%s","flags":"O_RDONLY","mode":"0"},'
             '"ret":%d,"errno":%s,"killed":false,"latency_ns":5440}')
EXEC_LINE = ('{"event":"exec","time":"2026-12-07T13:11:5%d.000000Z","host":"vm",'
             '"syscall":"execve","pid":8,"ppid":1,"uid":0,"tid":8,"comm":"sh",'
             '"filename":"/bin/true","argv":["true"],"ret":0,"errno":null,"killed":false,'
             '"latency_ns":188953}')
EXIT_LINE = ('{"event":"exit","time":"2026-12-07T13:11:5%d.000000Z","host":"vm",'
             '"syscall":"process_exit","pid":8,"ppid":1,"uid":0,"tid":8,"comm":"true",'
             '"status":0,"signal":"0","core":0,"ret":0,"errno":null,"killed":false,'
             '"lifetime_ns":986833}')
END_LINE = '{"event":"end","time":"2026-12-07T13:11:59.000000Z","host":"vm","calls":0}'


def test_from_with_no_profile_reports_by_the_profile_its_events_are_of(tmp_path: Path
                                                                        ) -> None:
    opens = tmp_path / "open.jsonl"
    opens.write_text("\n".join([OPEN_LINE % (0, "hostname", 3, "null"),
                                OPEN_LINE % (2, "nope", -2, '"ENOENT"'), END_LINE]) + "\n")
    chosen = run("--stats", "--from", str(opens))
    named = run("openat", "--stats", "--from", str(opens))
    assert chosen.returncode == 0 and chosen.stderr == "", chosen.stderr
    assert chosen.stdout == named.stdout
    assert "calls 2 (1.0/s over 2.0 s) · failed 1 (50.0%)" in chosen.stdout
    assert "By path (top 2 of 2)" in chosen.stdout and "Programs" not in chosen.stdout
    report = json.loads(run("--stats", "--from", str(opens), "--json").stdout)
    assert report["profile"] == "openat" and report["calls"] == 2
    assert {r["key"] for r in report["breakdowns"]["path"]["top"]} == {"/etc/hostname",
                                                                      "/etc/nope"}
    # a process stream that starts with an exit (of a process older than the trace) is
    # execve's, its execs counted; exits alone are the exit profile's
    stream = tmp_path / "process.jsonl"
    stream.write_text("\n".join([EXIT_LINE % 0, EXEC_LINE % 1, EXIT_LINE % 2]) + "\n")
    execs = json.loads(run("--stats", "--from", str(stream), "--json").stdout)
    assert (execs["profile"], execs["execs"], execs["duration_s"]) == ("execve", 1, 2.0)
    exits = tmp_path / "exit.jsonl"
    exits.write_text(EXIT_LINE % 0 + "\n")
    assert json.loads(run("--stats", "--from", str(exits), "--json").stdout)[
        "profile"] == "exit"


def test_from_refuses_events_of_another_profile_than_the_report(tmp_path: Path) -> None:
    """A report counts one profile's events: execs and openat's calls together would
    count one kind while the other's times stretched its span."""
    execs, opens = tmp_path / "execs.jsonl", tmp_path / "opens.jsonl"
    execs.write_text(EXEC_LINE % 0 + "\n" + EXEC_LINE % 1 + "\n")
    opens.write_text(END_LINE + "\n" + OPEN_LINE % (9, "x", 3, "null") + "\n")
    both = run("--stats", "--from", str(execs), str(opens))
    assert both.returncode == 2 and both.stdout == "", both.stderr
    assert f"{opens}:2: a call of openat, after an exec at {execs}:1: a report counts " \
           "the events of one profile" in both.stderr
    other_way = run("--stats", "--from", str(opens), str(execs))
    assert other_way.returncode == 2 and f"{execs}:1: an exec, after a call of openat at " \
        f"{opens}:2" in other_way.stderr
    named = run("execve", "--stats", "--from", str(opens))
    assert named.returncode == 2 and f"{opens}:2: a call of openat, which profile execve " \
        "does not trace" in named.stderr
    unshipped = tmp_path / "read.jsonl"
    unshipped.write_text(OPEN_LINE.replace("openat", "read") % (0, "x", 3, "null") + "\n")
    adhoc = run("--stats", "--from", str(unshipped))
    assert adhoc.returncode == 2 and "a call of read, which no shipped profile traces" in \
        adhoc.stderr and "--syscall read" in adhoc.stderr
    for out in (both, other_way, named, adhoc):
        assert "Traceback" not in out.stderr


def test_from_a_recording_says_to_replay_it(tmp_path: Path) -> None:
    from test_record import recording

    rec, _ = recording(tmp_path)
    out = run("--stats", "--from", str(rec))
    assert out.returncode == 2 and out.stdout == "", out.stderr
    assert f"{rec}:1: a recording (made with --record)" in out.stderr
    assert f"hint: report on it with --replay {rec} --stats" in out.stderr


def test_from_files_with_no_events_say_so(tmp_path: Path) -> None:
    ended = tmp_path / "ended.jsonl"  # a trace that saw nothing: its end line only
    ended.write_text(END_LINE + "\nnot json\n")
    for files, said in ((["/dev/null"], "no exec, call or exit events in /dev/null: nothing "
                                        "to report"),
                        ([str(ended)], f"no exec, call or exit events in {ended}: nothing to "
                                       "report (1 line(s) were not exec, call or exit "
                                       "records)")):
        out = run("--stats", "--from", *files)
        assert out.returncode == 2 and out.stdout == "", out.stderr
        assert said in out.stderr and "Traceback" not in out.stderr
    execs = tmp_path / "exits.jsonl"
    execs.write_text(EXIT_LINE % 0 + "\n")
    none = run("execve", "--stats", "--from", str(execs))
    assert none.returncode == 2 and f"no execs in {execs}: nothing to report" in none.stderr


def test_a_mistyped_option_gets_a_suggestion() -> None:
    out = run("--jsn")
    assert out.returncode == 2 and "did you mean --json?" in out.stderr
    assert "did you mean --color?" in run("--colour", "never").stderr
    assert "did you mean" not in run("--zzzz").stderr


def test_names_not_utf8_reach_reports_and_exports_readable(tmp_path: Path) -> None:
    line = ('{"event":"exec","time":"2026-01-01T00:00:00.000000Z","filename":"/bin/caf\\ufffd",'
            '"comm":"sh","uid":0,"ppid":1,"ret":0,"errno":null,"latency_ns":5,'
            '"argv":["x"],"b64":{"/filename":"L2Jpbi9jYWbp","not a pointer":"AA=="}}\n')
    src = tmp_path / "in.jsonl"
    src.write_text(line)
    paths = {fmt: tmp_path / f"x.{fmt}" for fmt in ("json", "csv", "md", "prom")}
    out = run("--stats", "--from", str(src), "--json", "-o", str(tmp_path / "r.json"),
              *[a for p in paths.values() for a in ("--export", str(p))])
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    for report in (tmp_path / "r.json", paths["json"]):
        data = json.loads(report.read_bytes().decode("utf-8"))  # strict UTF-8
        [program] = data["breakdowns"]["program"]["top"]
        assert program["key"] == "/bin/caf\ufffd"
        assert data["b64"] == {"/breakdowns/program/top/0/key": "L2Jpbi9jYWbp"}
    assert "/bin/caf\\xe9" in paths["csv"].read_text()


def test_columns_are_checked_against_the_context_asked_for() -> None:
    from bptrace_exec import UserError, profile_of

    shown = profile_of("openat", context=True, columns="time,pid,container,path")
    assert shown.columns == ("time", "pid", "container", "path")
    with pytest.raises(UserError, match="unknown column 'container'"):
        profile_of("openat", columns="time,container")


def test_two_outputs_never_write_one_file(tmp_path: Path) -> None:
    same = str(tmp_path / "a")
    out = run("--stats", "--from", "/dev/null", "-o", same, "--export", same + ".csv",
              "--export", same)
    assert out.returncode == 2 and "-o and --export both write" in out.stderr
    assert not os.path.exists(same)


def test_table_options_are_refused_with_json() -> None:
    for option in (["--columns", "pid"], ["--wide"], ["--all-attempts"]):
        out = run("--json", *option)
        assert out.returncode == 2 and "does nothing" in out.stderr, out.stderr


def test_every_export_is_written(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"event":"exec","time":"2026-01-01T00:00:00.000000Z","filename":"/x",'
                   '"comm":"sh","uid":0,"ppid":1,"ret":0,"errno":null,"latency_ns":5,'
                   '"argv":["x"]}\n')
    paths = [tmp_path / "a.csv", tmp_path / "a.prom", tmp_path / "a.json"]
    out = run("--stats", "--from", str(src), *[a for p in paths for a in ("--export", str(p))])
    assert out.returncode == 0, out.stderr
    assert 'bptrace_exec_execs_total{profile="execve"} 1.0' in paths[1].read_text()
    assert json.loads(paths[2].read_text())["execs"] == 1 and "total,execs,1" in \
        paths[0].read_text()


def test_bad_input_and_full_disks_are_explained_without_a_traceback(tmp_path: Path) -> None:
    lines = tmp_path / "odd.jsonl"
    lines.write_text('{"event":"exec","argv":["x"],"ret":"x","filename":"/x"}\n'
                     + "[" * 100_000 + "\n"
                     + '{"event":"exec","argv":["x"],"ret":0,"filename":"/x"}\n')
    odd = run("--stats", "--from", str(lines))
    assert odd.returncode == 0 and "2 line(s)" in odd.stderr, odd.stderr
    deep = tmp_path / "deep.yaml"
    deep.write_text("version: 1\ndescription: " + "[" * 500 + "]" * 500 + "\n")
    nested = run(str(deep), "--emit", "script")
    assert nested.returncode == 2 and "nested too deeply" in nested.stderr
    full = run("--stats", "--from", str(lines), "-o", "/dev/full")
    assert full.returncode == 4 and "cannot write /dev/full" in full.stderr
    with open("/dev/full", "w") as stdout:
        to_full = subprocess.run(tool_command("--emit", "script"), stdout=stdout,
                                 stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    assert to_full.returncode == 4 and "No space left" in to_full.stderr
    header = {"recording": "bptrace-exec/2", "bpftrace": "v0.17.0", "profile": {},
              "started": "", "wall_offset_ns": 10 ** 30}
    rec = tmp_path / "odd.rec"
    rec.write_text(json.dumps(header) + "\n")
    assert run("--replay", str(rec)).returncode == 2
    for out in (odd, nested, full, to_full):
        assert "Traceback" not in out.stderr


# --- limits: refused at once, with the file, the limit and its reason; never a traceback

def test_a_profile_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("version: 1\ndescription: " + "x" * (50 * PROFILE_BYTES.most) + "\n")
    out = run(str(big), "--emit", "script")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"{big}: a profile file is {PROFILE_BYTES.text} at most; this one is " \
           f"{big.stat().st_size:,} bytes" in out.stderr
    assert "hint: is it the right file?" in out.stderr
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text("version: 1\nx: &a [lol, lol, lol]\ny: [*a, *a, *a]\n")
    aliased = run(str(laughs), "--emit", "script")
    assert aliased.returncode == 2 and f"{laughs}:3: a YAML alias" in aliased.stderr
    assert "Traceback" not in aliased.stderr


def test_filters_at_their_limit_compile_one_more_is_refused(tmp_path: Path) -> None:
    uids = [a for n in range(FILTER_VALUES.most) for a in ("--uid", str(1000 + n))]
    script = run("execve", *uids, "--emit", "script")
    assert script.returncode == 0, script.stderr
    assert f"uid == {1000 + FILTER_VALUES.most - 1})" in script.stdout
    over = run("execve", *uids, "--uid", "1", "--emit", "script")
    assert over.returncode == 2 and "Traceback" not in over.stderr
    assert f"--uid: {FILTER_VALUES.most + 1} values, over the limit of " \
           f"{FILTER_VALUES.text}" in over.stderr
    assert "verifier" in over.stderr  # why: bpftrace's compiler and the kernel's verifier
    comms = [f"c{n}" for n in range(FILTER_VALUES.most)]
    profile = tmp_path / "comms.yaml"
    profile.write_text(f"version: 1\nfilters:\n  comm: [{', '.join(comms)}]\n")
    assert run(str(profile), "--emit", "script").returncode == 0
    profile.write_text(f"version: 1\nfilters:\n  comm: [{', '.join([*comms, 'sh'])}]\n")
    refused = run(str(profile), "--emit", "script")
    assert refused.returncode == 2 and f"{profile}:3: `filters.comm`: " in refused.stderr


def test_from_dev_zero_ends_at_once_with_the_line_limit() -> None:
    out = run("--stats", "--from", "/dev/zero", timeout=30)  # else: gigabytes, unending
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"/dev/zero:1: a line longer than {JSON_LINE_BYTES.text}: not JSON lines " \
           "written by --json" in out.stderr


def test_from_a_line_too_long_is_named_by_its_number(tmp_path: Path) -> None:
    src = tmp_path / "events.jsonl"
    with src.open("w") as f:
        f.write('{"event":"end"}\nnot json\n')  # short lines that are not events: skipped
        f.write("[" * (JSON_LINE_BYTES.most + 1) + "\n")
    out = run("--stats", "--from", str(src), timeout=30)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"{src}:3: a line longer than {JSON_LINE_BYTES.text}" in out.stderr


def test_from_reads_the_longest_line_json_writes(tmp_path: Path) -> None:
    """Six string arguments of the most string_bytes reads, each byte one that JSON
    escapes (\\u0001), with every context field: within the limit on a --from line."""
    from bptrace_exec.event import Event, ProcContext
    from bptrace_exec.output.render import Renderer
    from bptrace_exec.output.text import json_line
    from bptrace_exec.spec import parse_profile
    from bptrace_exec.spec.captures import MAX_ARGS
    from bptrace_exec.spec.model import PARENTS_RANGE, STRING_BYTES_RANGE
    from bptrace_exec.spec.tracepoint import UNKNOWN

    names = [f"s{n}" for n in range(MAX_ARGS)]
    profile = parse_profile(
        "version: 1\nprobes: [openat]\nargs: {" + ", ".join(
            f"{n}: {{type: str, from: filename}}" for n in names) + "}\n"
        f"limits: {{string_bytes: {STRING_BYTES_RANGE[1]}}}\n"
        f"context: {{parents: {PARENTS_RANGE[1]}, container: true}}\n",
        source="p.yaml", name="p", lookup=lambda _name: UNKNOWN)
    escaped = b"\x01" * STRING_BYTES_RANGE[1]
    event = Event(time_ns=1, syscall="openat", pid=1, tid=1, ppid=1, uid=1,
                  comm=b"\x01" * 15, ret=-2, latency_ns=1,
                  values=dict.fromkeys(names, escaped),
                  parents=((1, b"\x01" * 15),) * PARENTS_RANGE[1],
                  context=ProcContext(cgroup_id=1, cgroup="c" * 255, pidns=1, mntns=1,
                                      hostname="h" * 64, path="/" + "p" * 4095))
    line = json_line(Renderer(profile).to_dict(event))
    assert 1_000_000 < len(line.encode()) < JSON_LINE_BYTES.most
    src = tmp_path / "longest.jsonl"
    src.write_text(line + "\n")
    out = run("--stats", "--from", str(src), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["calls"] == 1


def test_memory_running_out_while_reading_is_explained(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """Within the limits, memory can still be short (ulimit -v): exit status 3 with what
    was being read, not a traceback."""
    from bptrace_exec.cli import fromfiles
    from bptrace_exec.spec import yamlcheck

    def short(*_args: object) -> object:
        raise MemoryError

    with monkeypatch.context() as m:
        m.setattr(yamlcheck._BoundedLoader, "compose_node", short)
        assert main(["execve", "--emit", "script"]) == EXIT_ENVIRONMENT
    err = capsys.readouterr().err
    assert "out of memory while reading the profile " in err and "execve.yaml" in err
    assert "ulimit -v" in err and "Traceback" not in err
    src = tmp_path / "events.jsonl"
    src.write_text("{}\n")
    monkeypatch.setattr(fromfiles, "bounded_lines", short)
    for drawn in ("--stats", "--tree"):
        assert main([drawn, "--from", str(src)]) == EXIT_ENVIRONMENT
        assert f"out of memory while reading {src}" in capsys.readouterr().err
