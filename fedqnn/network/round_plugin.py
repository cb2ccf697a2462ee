"""The entanglement broker as a round plugin (see :mod:`fedqnn.network.broker`, ``docs/broker.md``).

Demand is fixed (issue 17): the round selects K = round(fraction_train x clients) nodes whatever
their links' state, so the broker does not filter eligibility; ``round_start`` tells a
clairvoyant policy the next round's selection, serves the round's Bell pairs (plus the pairs in
``state.data["drain"]`` and ``state.data["key_demand"]``), drops the nodes it could not serve
(event ``bell-unserved``: they do not take part) and leaves the delivered key pairs in
``state.data["key_pairs"]``; ``on_record`` charges rejected updates and
writes the row's ``bell`` record; ``run_end`` the summary's ``regime`` and ``bell`` totals.
The broker is published as ``run.services["broker"]``.
"""

from __future__ import annotations

from typing import Any

from fedqnn.nodes import node_order
from fedqnn.plugins import RoundPlugin, RoundState, RunContext

__all__ = ["BrokerPlugin", "from_config"]


class BrokerPlugin(RoundPlugin):
    name = "broker"

    def setup(self, run: RunContext) -> None:
        from fedqnn.network.broker import Broker

        self.broker = Broker.from_config(run.cfg["broker"], run.node_names, run.cfg["seed"])
        self.run = run
        run.services["broker"] = self.broker

    def round_start(self, state: RoundState) -> None:
        b, run = self.broker, self.run
        q = b.cfg["pairs_per_node"]
        if getattr(b.policy, "clairvoyant", False) and state.round < run.cfg["rounds"]:
            nxt = run.select(run.node_names, state.round + 1)  # the oracle is told future demand
            b.announce(state.round + 1, {n: q for n in nxt})
        svc = b.serve_round(state.round, state.selected, q, extra_demand=state.data.get("key_demand"),
                            drain=state.data.get("drain"))
        state.data["key_pairs"] = svc.key_pairs
        served = set(svc.served_nodes)
        state.drop([n for n in state.selected if n not in served], "bell-unserved")

    def on_record(self, state: RoundState, row: dict[str, Any]) -> None:
        if row["rejected"]:
            self.broker.charge_rejected(state.round, sorted({r["node"] for r in row["rejected"]}, key=node_order))
        row["bell"] = self.broker.round_record(state.round)

    def run_end(self, run: RunContext, extra: dict[str, Any]) -> None:
        extra["regime"] = self.broker.regime()
        extra["bell"] = self.broker.totals()

    def state_dict(self) -> dict[str, Any]:
        return self.broker.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.broker.load_state_dict(state)


def from_config(cfg: dict[str, Any]) -> BrokerPlugin | None:
    """On unless ``broker.policy = "off"``."""
    return None if cfg["broker"]["policy"] == "off" else BrokerPlugin()
