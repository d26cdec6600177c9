"""Every exit status, and the errors a user can act on, each tied to one of them."""

from __future__ import annotations

import os

# (status, meaning): --help and the README's table are written from these.
EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_EXPORT = 4
EXIT_INTERRUPTED = 130
EXIT_STATUSES = (
    (EXIT_OK, "traced and stopped cleanly (Ctrl-C, SIGTERM, --duration, closed output)"),
    (EXIT_RUNTIME, "bpftrace refused the program, or died or was killed while tracing "
                   "(its messages are shown; what was traced is kept, and the end line "
                   "says what is unknown)"),
    (EXIT_USAGE, "bad command line or profile; nothing was run"),
    (EXIT_ENVIRONMENT, "environment: not root, or root without the capabilities to "
                       "trace, no usable bpftrace, no tracefs, not enough memory, "
                       "--serve's port taken"),
    (EXIT_EXPORT, "an output could not be written: an --export file (the report was "
                  "printed), a --timeline file, the --record file (what was traced was "
                  "shown), -o FILE or stdout (a full disk, an I/O error)"),
    (EXIT_INTERRUPTED, "interrupted before tracing started"),
)
EXIT_CANNOT_RUN = 126  # the command's exec failed, as a shell says it
COMMAND_STATUS = (f"with -- COMMAND: COMMAND's own exit status (128+signal if killed; "
                  f"{EXIT_CANNOT_RUN} if it could not be run: its exec failed, said on "
                  "stderr)")


class UserError(Exception):
    """An error explained to the user in one paragraph, with no traceback."""

    exit_status = EXIT_RUNTIME

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(UserError):
    exit_status = EXIT_USAGE


class SpecError(UsageError):
    """A profile that does not validate; `where` is "file:line" when known."""

    def __init__(self, where: str, message: str, *, hint: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.where = where


class EnvironmentProblem(UserError):
    exit_status = EXIT_ENVIRONMENT


class EngineFailure(UserError):
    """bpftrace refused the program or stopped on its own."""

    exit_status = EXIT_RUNTIME


class StoppedStarting(EngineFailure):
    """Asked to stop (Ctrl-C, SIGTERM) before every probe was attached: bpftrace may have
    ended by the SIGINT it was sent, or before its program was loaded; nothing was
    traced, and that is no failure of bpftrace's."""

    exit_status = EXIT_INTERRUPTED

    def __init__(self) -> None:
        super().__init__("interrupted before tracing started")


class ExportError(UserError):
    exit_status = EXIT_EXPORT


class OutputError(UserError):
    """Rows or a report that could not be written where they were asked to go."""

    exit_status = EXIT_EXPORT


def not_a_program(name: str) -> str:
    """For a program not found: what a path names instead (": /tmp is a folder"), if
    anything."""
    if os.sep not in name:
        return ""
    if os.path.isdir(name):
        return f": {name} is a folder"
    if os.path.exists(name):
        return f": {name} is not executable"
    return ""
