"""A package's names imported when first used (PEP 562): `--help` needs none of them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping


def lazy_names(package: str, namespace: MutableMapping[str, object],
               names_from: Mapping[str, list[str]]
               ) -> tuple[dict[str, str], Callable[[str], object], Callable[[], list[str]]]:
    """{module: its names} -> {name: its module}, and the package's __getattr__ (which
    keeps what it imported in `namespace`, the package's globals()) and __dir__."""
    module_of = {name: module for module, names in names_from.items() for name in names}

    def getattr_(name: str) -> object:
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module_of[name]), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *module_of})
    return module_of, getattr_, dir_
