"""Run outputs (see CONTRACTS.md): ``metrics.jsonl`` (one JSON object per round),
``summary.json`` and ``metrics.png``."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["RunWriter", "atomic_write_text", "read_metrics", "plot_metrics", "existing_run", "refuse_existing_run"]

#: What makes a directory hold a run: its rows, or a checkpoint to resume from.
RUN_FILES = ("metrics.jsonl", "checkpoint/state.zip")


def existing_run(out: str | Path) -> list[str]:
    """The files of :data:`RUN_FILES` present in ``out`` (empty: nothing a new run would destroy)."""
    return [name for name in RUN_FILES if (Path(out) / name).exists()]


def refuse_existing_run(out: str | Path, resume_hint: str, overwrite_hint: str) -> None:
    """Raise ``ConfigError`` if ``out`` already holds a run: starting a new one there would
    truncate its ``metrics.jsonl`` and replace its checkpoint."""
    from fedqnn.schema import ConfigError

    found = existing_run(out)
    if found:
        raise ConfigError(
            f"out: {out} already holds a run ({', '.join(found)}); a new run would overwrite it. "
            f"Continue it with {resume_hint}, start over with {overwrite_hint}, or choose another out")


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def read_metrics(out: str | Path) -> list[dict[str, Any]]:
    path = Path(out) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class RunWriter:
    """Appends round rows and writes the summary; the metric's direction decides 'best'."""

    def __init__(self, out: str | Path, metric: str, direction: str) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.metric, self.direction = metric, direction
        self.path = self.out / "metrics.jsonl"

    def reset(self, keep_rounds: int = 0) -> None:
        """Keep the first ``keep_rounds`` rows (resume), drop the rest."""
        rows = [r for r in read_metrics(self.out) if r["round"] <= keep_rounds]
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))

    def append(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(_clean(row), sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def summarize(self, cfg: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        rows = read_metrics(self.out)
        evals: dict[str, list[tuple[int, float]]] = {}
        for r in rows:
            for k, v in (r.get("eval") or {}).items():
                if v is not None:
                    evals.setdefault(k, []).append((r["round"], v))
        metrics = {}
        for k, series in evals.items():
            direction = "max" if (k == "accuracy") else "min"
            pick = max if direction == "max" else min
            best = pick(series, key=lambda t: t[1])
            metrics[k] = {
                "final": series[-1][1], "final_round": series[-1][0],
                "best": best[1], "best_round": best[0], "direction": direction,
            }
        rejected: dict[str, int] = {}
        for r in rows:
            for rej in r.get("rejected") or []:
                rejected[rej["reason"]] = rejected.get(rej["reason"], 0) + 1
        summary = {
            "config": cfg,
            "metric": self.metric,
            "direction": self.direction,
            "rounds_completed": len(rows),
            "rounds_skipped": sum(1 for r in rows if r.get("skipped")),
            "metrics": metrics,
            "total_wall_s": round(sum(r.get("wall_s") or 0.0 for r in rows), 3),
            "totals": {"rejected": rejected},
        }
        extra = dict(extra or {})
        if "bell" in extra:  # run totals of Bell pairs sit beside the rejections
            summary["totals"]["bell"] = extra.pop("bell")
        summary.update(extra)
        atomic_write_text(self.out / "summary.json", json.dumps(_clean(summary), indent=2, sort_keys=True) + "\n")
        try:
            plot_metrics(rows, self.out / "metrics.png", self.metric)
        except Exception as exc:  # a plot must never lose a run's results
            print(f"warning: could not draw metrics.png ({exc})")
        return summary


def plot_metrics(rows: list[dict[str, Any]], path: Path, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if not r.get("skipped")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    rounds = [r["round"] for r in done]
    names = sorted({k for r in done for k in (r.get("eval") or {}) if k != "loss"})
    for k in names:
        axes[0].plot(rounds, [(r.get("eval") or {}).get(k) for r in done], marker="o", label=k)
    axes[0].set_xlabel("round")
    axes[0].set_ylabel(metric)
    axes[0].set_title("server evaluation")
    axes[0].legend()
    axes[1].plot(rounds, [r.get("train_loss") for r in done], marker="o", label="train loss (clients)")
    axes[1].plot(rounds, [(r.get("eval") or {}).get("loss") for r in done], marker="s", label="test loss (server)")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("round")
    axes[1].legend()
    strategy = done[0]["strategy"] if done else ""
    fig.suptitle(f"fedqnn run: {strategy}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
