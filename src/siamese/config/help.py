"""Every option of a config dataclass with its type, default and help text (the string
literal written under each field), for `siamese train --help` and the docs."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import textwrap
from collections.abc import Mapping
from typing import Any

from siamese.config.loading import (
    field_types,
    is_section,
    join_key,
    type_name,
    unwrap_optional,
)
from siamese.config.yaml_dialect import to_dict


def describe_options(cls: type) -> list[tuple[str, str, str, str]]:
    """Every leaf option of dataclass `cls` as (key path, type, default, help), in field order.

    The help is the string literal written right under the field in the class body ('' when
    there is none or the source cannot be read); the default is shown as YAML writes it.
    """
    try:
        defaults: Any = cls()
    except TypeError:  # required fields: fall back to each field's own default
        defaults = None
    rows: list[tuple[str, str, str, str]] = []
    _describe_section(cls, "", defaults, rows)
    return rows


def _describe_section(
    cls: type, prefix: str, defaults: Any, rows: list[tuple[str, str, str, str]]
) -> None:
    helps = _attribute_docstrings(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        path = join_key(prefix, f.name)
        tp = field_types(cls)[f.name]
        default = getattr(defaults, f.name) if defaults is not None else _field_default(f)
        inner, _ = unwrap_optional(tp)
        if is_section(inner) and default is not None:
            sub_defaults = default if dataclasses.is_dataclass(default) else None
            _describe_section(inner, path, sub_defaults, rows)
            continue
        shown = "(required)" if default is dataclasses.MISSING else _format_value(default)
        rows.append((path, type_name(tp), shown, helps.get(f.name, "")))


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _format_value(value: Any) -> str:
    """A default as YAML writes it in flow style: `null`, `true`, `[0.9, 0.999]`, `{}`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "''"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_format_value(v)}" for k, v in value.items()) + "}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _format_value(to_dict(value))
    return repr(value)


@functools.cache
def _attribute_docstrings(cls: type) -> dict[str, str]:
    """Field name → the string literal right after it in the class body (and its bases')."""
    helps: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        if "__field_help__" in vars(klass):  # a generated class (the loss section): no source
            helps.update(vars(klass)["__field_help__"])
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):  # no source (a REPL, a zip without .py)
            continue
        node = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
        if node is None:
            continue
        for stmt, after in itertools.pairwise(node.body):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                helps[stmt.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return helps
