"""The command: bpftrace is started as the last run of this command line started it, and
a COMMAND to trace forked at its gate (run.prestart), then the tool loads and reads the
command line (cli)."""

import sys

from bptrace_exec.errors import EXIT_INTERRUPTED
from bptrace_exec.run.prestart import prestart


def main() -> int:
    early = None
    try:
        early = prestart(sys.argv[1:])
        from bptrace_exec.cli import main as run_command_line

        return run_command_line(prestarted=early)
    except KeyboardInterrupt:  # before the command line took over its own
        print("bptrace-exec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if early is not None:
            early.discard()  # if no run took it


if __name__ == "__main__":
    raise SystemExit(main())
