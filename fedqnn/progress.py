"""Progress output as a round plugin (``progress = true``): what the run is and who attacks, at
the start; one line per round on stdout, with the accepted and rejected nodes."""

from __future__ import annotations

from typing import Any

from fedqnn.plugins import RoundPlugin, RoundState, RunContext

__all__ = ["ProgressPlugin", "from_config", "round_line"]


def _grouped(items: list[dict[str, str]], key: str) -> str:
    """``[{node, reason}, ...]`` -> ``node-6, node-9 (outlier:stamp); node-2 (bad-signature)``."""
    by: dict[str, list[str]] = {}
    for it in items:
        by.setdefault(str(it.get(key)), []).append(str(it.get("node")))
    return "; ".join(f"{', '.join(nodes)} ({why})" for why, nodes in by.items())


def round_line(row: dict[str, Any], rounds: int, metric: str) -> str:
    """One round as the console shows it: metric, participants, rejections, events, time."""
    value = (row.get("eval") or {}).get(metric)
    parts = [f"[fedqnn] round {row['round']}/{rounds}"]
    if value is not None:
        parts.append(f"{metric}={value:.4f}")
    rejected = row.get("rejected") or []
    parts.append(f"participants={row.get('num_participants', 0)}")
    if rejected:
        parts.append(f"rejected {len(rejected)}: {_grouped(rejected, 'reason')}")
    if row.get("events"):
        parts.append(f"events: {_grouped(row['events'], 'event')}")
    bell = row.get("bell") or {}
    if bell.get("served") is not None:
        parts.append(f"Bell pairs served={bell['served']:.2f}")
    parts.append(f"{row.get('wall_s') or 0.0:.1f}s")
    line = "  ".join(parts)
    return line + (f"  SKIPPED: {row['skipped']}" if row.get("skipped") else "")


class ProgressPlugin(RoundPlugin):
    name = "progress"

    def setup(self, run: RunContext) -> None:
        cfg = run.cfg
        self.metric, self.rounds = run.task.metric, cfg["rounds"]
        start = "resuming" if run.resume else "run"
        print(f"[fedqnn] {start}: strategy {cfg['strategy']}, {len(run.node_names)} nodes, {cfg['rounds']} rounds, "
              f"task {cfg['task']} ({self.metric}), seed {cfg['seed']}, outputs in {cfg['out']}/", flush=True)
        adversary = run.plugin("adversary")
        if adversary is not None and hasattr(adversary, "describe"):
            print(f"[fedqnn] {adversary.describe()}", flush=True)

    def round_end(self, state: RoundState, row: dict[str, Any]) -> None:
        print(round_line(row, self.rounds, self.metric), flush=True)


def from_config(cfg: dict[str, Any]) -> ProgressPlugin | None:
    return ProgressPlugin() if cfg["progress"] else None
