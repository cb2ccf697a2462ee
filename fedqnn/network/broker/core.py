"""The :class:`Broker`: construction, eligibility and the round loop (see
:mod:`fedqnn.network.broker` for the API and the round model).

A round is a window of ``round_duration`` simulated seconds split into ``steps_per_round``
steps. The round's demand (participants x pairs + extra) arrives at the window's start and
must be delivered by ``deadline_fraction`` of it; the rest of the window prepares the next
round. Links go down and come back between rounds (a two-state Markov chain per link,
stationary ``P(down) = outage_prob / (outage_prob + outage_recovery)`` at the start).
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fedqnn.network.broker.cutoffs import _Cutoffs
from fedqnn.network.broker.delivery import _Deliveries, _Delivery
from fedqnn.network.broker.ledger import Service, _Ledger
from fedqnn.network.broker.provisioning import _Provisioning
from fedqnn.network.config import validate_broker_config
from fedqnn.network.policies import BrokerPolicy, get_policy
from fedqnn.network.topology import Network, build_network
from fedqnn.schema import ConfigError
from fedqnn.seeding import rng as seeded_rng

__all__ = ["Broker"]


@dataclass
class _Demand:
    """One round's fixed outside demand, per node (see :meth:`Broker.serve_round`)."""

    sel: NDArray[np.bool_]  # participants
    req_upd: NDArray[np.int64]  # update pairs (demand_per_node per participant)
    req: NDArray[np.int64]  # update + key pairs (the contract's requested)
    draining: bool
    req_all: NDArray[np.int64]  # what the broker sees asked (drain included)
    pending: NDArray[np.int64]  # update tier still to deliver (drain included, quota applied)
    kpending: NDArray[np.int64]  # key tier still to deliver (quota applied)


@dataclass
class _Window:
    """What one round window handed over: both tiers' deliveries, the raw pairs used per
    node for the update tier, and the key tier's summed Bell weights per node."""

    delivered: _Deliveries
    key_deliv: _Deliveries
    node_raw: NDArray[np.int64]
    key_w: NDArray[np.float64]


