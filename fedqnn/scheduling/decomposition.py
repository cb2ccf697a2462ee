"""Decomposition of a large problem into QAOA-sized subproblems (QAOA as a large-neighbourhood
move).  A block is k tasks, each with r candidate agents (its current agent plus the r - 1
cheapest other allowed agents by marginal cost), so k * r <= the qubit budget; every other
task stays at the incumbent.  The block QUBO uses the residual capacities
b_i - sum_{fixed j on i} a_ij (see :func:`fedqnn.scheduling.qubo.build_qubo`).
"""

from __future__ import annotations

import numpy as np

from fedqnn.scheduling.problem import Problem
from fedqnn.scheduling.qubo import QUBO, build_qubo

__all__ = ["block_shape", "blocks", "block_qubo"]


def block_shape(problem: Problem, qubits: int) -> tuple[int, int]:
    """(tasks per block k, candidates per task r) with k * r <= ``qubits``; r = min(m, 4)."""
    if qubits < 2:
        raise ValueError("qubits: need at least 2 per block")
    r = max(1, min(problem.m, 4, qubits))
    k = max(1, min(problem.n, qubits // r))
    return k, r


def blocks(problem: Problem, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A random partition of the tasks into blocks of (at most) k: one sweep."""
    perm = rng.permutation(problem.n)
    return [perm[s:s + k] for s in range(0, problem.n, k)]


def block_qubo(problem: Problem, x: np.ndarray, tasks: np.ndarray, r: int,
               capacity: str = "unbalanced") -> QUBO:
    """QUBO over ``tasks`` with r candidates each, others fixed at ``x``."""
    cm = np.where(problem.allowed, problem.cost, np.inf)
    cands = []
    for t in tasks:
        order = [int(i) for i in np.argsort(cm[:, t], kind="stable") if np.isfinite(cm[i, t])]
        cur = int(x[t]) if x[t] >= 0 and problem.allowed[x[t], t] else None
        pick = ([cur] if cur is not None else []) + [i for i in order if i != cur]
        cands.append(sorted(pick[:r]))
    return build_qubo(problem, tasks=tasks, candidates=cands, base=x, capacity=capacity)
