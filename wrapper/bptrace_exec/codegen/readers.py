"""How each kind of argument is read in the kernel: what its entry keeps, what the new
image gives (execs), what the return reads and prints, and the numbers it adds to the
closing record. Codegen.events puts the readers of a profile's arguments together.

  int        the word kept at entry (or the word it points to), a number of the closing
             record; 0 from a probe without it when it is padded (spec.model.Arg)
  str        the string at the pointer kept at entry, read at return a string size at a
             time: the kernel has faulted the caller's pages in by then; its length
             found first, its chunks `str` records printed after the closing record,
             but for the first of a call's only string when there is room for it in
             that record (`calls`; codegen.events)
  sockaddr   the address's bytes as words (`bytesw` records; the first in the closing
             record when there is room, as for a string: `calla`), its length kept at
             entry too
  exec_path  success: the kernel's copy, right after the environment in the new image,
             its first chunk in the `exec` record, the rest (`str`) printed when the image
             starts and counted again at return (0.17's 512-byte stack holds the one or the
             other); failure: the caller's string, a chunk at a time
  argv       success: the new image's argv block, every byte, its first ARGV_CHUNK bytes
             in the `exec` record, the rest (`bytesw`) printed when the image starts;
             failure: each string from the caller, up to FAILED_ARG_CHUNKS reads (`elem`);
             the caller's count and first string kept at entry, the string printed
             (`first`) only when the image's count says a `#!` script replaced it; its
             numbers: the caller's count, the image's count, whether more followed the
             strings read, the block's size
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bptrace_exec.codegen.btlang import int_literal
from bptrace_exec.codegen.program import printf, reindent
from bptrace_exec.records import (
    ARGC_COUNT_LIMIT,
    ARGC_UNSURE,
    ARGV_CHUNK,
    BYTES_WORDS,
    ELEM,
    FIRST,
    NULL_NEXT,
    STR,
    UNREADABLE_NEXT,
    WORDS,
)
from bptrace_exec.spec import types
from bptrace_exec.spec.captures import carried
from bptrace_exec.spec.model import (
    ARGV_BYTES_RANGE,
    MAX_ARGS_RANGE,
    PROCESS_EXIT,
    STRING_BYTES_RANGE,
    Arg,
    ArgSource,
    Profile,
)

FAILED_ARG_CHUNKS = 3  # string reads of each argument of a failed exec (80 bytes each)
PATH_MAX = 4096
SOCKADDR_MAX = 128  # sizeof(struct sockaddr_storage)
# exit_code as wait(2) sees it: status << 8 when it exited, the signal (| 0x80 with a
# core dump) when one killed it
EXIT_FIELDS = {"status": "($code >> 8) & 0xff", "signal": "$code & 0x7f",
               "core": "($code >> 7) & 1", "cpu_user_ns": "$cpu_user",
               "cpu_system_ns": "$cpu_system"}
# The process's own CPU time (not its children's), as the kernel's getrusage() sums it:
# the threads released (in signal), this last one, and the leader when another thread is
# last (it stays unreleased until the process is reaped); the exact run time, split
# between user and system as the ticks sampled it (cputime_adjust), in 65536ths, without
# overflow for any time.
CPU_TIMES = """\
$leader = curtask->group_leader;
$other = $leader != curtask;
$ut = curtask->signal->utime + curtask->utime + ($other ? $leader->utime : 0);
$st = curtask->signal->stime + curtask->stime + ($other ? $leader->stime : 0);
$rt = curtask->signal->sum_sched_runtime + curtask->se.sum_exec_runtime +
    ($other ? $leader->se.sum_exec_runtime : 0);
$share = (uint64)0;  // the system's
if ($ut + $st > 0) {
  $share = $st < (1 << 47) ? ($st << 16) / ($ut + $st) : $st / (($ut + $st) >> 16);
}
$cpu_system = ($rt >> 16) * $share + ((($rt & 0xffff) * $share) >> 16);
$cpu_user = $rt - $cpu_system;
"""


def word_at(base: str, offset: str = "") -> str:
    """The user-space word at `base` (+ `offset` bytes, an expression)."""
    return f"*(uint64 *)uptr({base}{f' + {offset}' if offset else ''})"


def word(n: int) -> str:
    """An element of the entry's tuple. Read where it is needed: a copy of the whole tuple
    on the stack does not fit 0.17's 512 bytes beside two string reads."""
    return f"@call[$key].{n}"


