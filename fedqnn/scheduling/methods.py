"""The scheduling methods behind :func:`fedqnn.scheduling.solve`.  Each takes
``(problem, time_limit, seed, **options)`` and returns a :class:`Solution`.

* ``exact``: HiGHS MILP (``solver="cpsat"`` for OR-Tools CP-SAT).
* ``greedy``, ``sa``, ``random``, ``qi-random``: classical baselines (heuristics.py).
* ``qaoa``: QAOA alone, as a large-neighbourhood search over blocks of <= ``qubits`` qubits
  from a uniform random start: a block's best decoded sample replaces the incumbent when it
  lowers g(x) = f(x) + P * violations.  No repair, no classical search: infeasible is flagged.
* ``hybrid``: QAOA-seeded pool (as above, from the greedy start) -> repair -> tabu search
  for the rest of the time (item 2 + 3 of issue 8).
* ``auto``: tabu search for a short warm-up, then an exact solver for the rest of the budget:
  CP-SAT warm-started from the tabu result for problems with <= 60 tasks or with
  communication/imbalance terms, HiGHS for larger linear (GAP) problems (and without
  OR-Tools); the better assignment is returned with the solver's bound.  Chosen by
  measurement (docs/scheduler.md): hinted CP-SAT found all 60 gap1-12 optima (max 3.6 s) where
  HiGHS missed 3 in 10 s; on type-D 100-200 jobs single-worker CP-SAT trailed HiGHS.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from fedqnn.scheduling.decomposition import block_qubo, block_shape, blocks
from fedqnn.scheduling.exact import cpsat_available, solve_cpsat, solve_highs
from fedqnn.scheduling.heuristics import (
    best_of_samples,
    greedy,
    sample_boltzmann,
    sample_uniform,
    simulated_annealing,
)
from fedqnn.scheduling.local_search import repair, tabu_search
from fedqnn.scheduling.problem import Problem, Solution
from fedqnn.scheduling.qaoa import run_qaoa
from fedqnn.seeding import rng as seeded_rng

__all__ = ["solve_exact", "solve_greedy", "solve_sa", "solve_random", "solve_qi_random",
           "solve_qaoa", "solve_hybrid", "solve_auto", "qaoa_lns", "finish"]


def finish(problem: Problem, x: np.ndarray, t0: float, method: str,
           bound: float | None = None, **info: Any) -> Solution:
    """Evaluate ``x`` and wrap it as a :class:`Solution` (objective/bound in the problem's
    sense)."""
    ev = problem.evaluate(x)
    b = None if bound is None else problem.report(bound)
    return Solution(np.asarray(x, dtype=int), problem.report(ev.objective), ev.feasible,
                    ev.violations, time.perf_counter() - t0, b, method, info)


def _penalised(p: Problem, x: np.ndarray, P: float) -> float:
    ev = p.evaluate(x)
    v = ev.violations
    abar = float(p.resource.mean()) or 1.0
    return ev.objective + P * (v["capacity"] + abar * v["fidelity"] + v["unassigned"]
                               + v["not_allowed"])


def qaoa_lns(problem: Problem, x0: np.ndarray, rng: np.random.Generator, qubits: int = 16,
             p: int = 2, shots: int = 128, mixer: str = "xy", sweeps: int = 1,
             time_limit: float = 1e9, capacity: str = "unbalanced", maxiter: int = 40
             ) -> tuple[np.ndarray, list[np.ndarray], dict[str, Any]]:
    """Sweeps of QAOA block moves (module docstring).  Returns the incumbent, the pool of
    full assignments decoded from every block's samples, and counters."""
    t0 = time.perf_counter()
    k, r = block_shape(problem, qubits)
    x = np.asarray(x0, dtype=int).copy()
    spread = float(np.ptp(problem.cost)) or 1.0
    P = 10.0 * spread / (float(problem.resource.mean()) or 1.0)
    cur = _penalised(problem, x, P)
    pool: list[np.ndarray] = []
    stats = {"blocks": 0, "accepted": 0, "samples": 0, "onehot_ok": 0, "max_qubits": 0}
    for _ in range(sweeps):
        for blk in blocks(problem, k, rng):
            if time.perf_counter() - t0 > time_limit:
                break
            q = block_qubo(problem, x, blk, r, capacity=capacity)
            stats["max_qubits"] = max(stats["max_qubits"], q.num_vars)
            res = run_qaoa(q, p=p, mixer=mixer, shots=shots, rng=rng, maxiter=maxiter)
            uniq = np.unique(res.samples, axis=0)
            stats["blocks"] += 1
            stats["samples"] += shots
            best_y, best_g = None, cur
            for bits in uniq:
                y = q.decode(bits)
                if (y >= 0).all():
                    stats["onehot_ok"] += 1
                    pool.append(y)
                g = _penalised(problem, np.where(y >= 0, y, x), P) if (y >= 0).all() else np.inf
                if g < best_g - 1e-9:
                    best_y, best_g = y, g
            if best_y is not None:
                x, cur = best_y, best_g
                stats["accepted"] += 1
    return x, pool, stats


