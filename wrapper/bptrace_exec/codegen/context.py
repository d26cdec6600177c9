"""Process context records, printed with a record's other records when a profile asks:

  anc   TID ID DEPTH PID COMM(16 hex)        one per ancestor, nearest first
  cgrp  TID ID CGROUP_ID PIDNS MNTNS NAME     the caller's cgroup (v2) and its last name
  uts   TID ID HOSTNAME                      the caller's UTS namespace's hostname

All are read from the calling task in the kernel, when the call returns.
"""

from __future__ import annotations

from bptrace_exec.btlang import int_literal
from bptrace_exec.codegen.common import PID_NS
from bptrace_exec.spec import PARENTS_RANGE, Profile


def has_context(profile: Profile, *, parents: bool = True, container: bool = True) -> bool:
    """Whether context_records with the same choices prints anything."""
    return bool(parents and profile.context.parents) or (container and profile.context.container)


def context_records(profile: Profile, strlen: int, counter: str = "$n", *,
                    parents: bool = True, container: bool = True, indent: int = 4) -> str:
    """Statements (indented by `indent`) that print the context records and count them."""
    out = ""
    depth = profile.context.parents if parents else 0
    if depth:
        out += (
            "    $t = curtask->real_parent;\n"
            "    $d = (uint64)1;\n"
            f"    while ($d <= {int_literal(depth, *PARENTS_RANGE)}) {{\n"
            '      printf("anc %lu %lu %lu %lu %rh\\n", $key, $id, $d, (uint64)$t->tgid,\n'
            "             buf($t->comm, 16));\n"
            f"      {counter}++;\n"
            "      if ($t->tgid <= 1) { break; }  // init, or the idle task above it\n"
            "      $t = $t->real_parent;\n"
            "      $d++;\n"
            "    }\n"
        )
    if profile.context.container and container:
        out += (
            '    printf("cgrp %lu %lu %lu %lu %lu %s\\n", $key, $id, cgroup,\n'
            f"           (uint64){PID_NS},\n"
            "           (uint64)curtask->nsproxy->mnt_ns->ns.inum,\n"
            f"           str(curtask->cgroups->dfl_cgrp->kn->name, {strlen}));\n"
            '    printf("uts %lu %lu %s\\n", $key, $id, curtask->nsproxy->uts_ns->name.nodename);\n'
            f"    {counter} += 2;\n"
        )
    return "".join(line[4 - indent:] if line.strip() else line
                   for line in out.splitlines(True)) if indent < 4 else out
