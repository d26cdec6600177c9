"""Completion scripts, run by the shells themselves: bash completes options and shipped
profiles' names; zsh reads its script without an error."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bptrace_exec.spec import available_profiles
from conftest import tool_command


def script(shell: str) -> str:
    run = subprocess.run(tool_command("--print-completion", shell), capture_output=True,
                         text=True, timeout=60, check=True)
    return run.stdout


def bash_completes(words: list[str], script_path: str) -> list[str]:
    """What bash offers for the last word, as it would on Tab."""
    line = " ".join(words)
    program = (f'source "{script_path}"\n'
               f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
               f'COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}\n'
               "_shtab_bptrace_exec\n"
               'printf "%s\\n" "${COMPREPLY[@]}"\n')
    run = subprocess.run(["bash", "-c", program], capture_output=True, text=True,
                         timeout=60, cwd="/")
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


def test_bash_completes_options_and_profiles(tmp_path: Path) -> None:
    path = f"{tmp_path}/bptrace-exec.bash"
    with open(path, "w") as f:
        f.write(script("bash"))
    assert bash_completes(["bptrace-exec", "--se"], path) == ["--serve"]
    assert "--print-completion" in bash_completes(["bptrace-exec", "--pr"], path)
    shipped = bash_completes(["bptrace-exec", "exe"], path)
    assert {n for n in available_profiles() if n.startswith("exe")} <= set(shipped)
    assert bash_completes(["bptrace-exec", "--color", "al"], path) == ["always"]


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh: scripts/setup --test installs it")
def test_zsh_reads_its_script(tmp_path: Path) -> None:
    text = script("zsh")
    assert text.startswith("#compdef bptrace-exec") and "--serve" in text
    assert all(name in text for name in available_profiles())
    path = f"{tmp_path}/_bptrace-exec"
    with open(path, "w") as f:
        f.write(text)
    check = subprocess.run(["zsh", "-n", path], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
