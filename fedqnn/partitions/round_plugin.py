"""The partition planner as a round plugin (issue 9; ``docs/partitions.md``).

``round_start`` plans the round on the nodes the broker served (rank, epochs, Bell-pair demand,
placement) and adds the plan's entries to every instruction (``state.broadcast``); the plan is
``state.data["plan"]``. ``before_eval`` applies the round's rank to the server's model;
``on_record`` writes the row's ``partition`` record (and ``bell.partition_requested``) and feeds
the rank rule and the monitor. Its state is rebuilt from the rows on resume (``on_resume``).
"""

from __future__ import annotations

from typing import Any

from fedqnn.plugins import RoundPlugin, RoundState, RunContext

__all__ = ["PartitionPlugin", "from_config"]


class PartitionPlugin(RoundPlugin):
    name = "partitions"

    def setup(self, run: RunContext) -> None:
        from fedqnn.partitions.federated import PartitionPlanner

        self.planner = PartitionPlanner(run.cfg, run.node_names, run.services.get("broker"))
        self.task = run.task

    def on_resume(self, run: RunContext) -> None:
        from fedqnn.results import read_metrics

        self.planner.replay(read_metrics(run.cfg["out"]), run.task.metric, run.task.direction)

    def round_start(self, state: RoundState) -> None:
        plan = self.planner.plan(state.round, state.selected)
        state.data["plan"] = plan
        state.broadcast.update(plan.record)

    def before_eval(self, state: RoundState, model: Any) -> None:
        from fedqnn.partitions.federated import apply_round

        apply_round(model, state.data["plan"].record)

    def on_record(self, state: RoundState, row: dict[str, Any]) -> None:
        from fedqnn.partitions.federated import rows_from_metrics

        plan = state.data["plan"]
        if "bell" in row:  # extension of the broker's record: the partition's pairs, accounted analytically
            row["bell"]["partition_requested"] = plan.row["pairs_total"]
        row["partition"] = plan.row
        row.update(rows_from_metrics(m.content["metrics"] for m in state.ok))  # schmidt_rank, schmidt_bound
        adjustments = self.planner.observe(row, self.task.metric, self.task.direction)
        if adjustments:
            row["partition"]["adjustments"] = adjustments

    def run_end(self, run: RunContext, extra: dict[str, Any]) -> None:
        from fedqnn.results import read_metrics

        prows = [r["partition"] for r in read_metrics(run.cfg["out"]) if r.get("partition")]
        extra["partition"] = {"pairs_total": sum(int(r["pairs_total"]) for r in prows),
                              "simulated_s": round(sum(float(r["round_s"]) for r in prows), 3)}


def from_config(cfg: dict[str, Any]) -> PartitionPlugin | None:
    """On for ``partition.kind`` = ``unitary`` or ``circuit``."""
    from fedqnn.partitions.federated import kind_of

    return None if kind_of(cfg) == "data" else PartitionPlugin()
