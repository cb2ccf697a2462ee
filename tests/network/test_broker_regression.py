"""The broker's outputs are pinned bit for bit: speed-ups must not change what it computes.

``data/broker_regression.json`` was recorded from the broker before its per-round decision
was optimised. Every scenario below is replayed and compared with that recording: each
round's eligible set, ``Service`` (served nodes, delivered fidelities, requested pairs,
availability, key pairs), ``round_record`` and ``round_extras``, the run totals, the regime,
the node ledger and a digest of the final ``state_dict`` (inventory, ledgers, RNG state).
Floats are compared exactly (JSON keeps ``repr``, which round-trips a float).

Scenarios added later (``default_policy`` and below, issue 17) were recorded when added; the
earlier ones are unchanged. Regenerate (only when the broker's *behaviour* is meant to change)::

    /work/venv/bin/python tests/network/test_broker_regression.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from fedqnn.network import Broker
from fedqnn.seeding import rng

FIXTURE = Path(__file__).parent / "data" / "broker_regression.json"

AWARE = {"policy": "aware"}  # the issue-4 default, pinned by name since the default changed (issue 17)

# name -> (broker config, nodes, rounds, seed, driver options)
SCENARIOS: dict[str, tuple[dict[str, Any], int, int, int, dict[str, Any]]] = {
    "aware_default": ({**AWARE}, 24, 6, 0, {}),
    "aware_priority_reject": ({**AWARE, "steps_per_round": 12}, 20, 6, 1, {"priority": True, "reject": 0.3}),
    "oblivious_outages": ({"policy": "oblivious", "outage_prob": 0.2, "outage_recovery": 0.4},
                          20, 6, 2, {"reject": 0.2}),
    "random_outages": ({"policy": "random", "outage_prob": 0.15}, 20, 6, 3, {}),
    "oracle_announce": ({"policy": "oracle"}, 20, 6, 4, {"announce": True}),
    "dephasing_purify_swapfail": (
        {**AWARE, "noise": "dephasing", "B0": 0.05, "F0": 0.9, "F_min": 0.7, "topology": "grid",
         "admission": 0.9, "swap_success": 0.7, "steps_per_round": 10},
        24, 6, 5, {"priority": True, "reject": 0.2},
    ),
    "purify_bbpssw_oblivious": (
        {"policy": "oblivious", "F0": 0.9, "F_min": 0.75, "admission": 0.9,
         "purify_protocol": "bbpssw"},
        12, 5, 6, {},
    ),
    "quota_deadline_short_R": ({**AWARE, "quota": 3, "deadline_fraction": 0.5, "target_R": 3.0}, 20, 6, 7,
                               {"demand": 5}),
    "key_demand": ({**AWARE, "key_pairs_per_node": 3, "outage_prob": 0.05}, 10, 4, 8,
                   {"keys": 3, "priority": True}),
    "key_demand_oblivious": ({"key_pairs_per_node": 2, "policy": "oblivious"}, 8, 3, 9, {"keys": 2}),
    "key_flood": ({**AWARE, "key_pairs_per_node": 50, "outage_prob": 0.0, "steps_per_round": 8}, 8, 2, 3,
                  {"keys": 10**6}),
    "aware_200_nodes": ({**AWARE}, 200, 4, 10, {"priority": True}),
    # issue 17: the default policy (lookahead) and the trivial baselines, recorded when added
    "default_policy": ({}, 24, 6, 0, {}),
    "lookahead_outages_reject": ({"policy": "lookahead", "outage_prob": 0.15, "steps_per_round": 12},
                                 20, 6, 11, {"priority": True, "reject": 0.3}),
    "lookahead_key_demand_short_R": ({"policy": "lookahead", "key_pairs_per_node": 3, "target_R": 3.0},
                                     10, 4, 12, {"keys": 3}),
    "jit_outages": ({"policy": "jit", "outage_prob": 0.1}, 20, 6, 13, {"reject": 0.2}),
    "full_purify_key_demand": ({"policy": "full", "F0": 0.9, "F_min": 0.75, "admission": 0.9,
                                "key_pairs_per_node": 2}, 12, 4, 14, {"keys": 2}),
}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def play(cfg: dict[str, Any], n: int, rounds: int, seed: int, opts: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario and return everything the broker reports, JSON-ready."""
    names = [f"node-{i}" for i in range(n)]
    b = Broker.from_config(cfg, names, seed)
    q = int(opts.get("demand", b.cfg["pairs_per_node"]))
    k = max(1, round(b.cfg["participation"] * n))
    drv = rng(seed, "regression", "driver")
    out_rounds = []
    for r in range(rounds):
        perm = drv.permutation(n)
        if opts.get("announce"):
            b.announce(r + 1, {names[i]: q for i in drv.permutation(n)[:k]})
        eligible = b.eligible(r)
        ok = set(eligible)
        part = [names[i] for i in perm if names[i] in ok][:k]
        extra = None
        if opts.get("keys"):
            extra = {names[i]: int(opts["keys"]) for i in drv.permutation(n)[: max(1, n // 2)]}
        priority = None
        if opts.get("priority"):
            priority = {x: float(v) for x, v in zip(names, drv.random(n).round(2))}
        svc = b.serve_round(r, part, q, extra_demand=extra, priority=priority)
        rejected: list[str] = []
        if opts.get("reject") and svc.served_nodes:
            rejected = [x for x in svc.served_nodes if drv.random() < opts["reject"]]
            b.charge_rejected(r, rejected)
        out_rounds.append({
            "eligible": eligible,
            "participants": part,
            "served_nodes": svc.served_nodes,
            "delivered": svc.delivered,
            "requested": svc.requested,
            "availability": svc.availability,
            "key_pairs": {x: [c, list(w)] for x, (c, w) in svc.key_pairs.items()},
            "rejected": rejected,
            "record": b.round_record(r),
            "extras": b.round_extras(r),
        })
    return {
        "rounds": out_rounds,
        "totals": b.totals(),
        "regime": b.regime(),
        "node_ledger": b.node_ledger,
        "state_digest": _digest(b.state_dict()),
    }


def record_all() -> dict[str, Any]:
    """Every scenario's output; big ones (many nodes) are kept as a digest plus totals."""
    out: dict[str, Any] = {}
    for name, (cfg, n, rounds, seed, opts) in SCENARIOS.items():
        res = play(cfg, n, rounds, seed, opts)
        if n > 50:
            res = {"digest": _digest(res), "totals": res["totals"],
                   "records": [r["record"] for r in res["rounds"]]}
        out[name] = json.loads(json.dumps(res))  # what the fixture file holds
    return out


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def test_fixture_covers_every_scenario(recorded: dict[str, Any]) -> None:
    assert set(recorded) == set(SCENARIOS)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_broker_outputs_are_bit_identical_to_the_recording(name: str, recorded: dict[str, Any]) -> None:
    cfg, n, rounds, seed, opts = SCENARIOS[name]
    got = json.loads(json.dumps(play(cfg, n, rounds, seed, opts)))
    want = recorded[name]
    if "digest" in want:
        assert [r["record"] for r in got["rounds"]] == want["records"]
        assert got["totals"] == want["totals"]
        assert _digest(got) == want["digest"]
        return
    for r, (g, w) in enumerate(zip(got["rounds"], want["rounds"])):
        for key in w:
            assert g[key] == w[key], f"{name}: round {r}: {key} differs"
    assert len(got["rounds"]) == len(want["rounds"])
    assert got == want


def test_scenarios_exercise_the_paths_they_name(recorded: dict[str, Any]) -> None:
    """Guard against a recording that pins nothing interesting (e.g. no key pairs at all)."""
    def tot(name: str, key: str) -> Any:
        return recorded[name]["totals"][key]

    for name in ("key_demand", "key_demand_oblivious", "key_flood"):
        assert tot(name, "key_pairs") > 0, name
    assert tot("dephasing_purify_swapfail", "wasted") > 0
    for name in SCENARIOS:
        assert tot(name, "delivered") > 0, name
    avail = [r["availability"] for r in recorded["oblivious_outages"]["rounds"]]
    assert min(avail) < 1.0  # outages took some paths down
    for name in ("dephasing_purify_swapfail", "purify_bbpssw_oblivious", "aware_200_nodes"):
        cfg, n, _, seed, _ = SCENARIOS[name]
        b = Broker.from_config(cfg, [f"node-{i}" for i in range(n)], seed)
        assert (b.mult == 2).any(), name


if __name__ == "__main__":
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(record_all(), sort_keys=True, indent=1) + "\n")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")
