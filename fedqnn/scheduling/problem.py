"""The assignment model every scheduler in this package solves, and its evaluation.

Decision: ``x_j = i`` places task (job) ``j`` on QPU (agent) ``i``; equivalently binaries
``x_ij`` with ``sum_i x_ij = 1``.  Internally every problem is a *minimisation*:

    f(x) = sum_j c[x_j, j]                                     (priority-weighted cost)
         + lambda1 * sum_{e=(j,k)} w_e * D[x_j, x_k]            (communication cost)
         + lambda2 * (max_i L_i - min_i L_i),  L_i = sum_{j: x_j=i} t[i, j]   (load imbalance)

subject to

    sum_{j: x_j=i} a[i, j] <= b_i            (capacity, qubits)
    allowed[x_j, j]                          (coherence: t[i,j] <= T2_i; per-task fidelity)
    F[x_j, x_k] >= fmin_e  for e=(j,k)       (link fidelity of communicating tasks)

The generalised assignment problem (GAP) is the special case lambda1 = lambda2 = 0 with no
edges; OR-Library GAP files are maximisation problems, stored as ``cost = -profit`` with
``sense = "max"`` so that :meth:`Problem.report` gives back the file's own total.
Precedence does not restrict the assignment (any placement admits a schedule that respects
a DAG); it fixes start times, see :mod:`fedqnn.scheduling.placement`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Problem", "Solution", "Evaluation"]

_TOL = 1e-9


@dataclass
class Evaluation:
    """Objective (internal minimisation units) and constraint violations of one assignment."""

    objective: float
    violations: dict[str, float]

    @property
    def feasible(self) -> bool:
        return all(v <= _TOL for v in self.violations.values())


@dataclass
class Problem:
    """An assignment problem (see the module docstring for the formulas).

    Arrays: ``cost``, ``resource``, ``duration``, ``allowed`` are (m agents, n tasks);
    ``capacity`` is (m,); ``edges`` is (E, 2) task pairs with ``edge_weight`` and
    ``edge_fmin`` (E,); ``distance`` and ``fidelity`` are (m, m) between agents.
    """

    cost: np.ndarray
    resource: np.ndarray
    capacity: np.ndarray
    allowed: np.ndarray | None = None
    edges: np.ndarray | None = None
    edge_weight: np.ndarray | None = None
    edge_fmin: np.ndarray | None = None
    distance: np.ndarray | None = None
    fidelity: np.ndarray | None = None
    duration: np.ndarray | None = None
    lambda1: float = 0.0
    lambda2: float = 0.0
    sense: str = "min"
    name: str = ""
    optimum: float | None = None  # known optimum in the reported sense, if any
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cost = np.asarray(self.cost, dtype=float)
        if self.cost.ndim != 2:
            raise ValueError("cost: expected a 2-D (agents x tasks) array")
        m, n = self.cost.shape
        if m < 1 or n < 1:
            raise ValueError("cost: needs at least one agent and one task")
        self.resource = np.asarray(self.resource, dtype=float)
        if self.resource.shape != (m, n):
            raise ValueError(f"resource: shape {self.resource.shape} != cost shape {(m, n)}")
        if np.any(self.resource < 0):
            raise ValueError("resource: must be non-negative")
        self.capacity = np.asarray(self.capacity, dtype=float).reshape(-1)
        if self.capacity.shape != (m,):
            raise ValueError(f"capacity: expected {m} values, got {self.capacity.shape[0]}")
        if not np.all(np.isfinite(self.cost)):
            raise ValueError("cost: must be finite (use 'allowed' to forbid placements)")
        self.allowed = (np.ones((m, n), bool) if self.allowed is None
                        else np.asarray(self.allowed, dtype=bool))
        if self.allowed.shape != (m, n):
            raise ValueError("allowed: shape must equal cost shape")
        if not self.allowed.any(axis=0).all():
            bad = int(np.flatnonzero(~self.allowed.any(axis=0))[0])
            raise ValueError(f"allowed: task {bad} has no allowed agent")
        if self.edges is None or len(self.edges) == 0:
            self.edges = np.zeros((0, 2), dtype=int)
        self.edges = np.asarray(self.edges, dtype=int).reshape(-1, 2)
        E = len(self.edges)
        if E and (self.edges.min() < 0 or self.edges.max() >= n):
            raise ValueError("edges: task index out of range")
        self.edge_weight = (np.ones(E) if self.edge_weight is None
                            else np.asarray(self.edge_weight, float).reshape(-1))
        self.edge_fmin = (np.zeros(E) if self.edge_fmin is None
                          else np.asarray(self.edge_fmin, float).reshape(-1))
        if len(self.edge_weight) != E or len(self.edge_fmin) != E:
            raise ValueError("edge_weight/edge_fmin: one value per edge")
        self.distance = (np.zeros((m, m)) if self.distance is None
                         else np.asarray(self.distance, float))
        self.fidelity = (np.ones((m, m)) if self.fidelity is None
                         else np.asarray(self.fidelity, float))
        if self.distance.shape != (m, m) or self.fidelity.shape != (m, m):
            raise ValueError("distance/fidelity: expected (agents x agents) arrays")
        self.duration = (np.zeros((m, n)) if self.duration is None
                         else np.asarray(self.duration, float))
        if self.duration.shape != (m, n):
            raise ValueError("duration: shape must equal cost shape")
        if self.sense not in ("min", "max"):
            raise ValueError(f"sense: must be 'min' or 'max', got {self.sense!r}")
        if self.lambda1 < 0 or self.lambda2 < 0:
            raise ValueError("lambda1/lambda2: must be non-negative")

    # ---- shape helpers -------------------------------------------------------------------
    @property
    def m(self) -> int:
        """Number of agents (QPUs)."""
        return self.cost.shape[0]

    @property
    def n(self) -> int:
        """Number of tasks (jobs)."""
        return self.cost.shape[1]

    @property
    def is_linear(self) -> bool:
        """True for a pure GAP objective (no communication or imbalance term)."""
        return (len(self.edges) == 0 or self.lambda1 == 0) and self.lambda2 == 0 and \
            not self.has_pair_constraints

    @property
    def has_pair_constraints(self) -> bool:
        """True if some edge forbids a pair of agents by link fidelity."""
        if len(self.edges) == 0:
            return False
        return bool(np.any(self.fidelity[None, :, :] < self.edge_fmin[:, None, None] - _TOL))

    def pair_ok(self) -> np.ndarray:
        """(E, m, m) bool: agent pair (i, i') satisfies edge e's fidelity threshold."""
        return self.fidelity[None, :, :] >= self.edge_fmin[:, None, None] - _TOL

    def sign(self) -> float:
        """Reported value = sign * internal objective (``-1`` for maximisation files)."""
        return -1.0 if self.sense == "max" else 1.0

    def report(self, internal: float) -> float:
        """Internal (minimisation) objective -> the problem's own units and sense."""
        return self.sign() * internal

    # ---- evaluation ----------------------------------------------------------------------
    def loads(self, x: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Per-agent totals of ``weights`` (default ``resource``) under assignment ``x``."""
        w = self.resource if weights is None else weights
        x = np.asarray(x, dtype=int)
        ok = x >= 0
        out = np.zeros(self.m)
        np.add.at(out, x[ok], w[x[ok], np.flatnonzero(ok)])
        return out

    def evaluate(self, x: np.ndarray) -> Evaluation:
        """f(x) and violations: ``unassigned`` tasks, ``capacity`` excess (sum over agents),
        ``not_allowed`` placements, ``fidelity`` edges below threshold."""
        x = np.asarray(x, dtype=int).reshape(-1)
        if x.shape != (self.n,):
            raise ValueError(f"assignment: expected {self.n} entries, got {x.shape[0]}")
        if np.any(x >= self.m):
            raise ValueError("assignment: agent index out of range")
        ok = x >= 0
        idx = np.flatnonzero(ok)
        obj = float(self.cost[x[ok], idx].sum())
        viol = {"unassigned": float((~ok).sum())}
        viol["capacity"] = float(np.maximum(self.loads(x) - self.capacity, 0).sum())
        viol["not_allowed"] = float((~self.allowed[x[ok], idx]).sum())
        fid = 0.0
        if len(self.edges):
            j, k = self.edges[:, 0], self.edges[:, 1]
            both = ok[j] & ok[k]
            xj, xk = x[j[both]], x[k[both]]
            if self.lambda1:
                obj += self.lambda1 * float((self.edge_weight[both] * self.distance[xj, xk]).sum())
            fid = float((self.fidelity[xj, xk] < self.edge_fmin[both] - _TOL).sum())
        viol["fidelity"] = fid
        if self.lambda2:
            L = self.loads(x, self.duration)
            obj += self.lambda2 * float(L.max() - L.min())
        return Evaluation(obj, viol)


@dataclass
class Solution:
    """What a scheduler returns.  ``objective`` and ``bound`` are in the problem's own
    sense and units (``Problem.report``); ``bound`` is a proven bound on the optimum
    (upper for ``max``, lower for ``min``) or None."""

    assignment: np.ndarray
    objective: float
    feasible: bool
    violations: dict[str, float]
    seconds: float
    bound: float | None = None
    method: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def gap_pct(self, reference: float | None) -> float | None:
        """100 * |reference - objective| / |reference| (None without a reference)."""
        if reference is None or not self.feasible:
            return None
        return 100.0 * abs(reference - self.objective) / max(abs(reference), 1e-12)
