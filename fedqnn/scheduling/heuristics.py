"""Classical baselines: regret greedy, simulated annealing, uniform random sampling and
``qi-random`` (quantum-inspired Boltzmann product sampling).

* greedy: repeatedly place the unplaced task with the largest regret (second-best minus best
  marginal cost among agents with room; Martello & Toth 1981), then repair.
* SA: shift moves on g(x) = f(x) + P * (capacity excess + abar * fidelity violations),
  Metropolis acceptance exp(-delta/T), geometric cooling T_k = T0 (T1/T0)^(k/K) over a move
  budget K; T0 set so that about half of random uphill moves are accepted at the start.
* random: K uniform samples over allowed agents, each repaired; the best is kept.
* qi-random: K samples from prod_j p_j(i), p_j(i) proportional to exp(-beta (c_ij - min_i c_ij) / s_j),
  s_j the spread of task j's costs (beta = 3): "cost-shaped", no quantum state; each repaired.
"""

from __future__ import annotations

import time

import numpy as np

from fedqnn.scheduling.local_search import repair
from fedqnn.scheduling.problem import Problem

__all__ = ["greedy", "simulated_annealing", "sample_uniform", "sample_boltzmann",
           "best_of_samples"]


def greedy(problem: Problem, rng: np.random.Generator | None = None, noise: float = 0.0) -> np.ndarray:
    """Regret greedy with the four MTHG desirabilities f_ij in {c_ij, a_ij, a_ij/b_i,
    (c_ij - min_i c_ij + 1) * a_ij / b_i}: each run places tasks by largest regret of f, the
    marginal cost decides ties; the best (feasible first) of the four is returned, repaired.
    Deterministic unless ``noise`` > 0 perturbs the costs."""
    p = problem
    cm = np.where(p.allowed, p.cost, np.inf)
    if noise and rng is not None:
        cm = cm + noise * np.abs(cm[np.isfinite(cm)]).mean() * rng.random(cm.shape)
    rel = cm - np.min(cm, axis=0, keepdims=True) + 1.0
    b = np.maximum(p.capacity, 1e-9)[:, None]
    best, key = None, None
    for f in (cm, p.resource + 0.0 * cm, p.resource / b + 0.0 * cm, rel * p.resource / b):
        x = _regret_greedy(p, cm, f)
        x = repair(p, x, rng)
        ev = p.evaluate(x)
        k = (not ev.feasible, sum(ev.violations.values()), ev.objective)
        if key is None or k < key:
            best, key = x, k
    return best


def _regret_greedy(p: Problem, cm: np.ndarray, desir: np.ndarray) -> np.ndarray:
    """One regret-greedy pass with desirability ``desir`` (lower is better)."""
    x = -np.ones(p.n, dtype=int)
    load = np.zeros(p.m)
    W = np.zeros((p.n, p.n))
    for (j, k), w in zip(p.edges, p.edge_weight):
        W[j, k] += w
        W[k, j] += w
    unplaced = set(range(p.n))
    while unplaced:
        U = np.array(sorted(unplaced))
        marg = desir[:, U].copy()
        if p.lambda1 and len(p.edges):
            placed = x >= 0
            if placed.any():
                marg += p.lambda1 * p.distance[:, x[placed]] @ W[np.ix_(placed, U)]
        room = load[:, None] + p.resource[:, U] <= p.capacity[:, None] + 1e-9
        marg = np.where(room, marg, np.inf)
        s = np.sort(marg, axis=0)
        best = s[0]
        second = s[1] if p.m > 1 else np.full(len(U), np.inf)
        if not np.isfinite(best).any():
            break  # nothing fits: leave to repair
        with np.errstate(invalid="ignore"):
            regret = np.where(np.isfinite(second), second - best, 1e18)
        regret = np.where(np.isfinite(best), regret, -np.inf)
        a = int(np.argmax(regret))
        j = int(U[a])
        i = int(np.argmin(marg[:, a]))
        x[j] = i
        load[i] += p.resource[i, j]
        unplaced.discard(j)
    return x


def _penalised(p: Problem, x: np.ndarray, P: float, abar: float) -> float:
    ev = p.evaluate(x)
    return ev.objective + P * (ev.violations["capacity"] + abar * ev.violations["fidelity"])


