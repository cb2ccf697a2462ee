"""Generated GAP instances harder than OR-Library gap1..12 (Chu & Beasley 1997 types).

Type D (minimisation, correlated): a_ij ~ U{1..100}, c_ij = 111 - a_ij + U{-10..10},
b_i = floor(0.8 * sum_j a_ij / m).  Type C: a_ij ~ U{5..25}, c_ij ~ U{10..50},
b_i = floor(0.8 * sum_j a_ij / m).
"""

from __future__ import annotations

import numpy as np

from fedqnn.scheduling.problem import Problem
from fedqnn.seeding import rng as seeded_rng

__all__ = ["gap_instance"]


def gap_instance(m: int, n: int, kind: str = "D", seed: int = 0, tightness: float = 0.8) -> Problem:
    """A GAP instance of type ``kind`` ('C' or 'D'), ``m`` agents x ``n`` jobs, sense min;
    b_i = floor(tightness * sum_j a_ij / m) (0.8 in Chu & Beasley)."""
    if m < 1 or n < 1:
        raise ValueError("m/n: need at least one agent and one job")
    g = seeded_rng(seed, "gap", kind, m, n)
    if not tightness > 0:
        raise ValueError("tightness: must be > 0")
    if kind == "D":
        a = g.integers(1, 101, size=(m, n))
        c = 111 - a + g.integers(-10, 11, size=(m, n))
    elif kind == "C":
        a = g.integers(5, 26, size=(m, n))
        c = g.integers(10, 51, size=(m, n))
    else:
        raise ValueError(f"kind: must be 'C' or 'D', got {kind!r}")
    b = np.floor(tightness * a.sum(axis=1) / m)
    return Problem(cost=c, resource=a, capacity=b, sense="min",
                   name=f"gen{kind}-{m}x{n}-s{seed}", meta={"kind": kind})
