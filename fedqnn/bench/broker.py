"""``fedqnn bench broker``: broker decision time per round for 50, 200 and 1000 nodes.

Decision time = ``eligible()`` + ``serve_round()`` wall time of one round (the simulated
round's generation, decay, swaps, purification and delivery; no task placement, no
training). Printed beside the goal (< 50 ms at 1000 nodes); never asserted. With
``--repeats k`` every size is measured k times (seeds ``seed`` .. ``seed + k - 1``) and the
median and 90th percentile are taken over all timed rounds, which steadies the numbers on a
shared machine.
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
    parser.add_argument("--policy", default="aware", help="broker policy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="runs per size (seeds seed, seed+1, ...)")
    parser.add_argument("--participation", type=float, default=0.5, help="fraction of nodes selected per round")


def measure(
    n: int, rounds: int, policy: str, seed: int, participation: float, repeats: int = 1
) -> dict[str, Any]:
    """Median and 90th-percentile decision time (ms) of ``rounds`` rounds on ``n`` nodes
    (over all timed rounds of ``repeats`` runs; quality and build time of the first run)."""
    runs = [_run(n, rounds, policy, seed + k, participation) for k in range(max(1, repeats))]
    ms = np.concatenate([r.pop("_ms") for r in runs])
    out = runs[0]
    out["median_ms"] = float(np.median(ms))
    out["p90_ms"] = float(np.percentile(ms, 90))
    return out


def _run(n: int, rounds: int, policy: str, seed: int, participation: float) -> dict[str, Any]:
    from fedqnn.network import Broker
    from fedqnn.seeding import rng

    names = [f"node-{i}" for i in range(n)]
    t0 = time.perf_counter()
    b = Broker.from_config({"policy": policy, "participation": participation}, names, seed)
    build_s = time.perf_counter() - t0
    pick = rng(seed, "bench", "selection")
    k = max(1, int(round(participation * n)))
    times = []
    for r in range(rounds + 2):
        t = time.perf_counter()
        el = b.eligible(r)
        chosen = [names[i] for i in pick.permutation(n)]
        eligible = set(el)
        part = [x for x in chosen if x in eligible][:k]
        b.serve_round(r, part, b.cfg["pairs_per_node"])
        if r >= 2:
            times.append(time.perf_counter() - t)
    ms = np.asarray(times) * 1000.0
    tot = b.totals()
    return {
        "nodes": n,
        "links": b.n_links,
        "max_hops": int(b.hops.max()),
        "build_s": build_s,
        "_ms": ms,
        "utilization": tot["utilization"] or 0.0,
        "served": tot["served"] or 0.0,
    }


def main(args: argparse.Namespace) -> int:
    sizes = [int(x) for x in str(args.nodes).split(",") if x.strip()]
    print(f"broker decision time per round (policy={args.policy}, participation={args.participation}, "
          f"{args.rounds} rounds x {args.repeats} runs); goal < {GOAL_MS:.0f} ms at 1000 nodes")
    print(f"{'nodes':>6} {'links':>6} {'hops':>5} {'build s':>8} {'median ms':>10} {'p90 ms':>8} "
          f"{'goal/median':>12} {'util':>6} {'served':>7}")
    for n in sizes:
        r = measure(n, args.rounds, args.policy, args.seed, args.participation, args.repeats)
        print(f"{r['nodes']:>6} {r['links']:>6} {r['max_hops']:>5} {r['build_s']:>8.2f} "
              f"{r['median_ms']:>10.1f} {r['p90_ms']:>8.1f} {GOAL_MS / r['median_ms']:>12.2f} "
              f"{r['utilization']:>6.3f} {r['served']:>7.3f}")
    return 0
