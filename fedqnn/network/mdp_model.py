"""The broker's scheduling MDP, built exactly from a small :class:`Broker` (issue 17 item 3).

The instance is a real broker (``Broker.from_config``): its links, capacities ``C_e``, cut-offs
``K_e`` (in steps), attempts per step ``n_e`` and success probability ``p_e``, paths, steps per
round ``S`` and deadline step ``S_d`` are read off it, so the MDP is the broker's own dynamics.
Restrictions (checked): no outages, no purification, ``swap_success = 1``, an age-aware policy,
and every admissible combination of ages meets F_min on every path (so every granted pair is
delivered; checked with :func:`physics.path_fidelity` at the cut-off ages).

State, between two steps of a round: ``x = (sigma, pending, rank, s)``.

* ``sigma_e``: the age histogram of link e, ``sigma_e[a-1]`` = pairs of age index a
  (1 <= a <= K_e), ``sum_a sigma_e[a-1] <= C_e``. Pairs of one age on one link are
  interchangeable (fidelity is a function of link and age, ``physics``), so the histogram
  is an exact aggregation of the per-pair state: ``C(K_e + C_e, C_e)`` states per link.
* ``pending_i`` in 0..q: end-to-end pairs node i still needs this round (0 after the deadline);
* ``rank``: the round's delivery order (a uniform permutation drawn at the round start);
* ``s``: steps taken in the round.

Round dynamics (``Broker._run_window``): at the round start every node is selected
independently with probability pi (``broker.participation``) and asks q pairs
(``pairs_per_node``); the broker delivers, then for s = 1..S takes one step and delivers again
while ``s <= S_d``. A step (``Inventory.step``): every age index grows by one and the pairs
passing K_e expire; then link e, asked for ``k_e`` new pairs, heralds

    new_e = min(B_e, l_e),  B_e ~ Binomial(n_e, p_e),  l_e = min(k_e, C_e - stock_e),

so ``P(new = j) = Binom(j; n_e, p_e)`` for ``j < l_e`` and ``P(new = l_e) = P(B_e >= l_e)``.
Delivery: the grants of :meth:`Broker._grants` (water-filling, then greedy in rank order;
the broker's own code on the state's stocks), each pair taking the oldest pair of every hop.

Action: ``k = (k_e)``, the new pairs each link may herald this step (``BrokerPolicy.want``),
``0 <= k_e <= C_e`` (a larger ``k_e`` acts as ``C_e``).

Reward of a step: ``delivered - w (expired + wasted)`` with w = ``waste_cost`` per raw pair
(wasted is 0 here: no swap failures, no pair below F_min). ``used_raw`` (raw pairs in delivered
pairs, ``hops`` per pair) is carried too, for utilization = used / (used + expired).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from fedqnn.network import physics
from fedqnn.network.broker import Broker
from fedqnn.network.policies import BrokerPolicy

__all__ = ["LinkSpace", "BrokerMDP", "herald_pmf"]


def herald_pmf(n: int, p: float, limit: int) -> NDArray[np.float64]:
    """P(new = j), j = 0..limit, of ``new = min(Binomial(n, p), limit)`` (mass >= limit at limit)."""
    out = np.zeros(limit + 1)
    pmf = (1.0 - p) ** n
    for j in range(limit):
        out[j] = pmf
        pmf *= (n - j) / (j + 1) * p / (1.0 - p) if j < n else 0.0
    out[limit] = max(0.0, 1.0 - out[:limit].sum())
    return out


class LinkSpace:
    """The age histograms of one link and its step and take-oldest maps.

    ``states[i]`` is a histogram (counts per age index 1..K); ``step[k]`` is the sparse
    transition matrix of one step with ``k`` new pairs asked (ageing, expiry, heralding);
    ``expired[i]`` the pairs that expire from state i at the step; ``take[i, u]`` the state
    after removing the ``u`` oldest pairs (-1 when fewer than u are stored).
    """

    def __init__(self, capacity: int, cutoff: int, attempts: int, p: float) -> None:
        self.C, self.K = int(capacity), int(cutoff)
        if self.K < 1:
            raise ValueError("an MDP link needs a cut-off of at least one step")
        self.states = [s for s in _histograms(self.K, self.C)]
        self.index = {s: i for i, s in enumerate(self.states)}
        arr = np.array(self.states, dtype=np.int64).reshape(len(self.states), self.K)
        self.stock = arr.sum(axis=1)
        self.expired = arr[:, -1].astype(float)
        self.take = np.array([[self._take(s, u) for u in range(self.C + 1)] for s in self.states])
        self.step = [self._step_matrix(k, int(attempts), float(p)) for k in range(self.C + 1)]

    @property
    def n(self) -> int:
        return len(self.states)

    def _take(self, s: tuple[int, ...], u: int) -> int:
        if u > sum(s):
            return -1
        h = list(s)
        for a in range(self.K - 1, -1, -1):  # oldest (largest age index) first
            t = min(u, h[a])
            h[a] -= t
            u -= t
        return self.index[tuple(h)]

    def _step_matrix(self, k: int, attempts: int, p: float) -> sparse.csr_matrix:
        rows, cols, vals = [], [], []
        for i, s in enumerate(self.states):
            shifted = (0, *s[:-1])
            free = self.C - sum(shifted)
            pmf = herald_pmf(attempts, p, min(k, free))
            for j, pr in enumerate(pmf):
                if pr > 0:
                    rows.append(i)
                    cols.append(self.index[(j, *shifted[1:])])
                    vals.append(pr)
        return sparse.csr_matrix((vals, (rows, cols)), shape=(self.n, self.n))

    def histogram_of(self, ages: NDArray[np.int64]) -> int:
        """Index of the state holding pairs of the given age indices."""
        h = np.bincount(np.asarray(ages, dtype=np.int64) - 1, minlength=self.K)[: self.K]
        return self.index[tuple(int(x) for x in h)]


def _histograms(K: int, C: int) -> list[tuple[int, ...]]:
    """Every tuple of K non-negative counts with sum <= C."""
    out: list[tuple[int, ...]] = []

    def rec(prefix: list[int], left: int) -> None:
        if len(prefix) == K:
            out.append(tuple(prefix))
            return
        for c in range(left + 1):
            rec([*prefix, c], left - c)

    rec([], C)
    return out


@dataclass
class _DeliveryTable:
    """Deterministic delivery from (joint state, pending-rank) to (joint state, pending-rank)."""

    next_j: NDArray[np.int64]  # (J, PR)
    next_pr: NDArray[np.int64]  # (J, PR)
    delivered: NDArray[np.float64]  # (J, PR)
    used: NDArray[np.float64]  # (J, PR)


class BrokerMDP:
    """The exact MDP of a small broker (see the module docstring)."""

    def __init__(self, broker: Broker, waste_cost: float = 0.1) -> None:
        self.b = b = broker
        self._check(b)
        self.w = float(waste_cost)
        inv = b.inv
        self.links = [LinkSpace(inv.capacity[e], inv.cutoff[e], inv.attempts[e], inv.p[e]) for e in range(b.n_links)]
        self.L, self.N = b.n_links, b.n_nodes
        self.S, self.S_d = int(b.steps), int(b.deadline_steps)
        self.q, self.pi = int(b.cfg["pairs_per_node"]), float(b.cfg["participation"])
        sizes = [ls.n for ls in self.links]
        self.J = int(np.prod(sizes))
        self.strides = np.array([int(np.prod(sizes[e + 1:])) for e in range(self.L)], dtype=np.int64)
        jj = np.arange(self.J)
        self.link_idx = [(jj // self.strides[e]) % sizes[e] for e in range(self.L)]  # per link: (J,)
        self.expired = sum(ls.expired[ix] for ls, ix in zip(self.links, self.link_idx))
        self.stock = np.stack([ls.stock[ix] for ls, ix in zip(self.links, self.link_idx)], axis=1)  # (J, L)
        self.pendings = list(itertools.product(range(self.q + 1), repeat=self.N))
        self.ranks = list(itertools.permutations(range(self.N)))
        self.PR = len(self.pendings) * len(self.ranks)
        self.actions = list(itertools.product(*[range(ls.C + 1) for ls in self.links]))
        self._action_index = {a: i for i, a in enumerate(self.actions)}
        self.incidence = np.zeros((self.N, self.L), dtype=np.int64)  # raw pairs per link per pair of node i
        for i in range(self.N):
            self.incidence[i, b.path_links[i, : b.hops[i]]] = 1
        self.deliver = self._delivery_table()
        self.zero_pr = self._zero_pr()
        self.start_prob = self._start_distribution()
        self.empty = int(sum(ls.index[(0,) * ls.K] * st for ls, st in zip(self.links, self.strides)))
        self._matrices: dict[int, sparse.csr_matrix] = {}

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check(b: Broker) -> None:
        if b.cfg["outage_prob"] != 0.0 or b.cfg["swap_success"] != 1.0 or b.cfg["key_pairs_per_node"]:
            raise ValueError("the MDP needs outage_prob = 0, swap_success = 1 and no key demand")
        if not (b.mult == 1).all() or not b.usable.all():
            raise ValueError("the MDP needs unpurified, usable paths")
        if not b.policy.age_aware or b.cfg["quota"] is not None:
            raise ValueError("the MDP needs an age-aware broker policy and no quota")
        # every admissible ages combination (each hop at its cut-off, the worst) meets F_min
        for i in range(b.n_nodes):
            pl = b.path_links[i, : b.hops[i]]
            ages = b.inv.cutoff[pl] * b.dt
            f = float(physics.path_fidelity(b.c0[pl], b.rates[pl], ages))
            if f < b.cfg["F_min"] - 1e-12:
                raise ValueError(f"path of node {i} falls below F_min at its cut-off ages")

    # ------------------------------------------------------------------ indices
    def pr_index(self, pending: tuple[int, ...], rank: int) -> int:
        p = 0
        for x in pending:
            p = p * (self.q + 1) + x
        return p * len(self.ranks) + rank

    def _zero_pr(self) -> NDArray[np.int64]:
        """Per pending-rank index, the index with the same rank and nothing pending."""
        nr = len(self.ranks)
        return np.array([self.pr_index((0,) * self.N, k % nr) for k in range(self.PR)], dtype=np.int64)

    def _start_distribution(self) -> NDArray[np.float64]:
        """P(pending-rank) at the round start: Bernoulli(pi) selection per node, uniform rank."""
        out = np.zeros(self.PR)
        for sel in itertools.product((0, 1), repeat=self.N):
            ps = math.prod(self.pi if s else 1.0 - self.pi for s in sel)
            for r in range(len(self.ranks)):
                out[self.pr_index(tuple(self.q * s for s in sel), r)] += ps / len(self.ranks)
        return out

    def joint_of(self, link_states: list[int]) -> int:
        return int(sum(i * st for i, st in zip(link_states, self.strides)))

    # ------------------------------------------------------------------ delivery
    def _grant_table(self) -> NDArray[np.int64]:
        """The broker's grants (combos, PR, N) for every stocks combination and pending-rank,
        from its own ``_grants``; combos are indexed by mixed radix over ``C_e + 1``."""
        b, nr = self.b, len(self.ranks)
        combos = list(itertools.product(*[range(ls.C + 1) for ls in self.links]))
        table = np.zeros((len(combos), self.PR, self.N), dtype=np.int64)
        saved = b.inv.stored.copy()
        b.inv.up[:] = True
        for c, stocks in enumerate(combos):
            b.inv.stored = np.array(stocks, dtype=np.int64)
            for p, pend in enumerate(self.pendings):
                for r, perm in enumerate(self.ranks):
                    rank = np.empty(self.N, dtype=np.int64)
                    rank[np.array(perm)] = np.arange(self.N)
                    table[c, p * nr + r] = b._grants(np.array(pend, dtype=np.int64), rank)
        b.inv.stored = saved
        return table

    def _delivery_table(self) -> _DeliveryTable:
        """Grants of every (joint state, pending-rank), the oldest pairs taken on each link."""
        grants = self._grant_table()
        nr = len(self.ranks)
        radix = np.array([int(np.prod([ls.C + 1 for ls in self.links[e + 1:]])) for e in range(self.L)])
        combo = self.stock @ radix  # (J,)
        g = grants[combo]  # (J, PR, N)
        usage = g @ self.incidence  # (J, PR, L)
        next_j = np.zeros((self.J, self.PR), dtype=np.int64)
        for e, ls in enumerate(self.links):
            t = ls.take[self.link_idx[e][:, None], usage[:, :, e]]
            if (t < 0).any():
                raise AssertionError("a grant exceeds a link's stock")
            next_j += t * int(self.strides[e])
        pend = np.array(self.pendings, dtype=np.int64)[np.arange(self.PR) // nr]  # (PR, N)
        left = pend[None, :, :] - g
        p_idx = np.zeros(left.shape[:2], dtype=np.int64)
        for i in range(self.N):
            p_idx = p_idx * (self.q + 1) + left[:, :, i]
        next_pr = p_idx * nr + (np.arange(self.PR) % nr)[None, :]
        hops = self.b.hops.astype(float)
        return _DeliveryTable(next_j=next_j, next_pr=next_pr, delivered=g.sum(axis=2).astype(float), used=g @ hops)

    # ------------------------------------------------------------------ steps
    def matrix(self, a: int) -> sparse.csr_matrix:
        """The joint step matrix of action index ``a`` (Kronecker product over links)."""
        if a not in self._matrices:
            ks = self.actions[a]
            m = self.links[0].step[ks[0]]
            for ls, k in zip(self.links[1:], ks[1:]):
                m = sparse.kron(m, ls.step[k], format="csr")
            self._matrices[a] = m.tocsr()
        return self._matrices[a]

    def action_of(self, want: NDArray[np.int64]) -> int:
        """The action index of a ``want`` vector (each entry capped to the link's capacity)."""
        return self._action_index[tuple(int(min(max(k, 0), ls.C)) for k, ls in zip(want, self.links))]

    # ------------------------------------------------------------------ policies
    def policy_actions(self, policy: BrokerPolicy) -> NDArray[np.int64]:
        """``acts[s-1, j, p]``: the action a broker policy takes before step s in joint state j
        with pending vector p (the rank is not shown to policies), called through the broker
        itself with its inventory set to state j (``plan`` once, at the learnt-demand prior)."""
        b = self.b
        if not policy.age_aware:
            raise ValueError(f"policy {policy.name!r} is not age-aware: the MDP has the budgeted cut-offs only")
        policy.plan(b, 1)
        saved = b.inv.state_dict()
        n_p = len(self.pendings)
        acts = np.zeros((self.S, self.J, n_p), dtype=np.int64)
        for j in range(self.J):
            self._load_state(j)
            for p, pend in enumerate(self.pendings):
                pend_link = (np.array(pend, dtype=np.int64) @ self.incidence).astype(np.int64)
                for s in range(1, self.S + 1):
                    pl = pend_link if s <= self.S_d else np.zeros(self.L, dtype=np.int64)
                    acts[s - 1, j, p] = self.action_of(policy.want(b, pl, self.S - s))
        b.inv.load_state_dict(saved)
        return acts

    def _load_state(self, j: int) -> None:
        """Set the broker's inventory to joint state j (ring buffer columns by birth step)."""
        inv = self.b.inv
        now = 10 * inv.n_cols
        inv.now = now
        inv.counts[:] = 0
        for e, ls in enumerate(self.links):
            h = ls.states[self.link_idx[e][j]]
            for a, c in enumerate(h, start=1):
                inv.counts[e, (now - a + 1) % inv.n_cols] = c
            ages = [a for a, c in enumerate(h, start=1) if c]
            inv.head[e] = now - max(ages) + 1 if ages else now
        inv.stored = inv.counts.sum(axis=1)

    def state_of_broker(self) -> int:
        """The joint state index of the broker's current inventory (for replaying a table)."""
        inv = self.b.inv
        idx = []
        for e, ls in enumerate(self.links):
            h = [int(inv.counts[e, (inv.now - a + 1) % inv.n_cols]) for a in range(1, ls.K + 1)]
            idx.append(ls.index[tuple(h)])
        return self.joint_of(idx)

    def describe(self) -> dict[str, Any]:
        """Sizes and parameters of the instance."""
        b = self.b
        return {
            "links": self.L, "nodes": self.N, "steps": self.S, "deadline_steps": self.S_d,
            "capacity": [ls.C for ls in self.links], "cutoff_steps": [ls.K for ls in self.links],
            "herald_per_step": [float(n * p) for n, p in zip(b.inv.attempts, b.inv.p)],
            "hops": b.hops.tolist(), "q": self.q, "pi": self.pi, "states": self.J * self.PR * self.S,
            "actions": len(self.actions), "R": b.regime()["R"], "waste_cost": self.w,
        }
