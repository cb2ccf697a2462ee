"""The exactly solved broker instances and the gap of a policy to the optimum (issue 17 item 3).

Each instance is a small real broker (a config, node count and seed; no outages, trapped-ion
links, F_min = 0.8, rho = 0.7, participation 0.5): one or two links, memories of 2-8 pairs
per channel, one to four steps per round. :func:`compare` solves each one exactly
(:func:`fedqnn.network.mdp_solve.solve`), evaluates the named policies in the same MDP
(:func:`~fedqnn.network.mdp_solve.evaluate`) and reports average rewards per round
(delivered pairs - ``waste_cost`` x lost raw pairs; higher is better), the gap
``(optimal - policy) / optimal``, and served and utilization of each.

``DESIGN`` instances were looked at while the default policy was designed; ``HELD_OUT`` ones
were added afterwards and only measured.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from fedqnn.network.broker import Broker
from fedqnn.network.config import BROKER_FIELDS
from fedqnn.network.mdp_model import BrokerMDP
from fedqnn.network.mdp_solve import evaluate, solve
from fedqnn.network.policies import get_policy

__all__ = ["WASTE_COST", "INSTANCES", "DESIGN", "HELD_OUT", "build", "compare", "resolve_policy"]

WASTE_COST = 0.2
"""Documented weight w: a raw pair that expires or is wasted costs a fifth of a delivered pair."""

_BASE = {"outage_prob": 0.0, "heterogeneity": 0.0, "participation": 0.5}
LINE_EDGES = "server node-0\nnode-0 node-1\n"  # node-1's path shares node-0's link to the server

# name -> (topology, nodes, broker config); every instance is built with seed 0
INSTANCES: dict[str, tuple[str, int, dict[str, Any]]] = {
    "link-R3": ("star", 1, {"target_R": 3.0, "steps_per_round": 3, "capacity": 4, "pairs_per_node": 2}),
    "link-R10": ("star", 1, {"target_R": 10.0, "steps_per_round": 2, "capacity": 4, "pairs_per_node": 2}),
    "link-R3-C8-q4": ("star", 1, {"target_R": 3.0, "steps_per_round": 2, "capacity": 8, "pairs_per_node": 4}),
    "link-R10-C8-q4": ("star", 1, {"target_R": 10.0, "steps_per_round": 1, "capacity": 8, "pairs_per_node": 4}),
    "line-R3": ("line", 2, {"target_R": 3.0, "steps_per_round": 2, "capacity": 2, "pairs_per_node": 2}),
    "line-R10": ("line", 2, {"target_R": 10.0, "steps_per_round": 1, "capacity": 2, "pairs_per_node": 2}),
    "star2-R3": ("star", 2, {"target_R": 3.0, "steps_per_round": 2, "capacity": 3, "pairs_per_node": 2,
                             "heterogeneity": 0.5}),
    # held out (added after the default policy was designed)
    "star2-R10": ("star", 2, {"target_R": 10.0, "steps_per_round": 1, "capacity": 3, "pairs_per_node": 2,
                              "heterogeneity": 0.5}),
    "link-R3-half-deadline": ("star", 1, {"target_R": 3.0, "steps_per_round": 4, "capacity": 4,
                                          "pairs_per_node": 2, "deadline_fraction": 0.5}),
    "link-R6-C6-q3": ("star", 1, {"target_R": 6.0, "steps_per_round": 2, "capacity": 6, "pairs_per_node": 3}),
    "line-R6-q1": ("line", 2, {"target_R": 6.0, "steps_per_round": 1, "capacity": 2, "pairs_per_node": 1}),
}
DESIGN = ("link-R3", "link-R10", "link-R3-C8-q4", "link-R10-C8-q4", "line-R3", "line-R10", "star2-R3")
HELD_OUT = tuple(n for n in INSTANCES if n not in DESIGN)


def build(name: str, waste_cost: float = WASTE_COST, policy: str = "aware") -> BrokerMDP:
    """The MDP of instance ``name`` (the broker built with an age-aware ``policy``; the MDP
    reads only its physics, so the choice does not matter)."""
    topology, n, cfg = INSTANCES[name]
    cfg = {**_BASE, **cfg, "policy": policy}
    names = [f"node-{i}" for i in range(n)]
    if topology == "line":
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "line.edges")
            with open(path, "w") as f:
                f.write(LINE_EDGES)
            b = Broker.from_config({**cfg, "topology": "file", "topology_file": path}, names, 0)
    else:
        b = Broker.from_config({**cfg, "topology": topology}, names, 0)
    return BrokerMDP(b, waste_cost=waste_cost)


def resolve_policy(name: str) -> str:
    """``default`` is whatever ``broker.policy`` defaults to."""
    return str(BROKER_FIELDS["policy"].default) if name == "default" else name


def _measures(mdp: BrokerMDP, actions: Any, full: bool = True) -> dict[str, float]:
    """Reward, served (delivered / expected demand) and utilization (used / (used + expired))."""
    reward = evaluate(mdp, actions).gain
    if not full:
        return {"reward": reward}
    d = evaluate(mdp, actions, (1.0, 0.0, 0.0)).gain
    x = evaluate(mdp, actions, (0.0, 1.0, 0.0)).gain
    u = evaluate(mdp, actions, (0.0, 0.0, 1.0)).gain
    demand = mdp.pi * mdp.q * mdp.N
    return {"reward": reward, "served": d / demand, "utilization": u / (u + x) if u + x > 0 else 1.0}


def compare(
    names: list[str] | None = None,
    policies: list[str] | None = None,
    waste_cost: float = WASTE_COST,
    measures: bool = True,
) -> list[dict[str, Any]]:
    """One record per instance: the optimal reward, the default policy's and its gap, and
    every policy's reward, gap, served and utilization (``policies`` beside ``default``;
    ``measures=False``: rewards and gaps only)."""
    out = []
    default = resolve_policy("default")
    pols = [default, *[resolve_policy(p) for p in (policies or []) if resolve_policy(p) != default]]
    for name in names or list(INSTANCES):
        mdp = build(name, waste_cost)
        opt = solve(mdp)
        rec: dict[str, Any] = {"instance": name, "held_out": name in HELD_OUT, "optimal": opt.gain,
                               "policy": default, **mdp.describe()}
        if measures:
            best = _measures(mdp, opt.actions)
            rec["optimal_served"], rec["optimal_utilization"] = best["served"], best["utilization"]
        rec["policies"] = {}
        for p in pols:
            m = _measures(mdp, mdp.policy_actions(get_policy(p)), measures)
            m["gap"] = (opt.gain - m["reward"]) / abs(opt.gain) if opt.gain else 0.0
            rec["policies"][p] = m
        rec["default"] = rec["policies"][default]["reward"]
        rec["gap"] = rec["policies"][default]["gap"]
        out.append(rec)
    return out
