"""Provisioning: the broker's links, paths, channels, generation rates, round length and
inventory (see :mod:`fedqnn.network.broker`).

Only links on some client path are kept. A link gets one channel (attempt stream and
memory block) per usable client path through it (``provision = "load"``, purified paths
counting twice) or one in all (``"uniform"``); a channel heralds pairs at rate p / tau.
The round duration is explicit or calibrated so that the expected load is ``target_rho``:

    D = q sum_P m_P hops_P / (target_rho sum_e r_e),   q = participation x pairs + key pairs.

With key demand the time step is refined to at most half the median cut-off budget
(``steps >= 2 D / median cut-off``, at most 20000), so pairs do not expire within a step.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from fedqnn.network import physics
from fedqnn.network.inventory import Inventory
from fedqnn.schema import ConfigError

__all__: list[str] = []


class _Provisioning:
    """Mixin of :class:`~fedqnn.network.broker.Broker` that builds its per-link and
    per-path arrays (with the cut-off mixin, :class:`~.cutoffs._Cutoffs`)."""

    def _build_arrays(self) -> None:
        self._index_paths()
        cap_ch = self._link_physics()
        x = self._path_budgets()
        self._provision_channels()
        self._link_cutoffs(x)
        self._calibrate_memory()
        self._calibrate_round()
        self._refine_steps()
        cb = self._cutoff_steps()
        self._build_inventory(cap_ch, cb)
        self.rates = self.rates_rel / self.T_scale  # per-character decay rates, 1/s
        self.logc0 = np.log(self.c0)

    def _index_paths(self) -> None:
        """Active links (those on some client path) and each client's path as link ids."""
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

    def _link_physics(self) -> NDArray[np.float64]:
        """Per-link F0, B0, p, tau, the pair's combined T (relative units), fresh Bell
        characters and decay rates; returns the per-channel memory capacity."""
        g = self.net.graph
        attr = lambda k: np.array([g.edges[e][k] for e in self.links], dtype=float)  # noqa: E731
        self.F0, self.B0, self.p = attr("F0"), attr("B0"), attr("p")
        self.tau, cap_ch = attr("tau"), attr("capacity")
        T_node = {n: g.nodes[n]["T"] for n in g.nodes}
        self.T_rel = np.array([physics.combined_T(T_node[u], T_node[v]) for u, v in self.links])
        lam = physics.bell_weights(self.F0, self.B0)
        self.c0 = physics.characters(lam)
        if np.any(self.c0 <= 0):
            raise ConfigError("broker.F0: fresh pairs need positive Bell characters (F0 > B0, F0 + B0 > 1/2)")
        self.rates_rel = physics.decay_rates(self.cfg["noise"], self.T_rel)  # per unit of T scale
        return cap_ch

    def _provision_channels(self) -> None:
        """Channels per link and the nominal generation rate r_e = channels x p / tau."""
        # provisioning: one channel per path through a link (load) or one per link (uniform)
        if self.cfg["provision"] == "load":
            self.channels = np.maximum(self.link_sum(self.mult * self.usable), 1).astype(np.int64)
        else:
            self.channels = np.ones(self.n_links, dtype=np.int64)
        self.rate_ch = self.p / self.tau
        self.rate = self.channels * self.rate_ch

    def _calibrate_round(self) -> None:
        """Round duration D: explicit, or calibrated so that the expected load is target_rho."""
        cfg = self.cfg
        # round duration: explicit, or calibrated so that the expected load is target_rho
        q = cfg["participation"] * cfg["pairs_per_node"] + cfg["key_pairs_per_node"]
        raw_per_round = q * float((self.mult * self.hops * self.usable).sum())
        if cfg["round_duration"] is not None:
            self.D = float(cfg["round_duration"])
        else:
            if raw_per_round <= 0:
                raise ConfigError("broker.target_rho: needs pairs_per_node > 0 and a usable path")
            self.D = raw_per_round / (cfg["target_rho"] * float(self.rate.sum()))

    def _refine_steps(self) -> None:
        """Steps per round (refined under key demand), the step dt and the deadline step."""
        cfg = self.cfg
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

    def _build_inventory(self, cap_ch: NDArray[np.float64], cb: NDArray[np.int64]) -> None:
        """Attempts per step, the rate the simulation realises, and the pair inventory."""
        attempts = np.maximum(np.round(self.channels * self.dt / self.tau), 1).astype(np.int64)
        self.rate = attempts * self.p / self.dt  # the rate the simulation actually realises
        self.inv = Inventory(
            capacity=(self.channels * cap_ch).astype(np.int64),
            cutoff_steps=cb,
            attempts=attempts,
            p=self.p,
            dt=self.dt,
        )
