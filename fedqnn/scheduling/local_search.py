"""Classical refinement: repair of infeasible assignments and tabu search (shift/swap).

Tabu search minimises the penalised objective

    g(x) = f(x) + rho * (sum_i max(0, L_i - b_i) + abar * #fidelity violations)

(f from :mod:`fedqnn.scheduling.problem`, ``abar`` = mean resource use) over shift moves
(j -> i) and swap moves (j <-> k), with an adaptive rho (x1.05 while infeasible, /1.05 while
feasible; Yagiura-style strategic oscillation), a tabu tenure on (agent, task) pairs left,
aspiration by a new best feasible, and a perturbation of the best after a stall.  Shift
deltas are exact for every term; swap deltas are exact for linear (GAP) problems and
re-checked by full evaluation otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from fedqnn.scheduling.problem import Evaluation, Problem

__all__ = ["repair", "tabu_search", "TabuResult"]


def _cmask(p: Problem) -> np.ndarray:
    return np.where(p.allowed, p.cost, np.inf)


def repair(problem: Problem, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Greedy repair: place unassigned/not-allowed tasks on the cheapest allowed agent with
    room (else the least overloaded), then move tasks off overloaded agents choosing the
    smallest cost increase per unit of resource freed.  May leave an infeasible result
    (callers evaluate and flag it)."""
    p = problem
    x = np.asarray(x, dtype=int).copy()
    ar = np.arange(p.n)
    bad = (x < 0) | ~p.allowed[np.where(x < 0, 0, x), ar]
    x[bad] = -1
    load = p.loads(x)
    cm = _cmask(p)
    order = np.flatnonzero(bad)
    if rng is not None:
        rng.shuffle(order)
    for j in order:
        room = load + p.resource[:, j] <= p.capacity + 1e-9
        cand = np.where(room, cm[:, j], np.inf)
        i = int(np.argmin(cand)) if np.isfinite(cand).any() else \
            int(np.argmin(np.where(p.allowed[:, j], load + p.resource[:, j] - p.capacity, np.inf)))
        x[j] = i
        load[i] += p.resource[i, j]
    for _ in range(4 * p.n):
        over = np.flatnonzero(load > p.capacity + 1e-9)
        if not len(over):
            break
        best = None
        for i in over:
            for j in np.flatnonzero(x == i):
                room = (load + p.resource[:, j] <= p.capacity + 1e-9) & p.allowed[:, j]
                room[i] = False
                if not room.any():
                    continue
                i2 = int(np.argmin(np.where(room, cm[:, j], np.inf)))
                score = (cm[i2, j] - cm[i, j]) / max(p.resource[i, j], 1e-9)
                if best is None or score < best[0]:
                    best = (score, j, i, i2)
        if best is None:
            break
        _, j, i, i2 = best
        x[j] = i2
        load[i] -= p.resource[i, j]
        load[i2] += p.resource[i2, j]
    return x


@dataclass
class TabuResult:
    x: np.ndarray           # best feasible (or least-violating if none found)
    objective: float        # internal f of x
    feasible: bool
    iterations: int
    seconds: float
    trace: list[tuple[float, float]]  # (seconds, best feasible f) at each improvement


class _Adj:
    """Dense symmetric edge weights and per-edge thresholds for fast deltas."""

    def __init__(self, p: Problem) -> None:
        self.W = np.zeros((p.n, p.n))
        for (j, k), w in zip(p.edges, p.edge_weight):
            self.W[j, k] += w
            self.W[k, j] += w
        self.incident: list[list[tuple[int, int]]] = [[] for _ in range(p.n)]
        for e, (j, k) in enumerate(p.edges):
            self.incident[j].append((e, k))
            self.incident[k].append((e, j))


