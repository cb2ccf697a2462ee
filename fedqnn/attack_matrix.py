"""``fedqnn attack-matrix``: an attack x defence grid of federated runs, resumable.

    fedqnn attack-matrix [FILE.toml] [--strategies a,b] [--attacks x,y] [--fractions 0.2,0.3]
                         [--policies aware,oblivious,random] [--seeds 1,2] [--clients N]
                         [--rounds R] [--task NAME] --out DIR

Every cell is one federated run with the same physics (noise, broker, auth) and only the named
factors changed. Rules that take f get f = byzantine_count(fraction, participants); a cell whose
precondition fails for the planned participants (Krum/MultiKrum n >= 2f + 3, Bulyan n >= 4f + 3,
trimmed mean f/n < 1/2, NNM-CC n > 2f) is written as ``n/a`` and not run. Finished cells (rows already in
``DIR/results.csv``) are skipped on a rerun. The matrix is a sweep (:func:`fedqnn.sweep.run_sweep`
with :class:`MatrixTable`): all cells run one after another on **one** Simulation Engine runtime
(:func:`fedqnn.simulation.run_batch`), its start-up paid once. Outputs: ``results.csv``,
``heatmap.png`` (final metric, mean over seeds), ``curves.png`` (metric per round) and each
cell's run directory under ``DIR/cells/``. The same table from a ``fedqnn sweep`` file:
``experiments/attack_matrix/quick_sweep.toml`` (docs/workflow.md).

The file's ``[matrix]`` table may hold the same lists (strategies, attacks, fractions, policies,
seeds) and clients / rounds / task; its ``[fedqnn]`` table is a base config for every cell.
"""

from __future__ import annotations

import argparse
import csv
import math
import tomllib
from pathlib import Path
from typing import Any

from fedqnn.config import ConfigError, flatten
from fedqnn.sweep import Table

__all__ = ["add_arguments", "main", "precondition", "sweep_grid", "MatrixTable", "COLUMNS"]

COLUMNS = ["strategy", "policy", "attack", "byzantine_fraction", "seed", "metric", "final_metric",
           "best_metric", "rejected", "utilization"]

GRID_KEYS = ("byzantine_fraction", "broker.policy", "attack", "strategy")

