"""Broker ledger, determinism, resume, config errors, topologies and done-when properties."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedqnn.config import ConfigError
from fedqnn.network import BELL_KEYS, Broker, validate_broker_config
from fedqnn.network.experiment import run_broker
from fedqnn.network.inventory import Inventory

SMALL = {"steps_per_round": 8}


def _ledger_balances(out: dict) -> None:
    b = out["broker"]
    recs = out["records"]
    lhs = sum(r["generated"] for r in recs)
    rhs = sum(r["used_raw"] + r["expired"] + r["wasted"] for r in recs) + recs[-1]["stored"]
    assert lhs == rhs
    assert b.inv.conservation_gap() == 0
    assert lhs > 0


@pytest.mark.parametrize("policy", ["aware", "oblivious", "random", "oracle", "jit", "full", "lookahead"])
def test_conservation_every_policy(policy: str) -> None:
    out = run_broker({**SMALL, "policy": policy}, 20, 8, seed=1, reject_fraction=0.3)
    _ledger_balances(out)
    for r in out["records"]:
        assert set(r) == set(BELL_KEYS)
        assert r["delivered"] <= r["requested"]


def test_conservation_with_failures_and_purification() -> None:
    cfg = {**SMALL, "swap_success": 0.7, "F0": 0.9, "F_min": 0.7, "topology": "grid",
           "noise": "dephasing", "B0": 0.05, "admission": 0.9}
    out = run_broker(cfg, 24, 8, seed=2, reject_fraction=0.2)
    _ledger_balances(out)
    b = out["broker"]
    assert out["totals"]["wasted"] > 0  # failed swaps are booked as waste
    assert (b.mult == 2).any()  # some paths are purified
    fids = [f for r in out["records"] for f in [r["mean_consumed_fidelity"]] if f is not None]
    assert min(fids) >= cfg["F_min"]


def test_repeats_exactly_from_seed() -> None:
    a = run_broker(SMALL, 20, 6, seed=5)["records"]
    b = run_broker(SMALL, 20, 6, seed=5)["records"]
    c = run_broker(SMALL, 20, 6, seed=6)["records"]
    assert a == b
    assert a != c


def test_resume_from_state_dict_matches_uninterrupted_run() -> None:
    names = [f"node-{i}" for i in range(16)]

    def play(b: Broker, rounds: range) -> list[dict]:
        out = []
        for r in rounds:
            el = b.eligible(r)
            b.serve_round(r, el[: 8], 3, extra_demand={el[0]: 1} if el else None)
            out.append(b.round_record(r))
        return out

    full = Broker.from_config(SMALL, names, 9)
    ref = play(full, range(6))
    first = Broker.from_config(SMALL, names, 9)
    part1 = play(first, range(3))
    state = json.loads(json.dumps(first.state_dict()))
    second = Broker.from_config(SMALL, names, 9)
    second.load_state_dict(state)
    part2 = play(second, range(3, 6))
    assert part1 + part2 == ref
    assert second.totals() == full.totals()


def test_charge_rejected_moves_used_to_wasted() -> None:
    names = [f"node-{i}" for i in range(10)]
    b = Broker.from_config({**SMALL, "outage_prob": 0.0}, names, 3)
    el = b.eligible(0)
    svc = b.serve_round(0, el, 2)
    before = b.round_record(0)
    assert svc.served_nodes
    b.charge_rejected(0, svc.served_nodes[:1])
    after = b.round_record(0)
    moved = before["used_raw"] - after["used_raw"]
    assert moved > 0 and after["wasted"] - before["wasted"] == moved
    assert b.inv.conservation_gap() == 0
    b.charge_rejected(0, svc.served_nodes[:1])  # idempotent
    assert b.round_record(0) == after


def test_regime_and_extra_demand_counts_keys() -> None:
    names = [f"node-{i}" for i in range(12)]
    b = Broker.from_config({**SMALL, "outage_prob": 0.0}, names, 4)
    reg = b.regime()
    assert set(reg) == {"R", "rho", "F_min"} and reg["R"] == pytest.approx(10.0, rel=0.05)
    el = b.eligible(0)
    b.serve_round(0, el[:4], 2, extra_demand={el[0]: 1})
    rec = b.round_record(0)
    assert rec["requested"] == 4 * 2 + 1
    assert 0 <= rec["key_pairs"] <= 1


def test_inventory_cutoff_and_oldest_first() -> None:
    rng = np.random.default_rng(0)
    inv = Inventory(np.array([10]), np.array([3]), np.array([1]), np.array([1.0]), dt=0.1)
    for _ in range(3):
        inv.step(np.array([1]), rng)  # one pair per step, ages 3, 2, 1
    assert inv.stored.tolist() == [3] and inv.valid_after(1).tolist() == [2]
    _, n, ages = inv.take_oldest(np.array([1]))
    assert n.tolist() == [1] and ages.tolist() == [3]
    inv.used_raw[0] += 1  # the broker books what it takes
    inv.step(np.array([0]), rng)
    inv.step(np.array([0]), rng)  # the pair of age 2 then 3 -> 4 > cut-off: expired
    assert inv.expired.tolist() == [1] and inv.stored.tolist() == [1]
    assert inv.conservation_gap() == 0


@pytest.mark.parametrize("topology", ["ring", "grid", "star", "geometric"])
def test_topologies_route_every_client_to_server(topology: str) -> None:
    names = [f"node-{i}" for i in range(15)]
    b = Broker.from_config({**SMALL, "topology": topology}, names, 0)
    for n in names:
        path = b.net.paths[n]
        assert path[0] == n and path[-1] == "server"
    if topology == "star":
        assert set(b.hops.tolist()) == {1}


def test_topology_file(tmp_path) -> None:
    f = tmp_path / "net.txt"
    f.write_text("# chain\nnode-0 server F0=0.97 p=0.001 tau=1e-5\nnode-1 node-0 capacity=4\n")
    b = Broker.from_config({**SMALL, "topology": "file", "topology_file": str(f)}, ["node-0", "node-1"], 0)
    assert b.net.paths["node-1"] == ["node-1", "node-0", "server"]
    assert b.net.graph.edges["node-0", "server"]["F0"] == pytest.approx(0.97)
    with pytest.raises(ConfigError, match="broker.topology_file"):
        Broker.from_config({"topology": "file", "topology_file": str(f)}, ["node-0", "node-9"], 0)


@pytest.mark.parametrize(
    "cfg, field",
    [
        ({"polcy": "aware"}, "broker.polcy"),
        ({"F0": 1.5}, "broker.F0"),
        ({"noise": "amplitude"}, "broker.noise"),
        ({"memory_T": 1.0, "target_R": 5.0}, "broker.memory_T"),
        ({"round_duration": 0.1, "target_rho": 0.5}, "broker.round_duration"),
        ({"F_min": 0.97}, "broker.F_min"),
        ({"topology": "file"}, "broker.topology_file"),
        ({"capacity": "many"}, "broker.capacity"),
    ],
)
def test_config_errors_name_the_field(cfg: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        validate_broker_config(cfg)


def test_unknown_policy_names_the_field() -> None:
    with pytest.raises(ConfigError, match="broker.policy"):
        Broker.from_config({"policy": "psychic"}, ["node-0"], 0)


HELD_OUT = (300, 301, 302, 303, 304)  # seeds never used to set a constant (tuning: 0-9; tables: 100-119, 200-219)


@pytest.mark.slow
def test_done_when_default_regime_50_nodes_held_out_seeds() -> None:
    """Issue 4's goal for the default policy: utilization >= 0.90, served >= 0.95, F >= F_min
    (held-out seeds; outages as common random numbers)."""
    util, served, fid = [], [], []
    for seed in HELD_OUT:
        out = run_broker({}, 50, 30, seed=seed)
        util.append(out["utilization"])
        served.append(out["served"])
        fid.append(out["mean_consumed_fidelity"])
    assert np.mean(util) >= 0.90
    assert np.mean(served) >= 0.95
    assert min(fid) >= 0.8


@pytest.mark.slow
def test_aware_beats_oblivious_at_short_coherence() -> None:
    """Issue 4: at R = 3 aware has higher utilization and serves at least as much (held-out seeds)."""
    cfg = {"target_R": 3.0, "steps_per_round": 8}
    for seed in HELD_OUT[:2]:
        a = run_broker({**cfg, "policy": "aware"}, 30, 15, seed=seed)
        o = run_broker({**cfg, "policy": "oblivious"}, 30, 15, seed=seed)
        assert a["utilization"] > o["utilization"]
        assert a["served"] >= o["served"]


def test_key_demand_is_second_tier_and_never_pushes_a_participant_out() -> None:
    """Update pairs are delivered before key pairs: a key demand far above what the links can
    make leaves every participant's update demand served, and only key pairs go short."""
    names = [f"node-{i}" for i in range(8)]
    plain = Broker.from_config({**SMALL, "outage_prob": 0.0}, names, 3)
    keyed = Broker.from_config({**SMALL, "outage_prob": 0.0, "key_pairs_per_node": 50}, names, 3)
    assert keyed.D > plain.D  # the key demand is part of the load that sets the round duration
    assert keyed.steps >= 2 * keyed.D / np.median(keyed.budget_cutoff_s[np.isfinite(keyed.budget_cutoff_s)]) - 1
    part = names[:4]
    svc = keyed.serve_round(1, part, 2, extra_demand={n: 10**6 for n in names})
    rec = keyed.round_record(1)
    assert sorted(svc.served_nodes) == sorted(part)
    assert svc.requested == {n: 2 for n in part}  # the participants' update demand only
    assert rec["requested"] == 4 * 2 + 8 * 10**6  # keys included, as the contract says
    assert 0 < rec["key_pairs"] < 8 * 10**6 and rec["delivered"] == 4 * 2 + rec["key_pairs"]
    counts = {n: c for n, (c, _) in svc.key_pairs.items()}
    assert sum(counts.values()) == rec["key_pairs"]
    for _, bell in svc.key_pairs.values():  # mean Bell-diagonal state of the key pairs
        assert abs(sum(bell) - 1) < 1e-9 and bell[0] >= keyed.cfg["F_min"] - 1e-9
