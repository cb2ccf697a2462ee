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


# ---- term builders ----------------------------------------------------------------------
#
# Each builder is a pure function of the problem and the variable layout: it returns its
# energy terms as a list of ``Term`` (in the order they are added), and :func:`build_qubo`
# adds the lists one after the other (:func:`_accumulate`), so every coefficient is summed
# in a fixed order.

Term = tuple[int, int, float]
"""One energy term: ``(v, v, w)`` is ``w x_v``, ``(u, v, w)`` with u != v is ``w x_u x_v``,
``(-1, -1, w)`` is the constant ``w``."""

SlackBits = list[tuple[int, list[int], list[int]]]
"""Per capacity constraint with slack: (agent, slack variable ids, slack coefficients)."""


def _constant(w: float) -> Term:
    return (-1, -1, w)


def _accumulate(num_vars: int, *term_lists: list[Term]) -> tuple[np.ndarray, np.ndarray, float]:
    """(linear, strictly upper quad, offset) adding each list's terms in order."""
    lin = np.zeros(num_vars)
    Q = np.zeros((num_vars, num_vars))
    offset = 0.0
    for terms in term_lists:
        for u, v, w in terms:
            if u < 0:
                offset += w
            elif u == v:
                lin[u] += w
            elif u < v:
                Q[u, v] += w
            else:
                Q[v, u] += w
    return lin, Q, offset


def one_hot_variables(problem: Problem, tasks: np.ndarray, candidates: Sequence[Sequence[int]]
                      ) -> tuple[list[int], list[int], list[list[int]]]:
    """(var_task, var_agent, groups): one x variable per (encoded task, candidate agent),
    grouped by task (the one-hot groups)."""
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
    return var_task, var_agent, groups


def slack_variables(problem: Problem, var_task: Sequence[int], var_agent: Sequence[int],
                    res_cap: np.ndarray) -> SlackBits:
    """Slack bits of each capacity constraint that can bind: sum_s 2^s sigma_is covering
    0..b_i (integer a, b); their ids follow the ``len(var_task)`` x variables."""
    nx = len(var_task)
    next_id = nx
    slack_of: SlackBits = []
    for i in range(problem.m):
        vs = [v for v in range(nx) if var_agent[v] == i]
        if not vs:
            continue
        a = problem.resource[i, [var_task[v] for v in vs]]
        if a.sum() <= res_cap[i]:
            continue  # cannot bind
        if not (np.allclose(a, np.round(a)) and np.isclose(res_cap[i], round(res_cap[i]))):
            raise ValueError("capacity: 'slack' needs integer resource and capacity")
        co = _slack_coeffs(int(round(max(res_cap[i], 0))))
        ids = list(range(next_id, next_id + len(co)))
        next_id += len(co)
        slack_of.append((i, ids, co))
    return slack_of


def fixed_cost_terms(problem: Problem, base: np.ndarray) -> list[Term]:
    """The fixed tasks' own cost sum_{j fixed} c_{base_j, j} (a constant)."""
    fixed = base >= 0
    if not fixed.any():
        return []
    return [_constant(float(problem.cost[base[fixed], np.flatnonzero(fixed)].sum()))]


def cost_terms(problem: Problem, vt: np.ndarray, va: np.ndarray, nx: int) -> list[Term]:
    """cost: sum_ij c_ij x_ij."""
    return [(v, v, problem.cost[va[v], vt[v]]) for v in range(nx)]


def one_hot_terms(groups: list[list[int]], P: float) -> list[Term]:
    """one-hot: P * sum_j (1 - sum_i x_ij + 2 sum_{i<i'} x_ij x_i'j)."""
    terms: list[Term] = []
    for g in groups:
        terms.append(_constant(P))
        for a_ in range(len(g)):
            terms.append((g[a_], g[a_], -P))
            for b_ in range(a_ + 1, len(g)):
                terms.append((g[a_], g[b_], 2 * P))
    return terms


def edge_terms(problem: Problem, vt: np.ndarray, va: np.ndarray, nx: int, base: np.ndarray,
               P: float) -> list[Term]:
    """comm and fidelity: per edge e = (j, k) and agents (i, i'),
    lambda1 w_e D_ii' (i != i') + P [F_ii' < fmin_e], on x_ij x_i'k; linear (or constant)
    when j or k (or both) is a fixed task."""
    if not len(problem.edges):
        return []
    ok = problem.pair_ok()
    fixed = base >= 0
    var_of: dict[int, list[int]] = {}
    for v in range(nx):
        var_of.setdefault(int(vt[v]), []).append(v)
    terms: list[Term] = []
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
                        terms.append((u, v, pc))
        elif jin and fixed[k]:
            terms += [(u, u, pair_cost(va[u], base[k])) for u in var_of[j]]
        elif kin and fixed[j]:
            terms += [(v, v, pair_cost(base[j], va[v])) for v in var_of[k]]
        elif fixed[j] and fixed[k]:
            terms.append(_constant(pair_cost(base[j], base[k])))
    return terms


