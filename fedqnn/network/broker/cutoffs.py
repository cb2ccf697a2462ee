"""Cut-offs: how long the broker may keep a pair before it decoheres below F_min, and when
it expires (see :mod:`fedqnn.network.broker` and :mod:`fedqnn.network.physics`).

Each path P gets a cut-off budget x_P (in units of its links' T) from a bisection of the
end-to-end fidelity (``physics.path_cutoff_budget``), with one recurrence purification per
hop where fresh pairs cannot reach F_min, and admission: a path far below the median
budget is purified if that lifts it, else left unusable. The budgets are split over the
links (``_allocate_cutoffs``: sum_{e in P} t_e / T_e <= hops_P x_P, max-min water-filling).
The T scale is ``memory_T`` or calibrated so that

    R = sum_e ch_e (p_e / tau_e) t_e / sum_e ch_e = target_R.

Cut-offs are then counted in steps, capped at ``max_age_steps``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from fedqnn.network import physics
from fedqnn.schema import ConfigError

__all__: list[str] = []


class _Cutoffs:
    """Mixin of :class:`~fedqnn.network.broker.Broker`: cut-off budgets per path, cut-offs
    per link, the T-scale calibration and the cut-offs in steps."""

    def _path_budgets(self) -> NDArray[np.float64]:
        """Per-path purification choice (``mult``), admission (``usable``) and cut-off budget
        x (in units of the pair's T); returns x (also kept as ``budget_x``)."""
        cfg = self.cfg
        # per-path purification choice and cut-off budgets (in units of the pair's T)
        x_plain = self._budgets(purify=False)
        fresh_ok = x_plain > 0
        self.mult = np.ones(self.n_nodes, dtype=np.int64)
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
        return x

    def _link_cutoffs(self, x: NDArray[np.float64]) -> None:
        """Per-link cut-offs (relative units): the paths' budgets split over their links
        (``cut_rel_budget``) and each link's own single-hop budget (``cut_rel_link``)."""
        L, fmin = self.n_links, self.cfg["F_min"]
        # link cut-offs (relative units): split each path's budget over its links
        self.cut_rel_budget = self._allocate_cutoffs(x)
        single = np.array(
            [physics.path_cutoff_budget(self.c0[i : i + 1], self.rates_rel[i : i + 1],
                                        self.T_rel[i : i + 1], fmin) for i in range(L)]
        )
        self.cut_rel_link = single * self.T_rel

    def _calibrate_memory(self) -> None:
        """T scale: explicit ``memory_T``, or calibrated so that R = target_R, with
        R1 = sum_e ch_e r_ch,e t_e / sum_e ch_e at unit T scale."""
        # T scale: explicit memory_T, or calibrated so that R = target_R
        ch = self.channels.astype(float)
        R1 = float((ch * self.rate_ch * self.cut_rel_budget).sum() / ch.sum())
        if self.cfg["memory_T"] is not None:
            self.T_scale = float(self.cfg["memory_T"])
        else:
            if not math.isfinite(R1) or R1 <= 0:
                raise ConfigError(
                    "broker.target_R: cannot calibrate (cut-off infinite or zero for these F0/F_min); "
                    "set broker.memory_T instead"
                )
            self.T_scale = self.cfg["target_R"] / R1

    def _cutoff_steps(self) -> NDArray[np.int64]:
        """Cut-offs in seconds (the path budgets' for an age-aware policy, else each link's
        own) capped at ``max_age_steps`` steps; returns them in whole steps."""
        budget_s = self.cut_rel_budget * self.T_scale
        link_s = self.cut_rel_link * self.T_scale
        self.cutoff_s = budget_s if self.policy.age_aware else link_s
        self.budget_cutoff_s = budget_s
        max_age = int(self.cfg["max_age_steps"])
        with np.errstate(invalid="ignore", over="ignore"):
            cb = np.floor(np.minimum(self.cutoff_s / self.dt, max_age) + 1e-9)
        cb = np.where(np.isfinite(cb), cb, max_age).astype(np.int64)
        self.cutoff_s = np.minimum(self.cutoff_s, max_age * self.dt)
        self.budget_cutoff_s = np.minimum(self.budget_cutoff_s, max_age * self.dt)
        return cb

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
        L = self.n_links
        ok = self.usable & np.isfinite(x)
        inf_paths = self.usable & ~np.isfinite(x)
        B = np.where(ok, self.hops * np.where(np.isfinite(x), x, 0.0), 0.0)
        pl = self.path_links
        t = np.full(L, np.inf)
        for _attempt in range(20):
            t = self._water_fill_cutoffs(B, ok)
            # exact check (purified paths are not linear in the ages)
            pur = np.nonzero(ok & (self.mult == 2))[0]
            if not pur.size:
                break
            fails = self._purified_below_fmin(t, pur)
            if not fails.any():
                break
            B[pur[fails]] *= 0.9
        # links used only by paths with an infinite budget keep an infinite cut-off
        only_inf = np.zeros(L + 1, dtype=bool)
        only_inf[pl[inf_paths][pl[inf_paths] < L]] = True
        finite_use = np.zeros(L + 1, dtype=bool)
        finite_use[pl[ok][pl[ok] < L]] = True
        t = np.where(only_inf[:L] & ~finite_use[:L], np.inf, t)
        return t

    def _water_fill_cutoffs(self, B: NDArray[np.float64], ok: NDArray[np.bool_]) -> NDArray[np.float64]:
        """One max-min water-filling pass: t_e = u* T_e for the links of the tightest path
        (u* = (B_P - used_P) / sum of its free links' T_e / T_e), repeated until every link
        of a budgeted path is fixed; links on no budgeted path get 0."""
        L, T, pl = self.n_links, self.T_rel, self.path_links
        k = np.ones(L)
        coef_ext = np.append(1.0 / (T * k) * T, 0.0)  # d(t_e/T_e) per unit of u, t_e = u T_e
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
        return np.where(np.isfinite(t), t, 0.0)

    def _purified_below_fmin(self, t: NDArray[np.float64], pur: NDArray[np.int64]) -> NDArray[np.bool_]:
        """For the purified paths ``pur``: is the exact end-to-end fidelity of purified pairs
        aged t_e on each link below F_min?"""
        pl = self.path_links
        c0 = np.vstack([self.c0, np.ones((1, 3))])[pl[pur]]
        rr = np.vstack([self.rates_rel, np.zeros((1, 3))])[pl[pur]]
        ages = np.append(t, 0.0)[pl[pur]]
        c = c0 * np.exp(-rr * ages[..., None])
        c, _ = physics.purify_characters(c, c, self.cfg["purify_protocol"])
        return physics.fidelity_from_characters(np.prod(c, axis=1)) < self.cfg["F_min"]

    def _budgets(self, purify: bool) -> NDArray[np.float64]:
        """Vectorised bisection of the per-path budget x (see physics.path_cutoff_budget)."""
        fmin = self.cfg["F_min"]
        c0 = np.vstack([self.c0, np.ones((1, 3))])[self.path_links]  # (N, H, 3)
        rr = np.vstack([self.rates_rel, np.zeros((1, 3))])[self.path_links]
        T = np.append(self.T_rel, 1.0)[self.path_links]
        proto = self.cfg["purify_protocol"] if purify else None

        def fid(x: NDArray[np.float64]) -> NDArray[np.float64]:
            c = c0 * np.exp(-rr * (x[:, None] * T)[..., None])
            if proto:
                c, _ = physics.purify_characters(c, c, proto)
            return physics.fidelity_from_characters(np.prod(c, axis=1))

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
