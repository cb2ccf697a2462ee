"""Exact solvers with a time limit: MILP via ``scipy.optimize.milp`` (HiGHS) and OR-Tools
CP-SAT (optional dependency).

MILP (minimisation, binaries x_ij for allowed (i, j)):

    min  sum c_ij x_ij + lambda1 sum_e w_e sum_{i != i'} D_ii' y_eii' + lambda2 (U - V)
    s.t. sum_i x_ij = 1                      (each task placed once)
         sum_j a_ij x_ij <= b_i              (capacity)
         sum_i' y_eii' = x_ij,  sum_i y_eii' = x_i'k   for e = (j, k)  (transport linearisation
                                             of x_ij x_i'k; y_eii' = 0 if F_ii' < fmin_e)
         V <= sum_j t_ij x_ij <= U           (load range)

``bound`` is the solver's proven dual bound (min sense).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from fedqnn.scheduling.problem import Problem

__all__ = ["ExactResult", "solve_highs", "solve_cpsat", "cpsat_available"]


@dataclass
class ExactResult:
    x: np.ndarray | None     # assignment or None if no feasible solution found
    objective: float | None  # internal f
    bound: float | None      # proven lower bound on internal f
    optimal: bool
    status: str
    seconds: float


class _Rows:
    """The MILP's constraint rows in coordinate form, appended one by one."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []
        self.lo: list[float] = []
        self.hi: list[float] = []
        self.r = 0

    def add(self, cols: list[int], vals: list[float], lo: float, hi: float) -> None:
        self.rows += [self.r] * len(cols)
        self.cols += cols
        self.vals += vals
        self.lo.append(lo)
        self.hi.append(hi)
        self.r += 1


def _assignment_rows(p: Problem, col: np.ndarray, J: np.ndarray, rows: _Rows) -> None:
    """sum_i x_ij = 1 (each task placed once), then sum_j a_ij x_ij <= b_i (capacity)."""
    for j in range(p.n):  # one-hot
        vs = col[:, j][col[:, j] >= 0]
        rows.add(list(vs), [1.0] * len(vs), 1.0, 1.0)
    for i in range(p.m):  # capacity
        vs = col[i][col[i] >= 0]
        rows.add(list(vs), list(p.resource[i, J[vs]]), -np.inf, p.capacity[i])


def _transport_rows(p: Problem, col: np.ndarray, nv: int, rows: _Rows, c: list[np.ndarray],
                    ub_extra: list[float]) -> int:
    """y_eii' per edge e = (j, k): sum_i' y_eii' = x_ij, sum_i y_eii' = x_i'k (y_eii' = 0 if
    F_ii' < fmin_e), cost lambda1 w_e D_ii' (i != i'). Returns the new variable count."""
    ok = p.pair_ok()
    for e, (j, k) in enumerate(p.edges):
        ids = nv + np.arange(p.m * p.m).reshape(p.m, p.m)
        cost_y = p.lambda1 * p.edge_weight[e] * p.distance.copy()
        np.fill_diagonal(cost_y, 0.0)
        c.append(cost_y.reshape(-1))
        allowed_y = ok[e] & p.allowed[:, j][:, None] & p.allowed[:, k][None, :]
        ub_extra += list(allowed_y.reshape(-1).astype(float))
        nv += p.m * p.m
        for i in range(p.m):  # sum_i' y_ii' = x_ij
            _marginal_row(rows, list(ids[i]), col[i, j], p.m)
        for i2 in range(p.m):  # sum_i y_ii' = x_i'k
            _marginal_row(rows, list(ids[:, i2]), col[i2, k], p.m)
    return nv


def _marginal_row(rows: _Rows, y_ids: list[int], x_col: int, m: int) -> None:
    """sum of ``y_ids`` - x = 0 (no x term when the placement is not allowed)."""
    cols, vals = y_ids, [1.0] * m
    if x_col >= 0:
        cols, vals = cols + [x_col], vals + [-1.0]
    rows.add(cols, vals, 0.0, 0.0)


def _load_range_rows(p: Problem, col: np.ndarray, J: np.ndarray, nv: int, rows: _Rows,
                     c: list[np.ndarray], ub_extra: list[float]) -> int:
    """V <= sum_j t_ij x_ij <= U with cost lambda2 (U - V). Returns the new variable count."""
    U, V = nv, nv + 1
    c.append(np.array([p.lambda2, -p.lambda2]))
    ub_extra += [np.inf, np.inf]
    nv += 2
    for i in range(p.m):
        vs = col[i][col[i] >= 0]
        for other, sgn in ((U, 1.0), (V, -1.0)):
            # load - U <= 0 ; load - V >= 0
            rows.add(list(vs) + [other], list(p.duration[i, J[vs]]) + [-1.0],
                     -np.inf if sgn > 0 else 0.0, 0.0 if sgn > 0 else np.inf)
    return nv


def _result(p: Problem, res: Any, ag: np.ndarray, J: np.ndarray, secs: float) -> ExactResult:
    """ExactResult of scipy's milp result (assignment from the first ``len(ag)`` binaries)."""
    bound = getattr(res, "mip_dual_bound", None)
    bound = None if bound is None or not np.isfinite(bound) else float(bound)
    if res.x is None:
        return ExactResult(None, None, bound, False, str(res.message), secs)
    xs = res.x[:len(ag)] > 0.5
    x = -np.ones(p.n, dtype=int)
    x[J[xs]] = ag[xs]
    obj = p.evaluate(x).objective
    optimal = res.status == 0
    if optimal and bound is None:
        bound = obj
    return ExactResult(x, obj, bound, optimal, str(res.message), secs)


