"""--emit: the generated program, or a bpftrace one-liner, printed instead of run."""

from __future__ import annotations

import argparse
import contextlib

from bptrace_exec.cli.output import Output
from bptrace_exec.cli.profile import profile_asked
from bptrace_exec.codegen import generate
from bptrace_exec.codegen.oneliner import oneliner
from bptrace_exec.errors import EXIT_OK, UsageError, UserError
from bptrace_exec.run.engine import EngineProbe


def emit(args: argparse.Namespace, command: list[str]) -> int:
    """--emit: the program (or a one-liner) for the profile asked, printed, not run."""
    if args.emit == "oneliner":
        if args.parents or args.show_context:
            raise UsageError("a one-liner shows no process context",
                             hint="use --emit script, or drop --parents and --context")
        text = oneliner(profile_asked(args), args.bpftrace or "bpftrace")
    else:
        probe = EngineProbe(args.bpftrace)  # runs while the profile is read
        version = None
        try:
            profile = profile_asked(args)
        finally:  # the probe ended, whatever the profile
            with contextlib.suppress(UserError):  # no bpftrace: the program for none in
                version = probe.engine().version_text  # particular (no 0.22+ settings)
        text = generate(profile, version, follow=bool(command)).text
    with Output(args.output) as out:
        out.write(text)
    return EXIT_OK
