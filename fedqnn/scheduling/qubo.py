"""QUBO and Ising encodings of (sub)problems of :class:`~fedqnn.scheduling.problem.Problem`.

Binary x_v, one per (task j, candidate agent i) pair, plus slack bits for capacity:

    E(x) = offset + sum_v l_v x_v + sum_{u<v} Q_uv x_u x_v

built from (P = penalty weight, see :func:`default_penalty`)

    cost         sum_ij c_ij x_ij
    comm         lambda1 * sum_{e=(j,k)} w_e sum_{i != i'} D_ii' x_ij x_i'k
    fidelity     P * sum_e sum_{(i,i'): F_ii' < fmin_e} x_ij x_i'k
    one-hot      P * sum_j (1 - sum_i x_ij)^2 = P * sum_j (1 - sum_i x_ij + 2 sum_{i<i'} x_ij x_i'j)
    capacity     "slack":      P * sum_i (sum_j a_ij x_ij + sum_s 2^s sigma_is - b_i)^2  (integer a, b)
                 "unbalanced": P * sum_i (-u1 h_i + u2 h_i^2), h_i = b_i - sum_j a_ij x_ij
                               (Montanez-Barrera et al. 2022: no slack qubits, not exact)
                 "none":       no capacity term (left to repair).

The load-imbalance term (lambda2) is not quadratic in x (max - min); it is left to the
classical refinement.  With ``capacity="slack"`` and integer data the minimum of E equals
f at the optimal assignment (penalties dominate any objective gain).

Ising form (x = (1 - z)/2, z = +1 for |0>, -1 for |1>):

    E(z) = const + sum_v h_v z_v + sum_{u<v} J_uv z_u z_v,
    h_v = -(l_v/2 + sum_{u != v} Q_uv/4),  J_uv = Q_uv/4,
    const = offset + sum_v l_v/2 + sum_{u<v} Q_uv/4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedqnn.scheduling.problem import Problem

__all__ = ["QUBO", "Ising", "build_qubo", "qubo_to_ising", "default_penalty", "all_bitstrings"]


@dataclass
class QUBO:
    """E(x) = offset + l.x + x^T Q x with Q strictly upper triangular."""

    linear: np.ndarray
    quad: np.ndarray
    offset: float
    var_task: np.ndarray   # task of each x variable (-1 for slack bits)
    var_agent: np.ndarray  # agent of each x variable (-1 for slack bits)
    tasks: np.ndarray      # tasks encoded (subproblem)
    base: np.ndarray       # full assignment used for the fixed tasks
    groups: list[list[int]]  # variable indices of each encoded task (one-hot groups)

    @property
    def num_vars(self) -> int:
        return len(self.linear)

    def energies(self, bits: np.ndarray) -> np.ndarray:
        """E for each row of a (K, N) 0/1 array."""
        b = np.asarray(bits, dtype=float)
        return self.offset + b @ self.linear + np.einsum("ki,ij,kj->k", b, self.quad, b)

    def decode(self, bits: np.ndarray) -> np.ndarray:
        """Full assignment from one bit row: encoded task j -> its agent if exactly one of
        its bits is set, else -1 (broken one-hot, left to repair); other tasks from ``base``."""
        x = self.base.copy()
        b = np.asarray(bits).reshape(-1)
        for t, g in zip(self.tasks, self.groups):
            on = [v for v in g if b[v]]
            x[t] = self.var_agent[on[0]] if len(on) == 1 else -1
        return x

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Bits of the x variables for assignment ``x`` (slack bits set to 0)."""
        b = np.zeros(self.num_vars, dtype=np.int8)
        for t, g in zip(self.tasks, self.groups):
            for v in g:
                if self.var_agent[v] == x[t]:
                    b[v] = 1
        return b


@dataclass
class Ising:
    """E(z) = const + h.z + sum_{u<v} J_uv z_u z_v with z in {+1, -1}."""

    h: np.ndarray
    J: np.ndarray
    const: float

    def energies(self, spins: np.ndarray) -> np.ndarray:
        z = np.asarray(spins, dtype=float)
        return self.const + z @ self.h + np.einsum("ki,ij,kj->k", z, self.J, z)


