"""The profile a command line asks for: shipped, a file or --syscall, with its changes."""

from __future__ import annotations

import argparse

from bptrace_exec.cli.output import stderr
from bptrace_exec.errors import UsageError
from bptrace_exec.options import DEFAULT_REFRESH_S
from bptrace_exec.run.cgroups import container_cgroups
from bptrace_exec.spec import Profile, load_profile, types, with_overrides
from bptrace_exec.spec.overrides import BASE_FILTERS, adhoc_profile, apply_where
from bptrace_exec.spec.tracepoint import UNKNOWN, syscall_fields


def profile_asked(args: argparse.Namespace) -> Profile:
    """The profile, with what the command line changes of it."""
    if args.syscall:
        if args.profile is not None:
            raise UsageError(f"give either a PROFILE ({args.profile}) or --syscall, not both")
        profile = adhoc_profile(args.syscall, args.arg or [], result=args.result)
    elif args.arg or args.result:
        raise UsageError("--arg and --result describe an ad-hoc profile",
                         hint="add --syscall NAME, or put them in the profile's YAML")
    else:
        profile = load_profile(args.profile or "execve")
    cgroups = list(args.cgroup or [])
    for container in args.container or []:
        cgroups += container_cgroups(container)
    if not args.replay and any(syscall_fields(p) == UNKNOWN for p in profile.probes
                               if profile.kind.attach == "syscall" and
                               not profile.kind.given_args):
        stderr("bptrace-exec: warning: the syscalls' tracepoint formats cannot be read here "
               "(/sys/kernel/tracing needs root): the profile's syscalls and arguments were "
               "not checked against this kernel")
    profile = with_overrides(profile, **_changes(args, cgroups))
    if args.where:  # after --exits, whose fields (status, signal, core) it may filter on
        _refuse_twice(args)
        profile = apply_where(profile, args.where)
    globs = any(types.of(a.type).read == "argv" for a in profile.args)
    for name, value in literal_stars(profile):
        stderr(f"bptrace-exec: warning: the filter {name}={value!r} matches that text, * "
               "included: a * before the end is no glob, only one at the end makes a prefix"
               + ("; argv takes globs (--where argv=PATTERN)" if globs else ""))
    # served, or to carry counts across a restart: refreshed, though no report is asked
    args.silent_refresh = not profile.stats.interval and profile.stats.enabled and bool(
        args.serve or args.restart)
    if args.silent_refresh:
        profile = with_overrides(profile, interval=DEFAULT_REFRESH_S)
    return profile


def literal_stars(profile: Profile) -> list[tuple[str, str]]:
    """The filters on text whose value has a * before its end: compared as they are, *
    and all (a name or path may hold one), where a glob was likely meant (/etc/*.conf)."""
    f = profile.filters
    texts = {a.name for a in profile.args if types.of(a.type).read in ("str", "exec_path")}
    given = [*(("comm", v) for v in f.comm), *(("cwd", v) for v in f.cwd),
             *(("exe", v) for v in f.exe),
             *((n, str(v)) for n, values in f.args if n in texts for v in values)]
    return [(name, value) for name, value in given if "*" in value.removesuffix("*")]


def _refuse_twice(args: argparse.Namespace) -> None:
    """An option and --where on the same name: which was meant, the values of both or
    those of one, is not for the tool to guess (the option was dropped)."""
    for name in BASE_FILTERS:
        given = getattr(args, name, None)
        if given and any(item.partition("=")[0].strip() == name for item in args.where):
            raise UsageError(f"--{name} and --where {name}=... both filter on {name}",
                             hint=f"give every value to one of them (a call passes on any): "
                                  f"--{name} A --{name} B, or --where {name}=A --where "
                                  f"{name}=B")


def _changes(args: argparse.Namespace, cgroups: list[str] | None = None) -> dict[str, object]:
    """What the command line changes of a profile; None: not given."""
    return dict(
        comm=args.comm, uid=args.uid, pid=args.pid, ppid=args.ppid, failed=args.failed,
        succeeded=args.succeeded, cgroup=cgroups or None, in_container=args.in_container,
        parents=args.parents, context=args.show_context, cwd=args.cwd, exe=args.exe, env=args.env,
        columns=args.columns,
        exits=args.exits or ((args.tree or args.timeline) and not args.replay) or None,
        max_args=args.max_args, argv_bytes=args.argv_bytes,
        stats=True if args.stats or args.from_file or args.export or args.serve else None,
        top=args.top, interval=args.interval,
        output_format="json" if args.json else None)