def solve_exact(problem: Problem, time_limit: float = 10.0, seed: int = 0,
                solver: str = "highs", **_: Any) -> Solution:
    """MILP with a time limit; falls back to greedy (flagged in info) if no incumbent."""
    t0 = time.perf_counter()
    if solver == "cpsat":
        r = solve_cpsat(problem, time_limit, seed=seed)
    elif solver == "highs":
        r = solve_highs(problem, time_limit)
    else:
        raise ValueError(f"solver: must be 'highs' or 'cpsat', got {solver!r}")
    if r.x is None:
        return finish(problem, greedy(problem), t0, "exact", None, status=r.status,
                      fallback="greedy")
    return finish(problem, r.x, t0, "exact", r.bound, status=r.status, optimal=r.optimal,
                  solver=solver)


def solve_greedy(problem: Problem, time_limit: float = 10.0, seed: int = 0, **_: Any) -> Solution:
    t0 = time.perf_counter()
    return finish(problem, greedy(problem, seeded_rng(seed, "greedy")), t0, "greedy")


def solve_sa(problem: Problem, time_limit: float = 10.0, seed: int = 0,
             moves: int | None = None, **_: Any) -> Solution:
    t0 = time.perf_counter()
    x = simulated_annealing(problem, moves=moves, time_limit=time_limit, rng=seeded_rng(seed, "sa"))
    return finish(problem, x, t0, "sa")


def solve_random(problem: Problem, time_limit: float = 10.0, seed: int = 0,
                 samples: int = 256, **_: Any) -> Solution:
    t0 = time.perf_counter()
    g = seeded_rng(seed, "random")
    x, nf = best_of_samples(problem, sample_uniform(problem, samples, g), g)
    return finish(problem, x, t0, "random", samples=samples, feasible_after_repair=nf)


def solve_qi_random(problem: Problem, time_limit: float = 10.0, seed: int = 0,
                    samples: int = 256, beta: float = 3.0, **_: Any) -> Solution:
    t0 = time.perf_counter()
    g = seeded_rng(seed, "qi-random")
    x, nf = best_of_samples(problem, sample_boltzmann(problem, samples, g, beta), g)
    return finish(problem, x, t0, "qi-random", samples=samples, feasible_after_repair=nf)


def solve_qaoa(problem: Problem, time_limit: float = 10.0, seed: int = 0, qubits: int = 16,
               p: int = 2, shots: int = 128, mixer: str = "xy", sweeps: int = 2,
               **_: Any) -> Solution:
    t0 = time.perf_counter()
    g = seeded_rng(seed, "qaoa")
    x0 = sample_uniform(problem, 1, g)[0]
    x, _pool, st = qaoa_lns(problem, x0, g, qubits, p, shots, mixer, sweeps, time_limit)
    return finish(problem, x, t0, "qaoa", **st)


