"""The stats program of an exec profile: counts and a latency histogram in bpftrace maps.

Nothing is printed per exec: each one costs a few map updates in the kernel and nothing
in user space. The interval probe prints the maps every N seconds, cumulatively, followed
by a `stats` record that closes the snapshot; the reader's cue for the end prints them
once more, followed by a `last` record (and bpftrace prints them at exit):

  @stat_execs[FAILED | CPU << 1]   count, FAILED is 0 or 1
  @stat_errno[ERRNO, CPU]          count of failed execs by errno
  @stat_uid[UID, CPU], @stat_ppid[PPID, CPU], @stat_comm[COMM, CPU],
  @stat_program[PATH, CPU]         counts
  @stat_euid[EUID, CPU], @stat_tty[MKDEV(MAJOR, MINOR), CPU]   counts, when asked for
  @stat_cgroup[CGROUP_ID, CPU]     count per cgroup (v2), when asked for
  @stat_latency_log2_us[BITS, CPU]   entry-to-return latency in microseconds, in
                                   hist()'s buckets: by how many bits it has
  @stat_latency_min/max/sum[CPU]   exact, in nanoseconds

Every count is kept per CPU in a plain map (PER_CPU), each CPU adding to keys of its own,
not in bpftrace's per-CPU aggregations (count(), hist()): the kernel allocates one of
those for every key it may hold (65,536) on every CPU at start, 30-60 ms each here (the
program with its six was ready in 0.37 s, with plain maps 0.10); and on 0.23, of two
CPUs that insert the same key at once, one loses its increment. A breakdown holds 65,536
(VALUE, CPU) pairs, as bpftrace's maps hold keys: an exec past that is in the totals,
and in a breakdown's "other". A one-liner, for people to read, counts as bpftrace's own
tools do.

The light program: when a profile counts successful execs only, by program, uid, ppid or
cgroup, without latency, errno or the caller's name, everything it needs is there when
the new program starts (sched_process_exec): one probe, one map update per breakdown,
and no syscall tracepoint (enabling one, even for execve alone, sends every syscall of
every task on the host through the kernel's slow tracing path).
"""

from __future__ import annotations

from collections.abc import Mapping

from bptrace_exec.codegen.btlang import int_literal
from bptrace_exec.codegen.events import thread_exit_probe
from bptrace_exec.codegen.filters import path_conditions
from bptrace_exec.codegen.program import (
    EUID,
    PPID,
    TID,
    TTY_DEV,
    begin,
    end,
    euid_test,
    follow_probe,
    header,
    predicate,
    probe,
    reader_asks,
    result_test,
)
from bptrace_exec.codegen.readers import word
from bptrace_exec.records import (
    LAST_SNAPSHOT_END,
    LATENCY_HIST_MAP,
    LATENCY_LOG2_MAP,
    SNAPSHOT_END,
)
from bptrace_exec.spec.model import EXEC_SYSCALLS, INTERVAL_RANGE, Profile

# A map key is not a printf record: the program's path fits 0.17's stack whole (the
# event program's strings are shorter, spec.model).
PATH_STRLEN = 200

LAYOUT = """Counts are kept in @stat_* maps and printed when the reader asks for the end
(and by the interval probe, if any); bptrace-exec turns them into a report. See
`pydoc bptrace_exec.codegen.stats` for the maps."""
# comm is not among them: the caller's name is gone when the new program starts; caught
# from task_rename beforehand, it took two maps and a probe on every thread exit, which
# cost as much as the syscall tracepoints (measured: 1.5% CPU against 1.3%).
LIGHT_BREAKDOWNS = ("program", "uid", "ppid", "euid", "tty", "cgroup")
LIGHT_LAYOUT = """Successful execs only, counted when the new program starts: no syscall
tracepoint is enabled, so the host's other syscalls stay on the kernel's fast path.
""" + LAYOUT


