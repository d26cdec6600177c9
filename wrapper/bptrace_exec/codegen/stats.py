"""The stats program: counts and a latency histogram kept in bpftrace maps.

Nothing is printed per exec: each one costs a few map updates in the kernel and nothing
in user space. bpftrace prints the maps at exit (and the interval probe prints them every
N seconds, cumulatively, followed by a `stats` record that closes the snapshot):

  @stat_execs[FAILED]        count, FAILED is 0 or 1
  @stat_errno[ERRNO]         count of failed execs by errno
  @stat_uid[UID], @stat_ppid[PPID], @stat_comm[COMM], @stat_program[PATH]   counts
  @stat_cgroup[CGROUP_ID]    count per cgroup (v2), when asked for
  @stat_latency_us           log2 histogram of entry-to-return latency, microseconds
  @stat_latency_min/max/sum[0]   exact, in nanoseconds

Microseconds keep 0.17's 32-bit histogram bounds out of reach (2^31 us is 35 minutes).

The light program: when a profile counts successful execs only, by program, uid, ppid or
cgroup, without latency, errno or the caller's name, everything it needs is there when
the new program starts (sched_process_exec): one probe, one map update per breakdown,
and no syscall tracepoint (enabling one, even for execve alone, sends every syscall of
every task on the host through the kernel's slow tracing path).
"""

from __future__ import annotations

from bptrace_exec.btlang import int_literal
from bptrace_exec.codegen.common import (
    KEY,
    TID,
    follow_probes,
    forget,
    predicate,
    result_test,
    tracepoints,
)
from bptrace_exec.engine import STRLEN
from bptrace_exec.spec import INTERVAL_RANGE, SYSCALLS, Profile

SNAPSHOT_END = "stats"
LAYOUT = """Counts are kept in @stat_* maps and printed when bpftrace exits (and by the
interval probe, if any); bptrace-exec turns them into a report. See
`pydoc bptrace_exec.codegen.stats` for the maps."""


# comm is not among them: the caller's name is gone when the new program starts; caught
# from task_rename beforehand, it took two maps and a probe on every thread exit, which
# cost as much as the syscall tracepoints (measured: 1.5% CPU against 1.3%).
LIGHT_BREAKDOWNS = ("program", "uid", "ppid", "cgroup")
LIGHT_LAYOUT = """Successful execs only, counted when the new program starts: no syscall
tracepoint is enabled, so the host's other syscalls stay on the kernel's fast path.
Counts are kept in @stat_* maps and printed when bpftrace exits (and by the interval
probe, if any); bptrace-exec turns them into a report. See
`pydoc bptrace_exec.codegen.stats` for the maps."""


def light(profile: Profile) -> bool:
    """Whether the stats can be counted from the new image alone (the light program)."""
    st, f = profile.stats, profile.filters
    return (f.succeeded and not st.latency and not f.comm
            and set(st.by) <= set(LIGHT_BREAKDOWNS) and set(profile.probes) == set(SYSCALLS))


def light_program(profile: Profile, follow: bool) -> list[str]:
    """The light program's probes: one, plus what following a command takes."""
    by = profile.stats.by
    lines = [
        "  @stat_execs[(uint64)0] = count();",
        *_task_counts(by, "  "),
        # the kernel's copy of the path, right after the environment in the new image
        f"  @stat_program[str(uptr(curtask->mm->env_end), {STRLEN})] = count();"
        if "program" in by else "",
    ]
    count = (
        "// A program starts: the exec succeeded.\n"
        "tracepoint:sched:sched_process_exec\n"
        f"{predicate(profile.filters, follow)}"
        "{\n"
        + "\n".join(line for line in lines if line) + "\n"
        "}\n"
    )
    if not follow:
        return [count, interval_probe(profile)]
    unfollow = (
        "// A followed task ends: forget it.\n"
        "tracepoint:sched:sched_process_exit\n"
        "{\n"
        f"  $tid = {TID};\n"
        "  if (@exec_follow[$tid]) { delete(@exec_follow[$tid]); }\n"
        "}\n"
    )
    clear = "// Cleared so that nothing is printed at exit.\nEND\n{\n  clear(@exec_follow);\n}\n"
    return [follow_probes(), count, interval_probe(profile), unfollow, clear]


