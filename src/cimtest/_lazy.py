"""Names of a package that live in heavy submodules, imported on the first use of each."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping


def lazy_names(package: str, homes: Mapping[str, Iterable[str]],
               public: Iterable[str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of `package`: each name in `homes`
    (submodule → names) is imported from ``package.submodule`` when first read, and cached."""
    where = {name: module for module, names in homes.items() for name in names}
    listed = set(public)

    def __getattr__(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | listed)

    return __getattr__, __dir__
