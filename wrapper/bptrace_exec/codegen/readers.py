"""How each kind of argument is read in the kernel: what its entry keeps, what the new
image gives (execs), what the return reads and prints, and the numbers it adds to the
closing record. Codegen.events puts the readers of a profile's arguments together.

  int        the word kept at entry (or the word it points to), a number of the closing
             record; 0 from a probe without it when it is padded (spec.model.Arg)
  str        the string at the pointer kept at entry, read at return a string size at a
             time (`str` records): the kernel has faulted the caller's pages in by then
  sockaddr   the address's bytes (`bytes` record), its length kept at entry too
  exec_path  success: the kernel's copy, right after the environment in the new image,
             printed when the image starts and counted again at return (0.17's 512-byte
             stack holds the one or the other); failure: the caller's string, one read
  argv       success: the new image's argv block, every byte (`bytes` records, printed
             when the image starts); failure: each string from the caller (`elem`); the
             caller's count and first string at entry (`first`), for `#!` scripts; its
             numbers: the caller's count, the image's count, whether more followed the
             strings read, the block's size
"""

from __future__ import annotations

from dataclasses import dataclass

from bptrace_exec.codegen.btlang import int_literal
from bptrace_exec.codegen.program import printf
from bptrace_exec.records import BYTES, ELEM, FIRST, STR, UNREADABLE_NEXT
from bptrace_exec.spec import types
from bptrace_exec.spec.captures import carried
from bptrace_exec.spec.model import PROCESS_EXIT, Arg, ArgSource, Profile
from bptrace_exec.spec.parse import ARGV_BYTES_RANGE, MAX_ARGS_RANGE, STRING_BYTES_RANGE

BUF_CHUNK = 192  # a buf() read: 0.23 keeps 4 of max_strlen's bytes for the length
PATH_MAX = 4096
ARGC_COUNT_LIMIT = 1024  # the caller's argc is counted up to here
ARGC_UNSURE = 4096  # added to the caller's count when the end of argv was not read for sure
SOCKADDR_MAX = 128  # sizeof(struct sockaddr_storage)
# exit_code as wait(2) sees it: status << 8 when it exited, the signal (| 0x80 with a
# core dump) when one killed it
EXIT_FIELDS = {"status": "($code >> 8) & 0xff", "signal": "$code & 0x7f",
               "core": "($code >> 7) & 1"}


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
    """What a reader adds to a return probe: statements, and the closing record's numbers."""

    statements: str
    ints: list[str]


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
            f"{pad}if (*(uint8 *)uptr({pointer}) == 0 && *(uint64 *)uptr({word} - 8) == 0 &&\n"
            f"{pad}    *(uint64 *)uptr({word}) == 0 && *(uint64 *)uptr({word} + 8) == 0) {{\n"
            f"{pad}  $next = {UNREADABLE_NEXT};  // \"\" among zeros: its page is not present\n"
            f"{pad}}}\n")


def argv_entry(profile: Profile, slot: Slot) -> str:
    """The caller's argc, whether the count is sure, and its first string (scripts)."""
    assert slot.source is not None  # every exec probe has argv
    first = ""
    if not profile.filters.failed:
        first = ("  $arg0 = *(uint64 *)uptr($argv);\n" + next_byte(profile, "$arg0", 2)
                 + printf(FIRST, {"slot": str(slot.number), "next": "$next",
                                  "text": f"str(uptr($arg0), {profile.kind.strlen})"}))
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


