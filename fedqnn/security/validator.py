"""One validator for malformed client input (reasons ``malformed:<field>`` and ``oversized``).

Checks, each returning the first failure as a reason (never raising):

* ``oversized``: the reply's total byte count exceeds ``max_bytes``, more than
  ``max_entries`` entries, or an array whose *declared* size exceeds ``max_bytes``;
* ``malformed:<key>`` for an array: missing from the template's keys (or an unexpected
  extra key), wrong shape, wrong dtype, non-finite values (NaN/inf), or declared
  shape/dtype disagreeing with the data;
* ``malformed:<record>``: a record kind the spec does not allow, or no array record;
* ``malformed:<metric>``: a required metric missing; a numeric metric non-finite;
  ``num-examples`` not an integer >= 0 (``min_examples`` configurable); a metric whose name
  starts with one of ``nonnegative_prefixes`` (stamps, calibration) negative or non-finite,
  lists element-wise.

Array entries are addressed by their key alone (the reply's array records are merged; a key
in two records is ``malformed:<key>``), since Flower's strategies read one ArrayRecord.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ValidationSpec", "validate", "template_from_arrays", "check_metrics"]


@dataclass(frozen=True)
class ValidationSpec:
    """What a valid train reply looks like.

    ``template`` maps array key -> (shape, dtype str, e.g. ``"<f4"`` or ``"float32"``); None
    skips the shape/dtype/key checks (finiteness is still checked)."""

    template: Mapping[str, tuple[tuple[int, ...], str]] | None = None
    required_metrics: tuple[str, ...] = ("num-examples",)
    nonnegative_prefixes: tuple[str, ...] = ("num-examples", "stamp", "calib")
    min_examples: int = 0
    max_bytes: int = 64 * 2**20
    max_entries: int = 10_000
    allow_extra_arrays: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def template_from_arrays(arrays: Mapping[str, np.ndarray]) -> dict[str, tuple[tuple[int, ...], str]]:
    """The template of a reference model state (e.g. the global arrays sent out)."""
    return {k: (tuple(int(d) for d in np.shape(v)), np.asarray(v).dtype.str) for k, v in arrays.items()}


def _same_dtype(a: np.dtype, b: str) -> bool:
    try:
        return np.dtype(b) == a.newbyteorder("=") or np.dtype(b) == a
    except TypeError:
        return False


def _is_finite_number(v: Any) -> bool:
    if isinstance(v, bool | np.bool_):
        return True
    if isinstance(v, int | np.integer):
        return True
    if isinstance(v, float | np.floating):
        return math.isfinite(float(v))
    return False


def _numeric_values(v: Any) -> list[Any] | None:
    """Flatten a scalar or (nested) list of numbers; None if it holds a non-number."""
    if isinstance(v, list | tuple):
        out: list[Any] = []
        for x in v:
            sub = _numeric_values(x)
            if sub is None:
                return None
            out.extend(sub)
        return out
    if isinstance(v, bool | np.bool_ | int | np.integer | float | np.floating):
        return [v]
    return None


def check_metrics(metrics: Mapping[str, Any], spec: ValidationSpec) -> str | None:
    """Reason for the first bad metric, or None."""
    for name in spec.required_metrics:
        if name not in metrics:
            return f"malformed:{name}"
    for key in sorted(metrics, key=str):
        v = metrics[key]
        nums = _numeric_values(v)
        if nums is None:
            continue  # strings/bytes: nothing numeric to check
        if not all(_is_finite_number(x) for x in nums):
            return f"malformed:{key}"
        if any(key.startswith(p) for p in spec.nonnegative_prefixes) and any(float(x) < 0 for x in nums):
            return f"malformed:{key}"
    if "num-examples" in metrics:
        ne = metrics["num-examples"]
        if isinstance(ne, float | np.floating):
            if not float(ne).is_integer():
                return "malformed:num-examples"
            ne = int(ne)
        if isinstance(ne, bool | np.bool_) or not isinstance(ne, int | np.integer) or ne < spec.min_examples:
            return "malformed:num-examples"
    return None


def validate(
    arrays: Mapping[str, np.ndarray],
    metrics: Mapping[str, Any],
    spec: ValidationSpec,
    *,
    total_bytes: int | None = None,
) -> str | None:
    """``None`` if the (already parsed) reply is valid, else ``"oversized"`` or
    ``"malformed:<field>"``. ``arrays`` is the merged key -> ndarray map, ``metrics`` the
    merged metrics; ``total_bytes`` the reply's wire size if known. Never raises."""
    try:
        return _validate(arrays, metrics, spec, total_bytes)
    except Exception:  # noqa: BLE001 - bad input must not crash the server
        return "malformed:reply"


def _validate(arrays: Mapping[str, np.ndarray], metrics: Mapping[str, Any], spec: ValidationSpec, total_bytes: int | None) -> str | None:
    if total_bytes is not None and total_bytes > spec.max_bytes:
        return "oversized"
    if len(arrays) + len(metrics) > spec.max_entries:
        return "oversized"
    if sum(int(np.asarray(a).nbytes) for a in arrays.values()) > spec.max_bytes:
        return "oversized"
    tmpl = spec.template
    if tmpl is not None:
        for key in sorted(tmpl):
            if key not in arrays:
                return f"malformed:{key}"
        if not spec.allow_extra_arrays:
            for key in sorted(arrays, key=str):
                if key not in tmpl:
                    return f"malformed:{key}"
    for key in sorted(arrays, key=str):
        a = np.asarray(arrays[key])
        if tmpl is not None and key in tmpl:
            shape, dtype = tmpl[key]
            if tuple(a.shape) != tuple(shape) or not _same_dtype(a.dtype, dtype):
                return f"malformed:{key}"
        if a.dtype.kind not in "biuf":
            return f"malformed:{key}"
        if a.dtype.kind == "f" and a.size and not bool(np.isfinite(a).all()):
            return f"malformed:{key}"
    return check_metrics(metrics, spec)
