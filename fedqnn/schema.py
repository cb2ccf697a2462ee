"""The config schema language: :class:`ConfigError`, :class:`Field`, :class:`Section`, coercion.

A leaf module (standard library only): every subsystem declares its part of the run config in
a light module that imports this one, and :mod:`fedqnn.config` composes the sections. A bad
value raises :class:`ConfigError` whose text starts with the dotted field name and says what is
allowed; an unknown key suggests the closest known ones (:func:`did_you_mean`).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

__all__ = [
    "ConfigError",
    "Field",
    "Section",
    "field",
    "coerce_field",
    "did_you_mean",
    "flatten",
    "unflatten",
]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


@dataclass(frozen=True)
class Field:
    """One leaf of the configuration: type, default and what is allowed."""

    default: Any
    kind: type | tuple[type, ...]
    help: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    check: Callable[[Any], str | None] | None = None  # returns an error text or None
    nullable: bool = False
    low_open: bool = False  # low is exclusive
    omit_empty: bool = False  # left out of the built config when empty (or not given)


def field(default: Any, kind: Any, help: str, **kw: Any) -> Field:
    """Shorthand for :class:`Field` (the sections' tables read as one line a key)."""
    return Field(default, kind, help, **kw)


@dataclass(frozen=True)
class Section:
    """One subsystem's part of the run config.

    ``fields``: dotted key -> :class:`Field`, in the order the built config lists them;
    ``aliases``: scalar spellings of a table's main key (``partition`` -> ``partition.kind``);
    ``check``: cross checks on the nested, coerced config (raise :class:`ConfigError`).
    """

    fields: Mapping[str, Field]
    check: Callable[[dict[str, Any]], None] | None = None
    aliases: Mapping[str, str] = dataclass_field(default_factory=dict)


def coerce_field(key: str, field: Field, value: Any) -> Any:
    """Coerce and check one value against its :class:`Field`; errors name ``key``."""
    if value is None:
        if field.nullable:
            return None
        raise ConfigError(f"{key}: a value is required ({field.help})")
    kind = field.kind
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if kind is bool and isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if not ok:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{key}: expected {names}, got {value!r} ({field.help})")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    if field.choices is not None and value not in field.choices:
        raise ConfigError(f"{key}: expected one of {', '.join(map(str, field.choices))}; got {value!r}")
    if field.low is not None and (value <= field.low if field.low_open else value < field.low):
        op = ">" if field.low_open else ">="
        raise ConfigError(f"{key}: expected {op} {field.low}, got {value!r} ({field.help})")
    if field.high is not None and value > field.high:
        raise ConfigError(f"{key}: expected <= {field.high}, got {value!r} ({field.help})")
    if field.check is not None and (msg := field.check(value)):
        raise ConfigError(f"{key}: {msg}")
    return value


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """``" (did you mean a, b?)"``: up to three close matches of ``key``, or ``""``."""
    hits = difflib.get_close_matches(key, list(known), n=3)
    return f" (did you mean {', '.join(hits)}?)" if hits else ""


def flatten(cfg: Mapping[str, Any], leaves: Collection[str] = (), aliases: Mapping[str, str] | None = None,
            prefix: str = "") -> dict[str, Any]:
    """Nested dict -> ``{"a.b": value}``. A key in ``leaves`` keeps its table value as it is;
    a key in ``aliases`` (a scalar spelling of a table) is renamed."""
    aliases = aliases or {}
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and name not in leaves:
            out.update(flatten(value, leaves, aliases, prefix=f"{name}."))
        elif name in aliases:  # `partition = "circuit"` is the table `partition` with kind = circuit
            out[aliases[name]] = value
        else:
            out[name] = value
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": value}`` -> nested dict."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: '{part}' is a value, not a table")
        node[parts[-1]] = value
    return out