DEFAULT_STRATEGIES = "ceas,fedavg,krum,multikrum,median,trimmed-mean,bulyan,nnm-cc"
DEFAULT_ATTACKS = "alie,ipm,min-max,sign-flip,gaussian,mimic"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", metavar="FILE.toml",
                   help="[matrix] table: the lists below and clients/rounds/task; [fedqnn] table: base config of every cell")
    p.add_argument("--strategies", metavar="A,B", help=f"defences, comma-separated (default {DEFAULT_STRATEGIES})")
    p.add_argument("--attacks", metavar="X,Y", help=f"attacks, comma-separated; 'none' = honest (default {DEFAULT_ATTACKS})")
    p.add_argument("--fractions", metavar="F,G", help="byzantine_fraction values (default 0.2)")
    p.add_argument("--policies", metavar="P,Q", help="broker.policy values: aware, oblivious, random, oracle, off "
                   "(default aware)")
    p.add_argument("--seeds", metavar="S,T", help="seeds, one run per seed and cell (default 1)")
    p.add_argument("--clients", type=int, metavar="N", help="QPUs per run (default: the config's, 10)")
    p.add_argument("--rounds", type=int, metavar="R", help="rounds per run (default: the config's, 5)")
    p.add_argument("--task", metavar="NAME", help="antiderivative, heat or digits (default digits)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="writes DIR/results.csv, heatmap.png, curves.png and DIR/cells/; finished cells are kept on a rerun")


def precondition(strategy: str, n: int, f: int) -> str | None:
    """The failed precondition of a robust rule for n participants and f Byzantine, or None
    (:func:`strategies.preconditions.failed`, the same test the strategies run each round)."""
    from strategies.preconditions import failed

    return failed(strategy, n, f)


def _listify(v: Any, cast: Any = str) -> list[Any]:
    if v is None:
        return []
    if isinstance(v, str):
        return [cast(x.strip()) for x in v.split(",") if x.strip()]
    return [cast(x) for x in v]


def _grid(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    matrix: dict[str, Any] = {}
    base: dict[str, Any] = {}
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise ConfigError(f"attack-matrix: no such file {args.file}")
        data = tomllib.loads(path.read_text())
        matrix = data.get("matrix", {})
        base = flatten(data.get("fedqnn", {}))
    grid = {
        "strategies": _listify(args.strategies or matrix.get("strategies") or DEFAULT_STRATEGIES),
        "attacks": _listify(args.attacks or matrix.get("attacks") or DEFAULT_ATTACKS),
        "fractions": _listify(args.fractions or matrix.get("fractions") or "0.2", float),
        "policies": _listify(args.policies or matrix.get("policies") or "aware"),
        "seeds": _listify(args.seeds or matrix.get("seeds") or "1", int),
    }
    for key in ("clients", "rounds", "task"):
        val = getattr(args, key) or matrix.get(key)
        if val is not None:
            base[key] = val
    base.setdefault("task", "digits")
    return grid, base


class MatrixTable(Table):
    """The attack matrix's ``results.csv``: :data:`COLUMNS`, cells named
    ``strategy__policy__attack__fraction__seed``, ``n/a`` where a precondition fails or every
    round was skipped."""

    def __init__(self) -> None:
        super().__init__(list(GRID_KEYS))

    def columns(self) -> list[str]:
        return list(COLUMNS)

    def name(self, values: dict[str, Any], seed: int) -> str:
        return (f"{values['strategy']}__{values['broker.policy']}__{values['attack']}__"
                f"{float(values['byzantine_fraction'])}__{int(seed)}")

    def key(self, row: dict[str, str]) -> str:
        return self.name({"strategy": row["strategy"], "broker.policy": row["policy"], "attack": row["attack"],
                          "byzantine_fraction": row["byzantine_fraction"]}, int(row["seed"]))

    def _ids(self, cell: dict[str, Any]) -> dict[str, Any]:
        v = cell["values"]
        return {"strategy": v["strategy"], "policy": v["broker.policy"], "attack": v["attack"],
                "byzantine_fraction": v["byzantine_fraction"], "seed": cell["config"]["seed"]}

    def na_row(self, cell: dict[str, Any], why: str) -> dict[str, Any]:
        from fedqnn.tasks import get_task

        return {**self._ids(cell), "metric": get_task(cell["config"]["task"]).metric, "final_metric": "n/a",
                "best_metric": "n/a", "rejected": "n/a", "utilization": "n/a"}

    def row(self, cell: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
        from fedqnn.results import read_metrics
        from fedqnn.tasks import get_task

        cfg = cell["config"]
        metric = get_task(cfg["task"]).metric
        m = summary["metrics"].get(metric, {})
        rows = read_metrics(cfg["out"])
        rejected = sum(len(r.get("rejected") or []) for r in rows)
        util = (summary["totals"].get("bell") or {}).get("utilization")
        all_skipped = all(r.get("skipped") for r in rows)
        return {**self._ids(cell), "metric": metric,
                "final_metric": "n/a" if all_skipped else m.get("final"),
                "best_metric": "n/a" if all_skipped else m.get("best"),
                "rejected": rejected, "utilization": "n/a" if util is None else util}


def sweep_grid(grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The matrix's lists as a sweep grid (config key -> values), crossed fractions > policies >
    attacks > strategies (seeds innermost): the order of ``results.csv``."""
    return {"byzantine_fraction": grid["fractions"], "broker.policy": grid["policies"],
            "attack": grid["attacks"], "strategy": grid["strategies"]}


def main(args: argparse.Namespace) -> int:
    from fedqnn.sweep import run_sweep

    grid, base = _grid(args)
    out = Path(args.out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    # every cell is validated before anything runs; finished cells (rows in results.csv) are kept
    run_sweep({**base, "progress": False}, sweep_grid(grid), grid["seeds"], out, resume=True,
              table=MatrixTable(), label="attack-matrix")
    plot(out)
    return 0


def plot(out: Path) -> None:
    """heatmap.png (strategy x attack, mean final metric over seeds, one panel per fraction and
    policy) and curves.png (metric per round per strategy, one panel per attack)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from fedqnn.results import read_metrics

    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    metric = rows[0]["metric"]
    panels = sorted({(r["byzantine_fraction"], r["policy"]) for r in rows})
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(1.2 * len(attacks) + 3, 0.5 * len(strategies) + 2) if len(panels) == 1
                             else (5 * len(panels), 0.5 * len(strategies) + 2), squeeze=False)
    for ax, (fr, pol) in zip(axes[0], panels):
        grid = np.full((len(strategies), len(attacks)), np.nan)
        for i, s in enumerate(strategies):
            for j, a in enumerate(attacks):
                vals = [float(r["final_metric"]) for r in rows if r["strategy"] == s and r["attack"] == a
                        and r["byzantine_fraction"] == fr and r["policy"] == pol and r["final_metric"] not in ("n/a", "")]
                if vals:
                    grid[i, j] = np.mean(vals)
        im = ax.imshow(grid, cmap="viridis" if metric == "accuracy" else "viridis_r", aspect="auto")
        ax.set_xticks(range(len(attacks)), attacks, rotation=45, ha="right")
        ax.set_yticks(range(len(strategies)), strategies)
        for i in range(len(strategies)):
            for j in range(len(attacks)):
                ax.text(j, i, "n/a" if np.isnan(grid[i, j]) else f"{grid[i, j]:.2f}", ha="center", va="center",
                        color="w", fontsize=8)
        ax.set_title(f"final {metric}: fraction {fr}, broker {pol}")
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(out / "heatmap.png", dpi=110)
    plt.close(fig)
    cols = min(3, len(attacks))
    nrows = math.ceil(len(attacks) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.2 * nrows), squeeze=False)
    for k, a in enumerate(attacks):
        ax = axes[k // cols][k % cols]
        for s in strategies:
            cell_dirs = sorted((out / "cells").glob(f"{s}__*__{a}__*"))
            if not cell_dirs:
                continue
            series = [read_metrics(d) for d in cell_dirs]
            series = [[(r["round"], (r.get("eval") or {}).get(metric)) for r in ser] for ser in series if ser]
            if not series:
                continue
            ax.plot([x for x, _ in series[0]], [y for _, y in series[0]], marker=".", label=s)
        ax.set_title(a)
        ax.set_xlabel("round")
        ax.set_ylabel(metric)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
