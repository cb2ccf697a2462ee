"""The CEAS headline experiment (issue 7; CEAS paper Figure 4), with paired seeds and 95 % CIs.

    python experiments/headline/ceas_headline.py [--clients 50] [--rounds 10] [--seeds 1,2,3,4,5]
        [--attacks alie,min-max] [--policies aware,oblivious,random] [--task digits]
        [--fraction-train 0.5] [--out experiments/headline/results] [--set key=value ...]

What is compared. The CEAS paper claims 10-15 percentage points higher accuracy than
entanglement-oblivious baselines under coordinated Byzantine attacks on a 50-node network. Our
baselines are defined by ``broker.policy`` with everything else fixed (strategy ``ceas``, the
same noise, the same broker physics, signed updates, the same Byzantine nodes and attack):

* ``lookahead``  CEAS's default (``broker.policy``'s default): decoherence-aware scheduling with a
  rollout lookahead (docs/broker.md); ``aware`` is its one-round base-stock predecessor;
* ``oblivious``  the same scheduler ignoring decay (entanglement-oblivious baseline);
* ``random``     participants drawn uniformly among *all* nodes, link state ignored.

Each (policy, attack, seed) is one federated run on Flower's Simulation Engine; all runs share
one runtime: the grid is a sweep (:func:`fedqnn.sweep.run_sweep`, docs/workflow.md). A no-attack CEAS run per seed is the
reference for "within 3 points of its no-attack run". ``--reference`` names the policy the others
are compared with (default: ``broker.policy``'s default). Seeds are paired: the same seed gives the
same data, calibrations, Byzantine nodes and initial model in every policy, so differences are
taken per seed and a 95 % t-interval (n - 1 degrees of freedom) is put on their mean.

Outputs in ``--out``: ``runs.csv`` (one row per run: final and best metric, rejected updates,
bell utilization/served), ``curves.csv`` (metric per round), ``table.md`` (paired differences
with CIs, beside the paper's claim), ``figure4.png`` (metric over rounds, mean and 95 % band,
CEAS vs random selection under the first attack) and ``differences.png`` (the paired differences
per attack with their intervals, beside the paper's claim and the -3-point goal). Runs already
in ``runs.csv`` are skipped (resumable).
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from fedqnn.config import parse_set
from fedqnn.results import read_metrics
from fedqnn.stats import t_interval
from fedqnn.sweep import Table, run_sweep
from fedqnn.tasks import get_task

RUN_COLUMNS = ["policy", "attack", "seed", "metric", "final", "best", "rejected", "utilization", "served",
               "wall_s"]


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--attacks", default="alie,min-max")
    p.add_argument("--policies", default="lookahead,oblivious,random")
    p.add_argument("--reference", default=None,
                   help="the CEAS policy the others are compared with (default: broker.policy's default)")
    p.add_argument("--task", default="digits")
    p.add_argument("--fraction-train", type=float, default=0.5)
    p.add_argument("--out", default="experiments/headline/results")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--analyse-only", action="store_true", help="only rebuild table and plots")
    a = p.parse_args(argv)
    if a.reference is None:
        from fedqnn.config import build_config

        a.reference = build_config({}, {})["broker"]["policy"]
    return a


class HeadlineTable(Table):
    """``runs.csv`` (:data:`RUN_COLUMNS`), run directories ``runs/policy__attack__seed``."""

    results = "runs.csv"
    cells = "runs"

    def __init__(self) -> None:
        super().__init__(["attack", "broker.policy"])

    def columns(self) -> list[str]:
        return list(RUN_COLUMNS)

    def name(self, values: dict[str, Any], seed: int) -> str:
        return f"{values['broker.policy']}__{values['attack']}__{int(seed)}"

    def key(self, row: dict[str, str]) -> str:
        return self.name({"broker.policy": row["policy"], "attack": row["attack"]}, int(row["seed"]))

    def row(self, cell: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
        cfg = cell["config"]
        metric = get_task(cfg["task"]).metric
        rows = read_metrics(cfg["out"])
        bell = summary["totals"].get("bell") or {}
        m = summary["metrics"].get(metric, {})
        return {"policy": cfg["broker"]["policy"], "attack": cfg["attack"], "seed": cfg["seed"], "metric": metric,
                "final": m.get("final"), "best": m.get("best"),
                "rejected": sum(len(r.get("rejected") or []) for r in rows),
                "utilization": bell.get("utilization"), "served": bell.get("served"),
                "wall_s": summary.get("process_wall_s")}


def _grid(a: argparse.Namespace) -> tuple[list[dict[str, list[str]]], list[int]]:
    """A no-attack CEAS reference (the reference policy) per seed, then every attack x policy."""
    seeds = [int(s) for s in a.seeds.split(",") if s]
    attacks = [x for x in a.attacks.split(",") if x]
    policies = [x for x in a.policies.split(",") if x]
    return [{"attack": ["none"], "broker.policy": [a.reference]}, {"attack": attacks, "broker.policy": policies}], seeds


def _append_curve(out: Path, cell: dict[str, Any]) -> None:
    cfg = cell["config"]
    metric = get_task(cfg["task"]).metric
    path = out / "curves.csv"
    new = not path.exists()
    with path.open("a", newline="") as fc:
        wc = csv.writer(fc)
        if new:
            wc.writerow(["policy", "attack", "seed", "round", "metric", "value"])
        for r in read_metrics(cfg["out"]):
            if r.get("eval"):
                wc.writerow([cfg["broker"]["policy"], cfg["attack"], cfg["seed"], r["round"], metric, r["eval"][metric]])


def run(a: argparse.Namespace) -> None:
    """Every (policy, attack, seed) not yet in ``runs.csv``, as one sweep (:func:`fedqnn.sweep.run_sweep`)."""
    out = Path(a.out)
    base = {"task": a.task, "clients": a.clients, "rounds": a.rounds, "fraction_train": a.fraction_train,
            "strategy": "ceas", "byzantine_fraction": 0.2, "progress": False,
            **parse_set(a.set)}  # a bad override fails before anything runs
    grid, seeds = _grid(a)
    run_sweep(base, grid, seeds, out, resume=True, table=HeadlineTable(),
              on_done=lambda cell, _summary: _append_curve(out, cell), label="headline")


# --------------------------------------------------------------------------- analysis
paired_ci = t_interval  # of the per-seed differences


def _load(out: Path) -> tuple[dict[tuple[str, str, int], dict[str, Any]], list[dict[str, str]]]:
    with (out / "runs.csv").open() as fh:
        runs = {(r["policy"], r["attack"], int(r["seed"])): r for r in csv.DictReader(fh)}
    with (out / "curves.csv").open() as fh:
        curves = list(csv.DictReader(fh))
    return runs, curves


def analyse(a: argparse.Namespace) -> str:
    out = Path(a.out)
    runs, curves = _load(out)
    seeds = sorted({s for _, _, s in runs})
    attacks = [x for x in a.attacks.split(",") if x]
    policies = [x for x in a.policies.split(",") if x]
    metric = next(iter(runs.values()))["metric"]
    scale = 100.0 if metric == "accuracy" else 1.0
    unit = "points" if metric == "accuracy" else metric
    val = lambda p, atk, s: float(runs[(p, atk, s)]["final"]) * scale  # noqa: E731
    ref = a.reference
    lines = [
        f"Final {metric} after {a.rounds} rounds, {a.clients} QPUs, strategy ceas, 20 % Byzantine under an attack "
        f"(none without); seeds are paired, each row over the seeds both sides have; differences in {unit} with "
        "95 % t-intervals.", "",
        f"| attack | policy | seeds | CEAS ({ref}) | this policy | CEAS minus this policy | paper's claim |",
        "|---|---|---|---|---|---|---|",
    ]
    for atk in attacks:
        for p in policies:
            have = [s for s in seeds if (p, atk, s) in runs and (ref, atk, s) in runs]
            if not have or p == ref:
                continue
            m, lo, hi = paired_ci([val(ref, atk, s) - val(p, atk, s) for s in have])
            lines.append(f"| {atk} | {p} | {len(have)} | {np.mean([val(ref, atk, s) for s in have]):.2f} | "
                         f"{np.mean([val(p, atk, s) for s in have]):.2f} | {m:+.2f} [{lo:+.2f}, {hi:+.2f}] | "
                         "+10 to +15 |")
    lines += ["", "CEAS under attack minus CEAS without attack (goal: the interval within -3 points):", "",
              "| attack | seeds | CEAS under attack | CEAS without | difference [95 % CI] | within -3? |",
              "|---|---|---|---|---|---|"]
    for atk in attacks:
        have = [s for s in seeds if (ref, atk, s) in runs and (ref, "none", s) in runs]
        if atk != "none" and have:
            m, lo, hi = paired_ci([val(ref, atk, s) - val(ref, "none", s) for s in have])
            verdict = "open" if math.isnan(lo) else ("yes" if lo >= -3 else ("no" if hi < -3 else "open"))
            lines.append(f"| {atk} | {len(have)} | {np.mean([val(ref, atk, s) for s in have]):.2f} | "
                         f"{np.mean([val(ref, 'none', s) for s in have]):.2f} | {m:+.2f} [{lo:+.2f}, {hi:+.2f}] | "
                         f"{verdict} |")
    lines += ["", f"Per policy, over the same runs (mean over seeds and attacks): final {metric}, Bell-pair "
              "utilization and served demand (fixed demand: K nodes selected every round).", "",
              f"| policy | runs | final {metric} | utilization | served |", "|---|---|---|---|---|"]
    for p in dict.fromkeys([ref, *policies]):
        mine = [r for (pp, atk, _), r in runs.items() if pp == p and atk in attacks]
        if not mine:
            continue
        col = lambda k, mine=mine: np.mean([float(r[k]) for r in mine if r[k] not in ("", "None")])  # noqa: E731
        lines.append(f"| {p} | {len(mine)} | {col('final') * scale:.2f} | {col('utilization'):.3f} | "
                     f"{col('served'):.3f} |")
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    _plots(out, runs, curves, attacks, policies, metric, scale, ref)
    return text


def _plots(out: Path, runs: dict, curves: list[dict[str, str]], attacks: list[str], policies: list[str],
           metric: str, scale: float, ref: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by: dict[tuple[str, str], dict[int, dict[int, float]]] = {}
    for r in curves:
        by.setdefault((r["policy"], r["attack"]), {}).setdefault(int(r["seed"]), {})[int(r["round"])] = (
            float(r["value"]) * scale)
    if attacks:
        atk = attacks[0]
        fig, ax = plt.subplots(figsize=(6, 4))
        for p, style in ((ref, "-"), ("random", "--"), ("oblivious", ":")):
            if (p, atk) not in by:
                continue
            seeds = by[(p, atk)]
            rounds = sorted(set.intersection(*(set(v) for v in seeds.values())))
            m = np.array([[seeds[s][t] for t in rounds] for s in seeds])
            mu = m.mean(0)
            half = (stats.t.ppf(0.975, len(m) - 1) * m.std(0, ddof=1) / math.sqrt(len(m))) if len(m) > 1 else 0 * mu
            label = {ref: f"CEAS ({ref})", "random": "random selection", "oblivious": "oblivious"}[p]
            ax.plot(rounds, mu, style, label=label)
            ax.fill_between(rounds, mu - half, mu + half, alpha=0.2)
        ax.set_xlabel("round")
        ax.set_ylabel(f"global {metric}" + (" (%)" if scale == 100 else ""))
        ax.set_title(f"{atk} attack, 20 % Byzantine: mean and 95 % CI over seeds")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "figure4.png", dpi=120)
        plt.close(fig)
    # paired differences per attack (what the table reports), as a forest plot
    seeds_of = lambda p, atk: {s for (pp, aa, s) in runs if pp == p and aa == atk}  # noqa: E731
    val = lambda p, atk, s: float(runs[(p, atk, s)]["final"]) * scale  # noqa: E731
    series = [("CEAS minus oblivious", "oblivious", None, "tab:orange"),
              ("CEAS minus random", "random", None, "tab:green"),
              ("CEAS under attack minus CEAS without", None, "none", "tab:blue")]
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(attacks) + 2.2))
    for k, (label, other, ref_attack, color) in enumerate(series):
        ys, ms, los, his = [], [], [], []
        for i, atk in enumerate(attacks):
            if other is not None:
                common = sorted(seeds_of(ref, atk) & seeds_of(other, atk))
                diffs = [val(ref, atk, s) - val(other, atk, s) for s in common]
            else:
                common = sorted(seeds_of(ref, atk) & seeds_of(ref, ref_attack))
                diffs = [val(ref, atk, s) - val(ref, ref_attack, s) for s in common]
            if len(diffs) < 2:
                continue
            m, lo, hi = t_interval(diffs)
            ys, ms, los, his = ys + [i + (k - 1) * 0.25], ms + [m], los + [lo], his + [hi]
        if ys:
            ax.errorbar(ms, ys, xerr=[np.subtract(ms, los), np.subtract(his, ms)], fmt="o", color=color,
                        capsize=3, label=label)
    ax.axvspan(10, 15, color="grey", alpha=0.2, label="CEAS paper's claim (+10 to +15)")
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(-3, color="tab:red", ls="--", lw=0.8, label="goal: no-attack gap within -3")
    ax.set_yticks(range(len(attacks)), attacks)
    ax.invert_yaxis()
    ax.set_xlabel(f"difference in final {metric}" + (" (points)" if scale == 100 else ""))
    ax.set_title("paired differences per attack, mean and 95 % t-interval over seeds")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08 - 0.5 / len(attacks)), ncol=2)
    fig.tight_layout()
    fig.savefig(out / "differences.png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    if not a.analyse_only:
        run(a)
    print(analyse(a))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
