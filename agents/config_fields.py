"""Typed values for config dataclass fields, from command-line strings or JSON values.

``--set agent.lr=abc`` must fail before a run starts, and ``--set steps=1e5`` must mean 100000:
every value is checked against the field's declared type, not guessed from its spelling.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, Literal, Union

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved annotation (configs use ``from __future__ import annotations``)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def coerce(value: Any, annotation: Any, name: str) -> Any:
    """``value`` as ``annotation`` (a string is parsed), or ValueError naming ``name`` and the type."""
    try:
        return _coerce(value, annotation)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise ValueError(f"{name}: expected {_describe(annotation)}, got {value!r}") from None


def _coerce(value: Any, annotation: Any) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return _json_or_text(value) if isinstance(value, str) else value
    if origin in (Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option)
            except (ValueError, TypeError, json.JSONDecodeError):
                continue
        raise ValueError
    if origin is Literal:
        for choice in args:
            if value == choice or (isinstance(value, str) and value == str(choice)):
                return choice
        raise ValueError
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise ValueError
    if annotation is int:
        number = float(value) if isinstance(value, str) and not value.lstrip("+-").isdigit() else value
        if isinstance(number, str):
            return int(number)
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not float(number).is_integer():
            raise ValueError
        return int(number)
    if annotation is float:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if math.isnan(number):
            raise ValueError
        return number
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError
        return value
    if origin in (tuple, list) or annotation in (tuple, list):
        items = json.loads(value) if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ValueError
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(items):
                raise ValueError
            return tuple(_coerce(v, a) for v, a in zip(items, args))
        element = args[0] if args else Any
        out = [_coerce(v, element) for v in items]
        return tuple(out) if (origin or annotation) is tuple else out
    if origin is dict or annotation is dict:
        data = json.loads(value) if isinstance(value, str) else value
        if not isinstance(data, dict):
            raise ValueError
        return dict(data)
    return value


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _describe(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if annotation is type(None):
        return "none"
    if origin in (tuple, list):
        return "a JSON list, e.g. [8, 8]"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            dict: "a JSON object"}.get(annotation, str(annotation))


def replace_checked(config: Any, values: dict[str, Any], prefix: str = "") -> Any:
    """``dataclasses.replace`` after checking every name and coercing every value to its field's type."""
    types_ = field_types(type(config))
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise ValueError(f"{type(config).__name__} has no field(s) {[prefix + u for u in unknown]}; "
                         f"known fields: {sorted(types_)}")
    return dataclasses.replace(config, **{k: coerce(v, types_[k], prefix + k) for k, v in values.items()})


def check_saved_config(config: Any, saved: dict, ignore: tuple[str, ...] = ()) -> None:
    """Refuse a checkpoint whose config differs from ``config`` (a dataclass) in any field but ``ignore``.

    A field the checkpoint does not name was added after it was written and counts as its default,
    so adding a config field (whose default keeps the old behaviour) leaves old checkpoints loadable;
    a field only the checkpoint names was removed since, and is refused."""
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(config) if f.init}
    mine = {k: _plain(v) for k, v in dataclasses.asdict(config).items() if k not in ignore}
    theirs = {k: _plain(v) for k, v in {**defaults, **saved}.items() if k not in ignore}
    if mine != theirs:
        diff = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k, _ABSENT) != theirs.get(k, _ABSENT))
        raise ValueError(f"checkpoint was saved with a different {type(config).__name__} (fields {diff}); build "
                         f"the agent from the checkpoint's own config instead")


_ABSENT = object()


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively: a config read back from JSON holds lists where the dataclass has tuples."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
