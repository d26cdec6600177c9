"""YAML nodes -> checked values, every message tied to the file and line it came from."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

from bptrace_exec.errors import SpecError
from bptrace_exec.limits import FILTER_VALUES, PROFILE_NODES, check, over

SCHEMA_VERSION = 1
COMMAND_LINE = "command line"  # the source of ad-hoc profiles: no line numbers to give


def text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SpecError(where, f"expected a string, got {kind(value)}")
    return value


def integer(low: int, high: int) -> Callable[[Any, str], int]:
    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            written = f" ({value!r} is not written in decimal)" if isinstance(value, str) \
                and value[:1].isdigit() else ""
            raise SpecError(where, f"expected a whole number, got {kind(value)}{written}",
                            hint=f"use a number from {low} to {high}, in decimal")
        if not low <= value <= high:
            raise SpecError(where, f"{value} is out of range",
                            hint=f"use a number from {low} to {high}")
        return value
    return check


def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(where, f"expected true or false, got {kind(value)}")
    return value


def list_of(item_check: Callable[[Any, str], Any], *, filter_name: str = ""
            ) -> Callable[[yaml.Node, str], tuple[Any, ...]]:
    """A list (or a single value); a filter's (`filter_name`) has a limit on its length."""
    def parse(node: yaml.Node, source: str) -> tuple[Any, ...]:
        items = sequence(node, source) if isinstance(node, yaml.SequenceNode) else [node]
        if filter_name:
            check(FILTER_VALUES, len(items), at(source, node), f"`{filter_name}`")
        return tuple(item_check(scalar(item, source), at(source, item)) for item in items)
    return parse


# --- YAML node plumbing: keeps line numbers for every message ----------------------------

def compose(text: str, source: str) -> yaml.Node | None:
    """The document's nodes, composed by a loader that refuses aliases and stops counting
    at the limit: what it builds stays as small as the file."""
    loader = _BoundedLoader(text)
    loader.source = source
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


class _BoundedLoader(yaml.SafeLoader):
    source = ""
    nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        where = at(self.source, self.peek_event())  # type: ignore[no-untyped-call]
        if self.check_event(yaml.AliasEvent):
            # a few lines of aliases to aliases stand for billions of values
            raise SpecError(where, "a YAML alias (*name): a profile writes each value out",
                            hint="replace the alias by the value it names")
        self.nodes += 1
        if self.nodes > PROFILE_NODES.most:  # refused before the rest is read
            raise over(PROFILE_NODES, where, "the profile")
        return super().compose_node(parent, index)


def dump(data: Any) -> str:
    """YAML for a profile made here (ad hoc, or a recording's): every value written out,
    as profiles must be, even where one object stands in two places."""
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False)


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


_CONSTRUCTOR = yaml.SafeLoader(stream="")


def at(source: str, node: yaml.Node | yaml.Event) -> str:
    mark = node.start_mark
    if source == COMMAND_LINE or mark is None:
        return source
    return f"{source}:{mark.line + 1}"


def kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    names = {bool: "true/false", int: "a number", float: "a decimal number", str: "a string",
             list: "a list", dict: "a mapping"}
    return names.get(type(value), type(value).__name__)


def scalar(node: yaml.Node, source: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
        raise SpecError(at(source, node), f"expected a single value, got {kind}")
    try:
        value = _CONSTRUCTOR.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise SpecError(at(source, node), f"cannot read this value: {exc}") from None
    if isinstance(value, int) and not isinstance(value, bool) \
            and not _DECIMAL.fullmatch(node.value):
        # YAML 1.1 reads 017 as 15, 0x1F as 31, 1_000 as 1000 and 1:30 as 90: such a
        # value stays the text it was written as (a name), and a number check refuses it
        return node.value
    return value


_DECIMAL = re.compile(r"[-+]?(0|[1-9][0-9]*)")


def sequence(node: yaml.Node, source: str) -> list[yaml.Node]:
    if not isinstance(node, yaml.SequenceNode):
        raise SpecError(at(source, node), "expected a list, e.g. [a, b]")
    return list(node.value)


class Mapping:
    """A YAML mapping read key by key, remembering which keys were understood."""

    def __init__(self, node: yaml.Node, source: str, what: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            raise SpecError(at(source, node), f"`{what}` must be a mapping of `key: value`")
        self.source, self.what = source, what
        self.items: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = scalar(key_node, source)
            if not isinstance(key, str):
                raise SpecError(at(source, key_node), f"key {key!r} must be a name")
            if key in self.items:
                raise SpecError(at(source, key_node), f"`{key}` is given twice in `{what}`")
            self.items[key] = (key_node, value_node)
        self.used: set[str] = set()

    def where(self, key: str) -> str:
        return at(self.source, self.items[key][1])

    def _lookup(self, key: str, required: bool) -> yaml.Node | None:
        self.used.add(key)
        if key in self.items:
            return self.items[key][1]
        if required:
            raise SpecError(self.source, f"`{key}` is missing from the {self.what}",
                            hint=f"add `{key}: {SCHEMA_VERSION}` at the top")
        return None

    def value(self, key: str, check: Callable[[Any, str], Any], *, default: Any = None,
              required: bool = False) -> Any:
        """A single value, checked with the line it stands on."""
        node = self._lookup(key, required)
        return default if node is None else check(scalar(node, self.source), self.where(key))

    def node(self, key: str, parse: Callable[[yaml.Node, str], Any], *,
             default: Any = None) -> Any:
        """A structured value (list or mapping), parsed from its node."""
        node = self._lookup(key, False)
        return default if node is None else parse(node, self.source)

    def reject_unknown(self) -> None:
        for key in self.items:
            if key not in self.used:
                known = ", ".join(sorted(self.used))
                raise SpecError(at(self.source, self.items[key][0]),
                                f"unknown key `{key}` in {self.what}", hint=f"known keys: {known}")


class Problems:
    """The errors of a profile's fields, collected so that one run reports them all (the
    first few), each with its line and hint."""

    MOST = 5

    def __init__(self) -> None:
        self.errors: list[SpecError] = []

    def collect(self, parse: Callable[[], Any], default: Any = None) -> Any:
        try:
            return parse()
        except SpecError as exc:
            self.errors.append(exc)
            return default

    def raise_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            in_order = sorted(self.errors, key=lambda e: _line_of(e.where))
            shown = [str(e) for e in in_order[:self.MOST]]
            more = len(self.errors) - len(shown)
            raise SpecError("", f"{len(self.errors)} problems:\n" + "\n".join(shown)
                            + (f"\n... and {more} more" if more else ""))


def _line_of(where: str) -> int:
    line = where.rpartition(":")[2]
    return int(line) if line.isdigit() else 0
