"""The command: bpftrace is started as the last run of this command line started it, and
a COMMAND to trace forked at its gate (run.prestart), then the tool loads and reads the
command line (cli)."""

import os
import signal
import sys

from bptrace_exec.errors import EXIT_INTERRUPTED
from bptrace_exec.run.prestart import prestart


def main() -> int:
    early = None
    for fd in (0, 1, 2):  # started with one closed (`>&-`): no pipe or file of ours takes
        try:              # its number, where a child would take it for its own
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    # An ignored SIGCHLD is inherited through exec, and makes the kernel reap children
    # itself: the status of bpftrace and of the COMMAND would be lost
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        early = prestart(sys.argv[1:])
        from bptrace_exec.cli import main as run_command_line

        return run_command_line(prestarted=early)
    except KeyboardInterrupt:  # before the command line took over its own
        if sys.stderr:  # else print() would write to stdout
            print("bptrace-exec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if early is not None:
            early.discard()  # if no run took it


if __name__ == "__main__":
    raise SystemExit(main())
