"""``fedqnn bench broker``: broker decision time per round for 50, 200 and 1000 nodes.

Decision time = ``eligible()`` + ``serve_round()`` wall time of one round (the simulated
round's generation, decay, swaps, purification and delivery; no task placement, no
training). Printed beside the goal (< 50 ms at 1000 nodes); never asserted. Several policies
(``--policy default,aware``: the default and the issue-4 policy) are timed side by side: one
broker per policy on the same network and seed, served round by round in turn, so a change
of machine load hits them alike. With ``--repeats k`` every size is measured k times (seeds
``seed`` .. ``seed + k - 1``) and the median and 90th percentile are taken over all timed
rounds, which steadies the numbers on a shared machine.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

GOAL_MS = 50.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", default="50,200,1000", help="comma-separated node counts")
    parser.add_argument("--rounds", type=int, default=12, help="timed rounds per size (after 2 warm-up rounds)")
    parser.add_argument("--policy", default="default,aware",
                        help="comma-separated broker policies timed side by side ('default': broker.policy's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="runs per size (seeds seed, seed+1, ...)")
    parser.add_argument("--participation", type=float, default=0.5, help="fraction of nodes selected per round")


def measure(
    n: int, rounds: int, policy: str, seed: int, participation: float, repeats: int = 1
) -> dict[str, Any]:
    """Median and 90th-percentile decision time (ms) of ``rounds`` rounds on ``n`` nodes
    (over all timed rounds of ``repeats`` runs; quality and build time of the first run)."""
    return measure_side_by_side(n, rounds, [policy], seed, participation, repeats)[policy]


def measure_side_by_side(
    n: int, rounds: int, policies: list[str], seed: int, participation: float, repeats: int = 1
) -> dict[str, dict[str, Any]]:
    """:func:`measure` for several policies, their brokers served round by round in turn."""
    runs = [_run(n, rounds, policies, seed + k, participation) for k in range(max(1, repeats))]
    out = {}
    for p in policies:
        ms = np.concatenate([r[p].pop("_ms") for r in runs])
        out[p] = {**runs[0][p], "median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90))}
    return out


def _run(n: int, rounds: int, policies: list[str], seed: int, participation: float) -> dict[str, dict[str, Any]]:
    from fedqnn.network import Broker
    from fedqnn.network.config import BROKER_FIELDS
    from fedqnn.seeding import rng

    names = [f"node-{i}" for i in range(n)]
    brokers, out = {}, {}
    for p in policies:
        t0 = time.perf_counter()
        name = BROKER_FIELDS["policy"].default if p == "default" else p
        brokers[p] = Broker.from_config({"policy": name, "participation": participation}, names, seed)
        out[p] = {"nodes": n, "links": brokers[p].n_links, "max_hops": int(brokers[p].hops.max()),
                  "build_s": time.perf_counter() - t0, "_ms": []}
    pick = rng(seed, "bench", "selection")
    k = max(1, int(round(participation * n)))
    for r in range(rounds + 2):
        chosen = [names[i] for i in pick.permutation(n)]  # the same draw for every policy
        for p, b in brokers.items():
            t = time.perf_counter()
            eligible = set(b.eligible(r))
            part = [x for x in chosen if x in eligible][:k]
            b.serve_round(r, part, b.cfg["pairs_per_node"])
            if r >= 2:
                out[p]["_ms"].append((time.perf_counter() - t) * 1000.0)
    for p, b in brokers.items():
        tot = b.totals()
        out[p].update(_ms=np.asarray(out[p]["_ms"]), utilization=tot["utilization"] or 0.0,
                      served=tot["served"] or 0.0)
    return out


def main(args: argparse.Namespace) -> int:
    sizes = [int(x) for x in str(args.nodes).split(",") if x.strip()]
    policies = [p.strip() for p in str(args.policy).split(",") if p.strip()]
    print(f"broker decision time per round (policies {', '.join(policies)} side by side, participation="
          f"{args.participation}, {args.rounds} rounds x {args.repeats} runs); goal < {GOAL_MS:.0f} ms at 1000 nodes")
    print(f"{'nodes':>6} {'policy':>10} {'links':>6} {'hops':>5} {'build s':>8} {'median ms':>10} {'p90 ms':>8} "
          f"{'goal/median':>12} {'util':>6} {'served':>7}")
    for n in sizes:
        res = measure_side_by_side(n, args.rounds, policies, args.seed, args.participation, args.repeats)
        for p, r in res.items():
            print(f"{r['nodes']:>6} {p:>10} {r['links']:>6} {r['max_hops']:>5} {r['build_s']:>8.2f} "
                  f"{r['median_ms']:>10.1f} {r['p90_ms']:>8.1f} {GOAL_MS / r['median_ms']:>12.2f} "
                  f"{r['utilization']:>6.3f} {r['served']:>7.3f}")
    return 0
