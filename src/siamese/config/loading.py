"""YAML → typed dataclasses: the generic machinery under `siamese.config`.

`apply_overrides` applies `--set a.b=c` strings, `from_dict` checks every key and type against
a dataclass schema and builds the instances. Reading and writing the files is
`siamese.config.yaml_dialect`; the option list for `--help` is `siamese.config.help`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar, get_args, get_origin

from siamese.config.yaml_dialect import kind_of, parse_yaml
from siamese.errors import ConfigError

T = TypeVar("T")

# --- the schema ---------------------------------------------------------------------------


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved type of each init field of dataclass `cls`, in field order."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """`X | None` → (X, True); any other type → (type, False)."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = get_args(tp)
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and len(args) == 2:
            return inner[0], True
        raise TypeError(f"config_loading supports `X | None` unions only, not {tp}")
    return tp, False


def is_section(tp: Any) -> bool:
    """Whether a field of type `tp` is a nested section (a dataclass)."""
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def is_mapping_type(tp: Any) -> bool:
    """Whether a field of type `tp` is a free-form mapping (`dict[...]`)."""
    return tp is dict or get_origin(tp) is dict


def _all_paths(cls: type, prefix: str = "") -> list[str]:
    """Every key path of the schema, sections and leaves, depth first."""
    paths: list[str] = []
    for name, tp in field_types(cls).items():
        path = join_key(prefix, name)
        paths.append(path)
        inner, _ = unwrap_optional(tp)
        if is_section(inner):
            paths.extend(_all_paths(inner, path))
    return paths


def join_key(prefix: str, name: str) -> str:
    """The dotted key of field `name` under section `prefix` ("" at the top level)."""
    return f"{prefix}.{name}" if prefix else name


# --- building instances ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Context:
    source: str
    """Names the input in messages: a file path or `--set a.b=c`."""
    root: type
    """The top-level schema, searched for a misplaced key."""


def from_dict(cls: type[T], data: Mapping[str, Any], source: str) -> T:
    """Build dataclass `cls` from `data`, recursively; missing keys take the defaults.

    Args:
        cls: a dataclass whose fields are int, float, bool, str, `X | None`, `Literal[...]`,
            `tuple[...]`, `list[...]`, `dict[str, ...]`, `Any` or nested dataclasses.
        data: plain values, as YAML gives them (lists for tuples, mappings for sections).
        source: names the input in error messages (a file path).
    Raises:
        ConfigError: an unknown key (naming the nearest valid one) or a value of the wrong
            type (naming the key and the type expected).
    """
    ctx = _Context(source, cls)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {kind_of(data)}")
    return _build(cls, data, "", ctx)


def _build(cls: type[T], data: Mapping[Any, Any], prefix: str, ctx: _Context) -> T:
    types_ = field_types(cls)
    for key in data:
        if key not in types_:
            raise _unknown_key_error(cls, prefix, str(key), ctx)
    values = {
        name: _convert(data[name], types_[name], join_key(prefix, name), ctx) for name in data
    }
    return cls(**values)


def _convert(value: Any, tp: Any, key: str, ctx: _Context) -> Any:
    """`value` checked against type `tp` (tuples built from lists, ints widened to floats)."""
    inner, optional = unwrap_optional(tp)
    if inner is Any:
        return copy.deepcopy(value)
    if value is None:
        if optional:
            return None
        if is_section(inner):  # `train:` with nothing under it: all defaults
            return inner()
        raise _type_error(key, inner, optional, value, ctx)
    if is_section(inner):
        if not isinstance(value, Mapping):
            keys = ", ".join(list(field_types(inner))[:4])
            raise ConfigError(
                f"{ctx.source}: {key} is a section: it must be a mapping of its keys "
                f"({keys}, ...), got {_show(value)}"
            )
        return _build(inner, value, key, ctx)
    if inner is bool:
        if isinstance(value, bool):
            return value
    elif inner is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif inner is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif inner is str:
        if isinstance(value, str):
            return value
    elif get_origin(inner) is Literal:
        if any(value == a and type(value) is type(a) for a in get_args(inner)):
            return value
    elif get_origin(inner) is tuple or get_origin(inner) is list:
        return _convert_sequence(value, inner, optional, key, ctx)
    elif is_mapping_type(inner):
        return _convert_mapping(value, inner, optional, key, ctx)
    else:
        raise TypeError(f"{key}: config_loading does not support the field type {tp}")
    raise _type_error(key, inner, optional, value, ctx)


