"""Profiles: what to trace, read from YAML (or the command line) and checked.

model: the Profile and its parts; types: argument types; captures: arguments, columns,
breakdowns; parse: YAML to a Profile; overrides: the command line's changes to one;
profiles: finding shipped ones; tracepoint: what a syscall has on this kernel.
"""

from bptrace_exec.spec.model import (
    EXEC_SYSCALLS,
    PROCESS_EXIT,
    Arg,
    ArgSource,
    Context,
    Filters,
    Limits,
    ProbeKind,
    Profile,
    StatsSpec,
)
from bptrace_exec.spec.overrides import with_overrides
from bptrace_exec.spec.parse import parse_profile, profile_from_dict, profile_to_dict
from bptrace_exec.spec.profiles import available_profiles, load_profile

__all__ = ["EXEC_SYSCALLS", "PROCESS_EXIT", "Arg", "ArgSource", "Context", "Filters",
           "Limits", "ProbeKind", "Profile", "StatsSpec", "available_profiles", "load_profile",
           "parse_profile", "profile_from_dict", "profile_to_dict", "with_overrides"]
