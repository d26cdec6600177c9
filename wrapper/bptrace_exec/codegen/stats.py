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
"""

from __future__ import annotations

from bptrace_exec.btlang import int_literal
from bptrace_exec.codegen.common import KEY, forget, tracepoints
from bptrace_exec.engine import STRLEN
from bptrace_exec.spec import INTERVAL_RANGE, Profile

SNAPSHOT_END = "stats"
LAYOUT = """Counts are kept in @stat_* maps and printed when bpftrace exits (and by the
interval probe, if any); bptrace-exec turns them into a report. See
`pydoc bptrace_exec.codegen.stats` for the maps."""


def scratch(profile: Profile) -> tuple[str, ...]:
    return ("exec_start", "exec_path") + (("exec_comm",) if "comm" in profile.stats.by else ())


def stat_maps(profile: Profile) -> list[str]:
    by = profile.stats.by
    maps = ["stat_execs"] + [f"stat_{b}" for b in by]
    if profile.stats.latency:
        maps += ["stat_latency_us", "stat_latency_min", "stat_latency_max", "stat_latency_sum"]
    return maps


def enter_body(profile: Profile) -> str:
    comm = "  @exec_comm[$key] = comm;\n" if "comm" in profile.stats.by else ""
    return "  @exec_path[$key] = (uint64)args->filename;\n" + comm


def exit_probe(profile: Profile) -> str:
    by = profile.stats.by
    lines = [
        "    @stat_execs[(uint64)($ret < 0)] = count();",
        "    if ($ret < 0) { @stat_errno[(uint64)(0 - $ret)] = count(); }" if "errno" in by else "",
        "    @stat_uid[(uint64)uid] = count();" if "uid" in by else "",
        "    @stat_ppid[(uint64)curtask->real_parent->tgid] = count();" if "ppid" in by else "",
        "    @stat_comm[@exec_comm[$key]] = count();" if "comm" in by else "",
        "    @stat_cgroup[cgroup] = count();" if "cgroup" in by else "",
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
    if profile.filters.failed:
        counted = "    if ($ret < 0) {\n" + counted.replace("\n    ", "\n      ").replace(
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