def _convert_sequence(value: Any, tp: Any, optional: bool, key: str, ctx: _Context) -> Any:
    if not isinstance(value, (list, tuple)):
        raise _type_error(key, tp, optional, value, ctx)
    args = get_args(tp)
    if get_origin(tp) is list:
        item_types = [args[0] if args else Any] * len(value)
    elif len(args) == 2 and args[1] is Ellipsis:
        item_types = [args[0]] * len(value)
    elif not args:
        item_types = [Any] * len(value)
    elif len(value) != len(args):
        raise _type_error(key, tp, optional, value, ctx)
    else:
        item_types = list(args)
    items = [
        _convert(v, t, f"{key}[{i}]", ctx)
        for i, (v, t) in enumerate(zip(value, item_types, strict=True))
    ]
    return items if get_origin(tp) is list else tuple(items)


def _convert_mapping(value: Any, tp: Any, optional: bool, key: str, ctx: _Context) -> Any:
    if not isinstance(value, Mapping):
        raise _type_error(key, tp, optional, value, ctx)
    args = get_args(tp)
    value_type = args[1] if args else Any
    result: dict[str, Any] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise ConfigError(
                f"{ctx.source}: {key} has the key {k!r} ({type(k).__name__}); keys must be "
                f"strings: quote it ('{k}')"
            )
        result[k] = _convert(v, value_type, f"{key}.{k}", ctx)
    return result


# --- messages -------------------------------------------------------------------------------


def _unknown_key_error(
    section: type, prefix: str, key: str, ctx: _Context, rest: Sequence[str] = ()
) -> ConfigError:
    """The error for `key` under `prefix`: the nearest sibling, and where else the key lives."""
    siblings = list(field_types(section))
    suggestions = [join_key(prefix, m) for m in difflib.get_close_matches(key, siblings, n=1)]
    all_paths = _all_paths(ctx.root)
    leaf_names = sorted({p.rsplit(".", 1)[-1] for p in all_paths})
    names = (
        [key] if key in leaf_names else difflib.get_close_matches(key, leaf_names, n=1, cutoff=0.8)
    )
    suggestions += [p for p in all_paths if p.rsplit(".", 1)[-1] in names and p not in suggestions]
    if rest:  # `--set optimiser.lr=…`: suggest `optimizer.lr` where that path exists
        suggestions = [
            f"{s}.{'.'.join(rest)}" if f"{s}.{'.'.join(rest)}" in all_paths else s
            for s in suggestions
        ]
    where = prefix or "the top level"
    message = f"{ctx.source}: unknown key '{join_key(prefix, key)}'"
    if suggestions:
        message += " — did you mean " + " or ".join(f"'{s}'" for s in suggestions[:3]) + "?"
    return ConfigError(f"{message} Valid keys under {where}: {', '.join(siblings)}.")


def _type_error(key: str, tp: Any, optional: bool, value: Any, ctx: _Context) -> ConfigError:
    expected = _expected(tp) + (" (or null)" if optional else "")
    hint = ""
    if get_origin(tp) is Literal and isinstance(value, str):
        close = difflib.get_close_matches(value, [str(a) for a in get_args(tp)], n=1, cutoff=0.4)
        hint = f" — did you mean '{close[0]}'?" if close else ""
    elif tp is str and isinstance(value, (int, float, bool)):
        hint = "; quote the value to make it a string"
    elif tp in (int, float) and isinstance(value, str) and _looks_numeric(value):
        hint = "; drop the quotes around the number"
    elif tp is bool and isinstance(value, int) and not isinstance(value, bool):
        hint = "; write true or false"
    return ConfigError(f"{ctx.source}: {key} must be {expected}, got {_show(value)}{hint}")


def _expected(tp: Any) -> str:
    """What a value of type `tp` must be, as a phrase: 'an integer', 'a list of 2 numbers'."""
    plain = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if tp in plain:
        return plain[tp]
    if tp is Any:
        return "any value"
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(set(args)) == 1:
            return f"a list of {len(args)} {_plural(args[0])}"
        return f"a list of {len(args)} items ({', '.join(type_name(a) for a in args)})"
    if origin in (tuple, list):
        return f"a list of {_plural(args[0])}" if args and args[0] is not Any else "a list"
    if is_mapping_type(tp):
        return "a mapping (key: value)"
    if is_section(tp):
        return "a mapping of its keys"
    return type_name(tp)


