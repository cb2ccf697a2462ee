"""Exact solution of the broker MDP (:mod:`fedqnn.network.mdp_model`): value iteration.

One round is S decision stages. With ``V_s(j, p)`` the value after the delivery that follows
step s (s = 0: the round-start delivery) and ``W(j)`` the value at a round start, the Bellman
backup of one round is (``M_k`` the step matrix of action k, ``x_j`` the pairs expiring from
j, ``D`` the delivery map with reward ``d``, ``S_d`` the deadline step):

    V_S(j, p)     = W'(j)                                               (pending dropped)
    V_{s-1}(j, p) = max_k  -w x_j + sum_j' M_k[j, j'] G_s(j', p),
    G_s(j', p)    = d(j', p) + V_s(D(j', p))    for s <= S_d  (pending dropped at s = S_d),
                  = V_s(j', p)                  for s >  S_d,
    W(j)          = sum_p P0(p) [d(j, p) + V_0(D(j, p))]                (round-start demand).

**Average reward** (the broker runs indefinitely): relative value iteration ``W_{n+1} = T W_n
- T W_n(empty)``; the optimal gain per round g* lies in ``[min (T W_n - W_n), max (T W_n -
W_n)]`` (Puterman 1994, Thm 8.5.5) and the iteration stops when that interval is narrower
than ``tol``. A fixed policy is evaluated with the same recursion, its action in place of
the max. **Finite horizon** (``rounds = H`` from ``W_0 = 0``) gives the exact expected total
reward of H rounds, the quantity the brute-force test recomputes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fedqnn.network.mdp_model import BrokerMDP

__all__ = ["Solution", "backup", "solve", "evaluate", "finite_horizon"]

Weights = tuple[float, float, float]  # (delivered, expired, used_raw)


@dataclass
class Solution:
    """Gain per round (bounds), the round-start relative values and the greedy actions."""

    gain: float
    gain_low: float
    gain_high: float
    iterations: int
    W: NDArray[np.float64]
    actions: NDArray[np.int64] | None  # (S, J, PR) action indices, optimal only


def _weights(mdp: BrokerMDP, weights: Weights | None) -> Weights:
    return (1.0, -mdp.w, 0.0) if weights is None else weights


def backup(
    mdp: BrokerMDP,
    W: NDArray[np.float64],
    fixed: NDArray[np.int64] | None = None,
    weights: Weights | None = None,
    keep_actions: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.int64] | None]:
    """One round of the Bellman backup (the module docstring): the new round-start values,
    maximised over actions, or under ``fixed[s-1, j, p]`` (p a pending index, the rank not
    shown to the policy, or a pending-rank index as the optimal actions are). ``weights`` weigh (delivered, expired, used_raw)."""
    wd, wx, wu = _weights(mdp, weights)
    dl = mdp.deliver
    rew = wd * dl.delivered + wu * dl.used  # (J, PR)
    nr = len(mdp.ranks)
    V = np.repeat(W[:, None], mdp.PR, axis=1)  # V_S
    acts = np.zeros((mdp.S, mdp.J, mdp.PR), dtype=np.int64) if keep_actions else None
    for s in range(mdp.S, 0, -1):
        if s <= mdp.S_d:
            nxt_pr = mdp.zero_pr[dl.next_pr] if s == mdp.S_d else dl.next_pr
            G = rew + V[dl.next_j, nxt_pr]
        else:
            G = V
        exp_term = wx * mdp.expired[:, None]
        if fixed is None:
            best = np.full((mdp.J, mdp.PR), -np.inf)
            arg = np.zeros((mdp.J, mdp.PR), dtype=np.int64)
            for a in range(len(mdp.actions)):
                q = exp_term + mdp.matrix(a) @ G
                better = q > best + 1e-12
                best = np.where(better, q, best)
                arg = np.where(better, a, arg)
            V = best
            if acts is not None:
                acts[s - 1] = arg
        else:
            act = fixed[s - 1] if fixed.shape[2] == mdp.PR else np.repeat(fixed[s - 1], nr, axis=1)
            V = np.empty((mdp.J, mdp.PR))
            for a in np.unique(act):
                q = exp_term + mdp.matrix(int(a)) @ G
                m = act == a
                V[m] = q[m]
    # round start: demand and rank drawn, then the start delivery
    start = rew + V[dl.next_j, dl.next_pr]
    return start @ mdp.start_prob, acts


def _iterate(
    mdp: BrokerMDP, fixed: NDArray[np.int64] | None, weights: Weights | None, tol: float, max_iter: int
) -> Solution:
    W = np.zeros(mdp.J)
    lo, hi, it = -np.inf, np.inf, 0
    while it < max_iter and hi - lo >= tol * max(1.0, abs(hi) if np.isfinite(hi) else 1.0):
        TW, _ = backup(mdp, W, fixed, weights)
        diff = TW - W
        lo, hi = float(diff.min()), float(diff.max())
        W = TW - TW[mdp.empty]
        it += 1
    acts = None
    if fixed is None:
        _, acts = backup(mdp, W, None, weights, keep_actions=True)
    return Solution(gain=0.5 * (lo + hi), gain_low=lo, gain_high=hi, iterations=it, W=W, actions=acts)


def solve(mdp: BrokerMDP, weights: Weights | None = None, tol: float = 1e-9, max_iter: int = 5000) -> Solution:
    """Optimal average reward per round by relative value iteration (with its greedy actions)."""
    return _iterate(mdp, None, weights, tol, max_iter)


def evaluate(
    mdp: BrokerMDP,
    actions: NDArray[np.int64],
    weights: Weights | None = None,
    tol: float = 1e-9,
    max_iter: int = 5000,
) -> Solution:
    """Average reward per round of a fixed policy ``actions[s-1, j, p]`` (pending index p)."""
    return _iterate(mdp, actions, weights, tol, max_iter)


def finite_horizon(mdp: BrokerMDP, rounds: int, fixed: NDArray[np.int64] | None = None) -> float:
    """Exact optimal (or ``fixed``) expected total reward of ``rounds`` rounds from empty memories."""
    W = np.zeros(mdp.J)
    for _ in range(rounds):
        W, _ = backup(mdp, W, fixed)
    return float(W[mdp.empty])