LOG2_US = """// hist()'s bucket of the microseconds: how many bits they have
$us = $lat / 1000;
$log2 = (uint64)($us > 0);
if ($us >> 32) { $us >>= 32; $log2 += 32; }
if ($us >> 16) { $us >>= 16; $log2 += 16; }
if ($us >> 8) { $us >>= 8; $log2 += 8; }
if ($us >> 4) { $us >>= 4; $log2 += 4; }
if ($us >> 2) { $us >>= 2; $log2 += 2; }
if ($us >> 1) { $log2 += 1; }
"""
# How a program counts (per CPU, exactly) and a one-liner (plainly, as people read it).
# (FAILED: 1 for a failed exec, else 0; NAME, VALUE: a breakdown's; "histogram": the
# latency's map)
PER_CPU = {
    "execs": "@stat_execs[FAILED | (uint64)cpu << 1]++;",
    "count": "@stat_NAME[VALUE, (uint64)cpu]++;",
    "latency": LOG2_US + f"@{LATENCY_LOG2_MAP}[$log2, (uint64)cpu]++;",
    "histogram": LATENCY_LOG2_MAP,
    "min": "if (!@stat_latency_min[cpu] || $lat < @stat_latency_min[cpu]) "
           "{ @stat_latency_min[cpu] = $lat; }",
    "max": "if ($lat > @stat_latency_max[cpu]) { @stat_latency_max[cpu] = $lat; }",
    "sum": "@stat_latency_sum[cpu] += $lat;",
}
PLAIN = {
    "execs": "@stat_execs[FAILED] = count();",
    "count": "@stat_NAME[VALUE] = count();",
    # Microseconds keep 0.17's 32-bit histogram bounds out of reach (2^31 us: 35 minutes).
    "latency": f"@{LATENCY_HIST_MAP} = hist($lat / 1000);",
    "histogram": LATENCY_HIST_MAP,
    "min": "@stat_latency_min[0] = min($lat);",
    "max": "@stat_latency_max[0] = max($lat);",
    "sum": "@stat_latency_sum[0] = sum($lat);",
}


def light(profile: Profile) -> bool:
    """Whether the stats can be counted from the new image alone (the light program)."""
    st, f = profile.stats, profile.filters
    return (f.succeeded and not st.latency and not f.comm and not f.args
            and set(st.by) <= set(LIGHT_BREAKDOWNS) and set(profile.probes) == set(EXEC_SYSCALLS))


def generate_stats(profile: Profile, version: str | None, follow: bool) -> str:
    strlen = PATH_STRLEN
    if light(profile):
        sections = [header(profile, version, follow, layout=LIGHT_LAYOUT, strlen=strlen,
                           details=(f"Limits: {strlen - 1} bytes of each program's path.",)),
                    begin(follow), *light_probes(profile, follow)]
    else:
        sections = [header(profile, version, follow, layout=LAYOUT, strlen=strlen,
                           details=(f"Limits: {strlen - 1} bytes of each program's path.",)),
                    begin(follow), follow_probe() if follow else "", *full_probes(profile, follow),
                    thread_exit_probe(True, follow, []),
                    end(["call", "moved"] + (["follow"] if follow else []))]
    return "\n".join(s for s in sections if s)


def light_probes(profile: Profile, follow: bool, counts: Mapping[str, str] = PER_CPU
                 ) -> list[str]:
    """The light program's probes: one, plus what following a command takes."""
    by = profile.stats.by
    lines = [
        "  " + counts["execs"].replace("FAILED", "(uint64)0") + "\n",
        *_task_counts(by, counts),
        # the kernel's copy of the path, right after the environment in the new image
        "  " + count_in(counts, "program", f"str(uptr(curtask->mm->env_end), {PATH_STRLEN})")
        + "\n" if "program" in by else "",
    ]
    count = probe(["tracepoint:sched:sched_process_exec"],
                  predicate(profile.filters, follow, not_self=False)
                  + euid_test(profile.filters), "".join(lines),
                  "A program starts: the exec succeeded.")
    if not follow:
        return [count, *report_probes(profile, counts)]
    unfollow = probe(["tracepoint:sched:sched_process_exit"], [],
                     f"  $tid = {TID};\n  if (@follow[$tid]) {{ delete(@follow[$tid]); }}\n",
                     "A followed task ends: forget it.")
    return [follow_probe(), count, *report_probes(profile, counts), unfollow, end(["follow"])]


def _task_counts(by: tuple[str, ...], counts: Mapping[str, str], pad: str = "  ",
                 comm: str = "") -> list[str]:
    """The breakdowns read from the task itself, alike in both programs; the caller's
    name, kept at entry, only in the full one."""
    values = {"uid": "(uint64)uid", "ppid": PPID, "euid": f"(uint64){EUID}", "tty": TTY_DEV,
              "comm": comm, "cgroup": "cgroup"}
    return [f"{pad}{count_in(counts, name, value)}\n" for name, value in values.items()
            if value and name in by]