def argv_chunks(profile: Profile) -> int:
    size = int(int_literal(profile.limits.argv_bytes, *ARGV_BYTES_RANGE))
    return -(-size // BUF_CHUNK)


def on_image(profile: Profile, slot: Slot) -> str:
    """What the new image gives, when it starts (statements indented by two)."""
    if slot.read == "int":  # kept at entry, printed at return
        return ""
    if slot.read == "exec_path":
        return _string(profile, slot, PATH_MAX, "curtask->mm->env_end", indent=2)
    assert slot.read == "argv", slot.read
    return (
        "  $base = curtask->mm->arg_start;\n"
        "  $size = curtask->mm->arg_end - $base;\n"
        "  $len = (uint64)0;\n"
        "  $i = (uint64)0;\n"
        f"  while ($i < {argv_chunks(profile)}) {{\n"
        f"    if ($i * {BUF_CHUNK} >= $size) {{ break; }}\n"
        f"    $len = $size - $i * {BUF_CHUNK};\n"
        f"    if ($len > {BUF_CHUNK}) {{ $len = {BUF_CHUNK}; }}\n"
        + printf(BYTES, {"slot": str(slot.number), "offset": f"$i * {BUF_CHUNK}",
                         "data": f"buf(uptr($base + $i * {BUF_CHUNK}), $len)"}, 4)
        + "    $i++;\n"
        "  }\n"
    )


def on_return(profile: Profile, slot: Slot, result: str) -> Read:
    """Statements (indented by four) that read an argument at return and count their
    records in $n; `result` is "success" or "failure" for an exec's, else "any"."""
    c = word(slot.word)
    if slot.read == "int":
        return Read("", [f"$a{slot.number}" if held(slot) else int_value(slot)])
    if slot.read == "str":
        size = int(int_literal(profile.limits.string_bytes, *STRING_BYTES_RANGE))
        return Read(_string(profile, slot, size, c), [])
    if slot.read == "sockaddr":
        return Read(
            f"    $p = {c};\n"
            f"    $len = {word(slot.word + 1)};\n"
            f"    if ($len > {SOCKADDR_MAX}) {{ $len = {SOCKADDR_MAX}; }}\n"
            + printf(BYTES, {"slot": str(slot.number), "offset": "0",
                             "data": "buf(uptr($p), $len)"}, 4)
            + "    $n++;\n", [])
    if slot.read == "exec_path" and result == "success":  # printed by on_image
        return Read(_string(profile, slot, PATH_MAX, "curtask->mm->env_end", count_only=True),
                    [])
    if slot.read == "exec_path":
        return Read(f"    $p = {c};\n" + next_byte(profile, "$p", 4)
                    + printf(STR, {"slot": str(slot.number), "chunk": "0", "next": "$next",
                                   "text": f"str(uptr($p), {profile.kind.strlen})"}, 4)
                    + "    $n++;\n", [])
    assert slot.read == "argv", slot.read
    caller = word(slot.word + 1)
    if result == "success":
        chunks = argv_chunks(profile)
        return Read(
            "    $size = curtask->mm->arg_end - curtask->mm->arg_start;\n"
            f"    $chunks = ($size + {BUF_CHUNK - 1}) / {BUF_CHUNK};\n"
            f"    if ($chunks > {chunks}) {{ $chunks = {chunks}; }}\n"
            "    $n += $chunks;\n",
            [caller, "*(uint64 *)uptr(curtask->mm->start_stack)", "0", "$size"])
    max_args = int_literal(profile.limits.max_args, *MAX_ARGS_RANGE)
    return Read(
        f"    $argv = {c};\n"
        "    $arg = (uint64)0;\n"
        "    $i = (uint64)0;\n"
        f"    while ($i < {max_args}) {{\n"
        "      $arg = *(uint64 *)uptr($argv + $i * 8);\n"
        "      if ($arg == 0) { break; }\n"
        + next_byte(profile, "$arg", 6)
        + printf(ELEM, {"slot": str(slot.number), "item": "$i", "next": "$next",
                        "text": f"str(uptr($arg), {profile.kind.strlen})"}, 6)
        + "      $i++;\n"
        "    }\n"
        "    $n += $i;\n",
        [caller, "$i", "*(uint64 *)uptr($argv + $i * 8) != 0", "0"])


def _string(profile: Profile, slot: Slot, size: int, pointer: str, *, indent: int = 4,
            count_only: bool = False) -> str:
    """The string at `pointer`, a chunk at a time, each with the byte after it (user space
    tells a string of exactly one chunk from a longer one by it), to its end; counted in
    $n (at return). `count_only`: the chunks printed when the image started, counted."""
    step = chunk(profile)
    record = "" if count_only else printf(STR, {
        "slot": str(slot.number), "chunk": "$i",
        "next": f"*(uint8 *)uptr($p + ($i + 1) * {step})",
        "text": f"str(uptr($p + $i * {step}), {profile.kind.strlen})"}, 6)
    text = (
        f"    $p = {pointer};\n"
        "    $i = (uint64)0;\n"
        f"    while ($i < {-(-size // step)}) {{\n"
        + record
        + "      $i++;\n"
        f"      if (*(uint8 *)uptr($p + $i * {step} - 1) == 0 ||\n"
        f"          *(uint8 *)uptr($p + $i * {step}) == 0) {{ break; }}\n"
        "    }\n"
        + ("" if indent == 2 else "    $n += $i;\n")
    )
    return text if indent == 4 else "".join(line[2:] for line in text.splitlines(True))


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
    return f"*(uint64 *)uptr({word(slot.word)} + {source.index * 8})"


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