@dataclass(frozen=True)
class Slot:
    """One argument of one probe: its place in the profile (SLOT in records) and in the
    entry tuple."""

    arg: Arg
    number: int
    source: ArgSource | None  # None: a padded number the probe does not have
    word: int  # the tuple element holding its pointer or value
    read: str


@dataclass(frozen=True)
class Read:
    """What a reader adds to a return probe: statements, the closing record's numbers,
    and statements after it (a string's chunks, an address's words, printed once the
    record that counts them is: 0.17's 512-byte stack has no room for both at once)."""

    statements: str
    ints: list[str]
    after: str = ""


def entry_words(slot: Slot) -> list[str]:
    """What the entry keeps of an argument, each a tuple element."""
    if slot.source is None:
        return ["(uint64)0"]
    if slot.read == "argv":
        return ["$argv", "$argc"]
    words = [_field(slot.source.field)]
    if slot.read == "sockaddr":
        words.append(_field(slot.source.length or "addrlen"))
    return words


def _field(name: str) -> str:
    return f"(uint64)args->{name}"


def chunk(profile: Profile) -> int:
    return profile.kind.strlen - 1  # a str() read keeps one byte for its NUL


def next_byte(profile: Profile, pointer: str, indent: int) -> str:
    """$next: the byte after a full read of the caller's string at `pointer`, or
    UNREADABLE_NEXT when it reads as "" among zeros: a page not yet present (a fresh
    fork's, a file mapping never touched), which the kernel did not fault in for a call
    that failed before copying it."""
    pad = " " * indent
    word = f"{pointer} - {pointer} % 8"
    return (f"{pad}$next = (uint64)*(uint8 *)uptr({pointer} + {chunk(profile)});\n"
            f"{pad}$zeros = (uint64)*(uint8 *)uptr({pointer}) | *(uint64 *)uptr({word} - 8) |\n"
            f"{pad}         *(uint64 *)uptr({word}) | *(uint64 *)uptr({word} + 8);\n"
            + "".join(f"{pad}{line}\n" for line in ALL_ZERO)
            + f"{pad}$next = $next * ($zeros ^ 1) + {UNREADABLE_NEXT} * $zeros;\n")


def at_least(value: str, bound: int) -> str:
    """1 if `value` (under 2**32) is `bound` or more, else 0, with no branch: the carry
    into bit 32. A comparison is a branch as LLVM writes it, and the verifier walks what
    follows once for each side of every one: the ten words of a successful exec's
    `exec` record, masked by comparisons, cost its return 40 ms of the verifier's time
    at each start on 0.17, 3 without them."""
    return f"(({value} + {(1 << 32) - bound:#x}) >> 32)" if bound else "1"


# $zeros -> 1 if it is 0, else 0, with no branch (at_least): a branch here made the
# verifier walk what follows twice, in each turn of the loops that read a failed exec's
# strings
ALL_ZERO = ("$zeros = ($zeros | ($zeros >> 32)) & 0xffffffff;",
            f"$zeros = {at_least('$zeros', 1)} ^ 1;  "
            "// \"\" among zeros: its page is not present")


# A successful exec's caller argv[0] and the byte after its read, kept at entry for
# SCRIPT_TEST, in maps of their own: read from one tuple, they overflow 0.17's stack.
FIRST_MAP, FIRST_NEXT_MAP = "first", "first_next"


def shows_images(profile: Profile) -> bool:
    """Whether the program prints successful execs, which read the new image."""
    return profile.kind.new_image and not profile.filters.failed


ONES, HIGHS = "0x0101010101010101", "0x8080808080808080"  # (w - ONES) & ~w & HIGHS: a zero byte


def ended(pointer: str, count: int, indent: int) -> str:
    """$ended: non-zero when the `count` words at `pointer` hold a NUL. What follows a
    short string in the caller's memory is anything, often its other arguments: a test of
    the bytes at a read's end would take them for more of it. Written out word by word: a
    loop inside the loop of reads makes the verifier walk 0.23's program past its million
    instructions. (Printing these words instead of the string, read again by str(),
    would halve what the verifier walks of a failed exec's return; but they hold the
    caller's memory past the string's NUL, its environment among it, and masking that in
    the kernel costs the verifier more than the string saves.)"""
    pad = " " * indent
    return f"{pad}$ended = (uint64)0;\n" + "".join(
        f"{pad}$v = {word_at(pointer, str(8 * w))}; "
        f"$ended = $ended | (($v - {ONES}) & ~$v & {HIGHS});\n" for w in range(count))


