"""Process context, printed with a call's other records: who the caller is (`who`), and
when a profile asks, its working directory and the file its process runs (`seg`, `path`),
one `anc` record per ancestor (nearest first), and the caller's cgroup (v2) and
namespaces (`cgrp`) and UTS hostname (`uts`); all read from the calling task in the
kernel, at return (a successful exec's when its new image starts)."""

from __future__ import annotations

from bptrace_exec.codegen.btlang import int_literal
from bptrace_exec.codegen.program import EUID, PID_NS, TTY_DEV, printf, reindent
from bptrace_exec.records import (
    ANC,
    CGRP,
    PATH,
    PATH_CUT,
    PATH_DELETED,
    PATH_NONE,
    PATH_UNKNOWN,
    SEG,
    UTS,
    WHO,
)
from bptrace_exec.spec.model import PARENTS_RANGE, PATHS, Profile

CONTAINER_RECORDS = 2  # cgrp and uts
# records.Who's fields, of the current task: in a closing record (`callw`, `calls`,
# `calla`, a successful exec's `exec`: after an exec the task has the new program's
# credentials), or a failed exec's `who` record.
WHO_VALUES = {
    "gid": "(uint64)curtask->cred->gid.val", "euid": f"(uint64){EUID}",
    "egid": "(uint64)curtask->cred->egid.val", "loginuid": "(uint64)curtask->loginuid.val",
    "sessionid": "(uint64)curtask->sessionid", "tty": TTY_DEV,
    "started": "curtask->group_leader->start_time",
    "execs": "(uint64)curtask->self_exec_id",
    "parent_started": "curtask->real_parent->group_leader->start_time",
    "parent_execs": "(uint64)curtask->real_parent->self_exec_id"}


def who_record(indent: int = 2, counter: str = "$n") -> str:
    """Statements that print the caller's `who` record and count it."""
    return reindent(printf(WHO, WHO_VALUES) + (f"  {counter}++;\n" if counter else ""),
                    indent - 2)


def parent_records(profile: Profile, counter: str = "$n") -> str:
    """Statements (indented by two) that print the ancestors and count them."""
    depth = profile.context.parents
    if not depth:
        return ""
    return (
        "  $t = curtask->real_parent;\n"
        "  $d = (uint64)1;\n"
        f"  while ($d <= {int_literal(depth, *PARENTS_RANGE)}) {{\n"
        + printf(ANC, {"depth": "$d", "pid": "(uint64)$t->tgid", "comm": "$t->comm"}, 4)
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
              "name": f"str($kn->name, {profile.kind.strlen})"}
    # cast: 0.17 may else not know the name's field (in a program of sched probes only)
    return ("  $kn = (struct kernfs_node *)curtask->cgroups->dfl_cgrp->kn;\n"
            + printf(CGRP, cgroup)
            + printf(UTS, {"hostname": "curtask->nsproxy->uts_ns->name.nodename"})
            + (f"  {counter} += {CONTAINER_RECORDS};\n" if counter else ""))


def context_records(profile: Profile, indent: int = 4, counter: str = "$n") -> str:
    """Both, indented by `indent`, counted in `counter` ("" for none)."""
    return reindent(parent_records(profile, counter) + container_records(profile, counter),
                    indent - 2)


# The paths a walk starts from (struct path), and when there is none.
PATH_STARTS = {"cwd": "curtask->fs->pwd", "exe": "curtask->mm->exe_file->f_path"}
PATH_ABSENT = {"cwd": "curtask->fs == 0",  # a task past exit_fs()
               "exe": "curtask->mm == 0 || curtask->mm->exe_file == 0"}  # a kernel thread's
PATH_STEPS = 64  # names and mount points a walk goes through; deeper: PATH_CUT
NAME_MAX = 255
# struct mount starts with mnt_hash (16 bytes), mnt_parent and mnt_mountpoint, then holds
# the vfsmount a path names: so since Linux 3.3. 0.17 has neither offsetof() nor `&`;
# each crossing checks the layout (PATH_UNKNOWN).
MOUNT_VFSMOUNT = 32


