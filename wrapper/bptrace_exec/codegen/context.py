"""Process context, printed with a call's other records: who the caller is (`who`), and
when a profile asks, one `anc` record per ancestor (nearest first), and the caller's
cgroup (v2) and namespaces (`cgrp`) and UTS hostname (`uts`); all read from the calling
task in the kernel, at return (a successful exec's when its new image starts)."""

from __future__ import annotations

from bptrace_exec.codegen.btlang import int_literal
from bptrace_exec.codegen.program import PID_NS, TTY, TTY_DEV, printf, reindent
from bptrace_exec.records import ANC, CGRP, UTS, WHO
from bptrace_exec.spec.model import Profile
from bptrace_exec.spec.parse import PARENTS_RANGE

CONTAINER_RECORDS = 2  # cgrp and uts
# records.Who. After an exec the task has the new program's credentials.
_WHO_SETUP = "  $cred = curtask->cred;\n" + reindent(TTY, 2)
_WHO = {"gid": "(uint64)$cred->gid.val", "euid": "(uint64)$cred->euid.val",
        "egid": "(uint64)$cred->egid.val", "loginuid": "(uint64)curtask->loginuid.val",
        "sessionid": "(uint64)curtask->sessionid", "tty": TTY_DEV,
        "started": "curtask->group_leader->start_time",
        "execs": "(uint64)curtask->self_exec_id",
        "parent_started": "curtask->real_parent->group_leader->start_time",
        "parent_execs": "(uint64)curtask->real_parent->self_exec_id"}


def who_record(indent: int = 2, counter: str = "$n") -> str:
    """Statements that print the caller's `who` record and count it."""
    return reindent(_WHO_SETUP + printf(WHO, _WHO) + (f"  {counter}++;\n" if counter else ""),
                    indent - 2)


def parent_records(profile: Profile, counter: str = "$n", printing: bool = True) -> str:
    """Statements (indented by two) that print the ancestors and count them (or, not
    `printing`, count them only: another probe printed them)."""
    depth = profile.context.parents
    if not depth:
        return ""
    return (
        "  $t = curtask->real_parent;\n"
        "  $d = (uint64)1;\n"
        f"  while ($d <= {int_literal(depth, *PARENTS_RANGE)}) {{\n"
        + (printf(ANC, {"depth": "$d", "pid": "(uint64)$t->tgid",
                        "comm": "$t->comm"}, 4) if printing else "")
        + (f"    {counter}++;\n" if counter else "")
        + "    if ($t->tgid <= 1) { break; }  // init, or the idle task above it\n"
        "    $t = $t->real_parent;\n"
        "    $d++;\n"
        "  }\n"
    )


def container_records(profile: Profile, counter: str = "$n") -> str:
    """Statements (indented by two) that print the cgroup and hostname and count them."""
    if not profile.context.container:
        return ""
    cgroup = {"cgroup_id": "cgroup", "pidns": f"(uint64){PID_NS}",
              "mntns": "(uint64)curtask->nsproxy->mnt_ns->ns.inum",
              "name": f"str(curtask->cgroups->dfl_cgrp->kn->name, {profile.kind.strlen})"}
    return (printf(CGRP, cgroup)
            + printf(UTS, {"hostname": "curtask->nsproxy->uts_ns->name.nodename"})
            + (f"  {counter} += {CONTAINER_RECORDS};\n" if counter else ""))


def context_records(profile: Profile, indent: int = 4, counter: str = "$n") -> str:
    """Both, indented by `indent`, counted in `counter` ("" for none)."""
    return reindent(parent_records(profile, counter) + container_records(profile, counter),
                    indent - 2)
