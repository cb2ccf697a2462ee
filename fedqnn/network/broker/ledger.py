"""Ledger: the broker's round records, run totals and persistence (see
:mod:`fedqnn.network.broker`).

A round's record counts raw link pairs (``generated``, ``used_raw``, ``expired``,
``wasted``, ``stored``) and end-to-end pairs (``requested``, ``delivered``, ``key_pairs``),
with

    utilization = used_raw / (used_raw + expired + wasted),
    served = delivered / requested,
    mean_consumed_fidelity = sum of delivered fidelities / delivered.

Pairs delivered to an update that is then rejected, and pairs a node drained, move from
``used_raw`` to ``wasted`` (per link too, so the inventory's ledger stays consistent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from fedqnn.network.broker.delivery import _Deliveries

if TYPE_CHECKING:  # pragma: no cover
    from fedqnn.network.broker.core import _Demand

__all__ = ["BELL_KEYS", "Service"]

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


class _Ledger:
    """Mixin of :class:`~fedqnn.network.broker.Broker`: records, accounting, persistence."""

    def _counters(self) -> dict[str, int]:
        inv = self.inv
        return {
            "generated": int(inv.generated.sum()),
            "used_raw": int(inv.used_raw.sum()),
            "expired": int(inv.expired.sum()),
            "wasted": int(inv.wasted.sum()),
        }

    def _record_round(
        self,
        rnd: int,
        start: dict[str, int],
        dem: _Demand,
        delivered: _Deliveries,
        key_deliv: _Deliveries,
        node_raw: NDArray[np.int64],
        availability: float,
    ) -> None:
        """Book round ``rnd``: its record (counters since ``start``), the raw pairs each node
        used (what a rejection can charge), the demand total and the node ledger."""
        end = self._counters()
        delivered.finish()
        key_deliv.finish()
        n_upd, n_key = delivered.counts, key_deliv.counts
        n_deliv = n_upd + n_key
        fids = delivered.fids_in_order + key_deliv.fids_in_order
        rec: dict[str, Any] = {k: end[k] - start[k] for k in ("generated", "used_raw", "expired", "wasted")}
        rec["stored"] = int(self.inv.stored.sum())
        rec["key_pairs"] = int(n_key.sum())
        rec["requested"] = int(dem.req.sum())
        rec["delivered"] = int(n_deliv.sum())
        rec["_fid_sum"] = float(sum(fids))
        if dem.draining:  # pairs beyond a node's real need were drained: discarded, their raw pairs wasted
            drained = n_upd - np.minimum(n_upd, dem.req_upd)
            self._charge_drained(rec, drained, node_raw, delivered.lists, dem.req_upd)
        rec["availability"] = availability
        rec["participants"] = int(dem.sel.sum())
        self._finish_record(rec)
        self.records[rnd] = rec
        names = self.node_names
        raw_at = np.flatnonzero(node_raw)
        self._node_raw[rnd] = {names[i]: k for i, k in zip(raw_at.tolist(), node_raw[raw_at].tolist())}
        req_all = dem.req_all
        self._req_raw_total += float((req_all * self.mult * self.hops).sum())
        asked_at = np.flatnonzero(req_all)
        for i, r_i, d_i in zip(asked_at.tolist(), req_all[asked_at].tolist(), n_deliv[asked_at].tolist()):
            led = self.node_ledger[names[i]]
            led["requested"] += r_i
            led["delivered"] += d_i
        self.announced.pop(rnd, None)

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
        out = {
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
        if self.outage_rng is not None:  # only when a driver asked for common outages
            out["outage_rng"] = self.outage_rng.bit_generator.state
        return out

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
        if "outage_rng" in d:
            self.common_outages()
            self.outage_rng.bit_generator.state = d["outage_rng"]  # type: ignore[union-attr]
