"""What a run keeps for the next one, in the cache directory of the effective user: their
home's (never $HOME's: sudo may keep another user's) or $XDG_CACHE_HOME. Every folder on
the way is opened without following a link, relative to the one before, and must be that
user's own and writable by no one else; so must every file read. A cache that cannot be
read or written is no cache, never an error."""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
from collections.abc import Callable, Iterator

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class CacheDir:
    def __init__(self, base: str | os.PathLike[str] | None, *parts: str) -> None:
        # ~/.cache: it may exist before this tool does
        self.base = None if base is None else os.fspath(base)
        self.parts = ("bptrace-exec", *parts)

    @classmethod
    def default(cls, *parts: str) -> CacheDir:
        try:
            home = pwd.getpwuid(os.geteuid()).pw_dir
        except KeyError:
            return cls(None)
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
        return cls(base if os.path.isabs(base) else None, *parts)

    def read(self, name: str) -> str | None:
        with self._folder(create=False) as fd:
            if fd is None:
                return None
            try:
                file = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
                with open(file, encoding="utf-8") as f:
                    if not _own(os.fstat(f.fileno()), stat.S_ISREG):
                        return None
                    return f.read()
            except (OSError, ValueError):
                return None
        return None

    def located(self, name: str) -> tuple[str, int, int] | None:
        """Where a file kept here is, and its device and inode: for a reader that takes a
        path, to check that it opened this file. None where it is not there or not safe."""
        with self._folder(create=False) as fd:
            if fd is None or self.base is None:
                return None
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                return None
            if not _own(st, stat.S_ISREG):
                return None
            return os.path.join(self.base, *self.parts, name), st.st_dev, st.st_ino
        return None

    def write(self, name: str, text: str) -> bool:
        """Whether it was written (whole, or not at all)."""
        with self._folder(create=True) as fd:
            if fd is None:
                return False
            staged = f".{name}.{os.urandom(8).hex()}"
            try:
                file = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                               0o600, dir_fd=fd)
                with open(file, "w", encoding="utf-8") as f:
                    f.write(text)
                os.replace(staged, name, src_dir_fd=fd, dst_dir_fd=fd)
                return True
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(staged, dir_fd=fd)
                return False
        return False

    def keep_newest(self, count: int) -> None:
        """Forget all but the `count` files last written."""
        with self._folder(create=False) as fd:
            if fd is None:
                return
            written = []
            with contextlib.suppress(OSError), os.scandir(fd) as entries:
                for entry in entries:
                    with contextlib.suppress(OSError):
                        written.append((entry.stat(follow_symlinks=False).st_mtime_ns,
                                        entry.name))
            for _, name in sorted(written)[:-count]:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=fd)

    @contextlib.contextmanager
    def _folder(self, *, create: bool) -> Iterator[int | None]:
        """The innermost folder, opened; None where it is not there or not safe."""
        if self.base is None:
            yield None
            return
        fds: list[int] = []
        try:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(self.base, 0o700)
            fds.append(os.open(self.base, _DIRECTORY))
            for part in self.parts:
                if not _own(os.fstat(fds[-1]), stat.S_ISDIR):
                    raise PermissionError(part)
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o700, dir_fd=fds[-1])
                fds.append(os.open(part, _DIRECTORY, dir_fd=fds[-1]))
            if not _own(os.fstat(fds[-1]), stat.S_ISDIR):
                raise PermissionError(self.parts[-1])
        except OSError:
            for fd in fds:
                os.close(fd)
            yield None
            return
        try:
            yield fds[-1]
        finally:
            for fd in fds:
                os.close(fd)


def _own(st: os.stat_result, kind: Callable[[int], bool]) -> bool:
    """The effective user's, of that kind, and writable by no one else."""
    return kind(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022
