"""Profile -> bpftrace program text, for every supported bpftrace version alike.

One exec becomes a handful of printf records that share a key (the calling thread's id
and the entry timestamp), so that user space can join them whatever CPU each came from:

  enter TID ID CALLER_ARGC NEXT COMM(16 hex) ARGV0   at entry: caller's comm and argv[0]
                                      (CALLER_ARGC >= 4096: not sure, the count + 4096)
  argv  TID ID OFFSET HEX...          success: the new image's argv block, exact bytes
  file  TID ID CHUNK NEXT TEXT        the program path (success: the kernel's copy)
  arg   TID ID INDEX NEXT TEXT        failure: each argument, from the caller's memory
  comm  TID ID COMM(16 hex)           failure, when there is no enter record (--failed)
  exec  TID ID RET LAT PID PPID UID CALLER_ARGC ARGC MORE SIZE RECORDS SYSCALL_NR

@exec_total counts the execs reported, in the kernel; bpftrace prints it at exit, so that
user space can say exactly how many execs it did not receive.

NEXT is the byte after a 199-byte read: user space uses it to tell a string of exactly
199 bytes from a longer one that was cut. RECORDS counts every record of the exec, so an
exec whose records were partly lost is recognised as such.

Why read argv from the new image on success: at entry the caller's pages may not be
mapped yet (a freshly forked child passing string literals), and BPF cannot fault them
in; by the time the exec succeeds the kernel has copied argv, NUL-separated, into the
new process's stack between mm->arg_start and mm->arg_end, with the path right after
the environment (mm->env_end). A failed exec has no new image, but the kernel has by then
touched the caller's strings, so they are read again at return.
"""

from __future__ import annotations

from bptrace_exec.btlang import int_literal
from bptrace_exec.codegen.common import (
    KEY,
    PID,
    STOP,
    TEXT_CHUNK,
    forget,
    tracepoints,
)
from bptrace_exec.codegen.context import context_records, has_context
from bptrace_exec.engine import STRLEN
from bptrace_exec.spec import ARGV_BYTES_RANGE, MAX_ARGS_RANGE, Profile

