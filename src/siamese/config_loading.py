"""YAML → typed dataclasses, and back: the generic machinery under `siamese.config`.

`read_yaml` reads a file, `apply_overrides` applies `--set a.b=c` strings, `from_dict` checks
every key and type against a dataclass schema and builds the instances; `dump_yaml` and
`save_config_atomic` write a config back; `describe_options` lists every option with its type,
default and help text (the string literal written under each field) for `--help` and the docs.

The YAML dialect is PyYAML's safe one with two fixes: `1e-3` is a float (YAML 1.1 reads it as a
string, a trap for learning rates), and a key written twice in one mapping is an error instead
of the last one silently winning.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import difflib
import functools
import inspect
import itertools
import re
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from siamese.atomic_write import write_bytes_atomic
from siamese.errors import ConfigError, OutputError

T = TypeVar("T")

_FLOAT_TAG = "tag:yaml.org,2002:float"
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _DuplicateKeyError(yaml.MarkedYAMLError):
    """A key written twice in one mapping (PyYAML would keep the last silently)."""


class _Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` that rejects a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first is not None:
                raise _DuplicateKeyError(
                    problem=f"the key {key!r} is written twice in one mapping (also on line "
                    f"{first.start_mark.line + 1}); keep one",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    """`yaml.SafeDumper` that quotes strings `_Loader` would read as numbers, writes lists of
    scalars on one line (`[0.9, 0.999]`) and never uses anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def represent_list(self, data: Any) -> yaml.Node:
        flat = not any(isinstance(v, (list, tuple, dict)) for v in data)
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)

    def represent_str(self, data: str) -> yaml.Node:
        # PyYAML writes these Unicode line breaks raw in single quotes and reads them back as
        # spaces; double quotes escape them.
        style = '"' if any(c in data for c in "\x85\u2028\u2029") else None
        return self.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(list, _Dumper.represent_list)
_Dumper.add_representer(str, _Dumper.represent_str)


for _yaml_class in (_Loader, _Dumper):
    _yaml_class.add_implicit_resolver(_FLOAT_TAG, _EXPONENT_FLOAT, list("-+.0123456789"))


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping (an empty file gives `{}`).

    Raises:
        ConfigError: the file is missing or unreadable, is not valid YAML (with the line and
            column), or its top level is not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory; give the path of a YAML config file") from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {err.start}); save the config as UTF-8 YAML"
        ) from None
    except OSError as err:
        raise ConfigError(
            f"cannot read config file {path}: {err.strerror or err}; check its permissions"
        ) from None
    data = parse_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys (key: value, one per line), "
            f"got {_kind(data)}"
        )
    return data


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text in this module's dialect; `source` names it in errors.

    Raises:
        ConfigError: invalid YAML, naming the line and column.
    """
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        if isinstance(err, _DuplicateKeyError):
            raise ConfigError(f"{source}{where}: {err.problem}") from None
        problem = ": ".join(part for part in (err.context, err.problem) if part)
        raise ConfigError(
            f"{source}{where}: invalid YAML ({problem}); fix the syntax there"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: invalid YAML: {err}") from None


# --- the schema ---------------------------------------------------------------------------


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """The resolved type of each init field of dataclass `cls`, in field order."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """`X | None` → (X, True); any other type → (type, False)."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = get_args(tp)
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and len(args) == 2:
            return inner[0], True
        raise TypeError(f"config_loading supports `X | None` unions only, not {tp}")
    return tp, False


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _is_mapping_type(tp: Any) -> bool:
    return tp is dict or get_origin(tp) is dict


def _all_paths(cls: type, prefix: str = "") -> list[str]:
    """Every key path of the schema, sections and leaves, depth first."""
    paths: list[str] = []
    for name, tp in _field_types(cls).items():
        path = _join(prefix, name)
        paths.append(path)
        inner, _ = _unwrap_optional(tp)
        if _is_section(inner):
            paths.extend(_all_paths(inner, path))
    return paths


def _join(prefix: str, name: str) -> str:
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
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {_kind(data)}")
    return _build(cls, data, "", ctx)


def _build(cls: type[T], data: Mapping[Any, Any], prefix: str, ctx: _Context) -> T:
    types_ = _field_types(cls)
    for key in data:
        if key not in types_:
            raise _unknown_key_error(cls, prefix, str(key), ctx)
    values = {name: _convert(data[name], types_[name], _join(prefix, name), ctx) for name in data}
    return cls(**values)