def path_records(profile: Profile, which: str, counter: str = "$n", *,
                 there: bool = True) -> str:
    """Statements (indented by two) that walk a path from its last name up to the task's
    root, as the kernel's d_path does, across mount points; print a `seg` record per
    string read of each name, and a `path` record when the walk did not end at a root as
    expected, or found no name (the root itself); and count them. Not `there` (a failed
    exec's program): a `path` record that says so."""
    index, strlen = PATHS.index(which), profile.kind.strlen
    step = strlen - 1

    def seg(offset: int) -> str:
        name = "$dentry->d_name.name" + (f" + {offset}" if offset else "")
        return (printf(SEG, {"which": str(index), "depth": "$step", "offset": str(offset),
                             "text": f"str({name}, {strlen})"}, 4)
                + "    $w++;\n")
    longer = ""  # nested: the verifier walks fewer paths than through ifs one after another
    for offset in reversed(range(step, NAME_MAX, step)):
        longer = f"    if ($len > {offset}) {{\n" + reindent(seg(offset) + longer, 2) + "    }\n"

    def flags(value: str, indent: int) -> str:
        return (printf(PATH, {"which": str(index), "flags": value}, indent)
                + f"{' ' * indent}{counter}++;\n")
    start = PATH_STARTS[which]
    if not there:
        return flags(str(PATH_NONE), 2)
    return (
        f"  if ({PATH_ABSENT[which]}) {{\n" + flags(str(PATH_NONE), 4)
        + "  } else {\n" + reindent(
            f"  $dentry = {start}.dentry;\n"
            f"  $mnt = {start}.mnt;\n"
            "  $flags = (uint64)0;\n"
            "  if ($dentry->d_hash.pprev == 0 && $dentry != $dentry->d_parent) {\n"
            f"    $flags = (uint64){PATH_DELETED};  // unlinked: d_path adds \" (deleted)\"\n"
            "  }\n"
            f"  $cut = (uint64){PATH_CUT};  // until a root is reached\n"
            "  // the records, counted from a 0 the verifier cannot see: else it checks the\n"
            "  // loop once for every count at every step\n"
            "  $w = (uint64)curtask->pid - (uint64)curtask->pid;\n"
            "  $step = (uint64)0;\n"
            f"  while ($step < {PATH_STEPS}) {{\n"
            "    $step++;\n"
            "    if ($dentry == curtask->fs->root.dentry && $mnt == curtask->fs->root.mnt) {\n"
            "      $cut = (uint64)0;\n"
            "      break;\n"
            "    }\n"
            "    if ($dentry == $mnt->mnt_root) {  // on from where its mount is mounted\n"
            f"      $mount = (struct mount *)((uint64)$mnt - {MOUNT_VFSMOUNT});\n"
            "      if ($mount->mnt.mnt_sb != $mnt->mnt_sb) {\n"
            f"        $flags = $flags | {PATH_UNKNOWN};\n"
            "        break;\n"
            "      }\n"
            "      if ($mount->mnt_parent == $mount) {  // its mount namespace's root\n"
            "        $cut = (uint64)0;\n"
            "        break;\n"
            "      }\n"
            "      $dentry = $mount->mnt_mountpoint;\n"
            f"      $mnt = (struct vfsmount *)((uint64)$mount->mnt_parent + {MOUNT_VFSMOUNT});\n"
            "      continue;\n"
            "    }\n"
            "    $len = (uint64)$dentry->d_name.len;\n"
            + seg(0) + longer
            + "    if ($dentry == $dentry->d_parent) {\n"
            "      // in no directory (a memfd's file): d_path says \"/NAME (deleted)\"\n"
            f"      $flags = $flags | {PATH_DELETED};\n"
            "      $cut = (uint64)0;\n"
            "      break;\n"
            "    }\n"
            "    $dentry = $dentry->d_parent;\n"
            "  }\n"
            f"  {counter} += $w;\n"
            "  $flags = $flags | $cut;\n"
            "  if ($flags || $w == 0) {  // said, or the root itself: a path walked prints\n"
            "    // at least one record\n" + flags("$flags", 4) + "  }\n", 2)
        + "  }\n")


def paths_records(profile: Profile, paths: tuple[str, ...], indent: int = 4,
                  counter: str = "$n", absent: tuple[str, ...] = ()) -> str:
    """The walks of `paths`, indented by `indent`; those `absent`, as none."""
    return reindent("".join(path_records(profile, which, counter, there=which not in absent)
                            for which in paths), indent - 2)
