"""TOML text of a config (what ``fedqnn run --print-config`` prints and ``--config`` reads back).

Standard library only: Python reads TOML (:mod:`tomllib`) but does not write it, and a config
needs only tables, strings, numbers, booleans, arrays and inline tables. TOML has no null: a key
whose value is ``None`` (a field left unset, e.g. ``broker.radius`` = derived) is written as a
comment, so reading the text back leaves it unset again.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["dumps"]

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k)


def _value(v: Any, where: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string (\" \\ \n \uXXXX escapes)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x, f"{where}[]") for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x, f'{where}.{k}')}" for k, x in v.items()
                               if x is not None) + "}"
    raise TypeError(f"{where}: cannot write a {type(v).__name__} as TOML")


def _table(path: str, d: dict[str, Any], out: list[str]) -> None:
    out.append(f"[{path}]")
    subtables = []
    for k, v in d.items():
        if v is None:
            out.append(f"# {_key(k)} is unset")
        elif isinstance(v, dict) and v:
            subtables.append((k, v))
        else:
            out.append(f"{_key(k)} = {_value(v, k)}")
    for k, v in subtables:
        out.append("")
        _table(f"{path}.{_key(k)}", v, out)


def dumps(cfg: dict[str, Any], root: str = "fedqnn") -> str:
    """``cfg`` as a TOML document whose ``[root]`` table holds it (nested dicts become subtables)."""
    out: list[str] = []
    _table(root, cfg, out)
    return "\n".join(out) + "\n"
