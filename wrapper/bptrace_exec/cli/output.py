"""Where the command line writes: rows and reports to stdout or -o FILE (opened again
on SIGUSR1), the status and summary lines to stderr."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Literal, TextIO

from bptrace_exec.errors import OutputError
from bptrace_exec.options import SUMMARY_PLACES


def stderr(message: str) -> None:
    """A line on stderr; none once its reader is gone (`2>&1 | head -1`), nor where the
    tool started without a stderr; a write that fails otherwise loses that line only."""
    if sys.stderr is None:
        return
    try:
        print(message, file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        to_devnull(sys.stderr)
    except OSError:
        pass


def to_devnull(stream: TextIO) -> None:
    """What is still buffered for a stream whose reader is gone goes to /dev/null, so
    that no flush at exit fails again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def _buffered(stream: TextIO) -> TextIO:
    """stdout as Output writes it: buffered even under `python -u` or PYTHONUNBUFFERED,
    where a system call per row would cost a storm more than the rows themselves;
    Output flushes after each batch of records."""
    if not getattr(stream, "write_through", False):
        return stream
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # no descriptor (a test's capture): as it is
        return stream
    return open(fd, "w", encoding=stream.encoding, errors=stream.errors,  # noqa: SIM115
                closefd=False)


class Output:
    """Where records go (-o FILE, else stdout); a closed reader (`| head`) ends the run
    cleanly, once."""

    def __init__(self, path: str | None, stream: TextIO | None = None, *,
                 option: str = "-o") -> None:
        self.path, self.option = path, option  # the option that names the path
        self.stream: TextIO = stream or _buffered(sys.stdout)
        self.closed = False

    def __enter__(self) -> Output:
        if self.path:
            self.stream = self._open("w")
            Output.files.append(self)
        return self

    files: list[Output] = []  # written to a path: opened again on SIGUSR1

    def _open(self, mode: Literal["w", "a"]) -> TextIO:
        assert self.path
        try:
            return open(self.path, mode, encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}",
                              hint="give a file in a folder you can write") from None

    @classmethod
    def reopen_on_signal(cls) -> Callable[[], object]:
        """SIGUSR1 (logrotate's postrotate): each file is opened again at its path before
        the next write; what was written before goes to the file moved away, whole.
        Gives what puts the previous handler back."""
        def asked(_signum: int, _frame: object) -> None:
            for out in cls.files:
                out.reopen = True
        before = signal.signal(signal.SIGUSR1, asked)
        return lambda: signal.signal(signal.SIGUSR1, before)

    reopen = False

    def _reopened(self) -> None:
        self.reopen = False
        try:
            self.stream.close()
            self.stream = open(self.path or "", "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise self._failed(exc) from None

    def __exit__(self, *_exc: object) -> None:
        try:
            if self.path:
                Output.files.remove(self)
                self.stream.close()
            elif not self.closed:
                self.stream.flush()
        except BrokenPipeError:
            self._reader_gone()
        except OSError as exc:
            raise self._failed(exc) from None

    def write(self, text: str, *, flush: bool = True) -> None:
        """One line; `flush=False` leaves it buffered until the next flush(), which the
        event loop calls after each batch of records (a write per row is most of the
        output's cost in a storm)."""
        if self.closed:
            return
        if self.reopen:
            self._reopened()
        try:
            self.stream.write(text if text.endswith("\n") else text + "\n")
            if flush:
                self.stream.flush()
        except BrokenPipeError:
            self._reader_gone()
        except OSError as exc:
            raise self._failed(exc) from None

    def flush(self) -> None:
        if self.closed:
            return
        if self.reopen:
            self._reopened()
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._reader_gone()
        except OSError as exc:
            raise self._failed(exc) from None

    def reader_left(self) -> bool:
        """Whether the pipe or socket written to has lost its reader (`| head`), or the
        terminal hung up, seen without a write: a run with nothing to show for a while
        would learn it only at its next row, and its command run on meanwhile."""
        if self.closed or self.path:
            return self.closed
        try:
            poll = select.poll()
            poll.register(self.stream.fileno(), 0)  # an error or a hang-up is always said
            if poll.poll(0):
                self._reader_gone()
        except (OSError, ValueError):  # no descriptor to ask (a stream in memory)
            pass
        return self.closed

    def _reader_gone(self) -> None:
        """The reader closed the pipe (`| head`)."""
        self.closed = True
        to_devnull(self.stream)

    def _failed(self, exc: OSError) -> OutputError:
        self.closed = True
        return OutputError(f"cannot write {self.path or 'the output'}: {exc.strerror or exc}",
                           hint=f"free space, or write elsewhere with {self.option} FILE")



@contextlib.contextmanager
def summary_output(where: str, out: Output) -> Iterator[Output | None]:
    """Where --json's lost and end lines go (--summary)."""
    if where == "stderr" and sys.stderr is None:  # started without one: nowhere
        yield None
        return
    if where in SUMMARY_PLACES and where != "stderr":
        yield out if where == "stream" else None
        return
    with Output(None if where == "stderr" else where,
                sys.stderr if where == "stderr" else None, option="--summary") as summary:
        yield summary
