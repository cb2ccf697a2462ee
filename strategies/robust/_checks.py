"""Input checks shared by the robust rules (vectors in, vector out).

These are the rules' own preconditions (a 2-D finite float array, enough vectors for ``f``).
Validation of client replies (non-finite values, shapes, dtypes from the wire) belongs to the
strategy's validator module; the checks here only make a rule refuse what it cannot handle.
"""

from __future__ import annotations

import numpy as np

from strategies.errors import PreconditionError

__all__ = ["PreconditionError", "as_vectors", "check_f"]


def as_vectors(vectors: object, *, name: str = "vectors") -> np.ndarray:
    """A read-only float64 view/copy of ``vectors`` as an (n, d) array, n >= 1, d >= 1, all finite.

    Never mutates the input: a float64 array is returned as a read-only view, anything else is
    converted (copied).
    """
    arr = np.asarray(vectors, dtype=np.float64)
    if arr.ndim != 2:
        raise PreconditionError(f"{name} must be a 2-D array (n, d); got shape {arr.shape}")
    n, d = arr.shape
    if n < 1 or d < 1:
        raise PreconditionError(f"{name} must hold at least one vector of dimension >= 1; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise PreconditionError(f"{name} must be finite (no NaN or inf)")
    view = arr.view()
    view.flags.writeable = False
    return view


def check_f(f: object, n: int, rule: str, *, need: str = "n > 2f") -> int:
    """``f`` as a non-negative int satisfying the rule's bound ``need`` (one of the named forms;
    ``"any"``: only the type is checked, the rule checks its own bound)."""
    if isinstance(f, bool) or not isinstance(f, int | np.integer) or int(f) < 0:
        raise PreconditionError(f"{rule}: f must be a non-negative integer; got {f!r}")
    f = int(f)
    bounds = {
        "any": True,
        "n > f": n > f,
        "n > 2f": n > 2 * f,
        "n >= 2f + 3": n >= 2 * f + 3,
        "n >= 4f + 3": n >= 4 * f + 3,
    }
    if need not in bounds:  # pragma: no cover - programming error
        raise ValueError(f"unknown bound {need!r}")
    if not bounds[need]:
        raise PreconditionError(f"{rule} needs {need}; got n={n}, f={f}")
    return f
