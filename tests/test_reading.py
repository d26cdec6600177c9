"""How a run paces its reads of bpftrace's pipe (run.session.pause_after)."""

from __future__ import annotations

from bptrace_exec.run.session import BATCH_BYTES, BATCH_S, BRIEF_S, pause_after

PIPE = 1 << 20


def test_a_storm_is_read_in_batches() -> None:
    assert pause_after(BATCH_BYTES, BATCH_BYTES, PIPE) == BATCH_S
    assert pause_after(64 << 10, 30 << 10, PIPE) == BATCH_S


def test_a_lone_burst_is_shown_at_once() -> None:
    """The calls made while the probes were attached come in one read once bpftrace is
    ready: they were held a storm's pause before the first rows showed."""
    assert pause_after(6 << 10, 38, PIPE) == BRIEF_S
    assert pause_after(6 << 10, 0, PIPE) == BRIEF_S


def test_a_few_records_are_shown_soon() -> None:
    assert pause_after(652, 64 << 10, PIPE) == BRIEF_S
    assert pause_after(BATCH_BYTES - 1, BATCH_BYTES, PIPE) == BRIEF_S


def test_a_pipe_half_full_is_read_again_soon() -> None:
    """bpftrace never waits for room in the pipe, which would stall its reading of the
    kernel's buffers and lose records."""
    assert pause_after(PIPE // 2, PIPE // 2, PIPE) == BRIEF_S