def words(profile: Profile) -> int:
    """A string read's bytes in words: the exec kind's reads are whole words."""
    assert chunk(profile) % 8 == 0, "a read of whole words"
    return chunk(profile) // 8


def argv_entry(profile: Profile, slot: Slot) -> str:
    """The caller's argc, whether the count is sure, and its first string (scripts)."""
    assert slot.source is not None  # every exec probe has argv
    first = ""
    if shows_images(profile):
        first = ("  $arg0 = *(uint64 *)uptr($argv);\n" + next_byte(profile, "$arg0", 2)
                 + f"  @{FIRST_MAP}[$key] = str(uptr($arg0), {profile.kind.strlen});\n"
                 f"  @{FIRST_NEXT_MAP}[$key] = $next;\n")
    return (
        f"  $argv = {_field(slot.source.field)};\n"
        "  $argc = (uint64)0;\n"
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
        + first
    )


# The image's argc against the caller's: a #! script's image has the interpreter, maybe
# its argument, and the script's path where the caller's argv[0] was, so 1 or 2 more
# (binfmt_misc alike). A count that is not sure (ARGC_UNSURE) never passes.
SCRIPT_TEST = "$caller > 0 && ($argc - $caller == 1 || $argc - $caller == 2)"
IMAGE_ARGC = "*(uint64 *)uptr(curtask->mm->start_stack)"


def script_first(profile: Profile, slot: Slot) -> str:
    """When the image starts: the caller's argv[0], printed only if a script replaced it
    (the return counts it by the same test)."""
    return (f"  $caller = {word(slot.word + 1)};\n"
            f"  $argc = {IMAGE_ARGC};\n"
            f"  if ({SCRIPT_TEST}) {{\n"
            + printf(FIRST, {"slot": str(slot.number), "next": f"@{FIRST_NEXT_MAP}[$key]",
                             "text": f"@{FIRST_MAP}[$key]"}, 4)
            + "  }\n")


def byte_words(base: str, length: str, *, read_past: bool = True) -> list[str]:
    """records.WORDS numbers: the `length` bytes at `base` (at most ARGV_CHUNK), as
    little-endian words, the bytes past `length` zero (what follows argv is the
    environment). Masked by sums (at_least), not ternaries: each of those takes stack
    slots that 0.17's exec record has not, and 0.23 crashes on one nested in another. A word
    past the block reads as zeros where its page ends; not `read_past`: a word wholly
    past `length` is not read (the first is, again)."""
    tail = f"(((uint64)1 << ({length} % 8 * 8)) - 1)"  # the bytes of the last word

    def offset(k: int) -> str:
        if not k:
            return ""
        return f"{8 * k}" if read_past else f"{8 * k} * {at_least(length, 8 * k + 1)}"
    return [f"{word_at(base, offset(k))} & "
            f"((0 - {at_least(length, 8 * k + 8)}) | "
            f"((0 - ({at_least(length, 8 * k)} - {at_least(length, 8 * k + 8)})) & {tail}))"
            for k in range(WORDS)]


# The new image's path is the first string exec lays down, at the top of the new stack:
# it ends sizeof(void *) + 1 bytes below the stack's page-aligned end (fs/exec.c starts
# at vm_end - sizeof(void *)), so where it starts says its length, but for a multiple of
# the page: an execveat's /dev/fd/N/NAME may pass 4095 bytes, and then the byte at the
# length first found is one of the path's, not its NUL. Reads stop there: a read past
# the stack's end faults, and a fault costs more than the rest of the exec's probes.
PAGE = 4096
PATH_CHUNKS_A_TURN = 2  # image_path's
IMAGE_PATH = "curtask->mm->env_end"
IMAGE_PATH_LENGTH = (f"$plen = ({PAGE} - ($p + 9) % {PAGE}) % {PAGE};\n"
                     f"$plen += {PAGE} * (*(uint8 *)uptr($p + $plen) != 0);\n")


def string_words(profile: Profile, base: str, length: str) -> list[str]:
    """records.WORDS numbers: a string read of the kind's (chunk()) at `base` as words,
    whatever follows its NUL (the parser keeps what comes before); a word wholly past
    the string's `length` (its NUL included) is not read: 0, from a read of the first."""
    assert chunk(profile) == 8 * WORDS, "a string read is the words printed"
    return [word_at(base)] + [
        f"{word_at(base, f'{8 * k} * {at_least(length, 8 * k)}')} & "
        f"(0 - {at_least(length, 8 * k)})" for k in range(1, WORDS)]


