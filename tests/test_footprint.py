"""bpftrace's footprint once it traces: the compiler's pages are handed back."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from bptrace_exec.run.footprint import file_ranges
from conftest import bpftrace_of, json_records, started, tool_command

MAPS = """\
55d0c0a00000-55d0c0b00000 r-xp 00000000 fe:00 2170883    /usr/bin/bpftrace
55d0c0b00000-55d0c0b10000 rw-p 00100000 fe:00 2170883    /usr/bin/bpftrace
7f0000000000-7f0004000000 r-xp 00100000 fe:00 2170990    /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
7f0004000000-7f0004001000 rw-s 00000000 00:0e 12         anon_inode:[perf_event]
7f0004001000-7f0004002000 rw-p 00000000 00:00 0
7f0004002000-7f0004003000 r--p 00000000 00:01 33         /memfd:bptrace-exec (deleted)
7f0004003000-7f0004004000 r--p 00000000 00:05 4          /dev/zero
7f0004004000-7f0004005000 r--s 00000000 fe:00 2170991    /usr/lib/locale/C.utf8/LC_CTYPE
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0          [stack]
"""


def test_only_private_read_only_mappings_of_files_are_paged_out() -> None:
    assert file_ranges(MAPS) == [(0x55D0C0A00000, 0x100000), (0x7F0000000000, 0x4000000)]


def _kb(pid: int, name: str, field: str) -> int:
    text = Path(f"/proc/{pid}/{name}").read_text()
    [line] = [ln for ln in text.splitlines() if ln.startswith(field + ":")]
    return int(line.split()[1])


@pytest.mark.root
@pytest.mark.skipif(tuple(map(int, os.uname().release.split(".")[:2])) < (5, 10),
                    reason="process_madvise(2) came with Linux 5.10")
def test_bpftrace_keeps_no_compiler_resident_once_tracing(engine: str, tmp_path: Path,
                                                           nothing_left_running: None
                                                           ) -> None:
    """LLVM and clang (about 70 MB resident after the program is built) are paged out
    once every probe is attached: what stays is bpftrace's own and what other processes
    map too (not private), and what tracing runs again; and the run traces on."""
    out = tmp_path / "events.jsonl"
    marker = f"bpx-footprint-{os.getpid()}"
    with started(tool_command("execve", "--json", "-o", str(out), "--bpftrace", engine)) as run:
        run.lines.wait_for(lambda line: line.startswith("Tracing"))
        bpftrace = bpftrace_of(run.proc.pid)
        for _ in range(100):
            subprocess.run(["/bin/true", marker], check=True)
        assert _kb(bpftrace, "status", "VmHWM") > 60 * 1024  # it had the compiler
        deadline = time.monotonic() + 60  # paged out beside the reading, as it may
        while (kept := _kb(bpftrace, "smaps_rollup", "Private_Clean")) >= 16 * 1024 \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert kept < 16 * 1024
    assert run.proc.returncode == 0, run.lines.text()
    shown = [e for e in json_records(out.read_text()) if e.get("argv") == ["/bin/true", marker]]
    assert len(shown) == 100
