"""Progress output as a round plugin: one line per round on stdout (``progress = true``)."""

from __future__ import annotations

from typing import Any

from fedqnn.plugins import RoundPlugin, RoundState, RunContext

__all__ = ["ProgressPlugin", "from_config"]


class ProgressPlugin(RoundPlugin):
    name = "progress"

    def setup(self, run: RunContext) -> None:
        self.metric, self.rounds = run.task.metric, run.cfg["rounds"]

    def round_end(self, state: RoundState, row: dict[str, Any]) -> None:
        metric = (row["eval"] or {}).get(self.metric)
        shown = f"{self.metric}={metric:.4f}" if metric is not None else ""
        note = f"  SKIPPED: {row['skipped']}" if row.get("skipped") else ""
        print(f"[fedqnn] round {state.round}/{self.rounds}  {shown}  participants={len(state.ok)}  "
              f"{row['wall_s']:.1f}s{note}", flush=True)


def from_config(cfg: dict[str, Any]) -> ProgressPlugin | None:
    return ProgressPlugin() if cfg["progress"] else None
