"""Method registry (:data:`fedqnn.registry.SCHEDULERS`, ``METHODS`` here) and :func:`solve`.
Plug-ins register under the entry-point group ``fedqnn.schedulers`` (name = callable with the signature of the built-in methods:
``(problem, time_limit, seed, **options) -> Solution``) or call :func:`register`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fedqnn.registry import SCHEDULERS
from fedqnn.scheduling.problem import Problem, Solution

__all__ = ["METHODS", "register", "available_methods", "get_method", "solve"]

Method = Callable[..., Solution]

# The built-ins are registered lazily in fedqnn.registry: "greedy" -> "fedqnn.scheduling.methods:solve_greedy".
METHODS = SCHEDULERS
_loaded_plugins = False


def register(name: str, fn: Method) -> None:
    """Add (or replace) a scheduling method."""
    if not name or not callable(fn):
        raise ValueError("method: a non-empty name and a callable are required")
    METHODS[name] = fn


def _load_plugins() -> None:
    global _loaded_plugins
    if _loaded_plugins:
        return
    _loaded_plugins = True
    for name, ep in METHODS.entry_points().items():
        if name not in METHODS:
            METHODS[name] = ep.load()


def available_methods() -> list[str]:
    """Names of the registered methods (built-ins and plug-ins)."""
    _load_plugins()
    return list(METHODS)


def get_method(name: str) -> Method:
    _load_plugins()
    if name not in METHODS:
        raise ValueError(f"method: unknown {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name]


def solve(problem: Problem, method: str = "auto", time_limit: float = 10.0, seed: int = 0,
          **options: Any) -> Solution:
    """Solve ``problem`` with ``method`` within about ``time_limit`` seconds.

    The returned assignment is always checked against every constraint: ``feasible`` is
    False and ``violations`` says which constraint is broken when no feasible one was found.
    """
    if not isinstance(problem, Problem):
        raise ValueError("problem: expected a fedqnn.scheduling.Problem")
    if not (time_limit > 0):
        raise ValueError(f"time_limit: must be > 0, got {time_limit}")
    if int(seed) < 0:
        raise ValueError(f"seed: must be >= 0, got {seed}")
    t0 = time.perf_counter()
    sol = get_method(method)(problem, time_limit=float(time_limit), seed=int(seed), **options)
    ev = problem.evaluate(sol.assignment)  # independent re-check of what the method claims
    sol.feasible = ev.feasible
    sol.violations = ev.violations
    sol.objective = problem.report(ev.objective)
    sol.seconds = time.perf_counter() - t0
    sol.assignment = np.asarray(sol.assignment, dtype=int)
    return sol
