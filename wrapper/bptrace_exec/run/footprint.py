"""What bpftrace keeps resident after start-up without needing it: the pages of the
compiler it loaded (LLVM, clang), about 70 of its 110 MB. Once every probe is attached,
the pages of the files it maps read-only are handed back to the kernel
(process_madvise(2), MADV_PAGEOUT); those it runs again while tracing (its output code,
libc) come back a page at a time, about 1 MB. Pages another process also maps stay
where they are; so do those it writes (a library's data)."""

from __future__ import annotations

import ctypes
import os
import threading

SYS_PIDFD_OPEN, SYS_PROCESS_MADVISE = 434, 440  # x86_64, arm64 (the generic table)
MADV_PAGEOUT = 21
IOV_BATCH = 512  # ranges per call, below the kernel's UIO_MAXIOV


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


def file_ranges(maps: str) -> list[tuple[int, int]]:
    """/proc/PID/maps -> (start, length) of each private read-only mapping of a file on
    disk."""
    ranges = []
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[1].endswith("p") or "w" in fields[1]:
            continue
        path = fields[5]
        if not path.startswith("/") or path.startswith(("/dev/", "/memfd:")):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        ranges.append((start, end - start))
    return ranges


def release_in_background(pid: int) -> None:
    """release_file_pages(pid) beside the caller, who goes on reading (15 ms here)."""
    threading.Thread(target=release_file_pages, args=(pid,), name="footprint",
                     daemon=True).start()


def release_file_pages(pid: int) -> int:
    """Pages out process `pid`'s read-only file mappings: the bytes advised, 0 where
    the kernel cannot (before 5.10, without CAP_SYS_NICE, the process gone)."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
            ranges = file_ranges(f.read())
    except OSError:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    pidfd = libc.syscall(ctypes.c_long(SYS_PIDFD_OPEN), ctypes.c_long(pid), ctypes.c_long(0))
    if pidfd < 0:
        return 0
    advised = 0
    try:
        for at in range(0, len(ranges), IOV_BATCH):
            batch = ranges[at:at + IOV_BATCH]
            iov = (_Iovec * len(batch))(*(_Iovec(start, length) for start, length in batch))
            done = libc.syscall(ctypes.c_long(SYS_PROCESS_MADVISE), ctypes.c_long(pidfd), iov,
                                ctypes.c_long(len(batch)), ctypes.c_long(MADV_PAGEOUT),
                                ctypes.c_long(0))
            if done < 0:
                break
            advised += done
    finally:
        os.close(pidfd)
    return advised
