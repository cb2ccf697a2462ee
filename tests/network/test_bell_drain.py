"""Bell-pair draining (attack ``bell-drain``): the broker's books and the harm to honest nodes."""

from __future__ import annotations

import numpy as np
import pytest

from fedqnn.network import Broker
from fedqnn.network.experiment import run_broker

SMALL = {"steps_per_round": 8}


def _served_round(drain: dict[str, int] | None, quota: int | None = None) -> tuple[Broker, object, list[str]]:
    names = [f"node-{i}" for i in range(12)]
    b = Broker.from_config({**SMALL, "outage_prob": 0.0, "quota": quota}, names, 4)
    el = b.eligible(0)
    svc = b.serve_round(0, el[:6], 3, drain=drain)
    return b, svc, el


def test_drained_pairs_are_wasted_and_left_out_of_the_fixed_demand() -> None:
    names = [f"node-{i}" for i in range(12)]
    b0 = Broker.from_config({**SMALL, "outage_prob": 0.0}, names, 4)
    el = b0.eligible(0)
    drainer = el[-1]  # not a participant: a node drains over its own links
    b, svc, _ = _served_round({drainer: 50})
    rec = b.round_record(0)
    assert rec["drained"] > 0
    assert rec["requested"] == 6 * 3  # the contract's fixed demand only
    assert rec["delivered"] <= rec["requested"]
    assert b.inv.conservation_gap() == 0
    led = b.node_ledger[drainer]
    assert led["requested"] == 50 and led["delivered"] == rec["drained"]
    assert led["wasted"] == rec["drained"] * int(b.mult[b._index[drainer]] * b.hops[b._index[drainer]])
    assert rec["wasted"] >= led["wasted"]
    assert drainer not in svc.delivered  # a non-participant gets no update pairs


def test_a_draining_participant_keeps_only_its_need_and_is_not_charged_twice() -> None:
    names = [f"node-{i}" for i in range(12)]
    b0 = Broker.from_config({**SMALL, "outage_prob": 0.0}, names, 4)
    p = b0.eligible(0)[0]
    b, svc, _ = _served_round({p: 20})
    assert len(svc.delivered[p]) <= 3
    before = b.round_record(0)
    b.charge_rejected(0, [p])  # only the raw pairs of its real need move to wasted now
    after = b.round_record(0)
    need_raw = len(svc.delivered[p]) * int(b.mult[b._index[p]] * b.hops[b._index[p]])
    assert after["wasted"] - before["wasted"] == need_raw
    assert b.inv.conservation_gap() == 0


def test_no_drain_is_the_same_round_as_before() -> None:
    a, sa, _ = _served_round(None)
    b, sb, _ = _served_round({})
    assert a.round_record(0) == b.round_record(0) and "drained" not in a.round_record(0)
    assert sa.delivered == sb.delivered


def test_quota_caps_what_a_drainer_gets() -> None:
    names = [f"node-{i}" for i in range(12)]
    drainer = Broker.from_config({**SMALL, "outage_prob": 0.0}, names, 4).eligible(0)[-1]
    b, _, _ = _served_round({drainer: 50}, quota=2)
    assert b.round_record(0)["drained"] <= 2


@pytest.mark.parametrize("policy", ["aware", "oblivious", "random"])
def test_draining_starves_honest_nodes_and_a_quota_limits_it(policy: str) -> None:
    """50 nodes, 20 % drainers asking 10x the per-node demand: the honest participants get
    measurably less (10 seeds), and a quota of the per-node demand gives most of it back."""
    def honest(drain_pairs: int, quota: int | None) -> float:
        cfg = {"policy": policy, "quota": quota}
        return float(np.mean([run_broker(cfg, 50, 12, seed=s, drain_fraction=0.2, drain_pairs=drain_pairs)
                              ["honest_served"] for s in range(10)]))

    clean, drained, capped = honest(0, None), honest(40, None), honest(40, 4)
    assert drained < clean - 0.05, (clean, drained)
    assert capped > drained, (drained, capped)
