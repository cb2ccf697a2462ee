"""Delivery: which requests a round's stock can serve now (grants) and the hand-over of the
end-to-end pairs (see :mod:`fedqnn.network.broker`).

Grants: proportional water-filling (each link's stock shared in proportion to the demand on
it, floor of need x the path's smallest share, three passes), then greedy one pair at a time
in rank order on what is left. Hand-over: each granted pair takes the oldest pairs of every
hop's link (two per hop on purified paths), its hop characters decay as
``c = c0 exp(-rates age)``, purified hops go through one recurrence round, and the
end-to-end characters are the product over hops (``physics.fidelity_from_characters``).
A pair is delivered when every swap succeeds (``swap_success ** (hops - 1)`` times the
purification successes) and its fidelity is at least F_min; else its raw pairs are wasted
(failed) or, for an age-aware policy, expired (caught below F_min before hand-over).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fedqnn.network import physics

__all__: list[str] = []


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


class _ActivePaths:
    """The paths of the nodes taking part in one grant computation (``act``): per-path
    minimum and per-link sum over them, with +inf on the padding link L."""

    def __init__(self, n_links: int, plt: NDArray[np.int64], hops: NDArray[np.int64]) -> None:
        L = n_links
        self.L = L
        self.plt = plt  # (hops, active nodes)
        self.ext = np.empty(L + 1)  # per-link values with +inf on the padding link L
        self.ext[L] = np.inf
        pl = plt.T
        self.fl = pl[pl < L]  # the active nodes' path links, node by node (as in link_sum)
        self.fn = np.repeat(np.arange(plt.shape[1]), hops)

    def path_min(self, per_link: NDArray[Any]) -> NDArray[np.float64]:
        self.ext[: self.L] = per_link
        return self.ext[self.plt].min(axis=0)

    def link_sum(self, per_act: NDArray[np.int64]) -> NDArray[np.float64]:
        return np.bincount(self.fl, weights=per_act[self.fn], minlength=self.L)


@dataclass
class _Units:
    """The raw pairs one delivery pass takes, one entry per unit (a link pair of one hop of
    one granted end-to-end pair), and the end-to-end pairs they form."""

    link: NDArray[np.int64]
    hop: NDArray[np.int64]
    pair: NDArray[np.int64]
    m: NDArray[np.int64]
    ages: NDArray[np.float64]
    n_pairs: int
    pair_node: NDArray[np.int64]


class _Delivery:
    """Mixin of :class:`~fedqnn.network.broker.Broker`: grants and hand-over of pairs."""

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
        grant = np.zeros(self.n_nodes, dtype=np.int64)
        act, plt, avail = self._servable_requests(pending, ctx)
        if not act.size:
            return grant
        need = pending[act].astype(np.int64)
        got = np.zeros(act.size, dtype=np.int64)  # grants of the active nodes
        m_a = self.mult[act]
        paths = _ActivePaths(self.n_links, plt, self.hops[act])
        if not self._water_fill(paths, need, got, avail, m_a):
            self._greedy_fill(ctx, act, rank, need, got, avail, m_a)
        grant[act] = got
        return grant

    def _servable_requests(
        self, pending: NDArray[np.int64], ctx: _RoundContext
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """(act, plt, avail): the nodes with a request whose path is up and holds m pairs
        on every link, their path links (hops, nodes), and the stock of the up links."""
        L, m = self.n_links, self.mult
        act = np.flatnonzero((pending > 0) & ctx.path_up)
        if not act.size:
            return act, self._path_links_t[:, act], np.zeros(L, dtype=np.int64)
        avail = np.where(self.inv.up, self.inv.stored, 0).astype(np.int64)
        plt = self._path_links_t[:, act]  # (hops, active nodes)
        # servable: every link of the path holds m pairs (stock capped at max m: exact test)
        m_max = self._m_max
        lvl = np.empty(L + 1, dtype=np.int8)
        np.minimum(avail, m_max, out=lvl[:L], casting="unsafe")
        lvl[L] = m_max
        keep = lvl[plt].min(axis=0) >= m[act]
        if not keep.all():
            act, plt = act[keep], plt[:, keep]
        return act, plt, avail

    @staticmethod
    def _water_fill(
        paths: _ActivePaths,
        need: NDArray[np.int64],
        got: NDArray[np.int64],
        avail: NDArray[np.int64],
        m_a: NDArray[np.int64],
    ) -> bool:
        """Proportional phase (in place on ``need``, ``got``, ``avail``): up to three passes
        granting floor(need x min over the path of min(1, stock / demand)) per node.
        True when every need is met."""
        for _ in range(3):
            dem = paths.link_sum(need * m_a)
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(dem > 0, np.minimum(1.0, avail / dem), 1.0)
            g = np.floor(need * paths.path_min(share) + 1e-9).astype(np.int64)
            if not g.any():
                return False
            avail -= paths.link_sum(g * m_a).astype(np.int64)
            need -= g
            got += g
            if not need.any():
                return True
        return False

    def _greedy_fill(
        self,
        ctx: _RoundContext,
        act: NDArray[np.int64],
        rank: NDArray[np.int64],
        need: NDArray[np.int64],
        got: NDArray[np.int64],
        avail: NDArray[np.int64],
        m_a: NDArray[np.int64],
    ) -> None:
        """Greedy phase (in place): the rounding leftovers, one pair per pass to every
        candidate that fits on each link of its path in rank order (per-link prefix sums)."""
        L = self.n_links
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
        m = self.mult
        units = self._take_units(grant, granted)
        c_e2e, p_ok = self._pair_characters(units)
        pair_node = units.pair_node
        fid = physics.fidelity_from_characters(c_e2e)
        if self.cfg["swap_success"] != 1.0:  # (1.0 ** k == 1.0: nothing to multiply)
            p_ok *= self.cfg["swap_success"] ** (self.hops[pair_node] - 1)
        ok = self.rng.random(units.n_pairs) < p_ok
        good = fid >= self.cfg["F_min"] - 1e-12
        use = ok & good
        done = self._book_fates(units, ok, use)
        np.subtract.at(pending, pair_node[done], 1)
        node_use = pair_node[use]  # sorted by node
        np.add.at(node_raw, node_use, (m * self.hops)[node_use])
        if bell_sum is not None:
            np.add.at(bell_sum, node_use, physics.weights_from_characters(c_e2e[use]))
        delivered.add(node_use, fid[use])

    def _take_units(self, grant: NDArray[np.int64], granted: NDArray[np.int64]) -> _Units:
        """Remove the granted pairs' raw pairs from the inventory (oldest first on each link)
        and give every unit its link, hop, end-to-end pair and age."""
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
        u_node = ent_node[unit_ent]
        u_m = m[u_node]
        grant_g = grant[granted]
        pair_end = np.cumsum(grant_g)
        u_pair = (pair_end - grant_g)[ent_row[unit_ent]] + k_in_ent // u_m
        return _Units(
            link=ent_link[unit_ent],
            hop=ent_hop[unit_ent],
            pair=u_pair,
            m=u_m,
            ages=ages,
            n_pairs=int(pair_end[-1]),
            pair_node=np.repeat(granted, grant_g),
        )

    def _pair_characters(self, units: _Units) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(end-to-end Bell characters, purification success probability) per pair: hop
        characters c0 exp(-rates age), purified hops (units 2j, 2j+1 of an entry) through one
        recurrence round, multiplied over the hops."""
        u_link, u_pair, u_hop = units.link, units.pair, units.hop
        chars = self.c0[u_link] * np.exp(-self.rates[u_link] * units.ages[:, None])
        hop_chars = np.ones((units.n_pairs, self.max_hops, 3))
        p_ok = np.ones(units.n_pairs)
        single = units.m == 1
        if single.all():
            hop_chars[u_pair, u_hop] = chars
        else:  # purified hops: units 2j, 2j+1 of an entry form one input pair
            hop_chars[u_pair[single], u_hop[single]] = chars[single]
            idx = np.nonzero(~single)[0]
            a, b = idx[0::2], idx[1::2]
            pc, pp = physics.purify_characters(chars[a], chars[b], self.cfg["purify_protocol"])
            hop_chars[u_pair[a], u_hop[a]] = pc
            np.multiply.at(p_ok, u_pair[a], pp)
        return np.prod(hop_chars, axis=1), p_ok

    def _book_fates(self, units: _Units, ok: NDArray[np.bool_], use: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Per-link ledger of the units (each follows its pair: used, low fidelity, failed);
        returns the pairs that leave the request (delivered, or handed over blindly)."""
        L = self.n_links
        # ledger per link: each unit follows its pair's fate
        if use.all():
            self.inv.used_raw += np.bincount(units.link, minlength=L)
            return use
        fate_unit = np.where(use, 0, np.where(ok, 1, 2))[units.pair]  # 0 used, 1 low F, 2 failed
        per_fate = np.bincount(fate_unit * L + units.link, minlength=3 * L).reshape(3, L)
        self.inv.used_raw += per_fate[0]
        self.inv.wasted += per_fate[2]
        if self.policy.age_aware:
            self.inv.expired += per_fate[1]  # caught before hand-over: discarded
            return use
        self.inv.wasted += per_fate[1]  # handed over blindly below F_min
        return ok