def scratch(profile: Profile) -> tuple[str, ...]:
    return ("exec_start", "exec_path") + (("exec_comm",) if "comm" in profile.stats.by else ())


def stat_maps(profile: Profile) -> list[str]:
    by = profile.stats.by
    maps = ["stat_execs"] + [f"stat_{b}" for b in by]
    if profile.stats.latency:
        maps += ["stat_latency_us", "stat_latency_min", "stat_latency_max", "stat_latency_sum"]
    return maps


def _task_counts(by: tuple[str, ...], pad: str, comm_key: str = "") -> list[str]:
    """The breakdowns read from the task itself, alike in both programs; the caller's
    name, kept at entry under `comm_key`, only in the full one."""
    return [
        f"{pad}@stat_uid[(uint64)uid] = count();" if "uid" in by else "",
        f"{pad}@stat_ppid[(uint64)curtask->real_parent->tgid] = count();" if "ppid" in by else "",
        f"{pad}@stat_comm[@exec_comm[{comm_key}]] = count();" if comm_key and "comm" in by
        else "",
        f"{pad}@stat_cgroup[cgroup] = count();" if "cgroup" in by else "",
    ]


def enter_body(profile: Profile) -> str:
    comm = "  @exec_comm[$key] = comm;\n" if "comm" in profile.stats.by else ""
    return "  @exec_path[$key] = (uint64)args->filename;\n" + comm


def exit_probe(profile: Profile) -> str:
    by = profile.stats.by
    lines = [
        "    @stat_execs[(uint64)($ret < 0)] = count();",
        "    if ($ret < 0) { @stat_errno[(uint64)(0 - $ret)] = count(); }" if "errno" in by else "",
        *_task_counts(by, "    ", comm_key="$key"),
    ]
    if "program" in by:
        lines += [
            "    // the path: the kernel's copy in the new image, or the caller's on failure",
            "    $path = @exec_path[$key];",
            "    if ($ret == 0) { $path = curtask->mm->env_end; }",
            f"    @stat_program[str(uptr($path), {STRLEN})] = count();",
        ]
    if profile.stats.latency:
        lines += [
            "    @stat_latency_us = hist($lat / 1000);",
            "    @stat_latency_min[0] = min($lat);",
            "    @stat_latency_max[0] = max($lat);",
            "    @stat_latency_sum[0] = sum($lat);",
        ]
    counted = "\n".join(line for line in lines if line) + "\n"
    test = result_test(profile.filters, "$ret < 0", "$ret == 0")
    if test:
        counted = f"    if ({test}) {{\n" + counted.replace("\n    ", "\n      ").replace(
            "    ", "      ", 1) + "    }\n"
    return (
        f"{tracepoints(profile, 'exit')}\n"
        "{\n"
        f"{KEY}"
        "  if ($id) {\n"
        "    $ret = args->ret;\n"
        "    $lat = nsecs - $id;\n"
        f"{counted}"
        + forget("$key", scratch(profile))
        + "  }\n"
        "}\n"
    )


def interval_probe(profile: Profile) -> str:
    seconds = profile.stats.interval
    if not seconds:
        return ""
    int_literal(seconds, 1, INTERVAL_RANGE[1])
    prints = "".join(f"  print(@{m});\n" for m in stat_maps(profile))
    return (
        "// A report every interval: the maps as they are (cumulative), then an end mark.\n"
        f"interval:s:{seconds}\n"
        "{\n"
        f"{prints}"
        f'  printf("{SNAPSHOT_END}\\n");\n'
        "}\n"
    )