class Broker(_Provisioning, _Cutoffs, _Delivery, _Ledger):
    """Bell pairs as a perishable inventory on a quantum network (CEAS Definitions 2 and 3)."""

    # ------------------------------------------------------------------ construction
    def __init__(self, cfg: dict[str, Any], node_names: list[str], seed: int) -> None:
        self.cfg = validate_broker_config(cfg)
        self.seed = int(seed)
        self.node_names = [str(n) for n in node_names]
        if not self.node_names:
            raise ConfigError("broker: at least one client node is required")
        self.policy: BrokerPolicy = get_policy(self.cfg["policy"])
        self.net: Network = build_network(self.cfg, self.node_names, seeded_rng(seed, "broker", "topology"))
        self._index = {n: i for i, n in enumerate(self.node_names)}
        self._build_arrays()
        self.rng = seeded_rng(seed, "broker", "dynamics")
        # outages between rounds come from ``rng`` unless a driver sets a stream of their own
        # (``common_outages``: the same outage path for every policy, see experiment.run_broker)
        self.outage_rng: np.random.Generator | None = None
        self.time = 0.0
        self.rounds_done = 0
        self.warm = False
        self.sel_count = np.zeros(self.n_nodes)
        self.demand_ewma = np.full(self.n_nodes, float(self.cfg["pairs_per_node"]))
        self.announced: dict[int, dict[str, int]] = {}
        self.records: dict[int, dict[str, Any]] = {}
        self._node_raw: dict[int, dict[str, int]] = {}
        self._charged: dict[int, list[str]] = {}
        self.node_ledger = {n: {"requested": 0, "delivered": 0, "wasted": 0} for n in self.node_names}
        self._pending_open: dict[str, Any] | None = None  # counters of a warm-up awaiting its round
        self._req_raw_total = 0.0
        # links start in their stationary up/down state
        p_down = self.cfg["outage_prob"] / (self.cfg["outage_prob"] + self.cfg["outage_recovery"])
        self.inv.up = self.rng.random(self.n_links) >= p_down

    def common_outages(self) -> None:
        """Draw the outages between rounds from the stream (seed, 'broker', 'outages'), apart
        from the generation and delivery draws, so brokers with the same seed and network see
        the same outages whatever their policy (common random numbers for comparisons)."""
        self.outage_rng = seeded_rng(self.seed, "broker", "outages")

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None, node_names: list[str], seed: int) -> Broker:
        """Build from the run's ``broker`` sub-dict (validated; see :mod:`fedqnn.network.config`)."""
        return cls(dict(cfg or {}), list(node_names), seed)

    # ------------------------------------------------------------------ helpers
    def link_sum(self, per_node: NDArray[Any]) -> NDArray[np.float64]:
        """Sum a per-node quantity over the links of each node's path (per link)."""
        w = np.asarray(per_node, dtype=float)[self._flat_node]
        return np.bincount(self._flat_link, weights=w, minlength=self.n_links)

    def demand_vector(self, demand: dict[str, int]) -> NDArray[np.float64]:
        """Per-node vector of a ``{node: pairs}`` mapping."""
        out = np.zeros(self.n_nodes)
        for n, k in demand.items():
            if n in self._index:
                out[self._index[n]] = k
        return out

    def participation_estimate(self) -> NDArray[np.float64]:
        """Per-node selection probability: observed frequency with a prior of 2 pseudo-rounds."""
        prior = 2.0
        return (self.sel_count + prior * self.cfg["participation"]) / (self.rounds_done + prior)

    def demand_estimate(self) -> NDArray[np.float64]:
        """Per-node pairs requested when selected (exponentially weighted)."""
        return self.demand_ewma

    def announce(self, rnd: int, demand: dict[str, int]) -> None:
        """Tell the broker a future round's exact demand (only the ``oracle`` policy uses it)."""
        self.announced[int(rnd)] = {str(k): int(v) for k, v in demand.items()}

    def _path_up(self) -> NDArray[np.bool_]:
        up = np.append(self.inv.up, True)[self._path_links_t]
        return up.all(axis=0)

    def _path_min(self, per_link: NDArray[Any]) -> NDArray[np.float64]:
        ext = np.empty(self.n_links + 1)
        ext[:-1] = per_link
        ext[-1] = np.inf
        return ext[self._path_links_t].min(axis=0)

    # ------------------------------------------------------------------ eligibility
    def _servable(self, age_aware: bool) -> NDArray[np.bool_]:
        q = max(1, self.cfg["pairs_per_node"])
        stock = self.inv.valid_after(1) if age_aware else self.inv.stored
        mu = self.rate * self.deadline_steps * self.dt  # expected heralds before the deadline
        avail = self._path_min(stock + mu)
        return self.usable & self._path_up() & (avail >= q * self.mult)

    def availability(self) -> float:
        """Fraction of nodes that can be served now: usable path, all links up, and fresh stock
        plus the generation expected before the deadline covers a request (the aware test,
        applied to every policy)."""
        return float(self._servable(True).mean())

    def eligible(self, rnd: int) -> list[str]:
        """Nodes whose link/path state can serve this round (every node for ``random``): the
        policy's :meth:`~fedqnn.network.policies.BrokerPolicy.servable` test, else
        :meth:`_servable` (fresh stock plus expected generation covers a request)."""
        self._warm_up(rnd)
        if not self.policy.link_state_eligibility:
            return list(self.node_names)
        ok = self.policy.servable(self)  # a policy's own test, or None for the broker's
        if ok is None:
            ok = self._servable(self.policy.age_aware)
        return [n for n, k in zip(self.node_names, ok) if k]

    # ------------------------------------------------------------------ time
    def _warm_up(self, rnd: int) -> None:
        """Before the first round: one round window of stocking, booked to the first round."""
        if self.warm:
            return
        self.warm = True
        self._pending_open = self._counters()
        self.policy.plan(self, rnd)
        zero = np.zeros(self.n_links, dtype=np.int64)
        for s in range(1, self.steps + 1):
            self.inv.step(self.policy.want(self, zero, self.steps - s), self.rng)

    def serve_round(
        self,
        rnd: int,
        participants: list[str],
        demand_per_node: int,
        extra_demand: dict[str, int] | None = None,
        priority: dict[str, float] | None = None,
        drain: dict[str, int] | None = None,
    ) -> Service:
        """Advance one round window, deliver what the fixed demand asks for, and record it.

        ``demand_per_node`` pairs for every participant plus ``extra_demand`` (key pairs, any
        node; counted as ``key_pairs`` when delivered). Update pairs come first: key pairs are
        delivered only from what is left after every pending update request at each step, so
        key distribution never pushes a participant out. ``priority`` (learning value per node)
        orders requests when links are contended. Returns the participants whose update demand
        was fully served, the fidelities delivered per participant, and the key pairs.

        ``drain`` (Bell-pair draining, docs/attacks.md): pairs a node requests on top, in the
        update tier, and never uses. The broker cannot tell them from real requests (only
        ``quota`` caps them), so they compete for the same links; the pairs they get are
        discarded: their raw pairs are charged as ``wasted`` and they are left out of the
        contract's ``requested``/``delivered``/``served`` (the fixed demand), recorded as the
        round's ``drained`` instead.
        """
        rnd = int(rnd)
        extra, drain_d = self._check_request(rnd, participants, demand_per_node, extra_demand, drain)
        self._warm_up(rnd)
        t_start = _time.perf_counter()
        start = self._pending_open or self._counters()
        self._pending_open = None
        availability = self.availability()
        dem = self._round_demand(participants, demand_per_node, extra, drain_d)
        self._learn_demand(rnd, dem)
        rank = self._rank(priority)
        win = self._run_window(dem, rank)
        self.time += self.D
        decision_s = _time.perf_counter() - t_start
        self._advance_outages()
        self._record_round(rnd, start, dem, win.delivered, win.key_deliv, win.node_raw, availability)
        return self._service(rnd, participants, dem, win, availability, decision_s)

    def _check_request(
        self,
        rnd: int,
        participants: list[str],
        demand_per_node: int,
        extra_demand: dict[str, int] | None,
        drain: dict[str, int] | None,
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Validate a round's request; returns (extra demand, drain) as ``{node: pairs}``."""
        if rnd in self.records:
            raise ValueError(f"round {rnd} was already served")
        if demand_per_node < 0:
            raise ValueError("demand_per_node must be >= 0")
        extra = {str(k): int(v) for k, v in (extra_demand or {}).items()}
        unknown = [n for n in [*participants, *extra] if n not in self._index]
        if unknown:
            raise ValueError(f"unknown node(s): {', '.join(map(str, unknown[:5]))}")
        if any(v < 0 for v in extra.values()):
            raise ValueError("extra_demand values must be >= 0")
        drain_d = {str(k): int(v) for k, v in (drain or {}).items()}
        if any(n not in self._index for n in drain_d) or any(v < 0 for v in drain_d.values()):
            raise ValueError("drain: expected known node names and counts >= 0")
        return extra, drain_d

    def _round_demand(
        self,
        participants: list[str],
        demand_per_node: int,
        extra: dict[str, int],
        drain_d: dict[str, int],
    ) -> _Demand:
        """The fixed outside demand per node, and what each tier may deliver (usable paths
        only; ``quota`` caps a node's update pairs, then its key pairs in what is left)."""
        sel = np.zeros(self.n_nodes, dtype=bool)
        for n in participants:
            sel[self._index[n]] = True
        req_upd = np.where(sel, int(demand_per_node), 0).astype(np.int64)
        extra_v = np.zeros(self.n_nodes, dtype=np.int64)
        for n, k in extra.items():
            extra_v[self._index[n]] = k
        req = req_upd + extra_v
        drain_v = np.zeros(self.n_nodes, dtype=np.int64)
        for n, k in drain_d.items():
            drain_v[self._index[n]] = k
        draining = bool(drain_v.any())
        upd_ask = req_upd + drain_v if draining else req_upd
        req_all = req + drain_v if draining else req  # what the broker sees asked
        quota = self.cfg["quota"]
        allowed = upd_ask if quota is None else np.minimum(upd_ask, quota)
        allowed_key = extra_v if quota is None else np.minimum(extra_v, np.maximum(quota - allowed, 0))
        return _Demand(
            sel=sel,
            req_upd=req_upd,
            req=req,
            draining=draining,
            req_all=req_all,
            pending=np.where(self.usable, allowed, 0).astype(np.int64),
            kpending=np.where(self.usable, allowed_key, 0).astype(np.int64),
        )

    def _learn_demand(self, rnd: int, dem: _Demand) -> None:
        """Learn the demand statistics (selection counts, EWMA of the pairs asked), then plan
        the next round's stock."""
        self.sel_count += dem.sel
        asked = dem.req_all > 0
        self.demand_ewma[asked] = 0.7 * self.demand_ewma[asked] + 0.3 * dem.req_all[asked]
        self.rounds_done += 1
        self.policy.plan(self, rnd + 1)

    def _rank(self, priority: dict[str, float] | None) -> NDArray[np.int64]:
        """Each node's rank (0 first): a random order, stably sorted by ``priority`` (high first)."""
        order = self.rng.permutation(self.n_nodes)
        if priority:
            pr = np.array([priority.get(n, 0.0) for n in self.node_names])
            order = order[np.argsort(-pr[order], kind="stable")]
        rank = np.empty(self.n_nodes, dtype=np.int64)
        rank[order] = np.arange(self.n_nodes)
        return rank

    def _run_window(self, dem: _Demand, rank: NDArray[np.int64]) -> _Window:
        """Step through the round window: deliver at the start and after every step up to the
        deadline (update tier, then the key tier from what is left), generating as the
        policy asks."""
        pending, kpending = dem.pending, dem.kpending
        win = _Window(
            delivered=_Deliveries(self.n_nodes),
            key_deliv=_Deliveries(self.n_nodes),
            node_raw=np.zeros(self.n_nodes, dtype=np.int64),
            key_w=np.zeros((self.n_nodes, 4)),
        )
        key_raw = np.zeros(self.n_nodes, dtype=np.int64)
        ctx = self._round_context(rank)

        def deliver_both() -> None:
            if pending.any():
                self._deliver(pending, rank, win.delivered, win.node_raw, ctx=ctx)
            if kpending.any():  # second tier: only what the update requests left
                self._deliver(kpending, rank, win.key_deliv, key_raw, win.key_w, ctx=ctx)

        deliver_both()
        for s in range(1, self.steps + 1):
            in_window = s <= self.deadline_steps
            pend_link = (self.link_sum((pending + kpending) * self.mult).astype(np.int64) if in_window
                         else np.zeros(self.n_links, dtype=np.int64))
            self.inv.step(self.policy.want(self, pend_link, self.steps - s), self.rng)
            if in_window:
                deliver_both()
        return win

    def _advance_outages(self) -> None:
        """Outages for the next round (two-state Markov chain per link)."""
        u = (self.rng if self.outage_rng is None else self.outage_rng).random(self.n_links)
        up = self.inv.up
        self.inv.up = np.where(up, u >= self.cfg["outage_prob"], u < self.cfg["outage_recovery"])

    def _service(
        self,
        rnd: int,
        participants: list[str],
        dem: _Demand,
        win: _Window,
        availability: float,
        decision_s: float,
    ) -> Service:
        """The round's :class:`Service`: fully served participants, each participant's
        fidelities (its real need at most) and the key pairs with their mean Bell weights."""
        names = self.node_names
        n_upd, n_key, req_upd = win.delivered.counts, win.key_deliv.counts, dem.req_upd
        served_nodes = [names[i] for i in np.flatnonzero(dem.sel & (n_upd >= req_upd)).tolist()]
        key_at = np.flatnonzero(n_key)
        keys = {names[i]: (int(n_key[i]), tuple(float(x) for x in win.key_w[i] / n_key[i]))
                for i in key_at.tolist()}
        lists = win.delivered.lists
        return Service(
            round=rnd,
            served_nodes=served_nodes,
            delivered={n: lists.get(self._index[n], [])[: int(req_upd[self._index[n]])] for n in participants},
            requested={n: int(req_upd[self._index[n]]) for n in participants},
            availability=availability,
            decision_s=decision_s,
            key_pairs=keys,  # type: ignore[arg-type]
        )
