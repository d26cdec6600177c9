"""The README's Layout table names every module of the package, and the arrows between
the stages point one way: a stage never imports one that comes after it."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "wrapper" / "bptrace_exec"
# The stages in the order data flows; the model (event, records, errors, limits) comes
# first, the library and the command line last.
ORDER = ["errors", "limits", "event", "records", "spec", "codegen", "run", "parse", "output",
         "pipeline", "api", "cli"]


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_is_in_the_readme_layout() -> None:
    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1]
    listed = set(re.findall(r"^\| `(wrapper/bptrace_exec/[^`]+)` \|", layout, re.M))
    missing = [str(p.relative_to(ROOT)) for p in modules()
               if str(p.relative_to(ROOT)) not in listed and p.name != "__init__.py"
               or (p.parent == PACKAGE and p.name == "__init__.py"
                   and str(p.relative_to(ROOT)) not in listed)]
    assert not missing, f"add to the README's Layout table: {missing}"
    gone = [path for path in listed if not (ROOT / path).exists()]
    assert not gone, f"in the README's Layout table but not in the package: {gone}"


def _stage(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "bptrace_exec" or len(parts) < 2:
        return None
    return ORDER.index(parts[1]) if parts[1] in ORDER else None


@pytest.mark.parametrize("path", [p for p in modules() if p.parent != PACKAGE
                                  or p.stem in ORDER],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    here = ORDER.index(rel.parts[0] if len(rel.parts) > 1 else rel.stem)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        stages = [s for s in map(_stage, targets) if s is not None]
        if stages:
            assert max(stages) <= here, f"{rel} imports {targets[0]}, a later stage"


@pytest.mark.parametrize("package", ["bptrace_exec", "bptrace_exec.spec"])
def test_lazy_names_are_the_ones_type_checkers_see(package: str) -> None:
    """A package's names are imported when first used; its TYPE_CHECKING block names the
    same ones, from the same modules, and each resolves to its module's object."""
    module = importlib.import_module(package)
    path = Path(module.__file__ or "")
    seen: dict[str, str] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module
                seen.update({a.name: imp.module for a in imp.names})
    assert seen == module._MODULE_OF
    for name, source in seen.items():
        assert getattr(module, name) is getattr(importlib.import_module(source), name)


def test_help_and_emit_import_only_what_they_need() -> None:
    """`--help` answers without the library; `--emit` without the runner and the output
    stages (a start-up of 0.07 s and 0.15 s: scripts/bench_startup.py); neither loads
    the standard library's modules for what they do not do (starting bpftrace, writing
    an export, addresses, suggestions; `--help` asks no version either)."""
    def imported(*argv: str) -> set[str]:
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "bptrace_exec",
                               *argv], capture_output=True, text=True, check=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT / "wrapper")})
        ours = done.stderr[done.stderr.find("| bptrace_exec"):]  # not what site loaded before
        return set(re.findall(r"\|\s+(bptrace_exec[\w.]*|yaml|[a-z]\w*)$", ours, re.M))
    unused = {"csv", "ctypes", "difflib", "pty", "socket", "tempfile"}
    help_ = imported("--help")
    assert "bptrace_exec.cli" in help_
    assert not help_ & {"bptrace_exec.api", "bptrace_exec.codegen", "yaml",
                        "bptrace_exec.pipeline", "bptrace_exec.spec.parse", "subprocess",
                        "bptrace_exec.records", *unused}  # the layouts: 13 ms of 80
    emit = imported("execve", "--emit", "script")
    assert {"bptrace_exec.codegen", "bptrace_exec.spec.parse"} <= emit
    assert not emit & {"bptrace_exec.api", "bptrace_exec.pipeline", "bptrace_exec.parse",
                       "bptrace_exec.output.render", "bptrace_exec.run.session", *unused}
