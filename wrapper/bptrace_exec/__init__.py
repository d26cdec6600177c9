"""bptrace-exec: declarative YAML profiles in, bpftrace programs run, events out.

The pipeline, one package per stage, one model of an event flowing through it:
    spec -> codegen -> run -> parse -> output      (event, records: what they share)
and the library on top (api: trace, stats, replay), which the command line (cli) uses.
"""

__version__ = "0.1.0"

from bptrace_exec.api import Hooks, Live, Trace, profile_of, replay, stats, trace  # noqa: E402
from bptrace_exec.errors import UserError  # noqa: E402
from bptrace_exec.event import Event, ProcContext  # noqa: E402
from bptrace_exec.output.tally import Stats  # noqa: E402
from bptrace_exec.spec import Profile, load_profile  # noqa: E402

__all__ = ["Event", "Hooks", "Live", "ProcContext", "Profile", "Stats", "Trace", "UserError",
           "load_profile", "profile_of", "replay", "stats", "trace"]
