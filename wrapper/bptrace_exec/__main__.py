"""The command: bpftrace is started as the last run of this command line started it
(run.prestart), then the tool loads and reads the command line (cli)."""

import sys

from bptrace_exec.run.prestart import prestart


def main() -> int:
    early = prestart(sys.argv[1:])
    try:
        from bptrace_exec.cli import main as run_command_line

        return run_command_line(early=early)
    finally:
        if early is not None:
            early.discard()  # if no run took it


if __name__ == "__main__":
    raise SystemExit(main())