def _convert(value: Any, tp: Any, key: str, ctx: _Context) -> Any:
    """`value` checked against type `tp` (tuples built from lists, ints widened to floats)."""
    inner, optional = _unwrap_optional(tp)
    if inner is Any:
        return copy.deepcopy(value)
    if value is None:
        if optional:
            return None
        if _is_section(inner):  # `train:` with nothing under it: all defaults
            return inner()
        raise _type_error(key, inner, optional, value, ctx)
    if _is_section(inner):
        if not isinstance(value, Mapping):
            keys = ", ".join(list(_field_types(inner))[:4])
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
    elif _is_mapping_type(inner):
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
    siblings = list(_field_types(section))
    suggestions = [_join(prefix, m) for m in difflib.get_close_matches(key, siblings, n=1)]
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
    message = f"{ctx.source}: unknown key '{_join(prefix, key)}'"
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
        return f"a list of {len(args)} items ({', '.join(_type_name(a) for a in args)})"
    if origin in (tuple, list):
        return f"a list of {_plural(args[0])}" if args and args[0] is not Any else "a list"
    if _is_mapping_type(tp):
        return "a mapping (key: value)"
    if _is_section(tp):
        return "a mapping of its keys"
    return _type_name(tp)


def _plural(tp: Any) -> str:
    return {int: "integers", float: "numbers", bool: "booleans", str: "strings"}.get(
        tp, f"{_type_name(tp)} values"
    )


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _kind(value: Any) -> str:
    """'a list', 'a string'...: what a YAML value is."""
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), f"a {type(value).__name__}")


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
        types_ = _field_types(section)
        prefix = ".".join(segments[:i])
        if name not in types_:
            raise _unknown_key_error(section, prefix, name, ctx, rest=segments[i + 1 :])
        path = _join(prefix, name)
        inner, _ = _unwrap_optional(types_[name])
        if i == len(segments) - 1:
            _convert(value, types_[name], path, ctx)  # a wrong type is reported as the override's
            container[name] = value
            return
        if _is_section(inner):
            container = _child_mapping(container, name, path, ctx)
            section = inner
        elif _is_mapping_type(inner):  # free-form: the rest of the path are its own keys
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


# --- writing --------------------------------------------------------------------------------


def to_dict(instance: Any) -> dict[str, Any]:
    """A dataclass instance as plain YAML/JSON values, in field order (tuples become lists)."""
    if not dataclasses.is_dataclass(instance) or isinstance(instance, type):
        raise TypeError(f"to_dict expects a dataclass instance, got {type(instance).__name__}")
    return {
        f.name: _plain(getattr(instance, f.name)) for f in dataclasses.fields(instance) if f.init
    }


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def dump_yaml(instance: Any) -> str:
    """`instance` as YAML text, keys in field order; `from_dict` reads it back to an equal one."""
    return yaml.dump(
        to_dict(instance),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


def save_config_atomic(path: Path, instance: Any) -> None:
    """Write `dump_yaml(instance)` to `path` atomically (a reader never sees half a file).

    Raises:
        OutputError: the file cannot be written.
    """
    path = Path(path)
    try:
        write_bytes_atomic(path, dump_yaml(instance).encode("utf-8"))
    except OSError as err:
        raise OutputError(
            f"cannot write the config {path}: {err.strerror or err}; "
            "check that its directory exists and is writable"
        ) from None


# --- documentation --------------------------------------------------------------------------


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
        path = _join(prefix, f.name)
        tp = _field_types(cls)[f.name]
        default = getattr(defaults, f.name) if defaults is not None else _field_default(f)
        inner, _ = _unwrap_optional(tp)
        if _is_section(inner) and default is not None:
            sub_defaults = default if dataclasses.is_dataclass(default) else None
            _describe_section(inner, path, sub_defaults, rows)
            continue
        shown = "(required)" if default is dataclasses.MISSING else _format_value(default)
        rows.append((path, _type_name(tp), shown, helps.get(f.name, "")))


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _type_name(tp: Any) -> str:
    """A short type name for tables: `int | null`, `fp32 | bf16`, `[float, float]`."""
    inner, optional = _unwrap_optional(tp)
    suffix = " | null" if optional else ""
    names = {int: "int", float: "float", bool: "bool", str: "str", Any: "any"}
    if inner in names:
        return names[inner] + suffix
    origin, args = get_origin(inner), get_args(inner)
    if origin is Literal:
        return " | ".join(str(a) for a in args) + suffix
    if origin is tuple and args and args[-1] is Ellipsis:
        return f"[{_type_name(args[0])}, ...]" + suffix
    if origin is tuple:
        return "[" + ", ".join(_type_name(a) for a in args) + "]" + suffix
    if origin is list:
        return f"[{_type_name(args[0]) if args else 'any'}, ...]" + suffix
    if _is_mapping_type(inner):
        return "mapping" + suffix
    if _is_section(inner):
        return "section" + suffix
    return str(inner) + suffix


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