def solve_hybrid(problem: Problem, time_limit: float = 10.0, seed: int = 0, qubits: int = 16,
                 p: int = 2, shots: int = 128, mixer: str = "xy", sweeps: int = 1,
                 qaoa_share: float = 0.3, tabu_iters: int | None = None,
                 seeding: str = "qaoa", samples: int | None = None,
                 tabu_time: float | None = None, **_: Any) -> Solution:
    """QAOA-seeded tabu search.  ``seeding`` in {qaoa, uniform, greedy, sa} replaces the
    QAOA pool by ``samples`` other samples (the ablation of issue 8, item 5): uniform one-hot
    assignments, noisy regret-greedy constructions, or the end states of independent SA
    chains (n*m shift moves each, from uniform starts).  ``samples`` defaults to the number
    of QAOA shots one sweep would draw (shots x blocks).  ``tabu_time`` fixes the refinement's
    wall time (else: what is left of ``time_limit``), so that an ablation can give every
    seeding the same refinement; ``info`` records ``samples``, ``seed_seconds``,
    ``tabu_seconds`` and the refinement's improvement ``trace`` [(seconds since start,
    best feasible objective in the problem's units)]."""
    t0 = time.perf_counter()
    g = seeded_rng(seed, "hybrid")
    x0 = greedy(problem, g)
    info: dict[str, Any] = {"seeding": seeding}
    if seeding == "qaoa":
        x, pool, st = qaoa_lns(problem, x0, g, qubits, p, shots, mixer, sweeps,
                               qaoa_share * time_limit)
        info.update(st)
        cand = [x] + pool
    else:
        if samples is None:
            kb, _r = block_shape(problem, qubits)
            samples = shots * sweeps * (-(-problem.n // kb))
        k = max(1, int(samples))
        info["samples"] = k
        if seeding == "uniform":
            cand = list(sample_uniform(problem, k, g))
        elif seeding == "greedy":
            cand = [greedy(problem, g, noise=0.2) for _ in range(k)]
        elif seeding == "sa":
            starts = sample_uniform(problem, k, g)
            cand = [simulated_annealing(problem, x0=s0, moves=problem.n * problem.m, rng=g)
                    for s0 in starts]
        else:
            raise ValueError(f"seeding: must be qaoa, uniform, greedy or sa, got {seeding!r}")
    best, _ = best_of_samples(problem, np.array(cand), g)
    t_seed = time.perf_counter() - t0
    rest = tabu_time if tabu_time is not None else max(time_limit - t_seed, 0.05)
    tr = tabu_search(problem, best, time_limit=rest, max_iters=tabu_iters, rng=g)
    x = tr.x if tr.feasible or not problem.evaluate(best).feasible else best
    info.update(tabu_iterations=tr.iterations, seed_seconds=round(t_seed, 4),
                tabu_seconds=round(tr.seconds, 4),
                trace=[(round(t_seed + t, 4), problem.report(f)) for t, f in tr.trace])
    return finish(problem, x, t0, "hybrid", **info)


def solve_auto(problem: Problem, time_limit: float = 10.0, seed: int = 0,
               warmup: float = 0.05, tabu_iters: int | None = None, **_: Any) -> Solution:
    """Tabu warm-up (``warmup`` share of the budget, at most 2 s), then hinted CP-SAT
    (n <= 60 or non-linear) or HiGHS (larger linear problems) for the rest."""
    t0 = time.perf_counter()
    g = seeded_rng(seed, "auto")
    x0 = greedy(problem, g)
    tr = tabu_search(problem, x0, time_limit=min(warmup * time_limit, 2.0),
                     max_iters=tabu_iters, rng=g)
    best = tr.x if tr.feasible else repair(problem, tr.x, g)
    rest = time_limit - (time.perf_counter() - t0)
    bound = None
    used = "tabu"
    if rest > 0.05:
        integral = np.allclose(problem.resource, np.round(problem.resource)) and \
            np.allclose(problem.capacity, np.round(problem.capacity))
        if cpsat_available() and integral and (not problem.is_linear or problem.n <= 60):
            exact_linear = problem.is_linear and np.allclose(problem.cost, np.round(problem.cost))
            r = solve_cpsat(problem, rest, hint=best if tr.feasible else None, seed=seed,
                            resolution=1.0 if exact_linear else 1e-3)
            solver = "cpsat"
        else:
            r = solve_highs(problem, rest)
            solver = "highs"
        bound = r.bound
        if r.x is not None:
            ev_r, ev_b = problem.evaluate(r.x), problem.evaluate(best)
            if (ev_r.feasible, -ev_r.objective) > (ev_b.feasible, -ev_b.objective):
                best, used = r.x, solver
    return finish(problem, best, t0, "auto", bound, used=used)