class _ShiftState:
    """The SA state: assignment ``x`` with its loads, and the exact change of the penalised
    objective g under a shift move (task j -> agent i)."""

    def __init__(self, p: Problem, x: np.ndarray, P: float, abar: float) -> None:
        self.p, self.x, self.P, self.abar = p, x, P, abar
        self.cm = np.where(p.allowed, p.cost, np.inf)
        self.inc: list[list[tuple[int, int, bool]]] = [[] for _ in range(p.n)]
        for e, (j, k) in enumerate(p.edges):
            self.inc[j].append((e, k, True))
            self.inc[k].append((e, j, False))
        self.ok = p.pair_ok() if len(p.edges) else None
        self.load = p.loads(x)
        self.tload = p.loads(x, p.duration)

    def delta(self, j: int, i: int) -> float:
        """g(x with j -> i) - g(x)."""
        p, x, load, tload, P, abar, ok = self.p, self.x, self.load, self.tload, self.P, self.abar, self.ok
        o = x[j]
        d = self.cm[i, j] - self.cm[o, j]
        b = p.capacity
        d += P * (max(load[i] + p.resource[i, j] - b[i], 0) - max(load[i] - b[i], 0)
                  + max(load[o] - p.resource[o, j] - b[o], 0) - max(load[o] - b[o], 0))
        for e, k, first in self.inc[j]:
            xk = x[k]
            if first:
                d += p.lambda1 * p.edge_weight[e] * (p.distance[i, xk] - p.distance[o, xk])
                d += P * abar * (int(not ok[e, i, xk]) - int(not ok[e, o, xk]))
            else:
                d += p.lambda1 * p.edge_weight[e] * (p.distance[xk, i] - p.distance[xk, o])
                d += P * abar * (int(not ok[e, xk, i]) - int(not ok[e, xk, o]))
        if p.lambda2:
            t2 = tload.copy()
            t2[o] -= p.duration[o, j]
            t2[i] += p.duration[i, j]
            d += p.lambda2 * ((t2.max() - t2.min()) - (tload.max() - tload.min()))
        return float(d)

    def shift(self, j: int, i: int) -> None:
        """Move task j to agent i (loads updated incrementally)."""
        p, o = self.p, self.x[j]
        self.load[o] -= p.resource[o, j]
        self.load[i] += p.resource[i, j]
        self.tload[o] -= p.duration[o, j]
        self.tload[i] += p.duration[i, j]
        self.x[j] = i


def _initial_temperature(st: _ShiftState, allowed_lists: list[np.ndarray],
                         rng: np.random.Generator) -> float:
    """T0 = median(uphill delta) / ln 2 over 200 random shifts (about half of the uphill
    moves accepted at the start); 1 if none is uphill."""
    ups = []
    for _ in range(200):
        j = int(rng.integers(st.p.n))
        i = int(rng.choice(allowed_lists[j]))
        if i != st.x[j]:
            dd = st.delta(j, i)
            if dd > 0:
                ups.append(dd)
    return (np.median(ups) / np.log(2)) if ups else 1.0


def simulated_annealing(problem: Problem, x0: np.ndarray | None = None,
                        moves: int | None = None, time_limit: float = 1e9,
                        rng: np.random.Generator | None = None) -> np.ndarray:
    """SA over shift moves (see module docstring); returns the best feasible state seen
    (or the best penalised one if none is feasible)."""
    p = problem
    rng = np.random.default_rng(0) if rng is None else rng
    t0 = time.perf_counter()
    K = int(moves) if moves is not None else int(min(2_000_000, 400 * p.n * p.m))
    x = repair(p, greedy(p) if x0 is None else x0, rng)
    abar = float(p.resource.mean()) or 1.0
    cspread = float(np.ptp(p.cost)) or 1.0
    P = 2.0 * cspread / abar
    st = _ShiftState(p, x, P, abar)
    allowed_lists = [np.flatnonzero(p.allowed[:, j]) for j in range(p.n)]
    cur = _penalised(p, x, P, abar)
    best_x, best_f, best_feas = x.copy(), cur, p.evaluate(x).feasible
    if not best_feas:
        best_f = np.inf
    T0 = _initial_temperature(st, allowed_lists, rng)
    T1 = T0 * 1e-3
    js = rng.integers(p.n, size=K)
    us = rng.random(K)
    for kk in range(K):
        if kk % 2048 == 0 and time.perf_counter() - t0 > time_limit:
            break
        j = int(js[kk])
        al = allowed_lists[j]
        if len(al) < 2:
            continue
        i = int(al[int(us[kk] * 1e6) % len(al)])
        if i == x[j]:
            continue
        d = st.delta(j, i)
        T = T0 * (T1 / T0) ** (kk / K)
        if d <= 0 or rng.random() < np.exp(-d / T):
            st.shift(j, i)
            cur += d
            if cur < best_f - 1e-9:
                ev = p.evaluate(x)
                if ev.feasible:
                    best_x, best_f, best_feas = x.copy(), cur, True
    return best_x if best_feas else x


def sample_uniform(problem: Problem, k: int, rng: np.random.Generator) -> np.ndarray:
    """(k, n) assignments, each task's agent uniform over its allowed agents."""
    p = problem
    out = np.empty((k, p.n), dtype=int)
    for j in range(p.n):
        out[:, j] = rng.choice(np.flatnonzero(p.allowed[:, j]), size=k)
    return out


def sample_boltzmann(problem: Problem, k: int, rng: np.random.Generator,
                     beta: float = 3.0) -> np.ndarray:
    """(k, n) assignments from the cost-shaped product distribution (module docstring)."""
    p = problem
    out = np.empty((k, p.n), dtype=int)
    for j in range(p.n):
        al = np.flatnonzero(p.allowed[:, j])
        c = p.cost[al, j]
        s = float(np.ptp(c)) or 1.0
        w = np.exp(-beta * (c - c.min()) / s)
        out[:, j] = rng.choice(al, size=k, p=w / w.sum())
    return out


def best_of_samples(problem: Problem, samples: np.ndarray, rng: np.random.Generator,
                    do_repair: bool = True) -> tuple[np.ndarray, int]:
    """The best (feasible first, then lowest f) of the (optionally repaired) samples, and
    how many were feasible after repair."""
    best, key, nfeas = None, None, 0
    for s in samples:
        x = repair(problem, s, rng) if do_repair else np.asarray(s)
        ev = problem.evaluate(x)
        nfeas += ev.feasible
        k = (not ev.feasible, sum(ev.violations.values()), ev.objective)
        if key is None or k < key:
            best, key = x, k
    return best, nfeas
