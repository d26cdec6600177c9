"""JSON lines every consumer reads: a real run whose arguments are not UTF-8, hold control
and bidi characters, and a literal "\\udce9" typed as text, loaded by DuckDB, sqlite-utils
and jq, and the exact bytes got back by the README's recipes, run as they are written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from conftest import ROOT, run_tool

pytestmark = pytest.mark.root
ARGV = [b"caf\xe9", b"rtl\xe2\x80\xaex", b"del\x7f", b"\\udce9", b"tab\tend"]
BIN = Path(sys.executable).parent  # sqlite-utils, installed with the tests


def recipes() -> dict[str, str]:
    """The README's recipes, by the tool named in each one's comment."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- json-recipes: begin -->\n```sh\n(.*?)```", text, re.S)
    assert block, "the README shows how to get the bytes back"
    parts = re.split(r"^# (\w+)[^\n]*\n", block.group(1), flags=re.M)[1:]
    return dict(zip(parts[::2], parts[1::2], strict=True))


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("json")
    out = tmp / "execs.jsonl"
    argv = [a.decode("utf-8", "surrogateescape") for a in ARGV]
    run = run_tool("--json", "-q", "-o", str(out), "--", "/bin/echo", *argv,
                   errors="replace")  # the command's output: on stderr
    assert run.returncode == 0, run.stderr
    return out


def test_every_line_is_utf8_json_with_nothing_a_terminal_acts_on(jsonl: Path) -> None:
    raw = jsonl.read_bytes()
    text = raw.decode("utf-8")  # strict: no lone surrogate, no stray byte
    assert "\u202e" not in text and "\x7f" not in text
    [echo] = [json.loads(ln) for ln in text.splitlines() if '"event":"exec"' in ln]
    assert echo["argv"][1:] == ["caf\ufffd", "rtl\u202ex", "del\x7f", "\\udce9", "tab\tend"]
    assert echo["b64"] == {"/argv/1": "Y2Fm6Q=="}  # only the one that is not UTF-8


def test_loaders_read_it_whole(jsonl: Path, tmp_path: Path) -> None:
    rows = duckdb.sql(f"SELECT event, argv FROM read_json_auto('{jsonl}')").fetchall()
    assert [r[0] for r in rows] == ["exec", "end"] and rows[0][1][1] == "caf\ufffd"
    execs = subprocess.run(["jq", "-c", 'select(.event == "exec")', str(jsonl)],
                           capture_output=True, check=True).stdout
    subprocess.run([BIN / "sqlite-utils", "insert", tmp_path / "e.db", "execs", "-", "--nl"],
                   input=execs, check=True)
    count = subprocess.run([BIN / "sqlite-utils", "query", tmp_path / "e.db",
                            "select count(*) from execs", "--raw"],
                           capture_output=True, text=True, check=True).stdout
    assert count.strip() == "1"


@pytest.mark.parametrize("tool", ["Python", "jq", "DuckDB", "SQLite"])
def test_the_readme_recipes_give_the_exact_bytes(tool: str, jsonl: Path) -> None:
    recipe = recipes()[tool]
    if tool == "DuckDB":  # the same SQL, through the Python module the tests install
        sql = re.search(r'duckdb -c "(.*)"', recipe, re.S)
        assert sql
        query = sql.group(1).replace('\\"', '"')
        got = duckdb.sql(query.replace("execs.jsonl", str(jsonl))).fetchall()
        assert got[0][0] == ARGV[0]
        return
    if shutil.which("jq") is None:
        pytest.fail("jq is needed: scripts/setup --test installs it")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", recipe], cwd=jsonl.parent,
                         env=env, capture_output=True, check=True).stdout
    expected = {"Python": repr(ARGV[0]).encode() + b"\n"}.get(tool, ARGV[0])
    assert out == expected


def test_a_run_loads_into_tables_as_the_readme_shows(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- load-recipes: begin -->\n```sh\n(.*?)```", text, re.S)
    assert block, "the README shows how to load a run"
    trace, *loads = block.group(1).splitlines()
    options = trace.split("bptrace-exec ", 1)[1].split(" -- ")[0].split()
    script = "/bin/true; /nonexistent/x; /bin/true"  # the README's make, made small
    run = run_tool(*options, "--", "sh", "-c", script, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert '"event":"end"' in run.stderr  # apart from the events
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    outputs = []
    for line in loads:
        if line.startswith("duckdb -c "):  # the same SQL, through the Python module
            sql = line.split('"', 1)[1].rsplit('"', 1)[0]
            rows = duckdb.sql(sql.replace("'execs.jsonl'", f"'{tmp_path / 'execs.jsonl'}'"))
            outputs.append(str(rows.fetchall()))
            continue
        outputs.append(subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=tmp_path,
                                      env=env, capture_output=True, text=True,
                                      check=True).stdout)
    inserted, by_errno, by_file, failed = outputs
    assert json.loads(by_errno) == [{"errno": None, "n": 3}, {"errno": "ENOENT", "n": 1}]
    assert "('/bin/true', 2)" in by_file and "('/nonexistent/x', 1)" in by_file
    assert failed == "ENOENT\t/nonexistent/x\n"