def solve_highs(problem: Problem, time_limit: float = 10.0, mip_gap: float = 0.0) -> ExactResult:
    """Solve the MILP above with HiGHS (scipy) within ``time_limit`` seconds."""
    p = problem
    t0 = time.perf_counter()
    ag, J = np.nonzero(p.allowed)
    nx = len(ag)
    col = -np.ones((p.m, p.n), dtype=int)
    col[ag, J] = np.arange(nx)
    c = [p.cost[ag, J]]
    rows = _Rows()
    _assignment_rows(p, col, J, rows)
    nv = nx
    ub_extra: list[float] = []
    if len(p.edges) and (p.lambda1 > 0 or p.has_pair_constraints):
        nv = _transport_rows(p, col, nv, rows, c, ub_extra)
    if p.lambda2:
        nv = _load_range_rows(p, col, J, nv, rows, c, ub_extra)
    cvec = np.concatenate(c)
    A = sp.csr_array((rows.vals, (rows.rows, rows.cols)), shape=(rows.r, nv))
    integrality = np.zeros(nv)
    integrality[:nx] = 1
    ub = np.concatenate([np.ones(nx), np.array(ub_extra, dtype=float)])
    lb = np.zeros(nv)
    if p.lambda2:
        lb[-2:] = -np.inf
    res = milp(cvec, constraints=LinearConstraint(A, rows.lo, rows.hi), integrality=integrality,
               bounds=Bounds(lb, ub),
               options={"time_limit": float(max(time_limit, 0.01)), "mip_rel_gap": mip_gap,
                        "disp": False})
    return _result(p, res, ag, J, time.perf_counter() - t0)


def cpsat_available() -> bool:
    """True if OR-Tools CP-SAT can be imported."""
    try:
        from ortools.sat.python import cp_model  # noqa: F401
    except ImportError:
        return False
    return True


def solve_cpsat(problem: Problem, time_limit: float = 10.0, hint: np.ndarray | None = None,
                workers: int = 1, resolution: float = 1.0, seed: int = 0) -> ExactResult:
    """CP-SAT on the same model (costs scaled by 1/``resolution`` and rounded: exact for
    integer data at resolution 1), optionally warm-started from assignment ``hint``."""
    from ortools.sat.python import cp_model

    p = problem
    t0 = time.perf_counter()
    s = 1.0 / resolution

    def as_int(a: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(a) * s).astype(np.int64)

    model = cp_model.CpModel()
    X = {(i, j): model.NewBoolVar(f"x{i}_{j}") for i, j in zip(*np.nonzero(p.allowed))}
    for j in range(p.n):
        model.AddExactlyOne([X[i, j] for i in range(p.m) if (i, j) in X])
    res_int = np.round(p.resource).astype(np.int64)
    if not np.allclose(res_int, p.resource) or not np.allclose(p.capacity, np.round(p.capacity)):
        raise ValueError("resource/capacity: CP-SAT path needs integer resource and capacity")
    for i in range(p.m):
        model.Add(sum(int(res_int[i, j]) * X[i, j] for j in range(p.n) if (i, j) in X)
                  <= int(round(p.capacity[i])))
    ci = as_int(p.cost)
    terms = [int(ci[i, j]) * v for (i, j), v in X.items()]
    if len(p.edges) and (p.lambda1 > 0 or p.has_pair_constraints):
        ok = p.pair_ok()
        D = as_int(p.lambda1 * p.distance)
        for e, (j, k) in enumerate(p.edges):
            w = float(p.edge_weight[e])
            for i in range(p.m):
                for i2 in range(p.m):
                    if (i, j) not in X or (i2, k) not in X:
                        continue
                    if not ok[e, i, i2]:
                        model.AddBoolOr([X[i, j].Not(), X[i2, k].Not()])
                    elif i != i2 and D[i, i2] > 0:
                        y = model.NewBoolVar("")
                        model.AddBoolOr([X[i, j].Not(), X[i2, k].Not(), y])
                        terms.append(int(round(w * D[i, i2])) * y)
    if p.lambda2:
        ti = as_int(p.duration)
        hi_ = int(ti.sum())
        U = model.NewIntVar(0, hi_, "U")
        V = model.NewIntVar(0, hi_, "V")
        for i in range(p.m):
            load = sum(int(ti[i, j]) * X[i, j] for j in range(p.n) if (i, j) in X)
            model.Add(load <= U)
            model.Add(load >= V)
        terms.append(int(round(p.lambda2)) * (U - V))
    model.Minimize(sum(terms))
    if hint is not None:
        for (i, j), v in X.items():
            model.AddHint(v, int(hint[j] == i))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(max(time_limit, 0.01))
    solver.parameters.num_workers = int(workers)
    solver.parameters.random_seed = int(seed)
    st = solver.Solve(model)
    secs = time.perf_counter() - t0
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return ExactResult(None, None, None, False, solver.StatusName(st), secs)
    x = -np.ones(p.n, dtype=int)
    for (i, j), v in X.items():
        if solver.Value(v):
            x[j] = i
    exact_data = resolution == 1.0 and np.allclose(p.cost, ci) and not p.lambda1 and not p.lambda2
    bound = float(solver.BestObjectiveBound()) / s if exact_data else None
    return ExactResult(x, p.evaluate(x).objective, bound, st == cp_model.OPTIMAL,
                       solver.StatusName(st), secs)
