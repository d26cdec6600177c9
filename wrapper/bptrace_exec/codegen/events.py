"""Profile -> the event program: a few records per call, joined again in user space.

At entry a probe keeps, in one tuple per thread, the entry time, the probe's index and
each argument's word (an exec also keeps its caller's name, which the new program's
replaces, and argv[0], in maps of their own); at return the filters on arguments run,
the arguments are read (codegen.readers), and the call is printed as a closing record
that says how many records the call has, with who made it and the first bytes of a
string or an address (records.CALL_WHO, CALL_STR, CALL_ADDR), and its other records:
most calls are that record alone.
A failed exec prints `who` and its arguments, then a `call` record (records.CALL): its
return has no room for more on 0.17's stack. A successful exec closes with an `exec`
record instead, which holds the first bytes of its path and argv and who runs the new
image, so that most are that record alone (records.EXEC); what does not fit it is
printed when the new image starts (sched_process_exec), where its filters on the new
program run too. The end of a process is one probe on sched_process_exit, which closes
with `callw`.

@total counts the calls reported, in the kernel; each CPU's stop mark carries its count
(and bpftrace prints it at exit), so that user space can say exactly how many calls it
did not receive.
"""

from __future__ import annotations

import dataclasses

from bptrace_exec.codegen import readers
from bptrace_exec.codegen.context import (
    CONTAINER_RECORDS,
    WHO_VALUES,
    context_records,
    paths_records,
    who_record,
)
from bptrace_exec.codegen.filters import arg_conditions, path_conditions
from bptrace_exec.codegen.program import (
    EXIT_FAILED,
    EXIT_SUCCEEDED,
    PID,
    PPID,
    STOP,
    TID,
    begin,
    end,
    euid_test,
    follow_probe,
    guarded,
    header,
    predicate,
    printf,
    probe,
    reindent,
    result_test,
    stop_probes,
)
from bptrace_exec.codegen.readers import Slot, word
from bptrace_exec.records import (
    ARGV_CHUNK,
    CALL,
    CALL_ADDR,
    CALL_STR,
    CALL_WHO,
    DROP,
    ENV_BYTES,
    ENV_WORDS,
    EXEC,
    KILLED_RET,
    TOTAL_MAP,
    Layout,
)
from bptrace_exec.spec.captures import paths_read
from bptrace_exec.spec.model import PROCESS_EXIT, Profile

SCRATCH = "call"
COMM_MAP = "comm"
FIELDS = """Every record's fields:
`pydoc bptrace_exec.records`; how each argument is read: `pydoc bptrace_exec.codegen.readers`."""
LAYOUT = """Each call is a closing record with who made it, `callw`, or `calls` or `calla`
(they hold the first bytes of a string or an address), and its other argument and context
records, all keyed by (TID, ID); bptrace-exec joins them into one event. """ + FIELDS
EXEC_LAYOUT = """Each exec is its argument and context records, then an `exec` record if it
succeeded (most are that record alone), else a `call` record (with exits, a process's
end is a `callw` record and its context records); all keyed by (TID, ID); bptrace-exec
joins them into one event. """ + FIELDS
BASE_WORDS = 2  # the entry time, the probe's index


def generate_events(profile: Profile, version: str | None, follow: bool) -> str:
    execs = profile.kind.new_image
    maps = ([SCRATCH] + _image_maps(profile)
            + (["moved"] if execs else []) + (["follow"] if follow else [])
            + ([REFUSED_MAP] if _refuses_ends(profile) else []) + ["stop"])
    if profile.kind.attach == "process_end":
        body = [process_exit_probe(profile, follow)]
        maps.remove(SCRATCH)
    else:
        body = [*(entry_probe(profile, i, follow) for i, p in enumerate(profile.probes)
                  if p != PROCESS_EXIT),
                *([image_probe(profile), *script_probe(profile), *image_paths_probe(profile),
                   *image_env_probe(profile), *image_context_probe(profile)] if execs else []),
                *return_probes(profile),
                # with exits, that probe forgets a followed thread, once it is reported
                thread_exit_probe(execs, follow and not profile.exits, _image_maps(profile)),
                *([process_exit_probe(profile, follow)] if profile.exits else [])]
    sections = [_header(profile, version, follow), begin(follow),
                follow_probe() if follow else "", *body, stop_probes(), end(maps)]
    return "\n".join(s for s in sections if s)