def slack_capacity_terms(problem: Problem, slack_of: SlackBits, vt: np.ndarray, va: np.ndarray,
                         nx: int, res_cap: np.ndarray, P: float) -> list[Term]:
    """capacity "slack": P * sum_i (sum_j a_ij x_ij + sum_s 2^s sigma_is - b_i)^2."""
    terms: list[Term] = []
    for i, ids, co in slack_of:
        # P * (sum_v a_v x_v + sum_s co_s s - r)^2, terms with coefficient vector
        vs = [v for v in range(nx) if va[v] == i]
        coef = {v: problem.resource[i, vt[v]] for v in vs}
        coef.update(dict(zip(ids, co)))
        r = res_cap[i]
        items = list(coef.items())
        terms.append(_constant(P * r * r))
        for a_, (u, cu) in enumerate(items):
            terms.append((u, u, P * (cu * cu - 2 * r * cu)))
            for v, cv in items[a_ + 1:]:
                terms.append((u, v, 2 * P * cu * cv))
    return terms


def unbalanced_capacity_terms(problem: Problem, vt: np.ndarray, va: np.ndarray, nx: int,
                              res_cap: np.ndarray, P: float, unbalanced: tuple[float, float]
                              ) -> list[Term]:
    """capacity "unbalanced": P * sum_i (-u1 h_i + u2 h_i^2), h_i = b_i - sum_j a_ij x_ij
    (Montanez-Barrera et al. 2022)."""
    u1, u2 = unbalanced
    terms: list[Term] = []
    for i in range(problem.m):
        vs = [v for v in range(nx) if va[v] == i]
        if not vs:
            continue
        r = res_cap[i]
        # P*(-u1 h + u2 h^2), h = r - sum a x
        terms.append(_constant(P * (-u1 * r + u2 * r * r)))
        for a_, u in enumerate(vs):
            cu = problem.resource[i, vt[u]]
            terms.append((u, u, P * (u1 * cu + u2 * (cu * cu - 2 * r * cu))))
            for v in vs[a_ + 1:]:
                terms.append((u, v, 2 * P * u2 * cu * problem.resource[i, vt[v]]))
    return terms


def _encoded_tasks(problem: Problem, tasks: Sequence[int] | None,
                   candidates: Sequence[Sequence[int]] | None, base: np.ndarray | None
                   ) -> tuple[np.ndarray, Sequence[Sequence[int]], np.ndarray]:
    """(tasks, candidates, base) with the defaults filled in and the encoded tasks' base
    entries cleared to -1."""
    n = problem.n
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
    return tasks, candidates, base


def build_qubo(problem: Problem, tasks: Sequence[int] | None = None,
               candidates: Sequence[Sequence[int]] | None = None,
               base: np.ndarray | None = None, capacity: str = "slack",
               penalty: float | None = None, unbalanced: tuple[float, float] = (0.96, 0.0371)
               ) -> QUBO:
    """QUBO of the subproblem over ``tasks`` (default: all), each restricted to its
    ``candidates`` agents (default: its allowed agents); other tasks stay at ``base``.
    Energies include the fixed tasks' cost, so E = f(x) (without lambda2) when feasible.

    The energy is the sum of the term builders' terms (module docstring), added in the
    order fixed cost, cost, one-hot, edges, capacity."""
    if capacity not in ("slack", "unbalanced", "none"):
        raise ValueError(f"capacity: must be 'slack', 'unbalanced' or 'none', got {capacity!r}")
    tasks, candidates, base = _encoded_tasks(problem, tasks, candidates, base)
    P = default_penalty(problem, tasks) if penalty is None else float(penalty)
    var_task, var_agent, groups = one_hot_variables(problem, tasks, candidates)
    nx = len(var_task)
    res_cap = problem.capacity - problem.loads(base)
    slack_of = slack_variables(problem, var_task, var_agent, res_cap) if capacity == "slack" else []
    n_slack = sum(len(ids) for _, ids, _ in slack_of)
    vt = np.array(var_task + [-1] * n_slack)
    va = np.array(var_agent + [-1] * n_slack)
    if capacity == "slack":
        cap_terms = slack_capacity_terms(problem, slack_of, vt, va, nx, res_cap, P)
    elif capacity == "unbalanced":
        cap_terms = unbalanced_capacity_terms(problem, vt, va, nx, res_cap, P, unbalanced)
    else:
        cap_terms = []
    lin, Q, offset = _accumulate(
        len(vt),
        fixed_cost_terms(problem, base),
        cost_terms(problem, vt, va, nx),
        one_hot_terms(groups, P),
        edge_terms(problem, vt, va, nx, base, P),
        cap_terms,
    )
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
