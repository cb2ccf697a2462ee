"""Run outputs (docs/outputs.md): ``metrics.jsonl`` (one JSON object per round),
``summary.json`` and ``metrics.png`` (drawn by :mod:`fedqnn.plot`); and reading runs back.

:func:`load_runs` gives a pandas DataFrame (pandas is imported there only: ``pip install -e
".[track]"``), one row per (run, round): ``run`` (the run directory), the row's scalars flattened
with dots (``round``, ``train_loss``, ``num_participants``, ``eval.<metric>``, ``bell.<key>``,
``rejected`` = how many were rejected), the config flattened into ``config.<key>`` columns, and
the summary's finals as ``final.<metric>`` (absent for a run still going).

:func:`compare` pairs runs that differ in one column (``by``) and agree on ``pair_on`` (the seed),
and reports the mean paired difference of a metric's final value against a baseline with its
Student t-interval (:func:`fedqnn.stats.t_interval`: x̄ ± t_{n-1,(1+level)/2} s/√n over pairs).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["RunWriter", "atomic_write_text", "read_metrics", "plot_metrics", "all_skipped", "file_mode",
           "load_runs", "compare", "run_dirs", "existing_run", "refuse_existing_run"]


def file_mode() -> int:
    """The mode a plain ``open()`` gives a new file under this process's umask (0644 under 022)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


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
    os.fchmod(fd, file_mode())  # mkstemp makes 0600; results are as readable as the plot
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


def all_skipped(out: str | Path) -> str | None:
    """A line saying that no round of the run in ``out`` aggregated (with the first reason), or
    None if one did. Such a run exits non-zero (``fedqnn run``; ``flwr run`` fails the run)."""
    rows = read_metrics(out)
    if not rows or not all(r.get("skipped") for r in rows):
        return None
    return (f"every round ({len(rows)} of {len(rows)}) was skipped, no update was aggregated: "
            f"round {rows[0]['round']}: {rows[0]['skipped']}")


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
            plot_metrics(rows, self.out / "metrics.png", self.metric, summary)
        except Exception as exc:  # a plot must never lose a run's results
            print(f"warning: could not draw metrics.png ({exc})")
        return summary


def plot_metrics(rows: list[dict[str, Any]], path: Path, metric: str, summary: dict[str, Any] | None = None) -> None:
    """``metrics.png`` (:func:`fedqnn.plot.plot_run`): metric, losses, every node per round with
    the rejected and Byzantine ones marked, the broker's served/utilization."""
    from fedqnn.plot import plot_run

    plot_run(rows, path, metric, summary)



# ---------------------------------------------------------------------------- reading runs back
def run_dirs(paths: Iterable[str | Path] | str | Path) -> list[Path]:
    """Every run directory (one holding ``metrics.jsonl``) at or under ``paths``, sorted."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"load_runs: {p} does not exist")
        if (p / "metrics.jsonl").is_file():
            found.add(p)
        found.update(m.parent for m in p.rglob("metrics.jsonl"))
    return sorted(found)


def _flat(d: dict[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif not isinstance(v, list):
            out[f"{prefix}{k}"] = v
    return out


def _run_rows(run: Path) -> list[dict[str, Any]]:
    summary_path = run / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    config = summary.get("config")
    if config is None and (run / "checkpoint" / "state.zip").is_file():  # a run still going
        import zipfile

        with zipfile.ZipFile(run / "checkpoint" / "state.zip") as zf:
            config = json.loads(zf.read("state.json")).get("config")
    fixed = {"run": str(run), **_flat(config or {}, "config.")}
    fixed.update({f"final.{m}": v.get("final") for m, v in (summary.get("metrics") or {}).items()})
    rows = []
    for r in read_metrics(run):
        scalars = {k: v for k, v in r.items() if not isinstance(v, (dict, list))}
        scalars.update(_flat({k: r[k] for k in ("eval", "bell") if isinstance(r.get(k), dict)}, ""))
        scalars["rejected"] = len(r.get("rejected") or [])
        rows.append({**fixed, **scalars})
    return rows


def load_runs(paths: Iterable[str | Path] | str | Path) -> Any:
    """A DataFrame, one row per (run, round), of every run directory at or under ``paths``."""
    import pandas as pd

    rows = [row for run in run_dirs(paths) for row in _run_rows(run)]
    return pd.DataFrame(rows)


def compare(df: Any, by: str, metric: str, pair_on: str = "config.seed", baseline: Any = None,
            level: float = 0.95) -> Any:
    """Paired differences of ``final.<metric>`` between the values of ``by`` and ``baseline``
    (default: the first value), over runs that share ``pair_on``: one row per compared value with
    ``n`` pairs, ``mean`` difference (value - baseline) and its t-interval ``low``, ``high``."""
    import pandas as pd

    from fedqnn.stats import t_interval

    col = metric if metric.startswith("final.") else f"final.{metric}"
    for c in (by, col, pair_on):
        if c not in df.columns:
            raise KeyError(f"compare: no column {c!r} (columns: {', '.join(map(str, df.columns))})")
    finals = df.drop_duplicates("run")[[by, pair_on, col]].dropna()
    table = finals.pivot_table(index=pair_on, columns=by, values=col, aggfunc="first")
    base = table.columns[0] if baseline is None else baseline
    out = []
    for value in table.columns:
        if value == base:
            continue
        d = (table[value] - table[base]).dropna()
        if d.empty:
            continue
        mean, low, high = t_interval(d.to_numpy(), level)
        out.append({by: value, "baseline": base, "n": int(d.size), "mean": mean, "low": low, "high": high})
    return pd.DataFrame(out, columns=[by, "baseline", "n", "mean", "low", "high"])
