"""``fedqnn broker``: the broker alone, with a fixed outside demand, and its exactly solved MDP.

    fedqnn broker sim --nodes 50 --rounds 30 --seeds 100,101 --policies default,jit,full \\
        --R 3,10 [--set broker.key=value ...] [--select eligible|any] --json
    fedqnn broker mdp [--instances a,b] [--policies aware,jit,full] [--waste-cost 0.2] --json

``sim`` prints one record per (policy, R, seed): ``policy`` (as given), ``resolved`` (the
registry name; ``default`` is whatever ``broker.policy`` defaults to), ``R`` (the target R =
r t_c, ``broker.target_R``), ``seed``, ``utilization``, ``served`` (delivered / the fixed
demand K x pairs_per_node), ``mean_consumed_fidelity``, and ``shortfall`` (the fraction of
the K participants missing because fewer nodes were eligible), ``broker_served``,
``availability``, ``R_measured``, ``rho``. ``mdp`` prints one record per instance:
``instance``, ``optimal`` and ``default`` (average rewards per round, higher is better),
``policy`` (the default's name), ``gap`` = (optimal - default) / optimal, and every compared
policy's reward, gap, served and utilization (:mod:`fedqnn.network.mdp_instances`).
Without ``--json`` both print a table. This module imports only the standard library until a
subcommand runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from typing import Any

__all__ = ["add_arguments", "main", "parse_seeds", "parse_sets", "run_sim"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``sim`` and ``mdp`` subcommands."""
    sub = parser.add_subparsers(dest="broker_command", metavar="{sim,mdp}")
    sim = sub.add_parser("sim", help="broker-only runs with a fixed demand, one record per (policy, R, seed)")
    sim.add_argument("--nodes", type=int, default=50, help="client nodes (default 50)")
    sim.add_argument("--rounds", type=int, default=30, help="rounds per run (default 30)")
    sim.add_argument("--seeds", default="100-104",
                     help="comma-separated seeds or ranges a-b (default 100-104, held out from tuning on 0-9)")
    sim.add_argument("--policies", default="default,jit,full", help="comma-separated policy names")
    sim.add_argument("--R", default="3,10", help="comma-separated target R = r t_c ('-': the config's)")
    sim.add_argument("--participation", type=float, default=None,
                     help="fraction of nodes selected per round (default: broker.participation)")
    sim.add_argument("--select", choices=("eligible", "any"), default="eligible",
                     help="draw the K participants among the eligible nodes (default) or among all")
    sim.add_argument("--set", dest="sets", action="append", default=[], metavar="broker.KEY=VALUE",
                     help="override a broker key (TOML value; 'none' for null); repeatable")
    sim.add_argument("--json", action="store_true", help="print the records as a JSON list")
    mdp = sub.add_parser("mdp", help="solve the small instances exactly; the default policy's gap")
    mdp.add_argument("--instances", default="", help="comma-separated instance names (default: all)")
    mdp.add_argument("--policies", default="aware,jit,full", help="policies compared beside the default")
    mdp.add_argument("--waste-cost", type=float, default=None,
                     help="cost of a lost raw pair, in delivered pairs (default 0.2)")
    mdp.add_argument("--json", action="store_true", help="print the records as a JSON list")


def _csv(text: str) -> list[str]:
    return [x.strip() for x in str(text).split(",") if x.strip()]