def default_penalty(problem: Problem, tasks: Sequence[int] | None = None) -> float:
    """P = 1 + sum over encoded tasks of (max - min candidate cost) + lambda1 * sum_e w_e max D:
    larger than any objective change a constraint violation could buy."""
    t = np.arange(problem.n) if tasks is None else np.asarray(tasks)
    c = np.where(problem.allowed[:, t], problem.cost[:, t], np.nan)
    spread = float(np.nansum(np.nanmax(c, 0) - np.nanmin(c, 0)))
    comm = problem.lambda1 * float(problem.edge_weight.sum()) * float(problem.distance.max(initial=0))
    return 1.0 + spread + comm


def _slack_coeffs(cap: int) -> list[int]:
    """Coefficients whose subset sums are exactly 0..cap (bounded binary expansion)."""
    if cap <= 0:
        return []
    k = int(np.floor(np.log2(cap))) + 1
    coeffs = [1 << s for s in range(k - 1)]
    coeffs.append(cap - (1 << (k - 1)) + 1)
    return coeffs


def build_qubo(problem: Problem, tasks: Sequence[int] | None = None,
               candidates: Sequence[Sequence[int]] | None = None,
               base: np.ndarray | None = None, capacity: str = "slack",
               penalty: float | None = None, unbalanced: tuple[float, float] = (0.96, 0.0371)
               ) -> QUBO:
    """QUBO of the subproblem over ``tasks`` (default: all), each restricted to its
    ``candidates`` agents (default: its allowed agents); other tasks stay at ``base``.
    Energies include the fixed tasks' cost, so E = f(x) (without lambda2) when feasible."""
    if capacity not in ("slack", "unbalanced", "none"):
        raise ValueError(f"capacity: must be 'slack', 'unbalanced' or 'none', got {capacity!r}")
    m, n = problem.m, problem.n
    tasks = np.arange(n) if tasks is None else np.asarray(tasks, dtype=int)
    if base is None:
        if len(tasks) != n:
            raise ValueError("base: required when encoding a subset of tasks")
        base = -np.ones(n, dtype=int)
    base = np.asarray(base, dtype=int).copy()
    base[tasks] = -1
    if candidates is None:
        candidates = [np.flatnonzero(problem.allowed[:, t]) for t in tasks]
    if len(candidates) != len(tasks):
        raise ValueError("candidates: one list per encoded task")
    P = default_penalty(problem, tasks) if penalty is None else float(penalty)

    var_task: list[int] = []
    var_agent: list[int] = []
    groups: list[list[int]] = []
    for t, cand in zip(tasks, candidates):
        g = []
        for i in cand:
            if not problem.allowed[i, t]:
                raise ValueError(f"candidates: agent {i} not allowed for task {t}")
            g.append(len(var_task))
            var_task.append(int(t))
            var_agent.append(int(i))
        if not g:
            raise ValueError(f"candidates: task {t} has none")
        groups.append(g)
    nx = len(var_task)
    fixed = base >= 0
    res_cap = problem.capacity - problem.loads(base)
    # slack bits
    slack_of: list[tuple[int, list[int], list[int]]] = []  # (agent, var ids, coeffs)
    if capacity == "slack":
        for i in range(m):
            vs = [v for v in range(nx) if var_agent[v] == i]
            if not vs:
                continue
            a = problem.resource[i, [var_task[v] for v in vs]]
            if a.sum() <= res_cap[i]:
                continue  # cannot bind
            if not (np.allclose(a, np.round(a)) and np.isclose(res_cap[i], round(res_cap[i]))):
                raise ValueError("capacity: 'slack' needs integer resource and capacity")
            co = _slack_coeffs(int(round(max(res_cap[i], 0))))
            ids = list(range(len(var_task), len(var_task) + len(co)))
            var_task += [-1] * len(co)
            var_agent += [-1] * len(co)
            slack_of.append((i, ids, co))
    N = len(var_task)
    lin = np.zeros(N)
    Q = np.zeros((N, N))
    offset = 0.0
    vt = np.array(var_task)
    va = np.array(var_agent)

    def add_q(u: int, v: int, w: float) -> None:
        if u == v:
            lin[u] += w
        elif u < v:
            Q[u, v] += w
        else:
            Q[v, u] += w

    # fixed tasks: their own cost (+ comm/fidelity among fixed, below)
    if fixed.any():
        offset += float(problem.cost[base[fixed], np.flatnonzero(fixed)].sum())
    # cost
    for v in range(nx):
        lin[v] += problem.cost[va[v], vt[v]]
    # one-hot
    for g in groups:
        offset += P
        for a_ in range(len(g)):
            lin[g[a_]] -= P
            for b_ in range(a_ + 1, len(g)):
                add_q(g[a_], g[b_], 2 * P)
    # edges
    if len(problem.edges):
        ok = problem.pair_ok()
        var_of = {}
        for v in range(nx):
            var_of.setdefault(int(vt[v]), []).append(v)
        for e, (j, k) in enumerate(problem.edges):
            w = problem.lambda1 * problem.edge_weight[e]

            def pair_cost(i: int, i2: int, e: int = e, w: float = w) -> float:
                val = w * problem.distance[i, i2] if i != i2 else 0.0
                return val + (0.0 if ok[e, i, i2] else P)

            jin, kin = j in var_of, k in var_of
            if jin and kin:
                for u in var_of[j]:
                    for v in var_of[k]:
                        pc = pair_cost(va[u], va[v])
                        if pc:
                            add_q(u, v, pc)
            elif jin and fixed[k]:
                for u in var_of[j]:
                    lin[u] += pair_cost(va[u], base[k])
            elif kin and fixed[j]:
                for v in var_of[k]:
                    lin[v] += pair_cost(base[j], va[v])
            elif fixed[j] and fixed[k]:
                offset += pair_cost(base[j], base[k])
    # capacity
    if capacity == "slack":
        for i, ids, co in slack_of:
            # P * (sum_v a_v x_v + sum_s co_s s - r)^2, terms with coefficient vector
            vs = [v for v in range(nx) if va[v] == i]
            coef = {v: problem.resource[i, vt[v]] for v in vs}
            coef.update(dict(zip(ids, co)))
            r = res_cap[i]
            items = list(coef.items())
            offset += P * r * r
            for a_, (u, cu) in enumerate(items):
                lin[u] += P * (cu * cu - 2 * r * cu)
                for v, cv in items[a_ + 1:]:
                    add_q(u, v, 2 * P * cu * cv)
    elif capacity == "unbalanced":
        u1, u2 = unbalanced
        for i in range(m):
            vs = [v for v in range(nx) if va[v] == i]
            if not vs:
                continue
            r = res_cap[i]
            # P*(-u1 h + u2 h^2), h = r - sum a x
            offset += P * (-u1 * r + u2 * r * r)
            for a_, u in enumerate(vs):
                cu = problem.resource[i, vt[u]]
                lin[u] += P * (u1 * cu + u2 * (cu * cu - 2 * r * cu))
                for v in vs[a_ + 1:]:
                    add_q(u, v, 2 * P * u2 * cu * problem.resource[i, vt[v]])
    return QUBO(lin, Q, offset, vt, va, tasks, base, groups)


def qubo_to_ising(q: QUBO) -> Ising:
    """Substitute x = (1 - z)/2 (see the module docstring for h, J, const)."""
    Q = q.quad
    sym = Q + Q.T
    h = -(q.linear / 2 + sym.sum(axis=1) / 4)
    J = Q / 4
    const = q.offset + q.linear.sum() / 2 + Q.sum() / 4
    return Ising(h, J, const)


def all_bitstrings(N: int) -> np.ndarray:
    """(2^N, N) 0/1 rows; row b has wire 0 as the most significant bit (PennyLane order)."""
    idx = np.arange(2 ** N, dtype=np.int64)
    return ((idx[:, None] >> np.arange(N - 1, -1, -1)) & 1).astype(np.int8)
