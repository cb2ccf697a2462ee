"""Broker-only runs: a fixed outside demand against one broker (used by tests, bench, sweep).

Each round K = round(participation * n) participants are drawn uniformly among the
broker's eligible nodes (a seeded priority permutation per round, the same for every
policy, so policies face the same demand). Demand is fixed from outside: K x pairs_per_node
per round whatever the eligible set; if fewer than K nodes are eligible the shortfall stays
requested and undelivered (``served`` counts it; ``broker_served`` is the broker's own
delivered / requested).

Common random numbers: with ``common_outages`` (the default) the link outages come from a
stream of their own (:meth:`Broker.common_outages`), so every policy meets the same outages on
the same seed; otherwise they share the broker's generation stream and a policy that
generates differently also sees other outages (the issue-4 measurements; an outage of a link
next to the server takes many paths down for rounds, the largest source of variance between
seeds).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedqnn.network.broker import Broker
from fedqnn.seeding import rng

__all__ = ["run_broker", "mixture_served"]


def run_broker(
    cfg: dict[str, Any],
    n_nodes: int,
    rounds: int,
    seed: int,
    participation: float | None = None,
    reject_fraction: float = 0.0,
    drain_fraction: float = 0.0,
    drain_pairs: int = 0,
    common_outages: bool = True,
    select: str = "eligible",
) -> dict[str, Any]:
    """Run ``rounds`` rounds; return run totals, regime and per-round records.

    ``reject_fraction`` of each round's served participants have their update rejected
    (their pairs are charged as wasted), to exercise that path of the ledger.
    ``drain_fraction`` of the nodes (ceil, drawn from the stream (seed, 'byzantine')) drain:
    each asks ``drain_pairs`` extra pairs every round that it never uses (docs/attacks.md).
    ``honest_served`` is the fraction of the honest participants' demand delivered.
    ``select = "any"`` draws the K participants among all nodes, whatever the links' state (a
    node the broker cannot serve stays unserved); ``shortfall`` is the fraction of the K x
    rounds participants missing because fewer than K nodes were eligible.
    """
    if select not in ("eligible", "any"):
        raise ValueError(f"select: expected 'eligible' or 'any', got {select!r}")
    names = [f"node-{i}" for i in range(n_nodes)]
    pi = float(participation if participation is not None else cfg.get("participation", 0.5))
    broker = Broker.from_config({**cfg, "participation": pi}, names, seed)
    if common_outages:
        broker.common_outages()
    q = broker.cfg["pairs_per_node"]
    k = max(1, int(round(pi * n_nodes)))
    perms = [rng(seed, "selection", r).permutation(n_nodes) for r in range(rounds + 1)]
    fixed_requested = selected = 0
    avail = []
    records = []
    rej = rng(seed, "rejections")
    n_drain = int(np.ceil(drain_fraction * n_nodes - 1e-9)) if drain_pairs > 0 else 0
    drainers = {names[i] for i in rng(seed, "byzantine").choice(n_nodes, size=n_drain, replace=False)}
    drain = {n: int(drain_pairs) for n in sorted(drainers)} or None
    honest_asked = honest_got = 0
    for r in range(rounds):
        if getattr(broker.policy, "clairvoyant", False):  # next round's intended participants
            ok = broker.usable & broker._path_up()
            nxt = [names[i] for i in perms[r + 1] if ok[i]][:k]
            broker.announce(r + 1, {n: q for n in nxt})
        eligible = set(broker.eligible(r)) if select == "eligible" else set(names)
        part = [names[i] for i in perms[r] if names[i] in eligible][:k]
        selected += len(part)
        svc = broker.serve_round(r, part, q, drain=drain)
        honest_asked += q * (k - sum(n in drainers for n in part))  # a shortfall of eligible nodes counts
        honest_got += sum(len(v) for n, v in svc.delivered.items() if n not in drainers)
        if reject_fraction > 0 and svc.served_nodes:
            bad = [n for n in svc.served_nodes if rej.random() < reject_fraction]
            broker.charge_rejected(r, bad)
        fixed_requested += k * q
        avail.append(svc.availability)
        records.append(broker.round_record(r))
    tot = broker.totals()
    return {
        "utilization": tot["utilization"],
        "served": tot["delivered"] / fixed_requested if fixed_requested else None,
        "broker_served": tot["served"],
        "shortfall": 1.0 - selected / (k * rounds) if rounds else None,
        "honest_served": honest_got / honest_asked if honest_asked else None,
        "drained": int(sum(rec.get("drained", 0) for rec in records)),
        "mean_consumed_fidelity": tot["mean_consumed_fidelity"],
        "availability": float(np.mean(avail)) if avail else None,
        "totals": tot,
        "regime": broker.regime(),
        "records": records,
        "broker": broker,
    }


def mixture_served(u: float, jit: tuple[float, float], full: tuple[float, float]) -> float:
    """Served of the best mixture of ``jit`` and ``full`` at utilization u, each given as
    (utilization, served): time-sharing between the two traces the chord

        s(u) = s_f + (s_j - s_f) (u - u_f) / (u_j - u_f),   u_f <= u <= u_j;

    below full's utilization full's served (free disposal), above jit's (no mixture reaches
    it) jit's served."""
    (uj, sj), (uf, sf) = jit, full
    if u <= uf:
        return sf
    if u >= uj:
        return sj
    return sf + (sj - sf) * (u - uf) / (uj - uf)