def _header(profile: Profile, version: str | None, follow: bool) -> str:
    lim, args = profile.limits, ", ".join(f"{a.name} ({a.type})" for a in profile.args)
    read = readers.chunk(profile)
    limits = (f"Limits: {lim.max_args} arguments of a failed exec, of "
              f"{read * readers.FAILED_ARG_CHUNKS} bytes each, {lim.argv_bytes} bytes of "
              f"argv of a successful one, {read} bytes per string read."
              if profile.kind.new_image else
              f"Limits: {lim.string_bytes} bytes per string argument.")
    return header(profile, version, follow,
                  layout=EXEC_LAYOUT if profile.kind.new_image else LAYOUT,
                  details=(f"Probes: {', '.join(profile.probes)}. Arguments: {args or 'none'}.",
                           limits))


def _slots(profile: Profile, probe_name: str) -> list[Slot]:
    return readers.slots(profile, probe_name, BASE_WORDS)


def _words(profile: Profile, name: str, time: str) -> list[str]:
    """What the entry keeps, in its tuple's order."""
    words = [time, f"(uint64){profile.probes.index(name)}"]
    return words + [w for s in _slots(profile, name) for w in readers.entry_words(s)]


def entry_width(profile: Profile) -> int:
    """The words of the entry's tuple: the widest probe's (entry_tuple)."""
    return max(len(_words(profile, p, "$id")) for p in profile.calls)


def entry_tuple(profile: Profile, name: str, time: str = "$id") -> str:
    """The entry's tuple: one map for every probe, so each padded to the widest (bpftrace
    wants one type)."""
    words = _words(profile, name, time)
    return f"({', '.join(words + ['(uint64)0'] * (entry_width(profile) - len(words)))})"


def entry_probe(profile: Profile, index: int, follow: bool) -> str:
    name = profile.probes[index]
    statements = "".join(readers.argv_entry(profile, s) for s in _slots(profile, name)
                         if s.read == "argv")
    # a successful exec's caller's name: the new program's replaces it
    comm = f"  @{COMM_MAP}[$key] = comm;\n" if readers.shows_images(profile) else ""
    paths = _entry_paths(profile)
    # first: after the loop that counts arguments, the verifier would check the walk once
    # for every count
    walk = (f"  if (!{STOP}) {{  // after the stop, its records could come after the drain\n"
            "    $n = (uint64)0;\n" + paths_records(profile, paths, 4)
            + f"    @{PRINTED_MAP}[$key] = $n;\n  }}\n") if paths else ""
    body = (f"  $key = {TID};\n  $id = nsecs;\n{walk}{statements}"
            f"  @{SCRATCH}[$key] = {entry_tuple(profile, name)};\n{comm}")
    return probe([f"tracepoint:syscalls:sys_enter_{name}"],
                 predicate(profile.filters, follow, not_self=not follow), body)


def on_image(body: str, why: str, tests: list[str] | None = None) -> str:
    """A probe on the new image's start of an exec traced: $key and $id are the exec's
    (the thread it entered with, its entry's time), then `body`, if `tests` hold."""
    return probe(["tracepoint:sched:sched_process_exec"], [],
                 "  $key = (uint64)args->old_pid;\n"
                 f"  $id = @{SCRATCH}[$key].0;\n"
                 + guarded(" && ".join(["$id", *(tests or [])]), body), why)


def image_tests(profile: Profile) -> list[str]:
    """A successful exec's filters on its new program, its euid and its path: tested when
    the image starts, by each probe there (in no set order); the return's stack on 0.17
    has no room for them beside the exec record. An exec they refuse is forgotten there.
    None when only failed execs are shown."""
    if profile.filters.failed:
        return []
    return euid_test(profile.filters) + path_conditions(profile, "curtask->mm->env_end")


# Processes whose last program the filters on the new program refused: their ends are
# not shown either, as bptrace-exec does with the filters it runs itself (pipeline.Kept)
REFUSED_MAP = "refused"


def _refuses_ends(profile: Profile) -> bool:
    return profile.exits and profile.kind.new_image and bool(image_tests(profile))


