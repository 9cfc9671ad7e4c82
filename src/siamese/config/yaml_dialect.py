"""Config files: the YAML dialect `siamese` reads and writes.

PyYAML's safe dialect with two fixes: `1e-3` is a float (YAML 1.1 reads it as a string, a trap
for learning rates), and a key written twice in one mapping is an error instead of the last
one silently winning. `dump_yaml` and `save_config_atomic` write a config dataclass back.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from siamese.atomic_files import write_bytes_atomic
from siamese.errors import ConfigError, OutputError

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
            f"got {kind_of(data)}"
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


# --- writing --------------------------------------------------------------------------------


def to_dict(instance: Any) -> dict[str, Any]:
    """A dataclass instance as plain YAML/JSON values, in field order (tuples become lists).

    A class with `__omit_none__ = True` (the loss section: most of its keys belong to other
    losses) leaves out its fields that are None; they read back as None.
    """
    if not dataclasses.is_dataclass(instance) or isinstance(instance, type):
        raise TypeError(f"to_dict expects a dataclass instance, got {type(instance).__name__}")
    omit_none = getattr(instance, "__omit_none__", False)
    return {
        f.name: _plain(getattr(instance, f.name))
        for f in dataclasses.fields(instance)
        if f.init and not (omit_none and getattr(instance, f.name) is None)
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


def kind_of(value: Any) -> str:
    """'a list', 'a string'...: what a YAML value is."""
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), f"a {type(value).__name__}")


def split_top_level(text: str) -> list[str]:
    """`text` cut at the commas outside brackets, braces and quotes, parts stripped, empty
    parts dropped: "0,0.1" → ["0", "0.1"]; "[8, 16]" → ["[8, 16]"]."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def parse_key_value(text: str, source: str) -> tuple[str, Any]:
    """`KEY=VALUE` with VALUE in YAML, where top-level commas make a list: `image_size=56,46`
    → ("image_size", [56, 46]); `channels=1` → ("channels", 1).

    Raises:
        ConfigError: no `=`, or an empty key, or a value that is not YAML.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{source} {text!r}: expected KEY=VALUE, e.g. image_size=56,46")
    parts = [parse_yaml(part, f"{source} {text}") for part in split_top_level(value)]
    return key.strip(), parts[0] if len(parts) == 1 else parts
