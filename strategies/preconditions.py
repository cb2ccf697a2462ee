"""The (n, f) preconditions of the robust rules, in one place (standard library only).

n is the number of replies a rule aggregates, f = :func:`~fedqnn.byzantine_count.byzantine_count`
(byzantine_fraction, n). The Flower strategies check them on every round
(:mod:`strategies.flower_builtins`, :mod:`strategies.nnm_cc`: a failure skips the round), the run
config checks them before a run starts for the most replies a round can have
(:func:`strategies.config.check_preconditions`), and ``fedqnn attack-matrix`` writes ``n/a`` for a
cell that fails them: all three call :func:`failed`.
"""

from __future__ import annotations

from collections.abc import Callable

from strategies.errors import PreconditionError

__all__ = ["RULES", "failed", "check"]

# rule -> (the bound as the messages state it, the test of (n, f))
RULES: dict[str, tuple[str, Callable[[int, int], bool]]] = {
    "krum": ("n >= 2f + 3", lambda n, f: n >= 2 * f + 3),  # Blanchard et al. (2017)
    "multikrum": ("n >= 2f + 3", lambda n, f: n >= 2 * f + 3),
    "bulyan": ("n >= 4f + 3", lambda n, f: n >= 4 * f + 3),  # El Mhamdi et al. (2018)
    "trimmed-mean": ("f/n < 1/2", lambda n, f: n == 0 or f / n < 0.5),
    "nnm-cc": ("n > 2f", lambda n, f: n > 2 * f),
}


def failed(rule: str, n: int, f: int) -> str | None:
    """The failed precondition of ``rule`` for n replies and f Byzantine (None if it holds, or if
    the rule has none)."""
    if rule not in RULES:
        return None
    need, holds = RULES[rule]
    return None if holds(n, f) else f"{rule} needs {need} (n={n}, f={f})"


def check(rule: str, n: int, f: int) -> None:
    """Raise :class:`PreconditionError` with :func:`failed`'s text if the precondition fails."""
    why = failed(rule, n, f)
    if why:
        raise PreconditionError(why)