def image_probe(profile: Profile) -> str:
    slots = _slots(profile, profile.probes[0])
    reads = "" if profile.filters.failed else "".join(readers.on_image(profile, s)
                                                       for s in slots)
    if tests := image_tests(profile):
        # what the entry printed is dropped; the return finds no call
        refused = ((printf(DROP, {}, 4) if _entry_paths(profile) else "")
                   + "".join(f"    delete(@{m}[$key]);\n"
                             for m in [SCRATCH, *_image_maps(profile)]))
        if _refuses_ends(profile):
            refused += f"    @{REFUSED_MAP}[{PID}] = 1;\n"
            reads = f"  if (@{REFUSED_MAP}[{PID}]) {{ delete(@{REFUSED_MAP}[{PID}]); }}\n" + reads
        reads = (f"  if (!({' && '.join(tests)})) {{\n{refused}  }}"
                 + (f" else {{\n{reindent(reads, 2)}  }}\n" if reads else "\n"))
    # with filters on the new program, the return takes only an exec whose image this
    # probe saw (@moved always set): else one whose image started while bpftrace was
    # still attaching its probes would be shown untested
    moved = (f"  @moved[{TID}] = $key;\n" if tests else
             f"  if ($key != {TID}) {{ @moved[{TID}] = $key; }}\n")
    return on_image(moved + reads,
                    "The new program starts. A thread other than the leader that execs "
                    "takes the\nleader's id: the id it had at entry keys every record of the "
                    "exec.")


def script_probe(profile: Profile) -> list[str]:
    """A script's first argument as its caller passed it, from a probe of its own: 0.17's
    512-byte stack has no room for it beside the image's reads or the `exec` record."""
    if not readers.shows_images(profile):
        return []
    argv = [s for s in _slots(profile, profile.probes[0]) if s.read == "argv"]
    return [on_image(readers.script_first(profile, argv[0]),
                     "A #! script: the image's argv starts with its interpreter and its path,\n"
                     "where the caller's argv[0] was (the return counts it).",
                     image_tests(profile))]


def _entry_paths(profile: Profile) -> tuple[str, ...]:
    """An exec's paths walked at its entry: its working directory (at return, the walk
    beside a failed exec's argument loops is past 0.23's verifier)."""
    return ("cwd",) if profile.kind.new_image and "cwd" in paths_read(profile) else ()


def image_paths_probe(profile: Profile) -> list[str]:
    """The file of the program an exec started, from a probe of its own (the return
    would not fit 0.17's 512-byte stack beside it): with the entry's, how many records
    the paths took is kept for the return, which counts them."""
    if "exe" not in paths_read(profile) or not readers.shows_images(profile):
        return []
    return [on_image(f"  $n = @{PRINTED_MAP}[$key];\n" + paths_records(profile, ("exe",), 2)
                     + f"  @{PRINTED_MAP}[$key] = $n;\n", "The file the new program runs.",
                     image_tests(profile))]


