"""bptrace-exec: declarative YAML profiles in, bpftrace programs run, events out.

The pipeline, one package per stage, one model of an event flowing through it:
    spec -> codegen -> run -> parse -> output      (event, records: what they share)
and the library on top (api: trace, stats, replay), which the command line (cli) uses.
The names below are imported when first used: `--help` needs none of them.
"""

from __future__ import annotations

from bptrace_exec.lazy import lazy_names

TYPE_CHECKING = False  # typing itself is not loaded before bpftrace starts (run.prestart)

__version__ = "0.1.0"

_FROM = {
    "bptrace_exec.api": ["Hooks", "Live", "Trace", "profile_of", "replay", "stats", "trace"],
    "bptrace_exec.errors": ["UserError"],
    "bptrace_exec.event": ["Event", "ProcContext"],
    "bptrace_exec.output.tally": ["Stats"],
    "bptrace_exec.spec": ["Profile", "load_profile"],
}
_MODULE_OF, __getattr__, __dir__ = lazy_names(__name__, globals(), _FROM)
__all__ = sorted(_MODULE_OF)

if TYPE_CHECKING:  # the same names, for type checkers
    from bptrace_exec.api import (
        Hooks as Hooks,
    )
    from bptrace_exec.api import (
        Live as Live,
    )
    from bptrace_exec.api import (
        Trace as Trace,
    )
    from bptrace_exec.api import (
        profile_of as profile_of,
    )
    from bptrace_exec.api import (
        replay as replay,
    )
    from bptrace_exec.api import (
        stats as stats,
    )
    from bptrace_exec.api import (
        trace as trace,
    )
    from bptrace_exec.errors import (
        UserError as UserError,
    )
    from bptrace_exec.event import (
        Event as Event,
    )
    from bptrace_exec.event import (
        ProcContext as ProcContext,
    )
    from bptrace_exec.output.tally import (
        Stats as Stats,
    )
    from bptrace_exec.spec import (
        Profile as Profile,
    )
    from bptrace_exec.spec import (
        load_profile as load_profile,
    )

