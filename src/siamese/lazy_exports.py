"""Packages that export names on first use: `siamese`, `siamese.data`, `siamese.training` and
`siamese.recognition` name their public names in a table and import a name's module only when
the name is first read, so that `import siamese` (and a decoding worker's import of
`siamese.data.image_files`) does not pay for torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def public_names(modules: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """A lazily exporting package's table, written by module, as `lazy_getattr` takes it.

    Args:
        modules: each module's dotted name → the public names the package takes from it.
    Returns:
        Each public name → the dotted name of its module.
    """
    return {name: module for module, names in modules.items() for name in names}


def lazy_getattr(
    package: str, public: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """The module-level `__getattr__` of a package whose public names are imported on first use
    (PEP 562), so that importing the package costs nothing until a name is used.

    Args:
        package: the package's dotted name, for the AttributeError's message.
        public: each public name → the dotted name of the module that defines it.
        namespace: the package's `globals()`, where a resolved name is kept so that the next
            look-up does not come back here.
    Returns:
        `__getattr__(name)`: the attribute `name` of its module (imported now).
    Raises (from `__getattr__`):
        AttributeError: `name` is not one of `public`.
    """

    def __getattr__(name: str) -> Any:
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = namespace[name] = getattr(importlib.import_module(public[name]), name)
        return value

    return __getattr__
