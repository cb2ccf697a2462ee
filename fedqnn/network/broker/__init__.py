"""The entanglement broker: the round-level API the server calls (Flower-free).

    broker = Broker.from_config(cfg, node_names, seed)
    nodes = broker.eligible(rnd)
    svc = broker.serve_round(rnd, participants, demand_per_node, extra_demand)
    broker.charge_rejected(rnd, rejected_nodes)
    bell = broker.round_record(rnd)        # the contract's `bell` keys
    broker.regime()                        # {"R", "rho", "F_min"}
    broker.totals(); broker.state_dict(); broker.load_state_dict(d)

A round is a window of ``round_duration`` simulated seconds split into ``steps_per_round``
steps (with key demand, ``key_pairs_per_node > 0``, at least 2 D / median cut-off budget steps,
at most 20000, so a step stays below the pairs' lifetime). The round's demand (participants x pairs + extra) arrives at the window's start and
must be delivered by ``deadline_fraction`` of it; the rest of the window prepares the next
round. Everything random comes from one seeded generator whose state is saved with the
broker, so a run (and a resumed run) repeats exactly.

This package is a facade; :class:`Broker` is assembled from one mixin per seam:

* :mod:`.core`: construction, eligibility and the round loop (``serve_round``);
* :mod:`.provisioning`: links, paths, channels, generation rates, round length, inventory;
* :mod:`.cutoffs`: cut-off budgets per path and per link, T-scale calibration, expiry steps;
* :mod:`.delivery`: grants (water-filling, then greedy) and the hand-over of pairs;
* :mod:`.ledger`: round records, totals, rejected and drained pairs, persistence.
"""

from __future__ import annotations

from fedqnn.network.broker.core import Broker
from fedqnn.network.broker.ledger import BELL_KEYS, Service

__all__ = ["Broker", "Service", "BELL_KEYS"]
