"""The simulated adversary as a round plugin (see :mod:`clients.byzantine`, ``docs/attacks.md``).

``round_start`` hands the broker the Bell pairs draining nodes ask for (``state.data["drain"]``);
``after_replies`` rewrites and re-signs the Byzantine nodes' replies before verification. Its
checkpoint state is the replay history (:meth:`clients.byzantine.Adversary.state_dict`).
"""

from __future__ import annotations

from logging import INFO
from typing import Any

from flwr.common.logger import log

from clients.byzantine import Adversary
from fedqnn.plugins import RoundPlugin, RoundState, RunContext

__all__ = ["AdversaryPlugin", "from_config"]


class AdversaryPlugin(RoundPlugin):
    name = "adversary"

    def setup(self, run: RunContext) -> None:
        self.adversary = Adversary(run.cfg, run.node_names)
        self.names = run.names
        if self.adversary.nodes:
            log(INFO, "fedqnn: Byzantine nodes (%s): %s", run.cfg["attack"], ", ".join(self.adversary.nodes))

    def round_start(self, state: RoundState) -> None:
        state.data["drain"] = self.adversary.drain_requests()

    def after_replies(self, state: RoundState) -> None:
        if not self.adversary.active:  # the attacks whose replies go out as trained
            return
        unavailable = self.adversary.rewrite(
            state.round, state.arrays,
            [(self.names.get(m.metadata.src_node_id, "?"), m) for m in state.replies],
            {self.names[m.metadata.dst_node_id]: m for m in state.messages},
        )
        for node, why in unavailable:  # e.g. too few honest replies left (dropouts, outages)
            log(INFO, "fedqnn: round %s: the attack of %s could not be crafted (%s); its reply is sent as "
                "trained", state.round, node, why)
            state.event(self, node, "attack-unavailable")

    def run_end(self, run: RunContext, extra: dict[str, Any]) -> None:
        """``summary.json``: who attacked, and how (``attack`` "none" when nobody did)."""
        extra["byzantine_nodes"] = list(self.adversary.nodes)
        extra["attack"] = run.cfg["attack"] if self.adversary.nodes else "none"

    def describe(self) -> str:
        """One line for the console at the start of a run."""
        if not self.adversary.nodes:
            return "no Byzantine nodes" + (" (attack=none)" if self.adversary.cfg["attack"] == "none"
                                           else " (byzantine_fraction=0)")
        by = self.adversary.by_node
        mixed = len(set(by.values())) > 1
        nodes = ", ".join(f"{n} ({a})" if mixed else n for n, a in by.items())
        attack = "" if mixed else f" running {next(iter(by.values()))}"
        return (f"Byzantine nodes{attack}: {nodes} (byzantine_fraction={self.adversary.cfg['byzantine_fraction']:g}; "
                "simulated colluding insiders)")

    def state_dict(self) -> dict[str, Any]:
        return self.adversary.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.adversary.load_state_dict(state)


def from_config(cfg: dict[str, Any]) -> AdversaryPlugin:
    """Always on: with no attack it has no nodes and does nothing."""
    return AdversaryPlugin()
