"""Issue 17: the trivial baselines, the broker-only comparison and its goals (held-out seeds).

The goals: broker only, 50 nodes, R = 3 and R = 10, the default policy serves at least 0.02
more than the best mixture of ``jit`` and ``full`` at its utilization, and at R = 10 serves
>= 0.97 at utilization >= 0.93. Seeds 300-304 are held out (the default's constants were set
on seeds 0-9; the tables in docs/broker.md use 100-119 and 200-219).
"""

from __future__ import annotations

import numpy as np
import pytest

from fedqnn.network import Broker
from fedqnn.network.config import BROKER_FIELDS
from fedqnn.network.experiment import mixture_served, run_broker
from tests.network.test_broker import HELD_OUT


def test_jit_holds_no_stock_and_full_keeps_memories_full() -> None:
    names = [f"node-{i}" for i in range(12)]
    jit = Broker.from_config({"policy": "jit", "outage_prob": 0.0}, names, 2)
    full = Broker.from_config({"policy": "full", "outage_prob": 0.0}, names, 2)
    for r in range(3):
        for b in (jit, full):
            b.serve_round(r, names[:6], 4)
    assert jit.inv.stored.sum() <= 0.1 * full.inv.stored.sum()  # heralds beyond a request are rare
    assert full.inv.stored.sum() >= 0.5 * full.inv.capacity.sum()
    assert jit.totals()["utilization"] > full.totals()["utilization"]


def test_mixture_is_the_chord() -> None:
    jit, full = (1.0, 0.86), (0.75, 0.97)
    assert mixture_served(1.0, jit, full) == pytest.approx(0.86)
    assert mixture_served(0.875, jit, full) == pytest.approx(0.915)
    assert mixture_served(0.5, jit, full) == 0.97  # below full's utilization: full's served


def test_common_outages_are_the_same_whatever_the_policy() -> None:
    names = [f"node-{i}" for i in range(20)]
    ups = []
    for pol in ("lookahead", "full", "jit"):
        b = Broker.from_config({"policy": pol, "outage_prob": 0.2}, names, 5)
        b.common_outages()
        path = []
        for r in range(6):
            b.serve_round(r, names[:10], 4)
            path.append(b.inv.up.copy())
        ups.append(np.array(path))
    assert all((u == ups[0]).all() for u in ups) and not ups[0].all()
    # control: from the generation stream the outages follow the policy
    a = run_broker({"policy": "jit", "outage_prob": 0.2}, 20, 6, 5, common_outages=False)["broker"].inv.up
    b = run_broker({"policy": "full", "outage_prob": 0.2}, 20, 6, 5, common_outages=False)["broker"].inv.up
    assert (a != b).any()


def test_eligibility_tops_up_to_the_fixed_demand() -> None:
    """The default's test never leaves fewer than K eligible where aware's would not."""
    names = [f"node-{i}" for i in range(30)]
    b = Broker.from_config({"target_R": 2.0}, names, 1)
    k = round(b.cfg["participation"] * 30)
    for r in range(5):
        el = b.eligible(r)
        assert len(el) >= min(k, int(b._servable(True).sum()))
        b.serve_round(r, el[:k], 4)


@pytest.mark.slow
def test_goals_default_beats_the_mixture_held_out_seeds() -> None:
    default = BROKER_FIELDS["policy"].default
    pts: dict[tuple[float, str], tuple[float, float]] = {}
    for R in (3.0, 10.0):
        for pol in (default, "jit", "full"):
            runs = [run_broker({"policy": pol, "target_R": R}, 50, 30, seed) for seed in HELD_OUT]
            pts[(R, pol)] = (float(np.mean([o["utilization"] for o in runs])),
                             float(np.mean([o["served"] for o in runs])))
        u, s = pts[(R, default)]
        assert s - mixture_served(u, pts[(R, "jit")], pts[(R, "full")]) >= 0.02, pts
    u, s = pts[(10.0, default)]
    assert s >= 0.97 and u >= 0.93, pts
    # control: a policy below the mixture is caught (oblivious at R = 3)
    obl = [run_broker({"policy": "oblivious", "target_R": 3.0}, 50, 30, seed) for seed in HELD_OUT[:2]]
    u, s = float(np.mean([o["utilization"] for o in obl])), float(np.mean([o["served"] for o in obl]))
    assert s - mixture_served(u, pts[(3.0, "jit")], pts[(3.0, "full")]) < 0