ENV_CHUNKS = -(-ENV_BYTES // ARGV_CHUNK)


def image_env_probe(profile: Profile) -> list[str]:
    """The new program's environment, read whole (up to ENV_BYTES) from a probe of its
    own; bptrace-exec keeps the variables asked for. The return counts the records."""
    if not profile.context.env or not readers.shows_images(profile):
        return []

    def block(length: str) -> str:
        return printf(ENV_WORDS, {"offset": f"$i * {ARGV_CHUNK}", "size": "$size",
                                  "length": length, "data": readers.chunk_words(length)}, 4)
    return [on_image(readers.image_block(block, "env", ENV_CHUNKS, first=0)
                     + readers.image_chunks("env", ENV_CHUNKS)
                     + f"  @{PRINTED_MAP}[$key] = @{PRINTED_MAP}[$key] + $chunks;\n",
                     "The new program's environment (the return counts its records).",
                     image_tests(profile))]


def image_context_probe(profile: Profile) -> list[str]:
    """The context records of a successful exec, from probes of their own (the ancestors,
    the container): with them, the return probe would not fit bpftrace 0.17's 512-byte
    stack. The new image has the caller's parent, cgroup and namespaces; the return probe
    counts the records (the ancestors' as PRINTED_MAP keeps them: the return has no room
    for the walk that would count them)."""
    if profile.filters.failed:
        return []
    ancestors = context_records(dataclasses.replace(
        profile, context=dataclasses.replace(profile.context, container=False)), 2)
    container = context_records(dataclasses.replace(
        profile, context=dataclasses.replace(profile.context, parents=0)), 2, counter="")
    return [on_image(text, f"The {what} of an exec that succeeds (the return counts them).",
                     image_tests(profile))
            for what, text in (("ancestors", ancestors and (
                f"  $n = (uint64)0;\n{ancestors}"
                f"  @{PRINTED_MAP}[$key] = @{PRINTED_MAP}[$key] + $n;\n")),
                ("container context", container)) if text]


def return_probes(profile: Profile) -> list[str]:
    """Probes that print calls at return; syscalls whose probes would read alike share
    one. An exec's arguments are read one way when it succeeds and another when it fails:
    it has one probe of each (their stacks, together, would not fit 0.17's 512 bytes)."""
    results = ("success", "failure") if profile.kind.new_image else ("any",)
    bodies: dict[tuple[str, str], list[str]] = {}
    for result in results:
        for name in profile.calls:
            bodies.setdefault((result, _return_body(profile, name, result)), []).append(name)
    return [_return_probe(names, result, body) for (result, body), names in bodies.items()]


def _return_probe(names: list[str], result: str, body: str) -> str:
    attach = [f"tracepoint:syscalls:sys_exit_{n}" for n in names]
    if result == "any":
        return probe(attach, [f"@{SCRATCH}[{TID}].0"], body)
    why = ("The exec succeeded: its arguments come from the new image." if result == "success"
           else "The exec failed: its arguments are read again from the caller, whose pages\n"
                "the kernel may have faulted in while copying them.")
    if result == "success":  # its body reads no other field of args
        return probe(attach, ["args->ret == 0"], body, why)
    return probe(attach, [], "  $ret = args->ret;\n" + guarded("$ret != 0", body), why)


def _return_body(profile: Profile, name: str, result: str) -> str:
    slots = _slots(profile, name)
    execs = profile.kind.new_image
    if execs and result == "success":
        # the exec'ing thread may have taken the leader's id (image_probe)
        key = (f"  $tid = {TID};\n  $key = $tid;\n"
               "  if (@moved[$tid]) { $key = @moved[$tid]; delete(@moved[$tid]); }\n"
               if not image_tests(profile) else  # the image was seen, and passed them
               f"  $tid = {TID};\n  $key = @moved[$tid];\n  delete(@moved[$tid]);\n")
    else:
        key = f"  $key = {TID};\n" + ("" if execs else "  $ret = args->ret;\n")
    setup = key + f"  $id = {word(0)};\n" + "".join(
        f"  $a{s.number} = {readers.int_value(s)};\n" for s in slots if readers.held(s))
    forget = f"  delete(@{SCRATCH}[$key]);\n" + "".join(
        f"  delete(@{m}[$key]);\n" for m in _image_maps(profile))
    # what the entry or the image printed of a call not shown is dropped, not left to
    # look lost
    drop = printf(DROP, {}, 4) if (result == "success" and readers.shows_images(profile)
                                   or _entry_paths(profile)) else ""
    wanted = result_test(profile.filters, "failure", "success")
    if execs and wanted and wanted != result:  # kept only to be forgotten
        return setup + (f"  if ($id) {{\n{drop}  }}\n" if _entry_paths(profile) else "") + forget
    conditions = (["$id"] if execs else []) + [f"!{STOP}"]
    if not execs and (test := result_test(profile.filters, "$ret < 0", "$ret >= 0")):
        conditions.append(test)
    conditions += arg_conditions(profile, name, slots)
    if not (execs and result == "success"):  # a successful exec's: when its image started
        conditions += euid_test(profile.filters)
    if execs and result != "success":  # on the path the caller passed
        path = next(s for s in slots if s.read == "exec_path")
        conditions += path_conditions(profile, word(path.word))
    in_closing = None if execs else _read_in_closing(profile, slots)
    reads = [readers.on_return(profile, s, result, in_closing=s is in_closing)
             for s in slots]
    # A failed exec's who, first: after its loops that read arguments the verifier would
    # check it once for every state they end in. A syscall's who is in its closing
    # record: its strings' counting loops end in states the verifier finds alike.
    paths = paths_read(profile)
    if not execs:  # in the closing record
        who = paths_records(profile, paths)
    elif result == "success":  # in the exec record
        who = ""
    else:  # a failed exec ran no program
        who = who_record(4) + paths_records(profile, tuple(w for w in paths if w == "exe"),
                                            absent=("exe",))
    if _printed_elsewhere(profile):
        who += f"    $n += @{PRINTED_MAP}[$key];  // at entry, when the image started\n"
    if result == "success":  # printed when the image started
        context = f"    $n += {CONTAINER_RECORDS};\n" if profile.context.container else ""
    else:
        context = context_records(profile)
    ints = [i for r in reads for i in r.ints]
    if result == "success":
        closing = _exec_record(profile, ints)
    elif execs:
        closing = KILLED_CHECK + _closing(ints, word(1), ret="$ret", who=False)
    else:
        closing = KILLED_CHECK + _closing(
            ints, word(1), ret="$ret", holds=_held(profile, in_closing) if in_closing else None)
    return (setup + f"  if ({' && '.join(conditions)}) {{\n"
            "    $n = (uint64)1;\n" + who
            + "".join(r.statements for r in reads) + context + closing
            + "".join(r.after for r in reads)
            + (f"  }} else if ($id) {{\n{drop}" if drop else "")
            + "  }\n" + forget)


# The numbers a closing record holds beside a string's first chunk or an address's,
# at most: 0.17's 512-byte stack holds that record, with who, and the loop of the
# string's other chunks, and no more (measured on openat's probes, whose entry keeps six
# words: a fourth number overflowed it, of the entry's or a word it points to).
INTS_BESIDE_READ = 3


def _read_in_closing(profile: Profile, slots: list[Slot]) -> Slot | None:
    """The string or address whose first bytes the closing record holds: the only one a
    call reads, when its return prints nothing else of its own (no context, no path) and
    has at most INTS_BESIDE_READ numbers, from an entry that keeps no more words than
    openat's (0.17 copies the entry's tuple on the stack for each number held), so that
    most calls are that record alone."""
    reads = [s for s in slots if s.read != "int"]
    if (len(reads) != 1 or reads[0].read not in ("str", "sockaddr") or paths_read(profile)
            or profile.context.parents or profile.context.container
            or len(slots) - 1 > INTS_BESIDE_READ
            or entry_width(profile) > BASE_WORDS + 1 + INTS_BESIDE_READ):
        return None
    return reads[0]


def _held(profile: Profile, slot: Slot) -> tuple[Layout, dict[str, str | list[str]]]:
    """The closing record that holds the first bytes of `slot`, and their values."""
    if slot.read == "str":
        return CALL_STR, readers.string_closing(profile, slot)
    return CALL_ADDR, readers.sockaddr_closing(slot)


# SIGKILL pending when the call fails: its caller is being killed (a signal, or a sibling
# thread's exec) and the kernel's value, often a restart code, reaches no one.
KILLED_CHECK = ("    // SIGKILL pending: the caller dies here; what it returns reaches no one\n"
                "    if ($ret < 0 && (curtask->pending.signal.sig[0] & (1 << 8))) "
                f"{{ $ret = {KILLED_RET}; }}\n")


IMAGE_MAPS = (COMM_MAP, readers.FIRST_MAP, readers.FIRST_NEXT_MAP)
PRINTED_MAP = "printed"


def _image_maps(profile: Profile) -> list[str]:
    """Maps an exec fills besides the scratch tuple: at entry, for its new image; the
    records of its paths."""
    images = list(IMAGE_MAPS) if readers.shows_images(profile) else []
    return images + ([PRINTED_MAP] if _printed_elsewhere(profile) else [])


def _printed_elsewhere(profile: Profile) -> bool:
    """Whether an exec's records are printed by other probes than its return, counted
    in PRINTED_MAP (the paths, the environment, the ancestors): the return has no room
    for them."""
    return profile.kind.new_image and bool(paths_read(profile) or profile.context.env
                                           or profile.context.parents)


# The program's count of the records it printed, which user space holds up against what
# reached it. Per CPU in a plain map, as the stats' (codegen.stats.PER_CPU): no per-CPU
# aggregation allocated for 65,536 keys, and no increment lost on 0.23.
COUNTED = f"    @{TOTAL_MAP}[cpu]++;  // marks and exit print it: user space reports any gap\n"


def _exec_record(profile: Profile, ints: list[str]) -> str:
    """A successful exec's closing record: the readers have set $p (the path in the new
    image), $base and $len (its argv block's first bytes)."""
    values: dict[str, str | list[str]] = {
        "probe": word(1), "records": "$n", "latency": "nsecs - $id", "pid": PID,
        "ppid": PPID, "uid": "(uint64)uid", "ints": ints, "length": "$len",
        "next": f"$plen > {readers.chunk(profile)}",
        "comm": f"@{COMM_MAP}[$key]", "data": readers.byte_words("$base", "$len"),
        "text": readers.string_words(profile, "$p", "$plen"), **WHO_VALUES}
    return (printf(EXEC, values, 4)
            + COUNTED)


def _closing(ints: list[str], probe_index: str, latency: str = "nsecs - $id",
             ret: str = "$ret", *, who: bool = True,
             holds: tuple[Layout, dict[str, str | list[str]]] | None = None) -> str:
    """A call's closing record: with who made it (records.CALL_WHO), or the record that
    also `holds` the first bytes of a string or an address (_held); a failed exec's
    without (CALL: its who is a record of its own)."""
    values: dict[str, str | list[str]] = {
        "probe": probe_index, "records": "$n", "ret": ret, "latency": latency,
        "pid": PID, "ppid": PPID, "uid": "(uint64)uid", "ints": ints, "comm": "comm"}
    if not who:
        layout = CALL
    elif holds is None:
        layout, values = CALL_WHO, {**values, **WHO_VALUES}
    else:
        layout, values = holds[0], {**values, **WHO_VALUES, **holds[1]}
    return printf(layout, values, 4) + COUNTED


STARTED = "curtask->group_leader->start_time"  # the process's fork


def process_exit_probe(profile: Profile, follow: bool) -> str:
    """One record per process that ends: RET is its shell-style status (128 + signal when
    killed), the latency its lifetime. It runs for every thread exit: the filters and
    the "last thread" test decide inside, so that a followed thread is always forgotten."""
    slots = _slots(profile, PROCESS_EXIT)
    conditions = [*predicate(profile.filters, follow, not_self=True),
                  "curtask->signal->live.counter == 0",  # decremented before this tracepoint
                  f"!{STOP}"]
    if test := result_test(profile.filters, EXIT_FAILED, EXIT_SUCCEEDED):
        conditions.append(test)
    conditions += arg_conditions(profile, PROCESS_EXIT, slots) + euid_test(profile.filters)
    unfollow = "  if (@follow[$key]) { delete(@follow[$key]); }\n" if follow else ""
    if _refuses_ends(profile):
        conditions.append(f"!@{REFUSED_MAP}[{PID}]")
        unfollow += (f"  if (@{REFUSED_MAP}[{PID}] && curtask->signal->live.counter == 0) "
                     f"{{ delete(@{REFUSED_MAP}[{PID}]); }}\n")
    return probe(
        ["tracepoint:sched:sched_process_exit"], [],
        f"  $key = {TID};\n  $id = nsecs;\n  $code = (uint64)curtask->exit_code;\n"
        + (reindent(readers.CPU_TIMES, 2) if any(
            s.source and s.source.field.startswith("cpu_") for s in slots) else "")
        + "".join(f"  $a{s.number} = {readers.int_value(s)};\n" for s in slots)
        + f"  if ({' && '.join(conditions)}) {{\n"
        "    $n = (uint64)1;\n"
        "    $ret = (int64)(($code >> 8) & 0xff);\n"
        "    if ($code & 0x7f) { $ret = (int64)(128 + ($code & 0x7f)); }\n"
        + paths_records(profile, paths_read(profile)) + context_records(profile)
        + (f"    $start = {STARTED};\n"  # the command's: when its gate opened
           "    if ((uint64)@follow[$key] > $start) { $start = (uint64)@follow[$key]; }\n"
           if follow else "")
        + _closing([f"$a{s.number}" for s in slots], str(profile.probes.index(PROCESS_EXIT)),
                   f"nsecs - {'$start' if follow else STARTED}", ret="$ret")
        + "  }\n" + unfollow,
        "The last thread of a process ends: the process's exit.")


def thread_exit_probe(execs: bool, follow: bool, maps: list[str]) -> str:
    also = "".join(f" delete(@{m}[$tid]);" for m in maps)  # set with it
    forget = [f"  if (@{SCRATCH}[$tid].0) {{ delete(@{SCRATCH}[$tid]);{also} }}\n"]
    if execs:
        forget.append("  if (@moved[$tid]) { delete(@moved[$tid]); }\n")
    if follow:
        forget.append("  if (@follow[$tid]) { delete(@follow[$tid]); }\n")
    return probe(["tracepoint:sched:sched_process_exit"], [],
                 f"  $tid = {TID};\n" + "".join(forget),
                 "A thread that dies inside a call never returns from it: forget its entry.")