def parse_seeds(text: str) -> list[int]:
    """``"1,5-7"`` -> ``[1, 5, 6, 7]``."""
    out: list[int] = []
    for part in _csv(text):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    return out


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``broker.key=value`` strings into a broker config dict (values parsed as TOML)."""
    from fedqnn.schema import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip().removeprefix("broker.")
        if not eq or not key:
            raise ConfigError(f"--set {item!r}: expected broker.key=value")
        text = text.strip()
        if text.lower() in ("none", "null"):
            out[key] = None
            continue
        try:
            out[key] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = text
    return out


def run_sim(nodes: int, rounds: int, seeds: list[int], policies: list[str], Rs: list[float | None],
            cfg: dict[str, Any], participation: float | None = None, select: str = "eligible") -> list[dict[str, Any]]:
    """One record per (policy, R, seed) of :func:`fedqnn.network.experiment.run_broker`."""
    from fedqnn.network.config import validate_broker_config
    from fedqnn.network.experiment import run_broker
    from fedqnn.network.mdp_instances import resolve_policy

    out = []
    for pol in policies:
        for R in Rs:
            c = {**cfg, "policy": resolve_policy(pol), **({} if R is None else {"target_R": R})}
            validate_broker_config(c)
            for seed in seeds:
                res = run_broker(c, nodes, rounds, seed, participation=participation, select=select)
                out.append({
                    "policy": pol, "resolved": c["policy"], "R": R, "seed": seed,
                    "utilization": res["utilization"], "served": res["served"],
                    "mean_consumed_fidelity": res["mean_consumed_fidelity"], "shortfall": res["shortfall"],
                    "broker_served": res["broker_served"], "availability": res["availability"],
                    "R_measured": res["regime"]["R"], "rho": res["regime"]["rho"],
                })
    return out


def _table(records: list[dict[str, Any]], keys: tuple[str, ...], cols: tuple[str, ...]) -> str:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    lines = ["  ".join([*(f"{k:>10}" for k in keys), "n".rjust(3), *(f"{c:>12}" for c in cols)])]
    for g, rs in groups.items():
        means = [sum(r[c] for r in rs) / len(rs) if all(r[c] is not None for r in rs) else float("nan") for c in cols]
        lines.append("  ".join([*(f"{str(x):>10}" for x in g), f"{len(rs):>3}", *(f"{m:>12.4f}" for m in means)]))
    return "\n".join(lines)


def _sim(args: argparse.Namespace) -> int:
    Rs = [None if r == "-" else float(r) for r in _csv(args.R)]
    recs = run_sim(args.nodes, args.rounds, parse_seeds(args.seeds), _csv(args.policies), Rs,
                   parse_sets(args.sets), args.participation, args.select)
    if args.json:
        print(json.dumps(recs, indent=1))
    else:
        print(_table(recs, ("policy", "R"), ("utilization", "served", "shortfall", "mean_consumed_fidelity")))
    return 0


def _mdp(args: argparse.Namespace) -> int:
    from fedqnn.network.mdp_instances import INSTANCES, WASTE_COST, compare

    names = _csv(args.instances) or list(INSTANCES)
    unknown = [n for n in names if n not in INSTANCES]
    if unknown:
        print(f"error: unknown instance(s) {', '.join(unknown)}; known: {', '.join(INSTANCES)}", file=sys.stderr)
        return 2
    w = WASTE_COST if args.waste_cost is None else float(args.waste_cost)
    recs = compare(names, _csv(args.policies), w)
    if args.json:
        print(json.dumps(recs, indent=1))
        return 0
    pols = list(recs[0]["policies"]) if recs else []
    print(f"average reward per round (w = {w}); gap = (optimal - policy) / optimal")
    print(f"{'instance':>22} {'held out':>8} {'optimal':>8} " + " ".join(f"{p + ' gap':>14}" for p in pols))
    for r in recs:
        gaps = " ".join(f"{r['policies'][p]['gap']:>14.4f}" for p in pols)
        print(f"{r['instance']:>22} {str(r['held_out']):>8} {r['optimal']:>8.4f} {gaps}")
    return 0


def main(args: argparse.Namespace) -> int:
    """Run ``fedqnn broker sim`` or ``fedqnn broker mdp``."""
    if getattr(args, "broker_command", None) == "sim":
        return _sim(args)
    if getattr(args, "broker_command", None) == "mdp":
        return _mdp(args)
    print("choose a subcommand: sim, mdp", file=sys.stderr)
    return 2