BUF_CHUNK = 192  # a buf() read: 0.23 keeps 4 of max_strlen's bytes for the length
PATH_MAX = 4096
PATH_CHUNKS = -(-PATH_MAX // TEXT_CHUNK)
ARGC_COUNT_LIMIT = 1024  # caller's argc is counted up to here; the count means ">=" at it
ARGC_UNSURE = 4096  # added to CALLER_ARGC when the end of argv could not be read for sure
SCRATCH = ("exec_start", "exec_argv", "exec_path", "exec_argc", "exec_nr")


def scratch(profile: Profile) -> tuple[str, ...]:
    return SCRATCH + (("exec_ctx",) if _image_context(profile) else ())
LAYOUT = """One exec is several printf records joined by (TID, ID): enter, argv, file, arg,
then exec with the return value and the number of records; bptrace-exec reads
them back into one row. See `pydoc bptrace_exec.codegen.events` for the layout."""


def enter_body(emit_argv0: bool) -> str:
    argv0 = (
        "  $arg0 = *(uint64 *)uptr($argv);\n"
        '  printf("enter %lu %lu %lu %u %rh %s\\n", $key, $id, $argc,\n'
        f"         *(uint8 *)uptr($arg0 + {TEXT_CHUNK}), buf(comm, 16),\n"
        f"         str(uptr($arg0), {STRLEN}));\n"
        if emit_argv0 else ""
    )
    return (
        "  $argv = (uint64)args->argv;\n"
        "  $argc = (uint64)0;\n"
        "  $arg0 = (uint64)0;\n"
        f"  while ($argc < {ARGC_COUNT_LIMIT}) {{\n"
        "    if (*(uint64 *)uptr($argv + $argc * 8) == 0) { break; }\n"
        "    $argc++;\n"
        "  }\n"
        "  // The count is sure only if the NULL that ends argv was read from a page known\n"
        "  // to be present: a page that is not reads as zeros. Known: the page of a word\n"
        "  // read as non-zero, the pointer before it or, for an empty argv, the word before.\n"
        "  $sure = $argv == 0;\n"
        f"  if ($argc > 0 && $argc < {ARGC_COUNT_LIMIT}) {{\n"
        "    $sure = (($argv + $argc * 8 + 7) >> 12) == (($argv + $argc * 8 - 1) >> 12);\n"
        "  }\n"
        "  if ($argc == 0 && $argv != 0 && (($argv + 7) >> 12) == (($argv - 8) >> 12)) {\n"
        "    $sure = *(uint64 *)uptr($argv - 8) != 0;\n"
        "  }\n"
        f"  if (!$sure) {{ $argc += {ARGC_UNSURE}; }}\n"
        "  @exec_argv[$key] = $argv;\n"
        "  @exec_path[$key] = (uint64)args->filename;\n"
        "  @exec_argc[$key] = $argc;\n"
        "  @exec_nr[$key] = args->__syscall_nr;  // at exit it can read as execve's\n"
        f"{argv0}"
    )


def image_body(profile: Profile) -> str:
    """Successful execs: the new image's argv block, as hex (every byte exact)."""
    if profile.filters.failed:
        return ""
    chunks = argv_chunks(profile)
    return (
        "  $base = curtask->mm->arg_start;\n"
        "  $size = curtask->mm->arg_end - $base;\n"
        "  $len = (uint64)0;\n"
        "  $i = (uint64)0;\n"
        f"  while ($i < {chunks}) {{\n"
        f"    if ($i * {BUF_CHUNK} >= $size) {{ break; }}\n"
        f"    $len = $size - $i * {BUF_CHUNK};\n"
        f"    if ($len > {BUF_CHUNK}) {{ $len = {BUF_CHUNK}; }}\n"
        f'    printf("argv %lu %lu %lu %rh\\n", $key, $id, $i * {BUF_CHUNK},\n'
        f"           buf(uptr($base + $i * {BUF_CHUNK}), $len));\n"
        "    $i++;\n"
        "  }\n"
    )


def _summary(ret: str, argc: str, more: str, size: str, records: str) -> str:
    return (
        '    printf("exec %lu %lu %ld %lu %lu %lu %lu %lu %lu %lu %lu %lu %ld\\n",\n'
        f"           $key, $id, {ret}, nsecs - $id, {PID},\n"
        "           (uint64)curtask->real_parent->tgid, (uint64)uid, @exec_argc[$key],\n"
        f"           {argc}, {more}, {size}, {records}, @exec_nr[$key]);\n"
        "    @exec_total[0] = count();  // printed at exit: user space reports any gap\n"
    )


def success_probe(profile: Profile, enter: int) -> str:
    if profile.filters.failed:
        body = forget("$key", scratch(profile))
    else:
        chunks = argv_chunks(profile)
        body = (
            "    $mm = curtask->mm;\n"
            "    $size = $mm->arg_end - $mm->arg_start;\n"
            "    $path = $mm->env_end;\n"
            f"    while ($i < {PATH_CHUNKS}) {{\n"
            '      printf("file %lu %lu %lu %u %s\\n", $key, $id, $i,\n'
            f"             *(uint8 *)uptr($path + ($i + 1) * {TEXT_CHUNK}),\n"
            f"             str(uptr($path + $i * {TEXT_CHUNK}), {STRLEN}));\n"
            "      $i++;\n"
            f"      if (*(uint8 *)uptr($path + $i * {TEXT_CHUNK} - 1) == 0 ||\n"
            f"          *(uint8 *)uptr($path + $i * {TEXT_CHUNK}) == 0) {{ break; }}\n"
            "    }\n"
            f"    $chunks = ($size + {BUF_CHUNK - 1}) / {BUF_CHUNK};\n"
            f"    if ($chunks > {chunks}) {{ $chunks = {chunks}; }}\n"
            + _context(profile, container=False)
            + _summary("0", "*(uint64 *)uptr($mm->start_stack)", "0", "$size",
                       f"{enter} + $chunks + $i + 1" + _counted(profile, container=False)
                       + (" + @exec_ctx[$key]" if _image_context(profile) else ""))
            + forget("$key", scratch(profile))
        )
    return (
        "// The exec succeeded: argv and path come from the new image.\n"
        f"{tracepoints(profile, 'exit')}\n"
        "/args->ret == 0/\n"
        "{\n"
        f"{KEY}"
        f"  if ($id && !{STOP}) {{\n"
        "    $i = (uint64)0;\n"
        f"{body}"
        "  }\n"
        "}\n"
    )


def failure_probe(profile: Profile, enter: int) -> str:
    if profile.filters.succeeded:
        return (
            "// The exec failed: forgotten (successful execs only).\n"
            f"{tracepoints(profile, 'exit')}\n"
            "/args->ret != 0/\n"
            "{\n"
            f"{KEY}"
            "  if ($id) {\n"
            + forget("$key", scratch(profile))
            + "  }\n"
            "}\n"
        )
    max_args = int_literal(profile.limits.max_args, *MAX_ARGS_RANGE)
    # Without an enter record the caller's comm is taken here: a failed exec leaves it as is.
    comm = "" if enter else '    printf("comm %lu %lu %rh\\n", $key, $id, buf(comm, 16));\n'
    return (
        "// The exec failed: argv and path are read again from the caller, whose pages the\n"
        "// kernel has faulted in while copying them.\n"
        f"{tracepoints(profile, 'exit')}\n"
        "/args->ret != 0/\n"
        "{\n"
        f"{KEY}"
        f"  if ($id && !{STOP}) {{\n"
        "    $argv = @exec_argv[$key];\n"
        "    $arg = (uint64)0;\n"
        "    $i = (uint64)0;\n"
        f"    while ($i < {max_args}) {{\n"
        "      $arg = *(uint64 *)uptr($argv + $i * 8);\n"
        "      if ($arg == 0) { break; }\n"
        '      printf("arg %lu %lu %lu %u %s\\n", $key, $id, $i,\n'
        f"             *(uint8 *)uptr($arg + {TEXT_CHUNK}), str(uptr($arg), {STRLEN}));\n"
        "      $i++;\n"
        "    }\n"
        "    $arg = *(uint64 *)uptr($argv + $i * 8);\n"
        "    $path = @exec_path[$key];\n"
        '    printf("file %lu %lu 0 %u %s\\n", $key, $id,\n'
        f"           *(uint8 *)uptr($path + {TEXT_CHUNK}), str(uptr($path), {STRLEN}));\n"
        + comm
        + _context(profile)
        + _summary("args->ret", "$i", "$arg != 0", "0",
                   f"{enter} + $i + {3 - enter}" + _counted(profile))
        + forget("$key", scratch(profile))
        + "  }\n"
        "}\n"
    )


def _context(profile: Profile, container: bool = True) -> str:
    """The parent chain and container records, when the profile asks (codegen.context)."""
    if not has_context(profile, container=container):
        return ""
    return "    $ctx = (uint64)0;\n" + context_records(profile, STRLEN, "$ctx",
                                                      container=container)


def _counted(profile: Profile, container: bool = True) -> str:
    return " + $ctx" if has_context(profile, container=container) else ""


def _image_context(profile: Profile) -> bool:
    return profile.context.container and not profile.filters.failed


def image_context_probe(profile: Profile) -> str:
    """The container records of a successful exec, from a program of their own: with
    them, the return probe would not fit bpftrace 0.17's 512-byte stack. The new image
    has the caller's cgroup and namespaces; the return probe adds their count."""
    if not _image_context(profile):
        return ""
    records = context_records(profile, STRLEN, "$ctx", parents=False, indent=2)
    return (
        "// Container context of an exec that succeeds (counted by the return probe).\n"
        "tracepoint:sched:sched_process_exec\n"
        "/@exec_start[(uint64)args->old_pid]/\n"
        "{\n"
        "  $key = (uint64)args->old_pid;\n"
        "  $id = @exec_start[$key];\n"
        "  $ctx = (uint64)0;\n"
        + records +
        "  @exec_ctx[$key] = $ctx;\n"
        "}\n"
    )


def argv_chunks(profile: Profile) -> int:
    size = int(int_literal(profile.limits.argv_bytes, *ARGV_BYTES_RANGE))
    return -(-size // BUF_CHUNK)
