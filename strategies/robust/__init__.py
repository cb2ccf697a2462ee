"""Robust aggregation rules on update vectors, and a registry of them by name.

``mean``, ``median``, ``trimmed-mean``, ``krum``, ``multikrum`` and ``bulyan`` are the run's
guarded Flower strategies behind a vectors-in/vector-out adapter (:mod:`strategies.robust.flower`),
so what is benchmarked and tested is what runs aggregate with; ``geometric-median``,
``centered-clipping`` and ``nnm``, which Flower lacks, are ours (:mod:`strategies.robust.rules`).

Every rule is ``rule(vectors: (n, d) array, *, f: int = 0, **params) -> (d,) array`` (``nnm`` is
a pre-aggregation and returns (n, d)). Preconditions are checked and raise
:class:`PreconditionError` naming them; inputs are never mutated.

    >>> from strategies.robust import get_rule
    >>> agg = get_rule("krum", f=1)          # a callable vectors -> vector
    >>> agg_vec = agg(updates)               # doctest: +SKIP

Names match the strategy registry where a Flower strategy exists (``median``, ``trimmed-mean``,
``krum``, ``multikrum``, ``bulyan``) plus ``mean``, ``geometric-median``,
``centered-clipping``, ``nnm`` and the composite ``nnm+<rule>`` (NNM, then the rule).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from strategies.robust._checks import PreconditionError, as_vectors, check_f
from strategies.robust.flower import (
    bulyan,
    coordinate_median,
    krum,
    krum_select,
    mean,
    multi_krum,
    trimmed_mean,
)
from strategies.robust.rules import centered_clipping, geometric_median, nnm

__all__ = [
    "PreconditionError",
    "as_vectors",
    "check_f",
    "RULES",
    "PRECONDITIONS",
    "get_rule",
    "precondition_holds",
    "bulyan",
    "centered_clipping",
    "coordinate_median",
    "geometric_median",
    "krum",
    "krum_select",
    "mean",
    "multi_krum",
    "nnm",
    "trimmed_mean",
]

Rule = Callable[..., np.ndarray]

RULES: dict[str, Rule] = {
    "mean": mean,
    "median": coordinate_median,
    "trimmed-mean": trimmed_mean,
    "krum": krum,
    "multikrum": multi_krum,
    "bulyan": bulyan,
    "geometric-median": geometric_median,
    "centered-clipping": centered_clipping,
    "nnm": nnm,
}

#: Each rule's precondition on (n, f), in words; ``precondition_holds`` evaluates it. Flower's
#: rules carry the run's guards (strategies.flower_builtins): FedMedian takes no f, trimmed mean
#: needs beta = f / n < 1/2, i.e. n > 2f.
PRECONDITIONS: dict[str, str] = {
    "mean": "n >= 1",
    "median": "n >= 1",
    "trimmed-mean": "n > 2f",
    "krum": "n >= 2f + 3",
    "multikrum": "n >= 2f + 3",
    "bulyan": "n >= 4f + 3",
    "geometric-median": "n > 2f",
    "centered-clipping": "n > 2f",
    "nnm": "n > f",
}


def precondition_holds(name: str, n: int, f: int) -> bool:
    """Whether rule ``name`` (or ``nnm+name``) accepts n vectors with f Byzantine (for ``n/a`` cells)."""
    parts = name.split("+")
    ok = True
    for p in parts:
        need = PRECONDITIONS[p]
        ok &= {
            "n >= 1": n >= 1,
            "n > f": n > f,
            "n > 2f": n > 2 * f,
            "n >= 2f + 3": n >= 2 * f + 3,
            "n >= 4f + 3": n >= 4 * f + 3,
        }[need]
    return bool(ok)


def _compose_nnm(rule: Rule, vectors: np.ndarray, *, f: int = 0, **params: Any) -> np.ndarray:
    return rule(nnm(vectors, f=f), f=f, **params)


def get_rule(name: str, **params: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The rule ``name`` with its parameters bound (e.g. ``get_rule("trimmed-mean", f=2)``).

    ``"nnm+<rule>"`` applies nearest-neighbour mixing with the same f first."""
    if name.startswith("nnm+"):
        inner = name[4:]
        if inner not in RULES or inner == "nnm":
            raise KeyError(f"unknown robust rule {name!r}; known: {', '.join(RULES)} and nnm+<rule>")
        return functools.partial(_compose_nnm, RULES[inner], **params)
    if name not in RULES:
        raise KeyError(f"unknown robust rule {name!r}; known: {', '.join(RULES)} and nnm+<rule>")
    return functools.partial(RULES[name], **params)