def count_in(counts: Mapping[str, str], name: str, value: str) -> str:
    """The statement that counts an exec in breakdown `name`, under `value`."""
    return counts["count"].replace("NAME", name).replace("VALUE", value)


def full_probes(profile: Profile, follow: bool, counts: Mapping[str, str] = PER_CPU
                ) -> list[str]:
    by = profile.stats.by
    words = ["$id", "(uint64)args->filename"] + (["comm"] if "comm" in by else [])
    enter = probe([f"tracepoint:syscalls:sys_enter_{p}" for p in profile.probes],
                  predicate(profile.filters, follow, not_self=False),
                  f"  $key = {TID};\n  $id = nsecs;\n  @call[$key] = ({', '.join(words)});\n")
    image = probe(["tracepoint:sched:sched_process_exec"], [],
                  "  $key = (uint64)args->old_pid;\n"
                  f"  if ($key != {TID} && @call[$key].0) {{ @moved[{TID}] = $key; }}\n",
                  "A thread other than the leader that execs takes the leader's id.")
    lines = [
        "    " + counts["execs"].replace("FAILED", "(uint64)($ret < 0)") + "\n",
        f"    if ($ret < 0) {{ {count_in(counts, 'errno', '(uint64)(0 - $ret)')} }}\n"
        if "errno" in by else "",
        *_task_counts(by, counts, "    ", word(2)),
    ]
    paths = path_conditions(profile, "$path", PATH_STRLEN)
    path = ("    // the path: the kernel's copy in the new image, or the caller's on failure\n"
            f"    $path = {word(1)};\n"
            "    if ($ret == 0) { $path = curtask->mm->env_end; }\n"
            if "program" in by or paths else "")
    if "program" in by:
        lines.append(f"    {count_in(counts, 'program', f'str(uptr($path), {PATH_STRLEN})')}\n")
    if profile.stats.latency:
        lines += [f"    {line}\n" for figure in ("latency", "min", "max", "sum")
                  for line in counts[figure].splitlines()]
    counted = "".join(lines)
    tests = [t for t in [result_test(profile.filters, "$ret < 0", "$ret == 0")] if t]
    if tests := tests + euid_test(profile.filters) + paths:
        counted = f"    if ({' && '.join(tests)}) {{\n" + "".join(
            "  " + line if line.strip() else line for line in counted.splitlines(True)) + "    }\n"
    exit_ = probe(
        [f"tracepoint:syscalls:sys_exit_{p}" for p in profile.probes], [],
        f"  $tid = {TID};\n  $key = $tid;\n"
        "  if (@moved[$tid]) { $key = @moved[$tid]; delete(@moved[$tid]); }\n"
        f"  if ({word(0)}) {{\n"
        "    $ret = args->ret;\n"
        f"    $lat = nsecs - {word(0)};\n"
        + path + counted + "    delete(@call[$key]);\n  }\n")
    return [enter, image, exit_, *report_probes(profile, counts)]


def stat_maps(profile: Profile, counts: Mapping[str, str] = PER_CPU) -> list[str]:
    by = profile.stats.by
    maps = ["stat_execs"] + [f"stat_{b}" for b in by]
    if profile.stats.latency:
        maps += [counts["histogram"], "stat_latency_min", "stat_latency_max",
                 "stat_latency_sum"]
    return maps


def report_probes(profile: Profile, counts: Mapping[str, str] = PER_CPU) -> list[str]:
    """A report every interval, if asked for, and the last one when the reader asks."""
    last = reader_asks(snapshot(profile, counts, LAST_SNAPSHOT_END),
                       "The reader asks for the end: the last report now, not at "
                       "bpftrace's exit.")
    seconds = profile.stats.interval
    if not seconds:
        return [last]
    int_literal(seconds, 1, INTERVAL_RANGE[1])
    return [probe([f"interval:s:{seconds}"], [], snapshot(profile, counts, SNAPSHOT_END),
                  "A report every interval: the maps as they are (cumulative), then an end "
                  "mark."), last]


def snapshot(profile: Profile, counts: Mapping[str, str], closing: str) -> str:
    """The maps as they are, then the record that closes the snapshot."""
    prints = "".join(f"  print(@{m});\n" for m in stat_maps(profile, counts))
    return prints + f'  printf("{closing}\\n");\n'