def image_path(profile: Profile, slot: Slot, *, count_only: bool) -> str:
    """The new image's path from chunk 1 (the `exec` record has chunk 0), each chunk with
    whether more follows (user space reads it as the byte after): printed when the image
    starts (indented by two), or counted in $n at return (by four), which also leaves
    $p and $plen for the `exec` record."""
    step = chunk(profile)
    if count_only:
        # chunks 1.. of a path of $plen bytes: ceil($plen / step) - 1, none for ""
        return (f"    $p = {IMAGE_PATH};\n" + reindent(IMAGE_PATH_LENGTH, 4)
                + f"    $n += ($plen - ($plen > 0)) / {step};\n")
    # Two chunks a turn: with one, 0.23's verifier walked each turn some twenty times
    # (the probe 562,000 instructions, now 262,000: 0.1 s of its start); 0.17 takes
    # either in the same time.
    chunks = -(-PATH_MAX // step)
    turns = -(-(chunks - 1) // PATH_CHUNKS_A_TURN)
    return (f"  $p = {IMAGE_PATH};\n" + reindent(IMAGE_PATH_LENGTH, 2)
            + "  $turn = (uint64)0;\n"
            f"  while ($turn < {turns}) {{\n"
            f"    $i = 1 + $turn * {PATH_CHUNKS_A_TURN};\n"
            f"    if ($i * {step} >= $plen) {{ break; }}\n"
            f"    unroll ({PATH_CHUNKS_A_TURN}) {{\n"
            f"      if ($i < {chunks} && $i * {step} < $plen) {{\n"
            + printf(STR, {"slot": str(slot.number), "chunk": "$i",
                           "next": f"$plen > ($i + 1) * {step}",
                           "text": f"str(uptr($p + $i * {step}), {profile.kind.strlen})"}, 8)
            + "      }\n"
            "      $i++;\n"
            "    }\n"
            "    $turn++;\n"
            "  }\n")


def argv_chunks(profile: Profile) -> int:
    size = int(int_literal(profile.limits.argv_bytes, *ARGV_BYTES_RANGE))
    return -(-size // ARGV_CHUNK)


def on_image(profile: Profile, slot: Slot) -> str:
    """What the new image gives when it starts, beyond what the `exec` record holds (the
    path's first chunk, argv's first ARGV_CHUNK bytes): statements indented by two."""
    if slot.read == "int":  # kept at entry, printed at return
        return ""
    if slot.read == "exec_path":
        return image_path(profile, slot, count_only=False)
    assert slot.read == "argv", slot.read

    def block(length: str) -> str:
        return printf(BYTES_WORDS, {"slot": str(slot.number), "offset": f"$i * {ARGV_CHUNK}",
                                    "length": length, "data": chunk_words(length)}, 4)
    return image_block(block, "arg", argv_chunks(profile), first=1)


def chunk_words(length: str) -> list[str]:
    """records.WORDS numbers: the `length` bytes of image_block's chunk $i, a whole
    chunk's read as they are. The last chunk's words wholly past `length` are not read
    (the first again, masked to zero): past the environment lie only the path and the
    stack's end, and a read past that faults."""
    at = f"$base + $i * {ARGV_CHUNK}"
    if length == str(ARGV_CHUNK):
        return [word_at(at, f"{8 * k}" if k else "") for k in range(WORDS)]
    return byte_words(at, length, read_past=False)


def image_block(record: Callable[[str], str], area: str, chunks: int, first: int) -> str:
    """The new image's block `area` (arg: argv, env: the environment), ARGV_CHUNK bytes
    at a time from chunk `first`, at most `chunks`: record(LENGTH) prints the chunk at
    $i, $base + $i * ARGV_CHUNK (chunk_words). Statements indented by two."""
    # whole chunks at a fixed size, then the last one: a length that varies in the loop
    # makes the verifier walk 0.23's program past its million instructions
    return (
        f"  $base = curtask->mm->{area}_start;\n"
        f"  $size = curtask->mm->{area}_end - $base;\n"
        f"  $i = (uint64){first};\n"
        f"  while ($i < {chunks}) {{\n"
        f"    if (($i + 1) * {ARGV_CHUNK} > $size) {{ break; }}\n"
        + record(str(ARGV_CHUNK))
        + "    $i++;\n"
        "  }\n"
        f"  if ($i < {chunks} && $i * {ARGV_CHUNK} < $size) {{\n"
        f"    $len = $size - $i * {ARGV_CHUNK};\n"
        f"    if ($len > {ARGV_CHUNK}) {{ $len = {ARGV_CHUNK}; }}\n"
        + record("$len")
        + "  }\n"
    )


def image_chunks(area: str, chunks: int) -> str:
    """Statements (indented by two) that set $chunks to how many image_block prints
    from chunk 0."""
    return (f"  $chunks = (curtask->mm->{area}_end - curtask->mm->{area}_start"
            f" + {ARGV_CHUNK - 1}) / {ARGV_CHUNK};\n"
            f"  if ($chunks > {chunks}) {{ $chunks = {chunks}; }}\n")


def on_return(profile: Profile, slot: Slot, result: str, *, in_closing: bool = False) -> Read:
    """Statements (indented by four) that read an argument at return and count their
    records in $n; `result` is "success" or "failure" for an exec's, else "any".
    `in_closing`: a string or an address whose first bytes the closing record holds
    (string_closing, sockaddr_closing)."""
    c = word(slot.word)
    if slot.read == "int":
        return Read("", [f"$a{slot.number}" if held(slot) else int_value(slot)])
    if slot.read == "str":
        return Read(string_count(profile, slot, c, in_closing), [],
                    string_chunks(profile, slot, in_closing))
    if slot.read == "sockaddr":
        return sockaddr(slot, c, in_closing)
    if slot.read == "exec_path" and result == "success":  # chunk 0 in the exec record
        return Read(image_path(profile, slot, count_only=True), [])
    if slot.read == "exec_path":
        return Read(_caller_path(profile, slot, PATH_MAX, c), [])
    assert slot.read == "argv", slot.read
    caller = word(slot.word + 1)
    if result == "success":
        chunks = argv_chunks(profile)
        return Read(
            "    $base = curtask->mm->arg_start;\n"
            "    $size = curtask->mm->arg_end - $base;\n"
            "    $len = $size;\n"
            f"    if ($len > {ARGV_CHUNK}) {{ $len = {ARGV_CHUNK}; }}\n"
            f"    $chunks = ($size + {ARGV_CHUNK - 1}) / {ARGV_CHUNK};\n"
            f"    if ($chunks > {chunks}) {{ $chunks = {chunks}; }}\n"
            "    if ($chunks > 1) { $n += $chunks - 1; }\n"
            f"    $caller = {caller};\n"
            f"    $argc = {IMAGE_ARGC};\n"
            "    // a script's: the caller's argv[0], printed when the image started\n"
            f"    if ({SCRIPT_TEST}) {{ $n++; }}\n",
            ["$caller", "$argc", "0", "$size"])
    max_args = int_literal(profile.limits.max_args, *MAX_ARGS_RANGE)
    step, k = chunk(profile), FAILED_ARG_CHUNKS

    def reads(part: int, indent: int) -> str:
        """The string's read `part` and, if it found no NUL, the ones after it."""
        pad = " " * indent
        text = (f"{pad}$q = $arg{f' + {part * step}' if part else ''};\n"
                + next_byte(profile, "$q", indent)
                + printf(ELEM, {"slot": str(slot.number), "item": "$item", "chunk": str(part),
                                "next": "$next",
                                "text": f"str(uptr($q), {profile.kind.strlen})"}, indent)
                + f"{pad}$n++;\n")
        if part + 1 == k:
            return text
        return (text + ended("$q", words(profile), indent)
                + f"{pad}if (!$ended) {{\n" + reads(part + 1, indent + 2) + f"{pad}}}\n")

    # A turn of the loop per string, its reads written out in it. The loop's only state
    # is its counter: state carried from one turn to the next (how far a string went)
    # makes the verifier walk 0.23's program past its million instructions; a turn per
    # read, as it was, made it walk a quarter more on both versions.
    return Read(
        f"    $argv = {c};\n"
        "    $item = (uint64)0;\n"
        f"    while ($item < {max_args}) {{\n"
        "      $arg = *(uint64 *)uptr($argv + $item * 8);\n"
        "      if ($arg == 0) { break; }  // argv[$item] is NULL: the last string was read\n"
        + reads(0, 6)
        + "      $item++;\n"
        "    }\n",
        [caller, "$item", "*(uint64 *)uptr($argv + $item * 8) != 0", "0"])


def sockaddr(slot: Slot, pointer: str, in_closing: bool) -> Read:
    """Reads the address at `pointer` into $aN and its length into $sizeN (N: the slot),
    printed as words, ARGV_CHUNK bytes a record (`bytesw`), counted in $n: the first in
    the closing record when `in_closing` (sockaddr_closing: an IPv4 or IPv6 address is
    then that record alone), the others after it; no `bytesw` for an address of no
    bytes, as a NULL one is. Its last word is read whole, up to 7 bytes past its end
    (masked): where those lie on a page not present, the word reads as zeros, the
    address's last bytes with it. That takes an address ending within 7 bytes of a
    mapping's end; a buf() read would take hex, ten times slower to format."""
    n = slot.number

    def block(offset: int) -> str:
        return printf(BYTES_WORDS, {
            "slot": str(n), "offset": str(offset), "length": "$len",
            "data": byte_words(f"$a{n} + {offset}" if offset else f"$a{n}", "$len",
                               read_past=False)}, 6)

    def length(offset: int, pad: str) -> str:
        return (f"{pad}$len = $size{n}{f' - {offset}' if offset else ''};\n"
                f"{pad}if ($len > {ARGV_CHUNK}) {{ $len = {ARGV_CHUNK}; }}\n")
    offsets = range(ARGV_CHUNK if in_closing else 0, SOCKADDR_MAX, ARGV_CHUNK)
    return Read(f"    $a{n} = {pointer};\n"
                # a NULL address has no bytes, whatever its length says (its page reads
                # as zeros: AF_UNSPEC)
                f"    $size{n} = {word(slot.word + 1)} * (uint64)($a{n} != 0);\n"
                f"    if ($size{n} > {SOCKADDR_MAX}) {{ $size{n} = {SOCKADDR_MAX}; }}\n"
                + (length(0, "    ") if in_closing else "")
                + "".join(f"    $n += (uint64)($size{n} > {offset});\n" for offset in offsets),
                [],
                "".join(f"    if ($size{n} > {offset}) {{\n" + length(offset, "      ")
                        + block(offset) + "    }\n" for offset in offsets))


def sockaddr_closing(slot: Slot) -> dict[str, str | list[str]]:
    """An address's first ARGV_CHUNK bytes, for the closing record (records.CALL_ADDR),
    once sockaddr has read it and set $len."""
    return {"slot": str(slot.number), "length": "$len",
            "data": byte_words(f"$a{slot.number}", "$len", read_past=False)}


def string_chunks_max(profile: Profile) -> int:
    """The chunks of a syscall's string argument read at most (its limits.string_bytes)."""
    size = int(int_literal(profile.limits.string_bytes, *STRING_BYTES_RANGE))
    return -(-size // chunk(profile))


# The first NUL's place in its word, from haszero's flags ($nul): the lowest flag alone
# (x & -x; a flag above it may be false, the lowest never is) is 0x80 in byte j, and
# times 0x0001020304050607 puts j in the top byte. No comparison: the verifier would
# walk what follows once for each outcome.
FIRST_NUL = "$z = ((($nul & (0 - $nul)) >> 7) * 0x0001020304050607) >> 56;\n"


def string_count(profile: Profile, slot: Slot, pointer: str, in_closing: bool) -> str:
    """Statements (indented by four) that count the chunks of the caller's string at
    `pointer`, to its NUL, into $cN (N: the slot), its pointer in $aN, and in $n the
    `str` records string_chunks prints (all but the first chunk when `in_closing`).
    Read a word at a time from the word it starts in (one read never spans two pages):
    the bytes after its NUL are the caller's memory, anything, and each chunk printed
    past it would be a record for nothing."""
    n, most, step = slot.number, string_chunks_max(profile), chunk(profile)
    return (
        f"    $a{n} = {pointer};\n"
        f"    $at = $a{n} - $a{n} % 8;\n"
        f"    $v = {word_at('$at')} | (((uint64)1 << ($a{n} % 8 * 8)) - 1);  // not before it\n"
        f"    $nul = ($v - {ONES}) & ~$v & {HIGHS};\n"
        "    $word = (uint64)0;\n"
        f"    while ($word < {most * step // 8 + 1}) {{\n"
        "      if ($nul) { break; }\n"
        "      $word++;\n"
        f"      $v = {word_at('$at', '$word * 8')};\n"
        f"      $nul = ($v - {ONES}) & ~$v & {HIGHS};\n"
        "    }\n"
        f"    {FIRST_NUL}"
        f"    $c{n} = ($word * 8 + $z - $a{n} % 8 + {step - 1}) / {step};\n"
        f"    if ($c{n} == 0) {{ $c{n} = 1; }}  // \"\" is a chunk\n"
        f"    if ($c{n} > {most}) {{ $c{n} = {most}; }}\n"
        f"    $n += $c{n}{' - 1' if in_closing else ''};\n")


def string_chunks(profile: Profile, slot: Slot, in_closing: bool) -> str:
    """Statements (indented by four) that print string_count's chunks, from the second
    when `in_closing`, each with the byte after it (user space tells a string of exactly
    one chunk from a longer one by it)."""
    n, step = slot.number, chunk(profile)
    return (
        f"    $i = (uint64){int(in_closing)};\n"
        f"    while ($i < {string_chunks_max(profile)}) {{\n"
        f"      if ($i >= $c{n}) {{ break; }}\n"
        + printf(STR, {"slot": str(n), "chunk": "$i",
                       "next": f"*(uint8 *)uptr($a{n} + ($i + 1) * {step})"
                               + ("" if in_closing else if_null(n)),
                       "text": f"str(uptr($a{n} + $i * {step}), {profile.kind.strlen})"}, 6)
        + "      $i++;\n"
        "    }\n")


def string_closing(profile: Profile, slot: Slot) -> dict[str, str | list[str]]:
    """A string's first chunk, for the closing record (records.CALL_STR), once
    string_count has read its pointer."""
    n = slot.number
    return {"slot": str(n), "next": f"*(uint8 *)uptr($a{n} + {chunk(profile)}){if_null(n)}",
            "text": f"str(uptr($a{n}), {profile.kind.strlen})"}


def if_null(n: int) -> str:
    """What a string's first `next` byte adds when its pointer $aN is NULL: a NULL
    is shown as none (null), not as ""."""
    return f" + {NULL_NEXT} * ($a{n} == 0)"


def _caller_path(profile: Profile, slot: Slot, size: int, pointer: str) -> str:
    """A path of a failed exec's, from the caller, a chunk at a time, each with the byte
    after it, to its end, counted in $n: a chunk that reads as "" among zeros says so
    (next_byte), and what follows the string is anything (ended)."""
    step = chunk(profile)
    record = (
        f"      $q = $p + $i * {step};\n" + next_byte(profile, "$q", 6)
        + printf(STR, {"slot": str(slot.number), "chunk": "$i", "next": "$next",
                       "text": f"str(uptr($q), {profile.kind.strlen})"}, 6)
        + ended("$q", words(profile), 6))
    return (
        f"    $p = {pointer};\n"
        "    $i = (uint64)0;\n"
        f"    while ($i < {-(-size // step)}) {{\n"
        + record
        + "      $i++;\n      if ($ended) { break; }\n"
        + "    }\n"
        "    $n += $i;\n"
    )


def held(slot: Slot) -> bool:
    """Whether a number is held in a variable ($aN) at return, for the filters that can
    test it. One that no filter can test (an exec's dirfd and flags) is read where it is
    printed: on 0.17 each variable keeps a copy of the entry's tuple on the 512-byte
    stack, for which a failed exec's return has no room."""
    return slot.read == "int" and types.of(slot.arg.type).filter_value is not None


def int_value(slot: Slot) -> str:
    """A number argument at return: the word kept, or the word it points to; the end of
    a process's: read from its exit code."""
    source = slot.source
    if source is not None and source.probe == PROCESS_EXIT:
        return EXIT_FIELDS[source.field]
    if source is None or source.index is None:
        return word(slot.word)
    return word_at(word(slot.word), str(source.index * 8))


def slots(profile: Profile, probe: str, first_word: int) -> list[Slot]:
    """The probe's arguments in the profile's order, with their places in the tuple."""
    out, word = [], first_word
    for number, arg in enumerate(profile.args):
        if not carried(arg, probe):
            continue
        slot = Slot(arg, number, arg.source(probe), word, types.of(arg.type).read)
        out.append(slot)
        word += len(entry_words(slot))
    return out
