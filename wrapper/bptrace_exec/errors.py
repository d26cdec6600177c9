"""Errors a user can act on, each tied to the exit status documented in --help."""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1  # bpftrace failed to load the program or died while tracing
EXIT_USAGE = 2  # bad command line or bad profile: nothing was run
EXIT_ENVIRONMENT = 3  # not root, no bpftrace, unusable bpftrace, no tracefs
EXIT_INTERRUPTED = 130  # interrupted before tracing started


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
