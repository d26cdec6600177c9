"""--print-completion SHELL: bash or zsh completion of every option and of the shipped
profiles' names, written by shtab from the parser --help comes from (and imported only
then: it takes 58 ms)."""

from __future__ import annotations

import argparse

from bptrace_exec.spec import available_profiles

SHELLS = ("bash", "zsh")
BASH_PROFILES = "_bptrace_exec_profile"


def completion(parser: argparse.ArgumentParser, shell: str) -> str:
    import shtab

    names = " ".join(available_profiles())
    for action in parser._actions:
        if action.dest == "profile":  # a shipped profile's name, or a file of one's own
            action.complete = {"bash": BASH_PROFILES,  # type: ignore[attr-defined]
                               "zsh": f"({names})"}
    preamble = (f'{BASH_PROFILES}() {{\n  compgen -W "{names}" -- "$1"\n'
                '  compgen -f -- "$1"\n}\n') if shell == "bash" else ""
    return str(shtab.complete(parser, shell, preamble=preamble))
