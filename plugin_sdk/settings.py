"""Typed, validated settings from YAML mappings.

The kernel and every plugin describe their configuration section with a frozen
dataclass; :func:`load_settings` turns the YAML mapping into it and names the YAML
path of any unknown key or wrong type, with the fix. Secrets come from the environment:
a string ``"${NAME}"`` or a mapping ``{"$env": "NAME"}`` is replaced by the variable.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["SettingsError", "load_settings", "resolve_env"]

T = TypeVar("T")

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SettingsError(Exception):
    """A configuration value cannot be used. ``path`` is its YAML path."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def resolve_env(value: Any, path: str) -> tuple[Any, bool]:
    """Substitute environment references; returns (value, came_from_environment)."""
    if isinstance(value, Mapping) and set(value) == {"$env"}:
        name = value["$env"]
        if name not in os.environ:
            raise SettingsError(path, f"environment variable {name} is not set "
                                      f"(export {name}=… before starting)")
        return os.environ[name], True
    if isinstance(value, str) and "${" in value:
        def repl(m: re.Match[str]) -> str:
            if m.group(1) not in os.environ:
                raise SettingsError(path, f"environment variable {m.group(1)} is not set "
                                          f"(export {m.group(1)}=… before starting)")
            return os.environ[m.group(1)]
        return _ENV_RE.sub(repl, value), True
    return value, False


def load_settings(cls: type[T], data: Mapping[str, Any] | None, path: str = "") -> T:
    """Build the dataclass ``cls`` from ``data``, validating keys and types."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SettingsError(path, f"expected a mapping of settings, got {_describe(data)}")
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, raw in data.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise SettingsError(sub, f"unknown key; {hint}known keys: {', '.join(sorted(fields))}")
        kwargs[key] = _convert(hints[key], raw, sub)
    return cls(**kwargs)


def _convert(tp: Any, raw: Any, path: str) -> Any:
    value, from_env = resolve_env(raw, path)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except SettingsError as exc:
                errors.append(exc.message)
        raise SettingsError(path, " or ".join(errors))
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return load_settings(tp, value, path)  # type: ignore[arg-type]
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SettingsError(path, f"expected a list, got {_describe(value)}")
        item = args[0] if args else Any
        items = [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin is dict or tp is dict or origin is Mapping:
        if not isinstance(value, Mapping):
            raise SettingsError(path, f"expected a mapping, got {_describe(value)}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _convert(vt, v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_env and isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise SettingsError(path, f"expected true or false, got {_describe(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_env and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise SettingsError(path, f"expected an integer, got {_describe(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_env and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise SettingsError(path, f"expected a number, got {_describe(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise SettingsError(path, f"expected a string, got {_describe(value)} "
                                  "(quote it in YAML)")
    if typing.get_origin(tp) is typing.Literal:
        if value in args:
            return value
        raise SettingsError(path, f"expected one of {', '.join(map(repr, args))}, "
                                  f"got {_describe(value)}")
    return value


def _describe(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "number", str: "string",
            list: "list", dict: "mapping", type(None): "nothing"}.get(type(value),
                                                                    type(value).__name__)
    return f"{kind} {value!r}" if not isinstance(value, (dict, list)) else kind