def _plural(tp: Any) -> str:
    return {int: "integers", float: "numbers", bool: "booleans", str: "strings"}.get(
        tp, f"{type_name(tp)} values"
    )


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _show(value: Any) -> str:
    """A value as a message shows it: `'ten' (str)`, `[1.0] (list of 1)`, `null`."""
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = type(value).__name__
    if isinstance(value, (list, tuple)):
        kind = f"list of {len(value)}"
    return f"{text} ({kind})"


# --- overrides ------------------------------------------------------------------------------


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str], cls: type) -> dict[str, Any]:
    """Return a copy of `raw` with each `a.b.c=value` override set (`raw` is not changed).

    The value is read as YAML (`0.1`, `true`, `null`, `[16, 32]`, `adamw`). The key path is
    checked against dataclass `cls` and the value against the field's type; below a free-form
    mapping field (such as `model.options`) any sub key may be set.

    Raises:
        ConfigError: a malformed override, an unknown key path (naming the nearest valid one)
            or a value of the wrong type; the message names the override.
    """
    result = copy.deepcopy(dict(raw))
    for text in overrides:
        segments, value = _parse_override(text)
        _set_path(result, segments, value, _Context(f"--set {text}", cls))
    return result


def _parse_override(text: str) -> tuple[list[str], Any]:
    source = f"--set {text}"
    key, equals, value_text = text.partition("=")
    key = key.strip()
    if not equals:
        raise ConfigError(
            f"{source}: expected KEY=VALUE with a dotted key, e.g. --set train.epochs=20 "
            "or --set optimizer.lr=3e-4"
        )
    segments = key.split(".")
    if not all(segments):
        raise ConfigError(
            f"{source}: the key '{key}' has an empty part; write dotted keys like train.epochs"
        )
    if not value_text.strip():
        raise ConfigError(
            f"{source}: the value after '=' is empty; give one, e.g. --set {key}=VALUE "
            f"(--set {key}=null for no value)"
        )
    return segments, parse_yaml(value_text, source)


def _set_path(raw: dict[str, Any], segments: list[str], value: Any, ctx: _Context) -> None:
    section: type = ctx.root
    container = raw
    for i, name in enumerate(segments):
        types_ = field_types(section)
        prefix = ".".join(segments[:i])
        if name not in types_:
            raise _unknown_key_error(section, prefix, name, ctx, rest=segments[i + 1 :])
        path = join_key(prefix, name)
        inner, _ = unwrap_optional(types_[name])
        if i == len(segments) - 1:
            _convert(value, types_[name], path, ctx)  # a wrong type is reported as the override's
            container[name] = value
            return
        if is_section(inner):
            container = _child_mapping(container, name, path, ctx)
            section = inner
        elif is_mapping_type(inner):  # free-form: the rest of the path are its own keys
            container = _child_mapping(container, name, path, ctx)
            for j in range(i + 1, len(segments) - 1):
                container = _child_mapping(container, segments[j], ".".join(segments[: j + 1]), ctx)
            container[segments[-1]] = value
            return
        else:
            raise ConfigError(
                f"{ctx.source}: {path} is a single value, not a section with keys; "
                f"write --set {path}=VALUE"
            )


def _child_mapping(
    container: dict[str, Any], name: str, path: str, ctx: _Context
) -> dict[str, Any]:
    child = container.get(name)
    if child is None:
        child = container[name] = {}
    elif isinstance(child, Mapping):
        child = container[name] = dict(child)
    else:
        raise ConfigError(
            f"{ctx.source}: cannot set a key inside {path}: the config has {path} = "
            f"{_show(child)}, not a mapping; fix {path} in the config file"
        )
    return child


def type_name(tp: Any) -> str:
    """A short type name for tables: `int | null`, `fp32 | bf16`, `[float, float]`."""
    inner, optional = unwrap_optional(tp)
    suffix = " | null" if optional else ""
    names = {int: "int", float: "float", bool: "bool", str: "str", Any: "any"}
    if inner in names:
        return names[inner] + suffix
    origin, args = get_origin(inner), get_args(inner)
    if origin is Literal:
        return " | ".join(str(a) for a in args) + suffix
    if origin is tuple and args and args[-1] is Ellipsis:
        return f"[{type_name(args[0])}, ...]" + suffix
    if origin is tuple:
        return "[" + ", ".join(type_name(a) for a in args) + "]" + suffix
    if origin is list:
        return f"[{type_name(args[0]) if args else 'any'}, ...]" + suffix
    if is_mapping_type(inner):
        return "mapping" + suffix
    if is_section(inner):
        return "section" + suffix
    return str(inner) + suffix
