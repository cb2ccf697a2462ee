"""The entanglement broker: the round-level API the server calls (Flower-free).

    broker = Broker.from_config(cfg, node_names, seed)
    nodes = broker.eligible(rnd)
    svc = broker.serve_round(rnd, participants, demand_per_node, extra_demand)
    broker.charge_rejected(rnd, rejected_nodes)
    bell = broker.round_record(rnd)        # the contract's `bell` keys
    broker.regime()                        # {"R", "rho", "F_min"}
    broker.totals(); broker.state_dict(); broker.load_state_dict(d)

A round is a window of ``round_duration`` simulated seconds split into ``steps_per_round``
steps (with key demand, ``key_pairs_per_node > 0``, at least 2 D / median cut-off budget steps,
at most 20000, so a step stays below the pairs' lifetime). The round's demand (participants x pairs + extra) arrives at the window's start and
must be delivered by ``deadline_fraction`` of it; the rest of the window prepares the next
round. Everything random comes from one seeded generator whose state is saved with the
broker, so a run (and a resumed run) repeats exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fedqnn.network import physics
from fedqnn.network.config import validate_broker_config
from fedqnn.network.inventory import Inventory
from fedqnn.network.policies import BrokerPolicy, get_policy
from fedqnn.network.topology import Network, build_network
from fedqnn.schema import ConfigError
from fedqnn.seeding import rng as seeded_rng

__all__ = ["Broker", "Service", "BELL_KEYS"]

BELL_KEYS = (
    "generated", "used_raw", "expired", "wasted", "stored", "key_pairs", "requested",
    "delivered", "served", "utilization", "mean_consumed_fidelity",
)


@dataclass
class Service:
    """What a round delivered: fully served nodes and the fidelities each node received."""

    round: int
    served_nodes: list[str]
    delivered: dict[str, list[float]]
    requested: dict[str, int]
    availability: float
    decision_s: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)
    key_pairs: dict[str, tuple[int, tuple[float, float, float, float]]] = field(default_factory=dict)
    """Key-distribution pairs per node: (count, mean Bell-diagonal weights (Phi+, Phi-, Psi+, Psi-))."""


@dataclass
class _RoundContext:
    """Per-round constants of the delivery passes (see :meth:`Broker._round_context`)."""

    path_up: NDArray[np.bool_]
    by_link_node: NDArray[np.int64]
    by_link_link: NDArray[np.int64]


class _Deliveries:
    """The end-to-end pairs one round hands over, gathered pass by pass (one tier).

    Each delivery pass adds the receiving node of every pair (sorted) and its fidelity;
    :meth:`finish` turns them into per-node counts and fidelity lists. The lists keep the
    order of delivery, and :attr:`fids_in_order` lists every fidelity node by node, nodes in
    the order of their first delivery (the order the round's fidelity sum is taken in).
    """

    def __init__(self, n_nodes: int) -> None:
        self.n_nodes = n_nodes
        self._nodes: list[NDArray[np.int64]] = []
        self._fids: list[NDArray[np.float64]] = []
        self.counts = np.zeros(n_nodes, dtype=np.int64)
        self.lists: dict[int, list[float]] = {}
        self.fids_in_order: list[float] = []

    def add(self, nodes: NDArray[np.int64], fids: NDArray[np.float64]) -> None:
        if nodes.size:
            self._nodes.append(nodes)
            self._fids.append(fids)

    def finish(self) -> None:
        if not self._nodes:
            return
        nodes, fids = np.concatenate(self._nodes), np.concatenate(self._fids)
        self.counts = np.bincount(nodes, minlength=self.n_nodes)
        perm = np.argsort(nodes, kind="stable")  # by node, in delivery order within a node
        got = np.flatnonzero(self.counts)
        cnt = self.counts[got]
        ends = np.cumsum(cnt)
        starts = ends - cnt
        by_node = fids[perm].tolist()
        self.lists = {int(i): by_node[a:b] for i, a, b in zip(got, starts.tolist(), ends.tolist())}
        first = np.argsort(perm[starts])  # nodes in the order of their first delivery
        self.fids_in_order = [f for g in first.tolist() for f in self.lists[int(got[g])]]


class Broker:
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

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None, node_names: list[str], seed: int) -> Broker:
        """Build from the run's ``broker`` sub-dict (validated; see :mod:`.config`)."""
        return cls(dict(cfg or {}), list(node_names), seed)

    def _build_arrays(self) -> None:
        cfg, g = self.cfg, self.net.graph
        # active links: those on some client path
        link_id: dict[tuple[str, str], int] = {}
        for n in self.node_names:
            path = self.net.paths[n]
            for u, v in zip(path[:-1], path[1:]):
                key = (u, v) if u < v else (v, u)
                link_id.setdefault(key, len(link_id))
        self.links = list(link_id)
        L = self.n_links = len(self.links)
        N = self.n_nodes = len(self.node_names)
        H = self.max_hops = max(len(p) - 1 for p in self.net.paths.values())
        self.hops = np.array([len(self.net.paths[n]) - 1 for n in self.node_names], dtype=np.int64)
        self.path_links = np.full((N, H), L, dtype=np.int64)  # padded with the dummy link L
        for i, n in enumerate(self.node_names):
            p = self.net.paths[n]
            for h, (u, v) in enumerate(zip(p[:-1], p[1:])):
                self.path_links[i, h] = link_id[(u, v) if u < v else (v, u)]
        self._valid_hop = self.path_links < L
        self._path_links_t = np.ascontiguousarray(self.path_links.T)  # (H, N): fast per-path min
        self._flat_node = np.repeat(np.arange(N), self.hops)
        self._flat_link = self.path_links[self._valid_hop]
        self._links_of = [self.path_links[i, : self.hops[i]] for i in range(N)]

        attr = lambda k: np.array([g.edges[e][k] for e in self.links], dtype=float)  # noqa: E731
        self.F0, self.B0, self.p = attr("F0"), attr("B0"), attr("p")
        self.tau, cap_ch = attr("tau"), attr("capacity")
        T_node = {n: g.nodes[n]["T"] for n in g.nodes}
        self.T_rel = np.array([physics.combined_T(T_node[u], T_node[v]) for u, v in self.links])
        lam = physics.bell_weights(self.F0, self.B0)
        self.c0 = physics.characters(lam)
        if np.any(self.c0 <= 0):
            raise ConfigError("broker.F0: fresh pairs need positive Bell characters (F0 > B0, F0 + B0 > 1/2)")
        self.rates_rel = physics.decay_rates(cfg["noise"], self.T_rel)  # per unit of T scale

        # per-path purification choice and cut-off budgets (in units of the pair's T)
        fmin = cfg["F_min"]
        x_plain = self._budgets(purify=False)
        fresh_ok = x_plain > 0
        self.mult = np.ones(N, dtype=np.int64)
        x = x_plain.copy()
        if cfg["purify"]:
            x_pur = self._budgets(purify=True)
            use = (~fresh_ok) & (x_pur > 0)
            self.mult[use] = 2
            x[use] = x_pur[use]
        # admission: a path whose budget is far below the typical one would force the links it
        # shares down to its tiny cut-off; purify it if that lifts it, else leave it unusable
        floor = cfg["admission"] * float(np.median(x_plain[x_plain > 0])) if (x_plain > 0).any() else 0.0
        low = (x > 0) & (x < floor) & (self.mult == 1)
        if cfg["purify"] and low.any():
            x_pur = self._budgets(purify=True)
            lift = low & (x_pur >= floor)
            self.mult[lift] = 2
            x[lift] = x_pur[lift]
        self.usable = x >= max(floor, 1e-300)
        self._m_max = int(self.mult.max())  # 1 or 2 (pairs per hop per delivered pair)
        self.budget_x = x
        # provisioning: one channel per path through a link (load) or one per link (uniform)
        if cfg["provision"] == "load":
            self.channels = np.maximum(self.link_sum(self.mult * self.usable), 1).astype(np.int64)
        else:
            self.channels = np.ones(L, dtype=np.int64)
        self.rate_ch = self.p / self.tau
        self.rate = self.channels * self.rate_ch
        # link cut-offs (relative units): split each path's budget over its links
        self.cut_rel_budget = self._allocate_cutoffs(x)
        single = np.array(
            [physics.path_cutoff_budget(self.c0[i : i + 1], self.rates_rel[i : i + 1],
                                        self.T_rel[i : i + 1], fmin) for i in range(L)]
        )
        self.cut_rel_link = single * self.T_rel
        # T scale: explicit memory_T, or calibrated so that R = target_R
        ch = self.channels.astype(float)
        R1 = float((ch * self.rate_ch * self.cut_rel_budget).sum() / ch.sum())
        if cfg["memory_T"] is not None:
            self.T_scale = float(cfg["memory_T"])
        else:
            if not math.isfinite(R1) or R1 <= 0:
                raise ConfigError(
                    "broker.target_R: cannot calibrate (cut-off infinite or zero for these F0/F_min); "
                    "set broker.memory_T instead"
                )
            self.T_scale = cfg["target_R"] / R1
        # round duration: explicit, or calibrated so that the expected load is target_rho
        q = cfg["participation"] * cfg["pairs_per_node"] + cfg["key_pairs_per_node"]
        raw_per_round = q * float((self.mult * self.hops * self.usable).sum())
        if cfg["round_duration"] is not None:
            self.D = float(cfg["round_duration"])
        else:
            if raw_per_round <= 0:
                raise ConfigError("broker.target_rho: needs pairs_per_node > 0 and a usable path")
            self.D = raw_per_round / (cfg["target_rho"] * float(self.rate.sum()))
        self.steps = int(cfg["steps_per_round"])
        if cfg["key_pairs_per_node"] > 0:
            # key demand stretches the round far beyond the cut-offs: refine the time step so that
            # it stays at most half the median cut-off budget (else pairs expire within one step)
            cut = self.cut_rel_budget * self.T_scale
            cut = cut[np.isfinite(cut) & (cut > 0)]
            if cut.size:
                self.steps = max(self.steps, min(20000, math.ceil(2.0 * self.D / float(np.median(cut)))))
        self.dt = self.D / self.steps
        self.deadline_steps = max(1, int(round(cfg["deadline_fraction"] * self.steps)))
        budget_s = self.cut_rel_budget * self.T_scale
        link_s = self.cut_rel_link * self.T_scale
        self.cutoff_s = budget_s if self.policy.age_aware else link_s
        self.budget_cutoff_s = budget_s
        max_age = int(cfg["max_age_steps"])
        with np.errstate(invalid="ignore", over="ignore"):
            cb = np.floor(np.minimum(self.cutoff_s / self.dt, max_age) + 1e-9)
        cb = np.where(np.isfinite(cb), cb, max_age).astype(np.int64)
        self.cutoff_s = np.minimum(self.cutoff_s, max_age * self.dt)
        self.budget_cutoff_s = np.minimum(self.budget_cutoff_s, max_age * self.dt)
        attempts = np.maximum(np.round(self.channels * self.dt / self.tau), 1).astype(np.int64)
        self.rate = attempts * self.p / self.dt  # the rate the simulation actually realises
        self.inv = Inventory(
            capacity=(self.channels * cap_ch).astype(np.int64),
            cutoff_steps=cb,
            attempts=attempts,
            p=self.p,
            dt=self.dt,
        )
        self.rates = self.rates_rel / self.T_scale  # per-character decay rates, 1/s
        self.logc0 = np.log(self.c0)

    def _allocate_cutoffs(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per-link cut-offs t_e (in units of the T scale) meeting every path's budget.

        Path P tolerates sum_{e in P} t_e / T_e <= B_P = hops_P x_P (exact for depolarising
        and dephasing memories, where the end-to-end characters depend on that sum only).
        Every link holds its stock for about the same lead time (stock and rate both scale
        with its channels), so we maximise the smallest normalised cut-off u_e = t_e / T_e
        (max-min water-filling: repeatedly fix the links of the tightest path at its equal
        share, then share the slack of looser paths among their remaining links). Purified
        paths are re-checked with the exact fidelity and their budget shrunk until they pass.
        """
        L, H = self.n_links, self.max_hops
        T = self.T_rel
        k = np.ones(L)
        ok = self.usable & np.isfinite(x)
        inf_paths = self.usable & ~np.isfinite(x)
        B = np.where(ok, self.hops * np.where(np.isfinite(x), x, 0.0), 0.0)
        pl = self.path_links
        coef_ext = np.append(1.0 / (T * k) * T, 0.0)  # d(t_e/T_e) per unit of u, t_e = u T_e
        t = np.full(L, np.inf)
        for _attempt in range(20):
            t = np.full(L, np.inf)
            fixed = np.zeros(L + 1, dtype=bool)
            fixed[L] = True
            while True:
                t_ext = np.append(np.where(np.isfinite(t), t, 0.0), 0.0)
                unf = ~fixed[pl] & ok[:, None]
                if not unf.any():
                    break
                used = (t_ext[pl] / np.append(T, 1.0)[pl] * ~unf).sum(axis=1)
                coef = (coef_ext[pl] * unf).sum(axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    u = np.where(coef > 0, (B - used) / coef, np.inf)
                u_star = u.min()
                tight = np.nonzero(u <= u_star * (1 + 1e-9) + 1e-300)[0]
                links = pl[tight][unf[tight]]
                t[links] = max(u_star, 0.0) * T[links]
                fixed[links] = True
            t = np.where(np.isfinite(t), t, 0.0)
            # exact check (purified paths are not linear in the ages)
            pur = np.nonzero(ok & (self.mult == 2))[0]
            if not pur.size:
                break
            c0 = np.vstack([self.c0, np.ones((1, 3))])[pl[pur]]
            rr = np.vstack([self.rates_rel, np.zeros((1, 3))])[pl[pur]]
            ages = np.append(t, 0.0)[pl[pur]]
            c = c0 * np.exp(-rr * ages[..., None])
            c, _ = physics.purify_characters(c, c, self.cfg["purify_protocol"])
            fails = physics.fidelity_from_characters(np.prod(c, axis=1)) < self.cfg["F_min"]
            if not fails.any():
                break
            B[pur[fails]] *= 0.9
        # links used only by paths with an infinite budget keep an infinite cut-off
        only_inf = np.zeros(L + 1, dtype=bool)
        only_inf[pl[inf_paths][pl[inf_paths] < L]] = True
        finite_use = np.zeros(L + 1, dtype=bool)
        finite_use[pl[ok][pl[ok] < L]] = True
        t = np.where(only_inf[:L] & ~finite_use[:L], np.inf, t)
        del H
        return t

    def _budgets(self, purify: bool) -> NDArray[np.float64]:
        """Vectorised bisection of the per-path budget x (see physics.path_cutoff_budget)."""
        L, fmin = self.n_links, self.cfg["F_min"]
        c0 = np.vstack([self.c0, np.ones((1, 3))])[self.path_links]  # (N, H, 3)
        rr = np.vstack([self.rates_rel, np.zeros((1, 3))])[self.path_links]
        T = np.append(self.T_rel, 1.0)[self.path_links]
        proto = self.cfg["purify_protocol"] if purify else None

        def fid(x: NDArray[np.float64]) -> NDArray[np.float64]:
            c = c0 * np.exp(-rr * (x[:, None] * T)[..., None])
            if proto:
                c, _ = physics.purify_characters(c, c, proto)
            return physics.fidelity_from_characters(np.prod(c, axis=1))

        del L
        n = len(self.node_names)
        ok0 = fid(np.zeros(n)) >= fmin
        hi = np.ones(n)
        for _ in range(40):
            grow = ok0 & (fid(hi) >= fmin) & (hi < 1e6)
            if not grow.any():
                break
            hi = np.where(grow, hi * 2.0, hi)
        lo = np.zeros(n)
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            good = fid(mid) >= fmin
            lo = np.where(good, mid, lo)
            hi = np.where(good, hi, mid)
        lo = np.where(hi >= 1e6, np.inf, lo)
        return np.where(ok0, lo, 0.0)

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
        """Nodes whose link/path state can serve this round (every node for ``random``)."""
        self._warm_up(rnd)
        if not self.policy.link_state_eligibility:
            return list(self.node_names)
        ok = self._servable(self.policy.age_aware)
        return [n for n, k in zip(self.node_names, ok) if k]

    # ------------------------------------------------------------------ time
    def _counters(self) -> dict[str, int]:
        inv = self.inv
        return {
            "generated": int(inv.generated.sum()),
            "used_raw": int(inv.used_raw.sum()),
            "expired": int(inv.expired.sum()),
            "wasted": int(inv.wasted.sum()),
        }

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
        import time as _time

        rnd = int(rnd)
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
        self._warm_up(rnd)
        t_start = _time.perf_counter()
        start = self._pending_open or self._counters()
        self._pending_open = None
        availability = self.availability()

        # fixed outside demand
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
        pending = np.where(self.usable, allowed, 0).astype(np.int64)
        kpending = np.where(self.usable, allowed_key, 0).astype(np.int64)

        # learn demand statistics, then plan the next round's stock
        self.sel_count += sel
        asked = req_all > 0
        self.demand_ewma[asked] = 0.7 * self.demand_ewma[asked] + 0.3 * req_all[asked]
        self.rounds_done += 1
        self.policy.plan(self, rnd + 1)

        order = self.rng.permutation(self.n_nodes)
        if priority:
            pr = np.array([priority.get(n, 0.0) for n in self.node_names])
            order = order[np.argsort(-pr[order], kind="stable")]
        rank = np.empty(self.n_nodes, dtype=np.int64)
        rank[order] = np.arange(self.n_nodes)
        order = rank
        delivered = _Deliveries(self.n_nodes)
        key_deliv = _Deliveries(self.n_nodes)
        node_raw = np.zeros(self.n_nodes, dtype=np.int64)
        key_raw = np.zeros(self.n_nodes, dtype=np.int64)
        key_w = np.zeros((self.n_nodes, 4))

        ctx = self._round_context(order)

        def deliver_both() -> None:
            if pending.any():
                self._deliver(pending, order, delivered, node_raw, ctx=ctx)
            if kpending.any():  # second tier: only what the update requests left
                self._deliver(kpending, order, key_deliv, key_raw, key_w, ctx=ctx)

        deliver_both()
        for s in range(1, self.steps + 1):
            in_window = s <= self.deadline_steps
            pend_link = (self.link_sum((pending + kpending) * self.mult).astype(np.int64) if in_window
                         else np.zeros(self.n_links, dtype=np.int64))
            self.inv.step(self.policy.want(self, pend_link, self.steps - s), self.rng)
            if in_window:
                deliver_both()
        self.time += self.D
        decision_s = _time.perf_counter() - t_start

        # outages for the next round (two-state Markov chain per link)
        u = self.rng.random(self.n_links)
        up = self.inv.up
        self.inv.up = np.where(up, u >= self.cfg["outage_prob"], u < self.cfg["outage_recovery"])

        end = self._counters()
        delivered.finish()
        key_deliv.finish()
        n_upd, n_key = delivered.counts, key_deliv.counts
        n_deliv = n_upd + n_key
        key_pairs = int(n_key.sum())
        fids = delivered.fids_in_order + key_deliv.fids_in_order
        rec: dict[str, Any] = {k: end[k] - start[k] for k in ("generated", "used_raw", "expired", "wasted")}
        rec["stored"] = int(self.inv.stored.sum())
        rec["key_pairs"] = key_pairs
        rec["requested"] = int(req.sum())
        rec["delivered"] = int(n_deliv.sum())
        rec["_fid_sum"] = float(sum(fids))
        if draining:  # pairs beyond a node's real need were drained: discarded, their raw pairs wasted
            drained = n_upd - np.minimum(n_upd, req_upd)
            self._charge_drained(rec, drained, node_raw, delivered.lists, req_upd)
        rec["availability"] = availability
        rec["participants"] = int(sel.sum())
        self._finish_record(rec)
        self.records[rnd] = rec
        names = self.node_names
        raw_at = np.flatnonzero(node_raw)
        self._node_raw[rnd] = {names[i]: k for i, k in zip(raw_at.tolist(), node_raw[raw_at].tolist())}
        self._req_raw_total += float((req_all * self.mult * self.hops).sum())
        asked_at = np.flatnonzero(req_all)
        for i, r_i, d_i in zip(asked_at.tolist(), req_all[asked_at].tolist(), n_deliv[asked_at].tolist()):
            led = self.node_ledger[names[i]]
            led["requested"] += r_i
            led["delivered"] += d_i
        self.announced.pop(rnd, None)
        served_nodes = [names[i] for i in np.flatnonzero(sel & (n_upd >= req_upd)).tolist()]
        key_at = np.flatnonzero(n_key)
        keys = {names[i]: (int(n_key[i]), tuple(float(x) for x in key_w[i] / n_key[i]))
                for i in key_at.tolist()}
        lists = delivered.lists
        return Service(
            round=rnd,
            served_nodes=served_nodes,
            delivered={n: lists.get(self._index[n], [])[: int(req_upd[self._index[n]])] for n in participants},
            requested={n: int(req_upd[self._index[n]]) for n in participants},
            availability=availability,
            decision_s=decision_s,
            key_pairs=keys,  # type: ignore[arg-type]
        )

    def _charge_drained(
        self,
        rec: dict[str, Any],
        drained: NDArray[np.int64],
        node_raw: NDArray[np.int64],
        lists: dict[int, list[float]],
        need: NDArray[np.int64],
    ) -> None:
        """Move the drained pairs out of the round's delivered and their raw pairs
        (pairs x purification multiplier x hops each) from used_raw to wasted, per link too;
        ``node_raw`` keeps only the raw pairs of the real need (what a rejection can charge)."""
        at = np.flatnonzero(drained)
        raw_per_pair = self.mult * self.hops
        for i in at.tolist():
            k, keep = int(drained[i]), int(need[i])
            rec["delivered"] -= k
            rec["_fid_sum"] -= float(sum(lists[i][keep:]))
            raw = k * int(raw_per_pair[i])
            node_raw[i] -= raw
            rec["used_raw"] -= raw
            rec["wasted"] += raw
            self.node_ledger[self.node_names[i]]["wasted"] += raw
            for link in self.path_links[i, : self.hops[i]]:
                share = k * int(self.mult[i])
                self.inv.used_raw[link] -= share
                self.inv.wasted[link] += share
        rec["drained"] = int(drained.sum())

    @staticmethod
    def _finish_record(rec: dict[str, Any]) -> None:
        den = rec["used_raw"] + rec["expired"] + rec["wasted"]
        rec["utilization"] = rec["used_raw"] / den if den else None
        rec["served"] = rec["delivered"] / rec["requested"] if rec["requested"] else None
        rec["mean_consumed_fidelity"] = rec["_fid_sum"] / rec["delivered"] if rec["delivered"] else None

    # ------------------------------------------------------------------ delivery
    def _round_context(self, rank: NDArray[np.int64]) -> _RoundContext:
        """What stays fixed while one round is served: which paths are up (links change state
        only between rounds) and the (node, link) path entries ordered by link, then rank."""
        key = self._flat_link * self.n_nodes + rank[self._flat_node]  # distinct (a link once per path)
        srt = np.argsort(key)
        return _RoundContext(
            path_up=self._path_up(),
            by_link_node=self._flat_node[srt],
            by_link_link=self._flat_link[srt],
        )

    def _grants(
        self,
        pending: NDArray[np.int64],
        rank: NDArray[np.int64],
        ctx: _RoundContext | None = None,
    ) -> NDArray[np.int64]:
        """End-to-end pairs each node can get now: proportional water-filling, then greedy.

        ``rank[i]`` is node i's priority (0 first). The greedy phase hands one pair per round
        to the nodes in rank order that still fit on every link of their path (vectorised
        with per-link prefix sums in rank order). ``ctx`` is the round's
        :meth:`_round_context` (built here if not given).

        Only the nodes with a servable request take part (a node whose need is zero never
        receives a grant nor adds demand to a link), so every per-node array below is over
        those nodes; the arithmetic is the same as over all nodes, element by element, and
        the per-link sums add whole numbers, so the grants are exactly the same.
        """
        if ctx is None:
            ctx = self._round_context(rank)
        L, m = self.n_links, self.mult
        grant = np.zeros(self.n_nodes, dtype=np.int64)
        act = np.flatnonzero((pending > 0) & ctx.path_up)
        if not act.size:
            return grant
        avail = np.where(self.inv.up, self.inv.stored, 0).astype(np.int64)
        ext = np.empty(L + 1)  # per-link values with +inf on the padding link L
        ext[L] = np.inf
        plt = self._path_links_t[:, act]  # (hops, active nodes)

        def path_min(per_link: NDArray[Any]) -> NDArray[np.float64]:
            ext[:L] = per_link
            return ext[plt].min(axis=0)

        # servable: every link of the path holds m pairs (stock capped at max m: exact test)
        m_max = self._m_max
        lvl = np.empty(L + 1, dtype=np.int8)
        np.minimum(avail, m_max, out=lvl[:L], casting="unsafe")
        lvl[L] = m_max
        keep = lvl[plt].min(axis=0) >= m[act]
        if not keep.all():
            act, plt = act[keep], plt[:, keep]
            if not act.size:
                return grant
        need = pending[act].astype(np.int64)
        got = np.zeros(act.size, dtype=np.int64)  # grants of the active nodes
        m_a = m[act]
        pl = plt.T
        fl = pl[pl < L]  # the active nodes' path links, node by node (as in link_sum)
        fn = np.repeat(np.arange(act.size), self.hops[act])

        def link_sum(per_act: NDArray[np.int64]) -> NDArray[np.float64]:
            return np.bincount(fl, weights=per_act[fn], minlength=L)

        done = False
        for _ in range(3):
            dem = link_sum(need * m_a)
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(dem > 0, np.minimum(1.0, avail / dem), 1.0)
            g = np.floor(need * path_min(share) + 1e-9).astype(np.int64)
            if not g.any():
                break
            avail -= link_sum(g * m_a).astype(np.int64)
            need -= g
            got += g
            if not need.any():
                done = True
                break
        if done:
            grant[act] = got
            return grant
        # greedy phase on the active nodes' path entries, by link then rank (node -> local index)
        local = np.full(self.n_nodes, -1, dtype=np.int64)
        local[act] = np.arange(act.size)
        ent_a = local[ctx.by_link_node]
        keep_e = ent_a >= 0
        ent_a, ent_l = ent_a[keep_e], ctx.by_link_link[keep_e]
        rank_a = rank[act]
        single = bool((m_a == 1).all())
        # a node that is not a candidate never becomes one again (need and stock only fall
        # here), so each pass checks the previous candidates on their own path entries
        cand = need > 0
        for _ in range(8):  # leftovers from rounding: one pair at a time, in rank order
            cand[ent_a[avail[ent_l] < m_a[ent_a]]] = False  # some link of the path is short
            if not cand.any():
                break
            e = cand[ent_a]
            ent_a, ent_l = ent_a[e], ent_l[e]  # candidates' entries, by link then rank
            en, el = ent_a, ent_l
            w = m_a[en]
            cum = np.cumsum(w)
            grp = np.empty(el.size, dtype=bool)  # first entry of each link
            grp[0] = True
            np.not_equal(el[1:], el[:-1], out=grp[1:])
            within = cum - np.maximum.accumulate(np.where(grp, cum - w, 0))
            g_b = cand.copy()
            g_b[en[within > avail[el]]] = False  # it does not fit on some link
            if not g_b.any():
                first = np.flatnonzero(cand)
                g_b[first[np.argmin(rank_a[first])]] = True
            ge = g_b[en]
            if single:
                avail -= np.bincount(el[ge], minlength=L)
            else:
                avail -= np.bincount(el[ge], weights=w[ge], minlength=L).astype(np.int64)
            need -= g_b
            got += g_b
            cand &= need > 0
        grant[act] = got
        return grant

    def _deliver(
        self,
        pending: NDArray[np.int64],
        order: NDArray[np.int64],
        delivered: _Deliveries,
        node_raw: NDArray[np.int64],
        bell_sum: NDArray[np.float64] | None = None,
        ctx: _RoundContext | None = None,
    ) -> None:
        """Hand over what ``_grants`` allows; ``bell_sum`` (nodes, 4), if given, accumulates
        the Bell-diagonal weights of each node's delivered pairs."""
        grant = self._grants(pending, order, ctx)
        granted = np.flatnonzero(grant)
        if not granted.size:
            return
        m, L = self.mult, self.n_links
        # one entry per (node, hop) with units = raw pairs drawn from that hop's link
        pl = self.path_links[granted]
        units_nh = np.where(pl < L, (grant[granted] * m[granted])[:, None], 0)
        ent_row, ent_hop = np.nonzero(units_nh)  # ent_row: position in `granted`
        ent_node = granted[ent_row]
        ent_link = pl[ent_row, ent_hop]
        ent_units = units_nh[ent_row, ent_hop]
        usage = np.bincount(ent_link, weights=ent_units, minlength=L).astype(np.int64)
        _, removed, age_b = self.inv.take_oldest(usage)
        # ages of the removed pairs, per used link oldest first, concatenated in link order
        age_idx = np.repeat(age_b, removed)
        link_start = np.cumsum(usage) - usage
        srt = np.argsort(ent_link, kind="stable")  # by link, then node (entries are node-sorted)
        ent_node, ent_hop, ent_link, ent_units = ent_node[srt], ent_hop[srt], ent_link[srt], ent_units[srt]
        ent_row = ent_row[srt]
        csum = np.cumsum(ent_units)
        first = csum - ent_units
        grp_first = first[np.searchsorted(ent_link, ent_link, side="left")]
        offset = link_start[ent_link] + first - grp_first
        total = int(csum[-1])
        unit_ent = np.repeat(np.arange(len(ent_units)), ent_units)
        k_in_ent = np.arange(total) - first[unit_ent]
        ages = age_idx[offset[unit_ent] + k_in_ent] * self.dt
        u_link = ent_link[unit_ent]
        chars = self.c0[u_link] * np.exp(-self.rates[u_link] * ages[:, None])
        u_node = ent_node[unit_ent]
        u_m = m[u_node]
        grant_g = grant[granted]
        pair_end = np.cumsum(grant_g)
        u_pair = (pair_end - grant_g)[ent_row[unit_ent]] + k_in_ent // u_m
        n_pairs = int(pair_end[-1])
        hop_chars = np.ones((n_pairs, self.max_hops, 3))
        p_ok = np.ones(n_pairs)
        single = u_m == 1
        u_hop = ent_hop[unit_ent]
        if single.all():
            hop_chars[u_pair, u_hop] = chars
        else:  # purified hops: units 2j, 2j+1 of an entry form one input pair
            hop_chars[u_pair[single], u_hop[single]] = chars[single]
            idx = np.nonzero(~single)[0]
            a, b = idx[0::2], idx[1::2]
            pc, pp = physics.purify_characters(chars[a], chars[b], self.cfg["purify_protocol"])
            hop_chars[u_pair[a], u_hop[a]] = pc
            np.multiply.at(p_ok, u_pair[a], pp)
        pair_node = np.repeat(granted, grant_g)
        c_e2e = np.prod(hop_chars, axis=1)
        fid = physics.fidelity_from_characters(c_e2e)
        if self.cfg["swap_success"] != 1.0:  # (1.0 ** k == 1.0: nothing to multiply)
            p_ok *= self.cfg["swap_success"] ** (self.hops[pair_node] - 1)
        ok = self.rng.random(n_pairs) < p_ok
        good = fid >= self.cfg["F_min"] - 1e-12
        use = ok & good
        # ledger per link: each unit follows its pair's fate
        if use.all():
            self.inv.used_raw += np.bincount(u_link, minlength=L)
            done = use
        else:
            fate_unit = np.where(use, 0, np.where(ok, 1, 2))[u_pair]  # 0 used, 1 low F, 2 failed
            per_fate = np.bincount(fate_unit * L + u_link, minlength=3 * L).reshape(3, L)
            self.inv.used_raw += per_fate[0]
            self.inv.wasted += per_fate[2]
            if self.policy.age_aware:
                self.inv.expired += per_fate[1]  # caught before hand-over: discarded
                done = use
            else:
                self.inv.wasted += per_fate[1]  # handed over blindly below F_min
                done = ok
        np.subtract.at(pending, pair_node[done], 1)
        node_use = pair_node[use]  # sorted by node
        np.add.at(node_raw, node_use, (m * self.hops)[node_use])
        if bell_sum is not None:
            np.add.at(bell_sum, node_use, physics.weights_from_characters(c_e2e[use]))
        delivered.add(node_use, fid[use])

    # ------------------------------------------------------------------ records
    def charge_rejected(self, rnd: int, nodes: list[str]) -> None:
        """Pairs delivered in round ``rnd`` to updates that were then rejected become wasted."""
        rec = self.records.get(int(rnd))
        if rec is None:
            raise KeyError(f"round {rnd} has not been served")
        done = self._charged.setdefault(int(rnd), [])
        raw = self._node_raw.get(int(rnd), {})
        for n in nodes:
            if n in done or n not in raw:
                continue
            k = raw[n]
            done.append(n)
            rec["used_raw"] -= k
            rec["wasted"] += k
            self.node_ledger[n]["wasted"] += k
            # keep the per-link ledger consistent: move k units from used_raw to wasted
            i = self._index[n]
            for link in self.path_links[i, : self.hops[i]]:
                share = k // int(self.hops[i])
                self.inv.used_raw[link] -= share
                self.inv.wasted[link] += share
        self._finish_record(rec)

    def round_record(self, rnd: int) -> dict[str, Any]:
        """The contract's ``bell`` record of a served round (exactly its keys)."""
        rec = self.records[int(rnd)]
        out = {k: rec[k] for k in BELL_KEYS}
        if "drained" in rec:  # extension: pairs Byzantine nodes drained (docs/attacks.md)
            out["drained"] = rec["drained"]
        return out

    def round_extras(self, rnd: int) -> dict[str, Any]:
        """Extra per-round measurements: availability and number of participants."""
        rec = self.records[int(rnd)]
        return {"availability": rec["availability"], "participants": rec["participants"]}

    def regime(self) -> dict[str, float]:
        """R = r t_c (rate-weighted over links, per channel) and rho = demand / generation rate.

        rho uses the demand observed so far (raw pairs: pairs x hops x purification), else the
        configured expectation (participation x pairs_per_node).
        """
        ch = self.channels.astype(float)
        R = float((ch * (self.rate / ch) * self.budget_cutoff_s).sum() / ch.sum())
        if self.rounds_done:
            raw_rate = self._req_raw_total / (self.rounds_done * self.D)
        else:
            q = self.cfg["participation"] * self.cfg["pairs_per_node"] + self.cfg["key_pairs_per_node"]
            raw_rate = q * float((self.mult * self.hops * self.usable).sum()) / self.D
        return {"R": R, "rho": raw_rate / float(self.rate.sum()), "F_min": float(self.cfg["F_min"])}

    def totals(self) -> dict[str, Any]:
        """Run totals over the served rounds (same keys as a round record)."""
        tot: dict[str, Any] = {k: 0 for k in ("generated", "used_raw", "expired", "wasted",
                                               "key_pairs", "requested", "delivered")}
        fsum = 0.0
        for rec in self.records.values():
            for k in tot:
                tot[k] += rec[k]
            fsum += rec["_fid_sum"]
        tot["stored"] = int(self.inv.stored.sum())
        tot["_fid_sum"] = fsum
        self._finish_record(tot)
        tot.pop("_fid_sum")
        tot["rounds"] = len(self.records)
        if any("drained" in rec for rec in self.records.values()):
            tot["drained"] = sum(rec.get("drained", 0) for rec in self.records.values())
        return tot

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state for crash-safe resume (the RNG state included)."""
        return {
            "version": 1,
            "seed": self.seed,
            "cfg": self.cfg,
            "node_names": self.node_names,
            "time": self.time,
            "rounds_done": self.rounds_done,
            "warm": self.warm,
            "pending_open": self._pending_open,
            "sel_count": self.sel_count.tolist(),
            "demand_ewma": self.demand_ewma.tolist(),
            "announced": {str(k): v for k, v in self.announced.items()},
            "records": {str(k): v for k, v in self.records.items()},
            "node_raw": {str(k): v for k, v in self._node_raw.items()},
            "charged": {str(k): v for k, v in self._charged.items()},
            "node_ledger": self.node_ledger,
            "req_raw_total": self._req_raw_total,
            "inventory": self.inv.state_dict(),
            "policy": self.policy.state_dict(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore a broker built from the same config, node names and seed."""
        if d.get("seed") != self.seed or d.get("node_names") != self.node_names or d.get("cfg") != self.cfg:
            raise ValueError("broker state does not match this broker's config, nodes or seed")
        self.time = float(d["time"])
        self.rounds_done = int(d["rounds_done"])
        self.warm = bool(d["warm"])
        self._pending_open = d["pending_open"]
        self.sel_count = np.asarray(d["sel_count"], dtype=float)
        self.demand_ewma = np.asarray(d["demand_ewma"], dtype=float)
        self.announced = {int(k): v for k, v in d["announced"].items()}
        self.records = {int(k): dict(v) for k, v in d["records"].items()}
        self._node_raw = {int(k): dict(v) for k, v in d["node_raw"].items()}
        self._charged = {int(k): list(v) for k, v in d["charged"].items()}
        self.node_ledger = {k: dict(v) for k, v in d["node_ledger"].items()}
        self._req_raw_total = float(d["req_raw_total"])
        self.inv.load_state_dict(d["inventory"])
        self.policy.load_state_dict(d["policy"])
        self.rng.bit_generator.state = d["rng"]