def _shift_delta(p: Problem, x: np.ndarray, load: np.ndarray, tload: np.ndarray,
                 cm: np.ndarray, adj: _Adj | None, pair_ok: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dobj, dcap, dfid), each (m, n): deltas of moving task j to agent i."""
    ar = np.arange(p.n)
    cur = cm[x, ar]
    dobj = cm - cur[None, :]
    b = p.capacity
    exc = np.maximum(load - b, 0)
    to = np.maximum(load[:, None] + p.resource - b[:, None], 0) - exc[:, None]
    frm = np.maximum(load[x] - p.resource[x, ar] - b[x], 0) - exc[x]
    dcap = to + frm[None, :]
    dfid = np.zeros_like(dobj)
    if adj is not None and len(p.edges):
        if p.lambda1:
            M = p.distance[:, x] @ adj.W
            dobj = dobj + p.lambda1 * (M - M[x, ar][None, :])
        if pair_ok is not None:
            V = np.zeros_like(dobj)
            for e, (j, k) in enumerate(p.edges):
                V[:, j] += ~pair_ok[e, :, x[k]]
                V[:, k] += ~pair_ok[e, x[j], :]
            dfid = V - V[x, ar][None, :]
    if p.lambda2:
        t = p.duration
        Lt = np.broadcast_to(tload, (p.m, p.n, p.m)).copy()
        ii = np.arange(p.m)[:, None]
        Lt[ii, ar[None, :], ii] += t
        Lt[ii, ar[None, :], x[None, :]] -= t[x, ar][None, :]
        imb = Lt.max(-1) - Lt.min(-1)
        dobj = dobj + p.lambda2 * (imb - (tload.max() - tload.min()))
    dobj[x, ar] = np.inf
    return dobj, dcap, dfid


Move = tuple[str, int, int]
"""("shift", agent i, task j) or ("swap", task j, task k)."""


class _Tabu:
    """State of one tabu search: current x and its evaluation, rho, tenures and the best."""

    def __init__(self, p: Problem, x: np.ndarray, rng: np.random.Generator, t0: float) -> None:
        self.p, self.x, self.rng, self.t0 = p, x, rng, t0
        self.ar = np.arange(p.n)
        self.cm = _cmask(p)
        self.linear = p.is_linear
        self.adj = None if (len(p.edges) == 0) else _Adj(p)
        self.pair_ok = p.pair_ok() if p.has_pair_constraints else None
        self.abar = float(p.resource.mean()) or 1.0
        scale = float(np.abs(p.cost).mean()) or 1.0
        self.rho = scale / self.abar
        self.rho_min, self.rho_max = self.rho * 1e-3, self.rho * 1e4
        self.tabu = np.zeros((p.m, p.n), dtype=np.int64)
        ev = self.evaluate()
        self.best_x, self.best_obj, self.best_feas = x.copy(), self.obj, ev.feasible
        self.best_pen = self.penalised()
        self.trace: list[tuple[float, float]] = [(time.perf_counter() - t0, self.obj)] if ev.feasible else []
        self.last_imp = 0

    def evaluate(self) -> Evaluation:
        """Evaluate x and keep its objective, capacity excess and fidelity violations."""
        ev = self.p.evaluate(self.x)
        self.obj, self.cap_exc, self.fid_v = ev.objective, ev.violations["capacity"], ev.violations["fidelity"]
        return ev

    def penalised(self) -> float:
        """g(x) = f + rho (capacity excess + abar #fidelity violations)."""
        return self.obj + self.rho * (self.cap_exc + self.abar * self.fid_v)

    def best_shift(self, it: int, load: np.ndarray, tload: np.ndarray) -> tuple[Move, float]:
        """The best allowed shift (not tabu, or aspirating), ties broken at random."""
        p, abar = self.p, self.abar
        dobj, dcap, dfid = _shift_delta(p, self.x, load, tload, self.cm, self.adj, self.pair_ok)
        dpen = dobj + self.rho * (dcap + abar * dfid)
        newfeas = (self.cap_exc + dcap <= 1e-9) & (self.fid_v + dfid <= 0.5)
        asp = newfeas & (self.obj + dobj < self.best_obj - 1e-9) if self.best_feas else newfeas
        ok = (self.tabu <= it) | asp
        cand = np.where(ok, dpen, np.inf) + self.rng.random(dpen.shape) * 1e-7
        flat = int(np.argmin(cand))
        return ("shift", flat // p.n, flat % p.n), cand.flat[flat]

    def best_swap(self, it: int, load: np.ndarray, move: Move, s_val: float) -> tuple[Move, float]:
        """A swap instead of ``move`` if one is better: exact deltas for linear problems,
        else the 6 best by linear delta re-checked by full evaluation."""
        p, x, cm, rho, abar = self.p, self.x, self.cm, self.rho, self.abar
        A_c = cm[x, :]
        dsw = A_c.T + A_c - cm[x, self.ar][:, None] - cm[x, self.ar][None, :]
        R = p.resource[x, :]
        dR = np.diag(R)
        exc = np.maximum(load - p.capacity, 0)
        nj = np.maximum(load[x][:, None] + R - dR[:, None] - p.capacity[x][:, None], 0)
        nk = np.maximum(load[x][None, :] + R.T - dR[None, :] - p.capacity[x][None, :], 0)
        dswc = nj + nk - exc[x][:, None] - exc[x][None, :]
        T = self.tabu[x, :]
        okp = (x[:, None] != x[None, :]) & np.triu(np.ones((p.n, p.n), bool), 1)
        sfeas = (self.cap_exc + dswc <= 1e-9) & (self.fid_v <= 0.5)
        sasp = sfeas & (self.obj + dsw < self.best_obj - 1e-9) if self.best_feas else sfeas
        okp &= ((T.T <= it) & (T <= it)) | sasp
        sw = np.where(okp, dsw + rho * dswc, np.inf)
        if self.linear:
            sw = sw + self.rng.random(sw.shape) * 1e-7
            f2 = int(np.argmin(sw))
            if sw.flat[f2] < s_val:
                move = ("swap", f2 // p.n, f2 % p.n)
            return move, s_val
        for f2 in np.argsort(sw, axis=None)[:6]:
            if not np.isfinite(sw.flat[f2]):
                break
            j, k = f2 // p.n, f2 % p.n
            y = x.copy()
            y[j], y[k] = x[k], x[j]
            e2 = p.evaluate(y)
            pen = e2.objective + rho * (e2.violations["capacity"] + abar * e2.violations["fidelity"])
            if pen - (self.obj + rho * (self.cap_exc + abar * self.fid_v)) < s_val:
                move = ("swap", j, k)
                s_val = pen - (self.obj + rho * (self.cap_exc + abar * self.fid_v))
        return move, s_val

    def apply(self, it: int, move: Move) -> None:
        """Make ``move`` and make its reverse tabu for a random tenure."""
        p, x, tabu = self.p, self.x, self.tabu
        if move[0] == "shift":
            _, i, j = move
            tabu[x[j], j] = it + 5 + int(self.rng.integers(0, 5 + p.n // 10))
            x[j] = i
        else:
            _, j, k = move
            ten = 5 + int(self.rng.integers(0, 5 + p.n // 10))
            tabu[x[j], j] = it + ten
            tabu[x[k], k] = it + ten
            x[j], x[k] = x[k], x[j]

    def record(self, it: int) -> None:
        """Evaluate the new x, adapt rho (strategic oscillation) and keep the best."""
        ev = self.evaluate()
        if ev.feasible:
            self.rho = max(self.rho / 1.05, self.rho_min)
            if not self.best_feas or self.obj < self.best_obj - 1e-9:
                self.best_x, self.best_obj, self.best_feas = self.x.copy(), self.obj, True
                self.trace.append((time.perf_counter() - self.t0, self.obj))
                self.last_imp = it
        else:
            self.rho = min(self.rho * 1.05, self.rho_max)
            if not self.best_feas:
                pen = self.penalised()
                if pen < self.best_pen:
                    self.best_x, self.best_obj, self.best_pen = self.x.copy(), self.obj, pen

    def kick(self, it: int) -> None:
        """Restart from the best with max(2, n/10) tasks moved to random allowed agents."""
        p = self.p
        self.x = x = self.best_x.copy()
        kick = self.rng.choice(p.n, size=max(2, p.n // 10), replace=False)
        for j in kick:
            x[j] = int(self.rng.choice(np.flatnonzero(p.allowed[:, j])))
        self.evaluate()
        self.tabu[:] = 0
        self.last_imp = it


def tabu_search(problem: Problem, x0: np.ndarray, time_limit: float = 1.0,
                max_iters: int | None = None, rng: np.random.Generator | None = None,
                target: float | None = None, stall: int | None = None,
                swaps: bool = True) -> TabuResult:
    """Tabu search from ``x0`` (repaired first); stops at ``time_limit`` seconds,
    ``max_iters`` iterations or when a feasible f <= ``target`` is found."""
    p = problem
    rng = np.random.default_rng(0) if rng is None else rng
    t0 = time.perf_counter()
    s = _Tabu(p, repair(p, x0, rng), rng, t0)
    stall = stall if stall is not None else 200 + 10 * p.n
    it = 0
    while True:
        if time.perf_counter() - t0 >= time_limit or (max_iters is not None and it >= max_iters):
            break
        if s.best_feas and target is not None and s.best_obj <= target + 1e-9:
            break
        it += 1
        load = p.loads(s.x)
        tload = p.loads(s.x, p.duration) if p.lambda2 else load
        move, s_val = s.best_shift(it, load, tload)
        if swaps:
            move, s_val = s.best_swap(it, load, move, s_val)
        if move[0] == "shift" and not np.isfinite(s_val):
            break
        s.apply(it, move)
        s.record(it)
        if it - s.last_imp > stall:
            s.kick(it)
    return TabuResult(s.best_x, float(s.best_obj), bool(s.best_feas), it,
                      time.perf_counter() - t0, s.trace)
