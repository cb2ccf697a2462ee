"""Task placement on QPUs: a QAOA-seeded hybrid scheduler with exact and classical baselines.

Public API::

    from fedqnn.scheduling import Problem, solve, read_gap_file
    sol = solve(problem, method="auto", time_limit=10, seed=0)
    sol.assignment, sol.objective, sol.feasible, sol.violations, sol.seconds, sol.bound

Methods: see :mod:`fedqnn.scheduling.methods`; plug-ins via the entry-point group
``fedqnn.schedulers`` or :func:`register`.  Model and formulas: ``docs/scheduler.md``.
"""

from fedqnn.scheduling.gap_reader import KNOWN_OPTIMA, read_gap, read_gap_file
from fedqnn.scheduling.problem import Evaluation, Problem, Solution
from fedqnn.scheduling.registry import available_methods, get_method, register, solve

__all__ = ["Problem", "Solution", "Evaluation", "solve", "register", "available_methods",
           "get_method", "read_gap", "read_gap_file", "KNOWN_OPTIMA"]
