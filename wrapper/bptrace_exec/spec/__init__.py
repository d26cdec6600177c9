"""Profiles: what to trace, read from YAML (or the command line) and checked.

model: the Profile and its parts; types: argument types; captures: arguments, columns,
breakdowns; parse: YAML to a Profile; overrides: the command line's changes to one;
profiles: finding shipped ones; tracepoint: what a syscall has on this kernel.
The names below are imported when first used (the YAML parser only when a profile is read).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bptrace_exec.lazy import lazy_names

_FROM = {
    "bptrace_exec.spec.model": ["EXEC_SYSCALLS", "PROCESS_EXIT", "Arg", "ArgSource", "Context",
                                "Filters", "Limits", "ProbeKind", "Profile", "StatsSpec"],
    "bptrace_exec.spec.overrides": ["with_overrides"],
    "bptrace_exec.spec.parse": ["parse_profile", "profile_from_dict", "profile_to_dict"],
    "bptrace_exec.spec.profiles": ["available_profiles", "load_profile"],
}
_MODULE_OF, __getattr__, __dir__ = lazy_names(__name__, globals(), _FROM)
__all__ = sorted(_MODULE_OF)

if TYPE_CHECKING:  # the same names, for type checkers
    from bptrace_exec.spec.model import (
        EXEC_SYSCALLS as EXEC_SYSCALLS,
    )
    from bptrace_exec.spec.model import (
        PROCESS_EXIT as PROCESS_EXIT,
    )
    from bptrace_exec.spec.model import (
        Arg as Arg,
    )
    from bptrace_exec.spec.model import (
        ArgSource as ArgSource,
    )
    from bptrace_exec.spec.model import (
        Context as Context,
    )
    from bptrace_exec.spec.model import (
        Filters as Filters,
    )
    from bptrace_exec.spec.model import (
        Limits as Limits,
    )
    from bptrace_exec.spec.model import (
        ProbeKind as ProbeKind,
    )
    from bptrace_exec.spec.model import (
        Profile as Profile,
    )
    from bptrace_exec.spec.model import (
        StatsSpec as StatsSpec,
    )
    from bptrace_exec.spec.overrides import (
        with_overrides as with_overrides,
    )
    from bptrace_exec.spec.parse import (
        parse_profile as parse_profile,
    )
    from bptrace_exec.spec.parse import (
        profile_from_dict as profile_from_dict,
    )
    from bptrace_exec.spec.parse import (
        profile_to_dict as profile_to_dict,
    )
    from bptrace_exec.spec.profiles import (
        available_profiles as available_profiles,
    )
    from bptrace_exec.spec.profiles import (
        load_profile as load_profile,
    )

