"""The attack zoo in federated runs on non-IID data (issue 16's experiment, item 5).

    python experiments/ceas/federated_zoo.py [--seeds 11,12,13] [--clients 15] [--rounds 5]
        [--attacks none,sign-flip,...] [--out experiments/ceas/federated_zoo] [--analyse-only]

Full federated runs (Flower's Simulation Engine, the CEAS defaults: heterogeneous per-shot QPU
noise, broker, signed updates), digits, 20 % Byzantine nodes (coordinated), paired seeds: the same
seed gives the same data split, calibrations, Byzantine nodes and initial model in every cell.
The grid is a union of crosses (:mod:`fedqnn.sweep`, one runtime):

* Dirichlet alpha = 0.5 and IID (alpha = infinity): CEAS against FedAvg and the three strongest
  Flower built-ins of the IID zoo (MultiKrum, FedMedian, FedTrimmedAvg), every attack;
* alpha = 0.1 and alpha = 1: CEAS and FedAvg, every attack (CEAS's accuracy, false rejections
  and detection across heterogeneity; the built-ins only where the issue's goals name them).

Per run: final accuracy, and for CEAS (whose rows carry ``weights``, the kept nodes) the honest
false-rejection rate (honest node-rounds rejected by the strategy / honest node-rounds that
replied) and the Byzantine detection rate (the same for the attackers' node-rounds). Analysis
(``table.md``), per alpha and attack, paired by seed with 95 % t-intervals:

* CEAS under the attack minus CEAS without: goal "within 3 points", one-sided t-test of
  H0: difference <= -3, Holm-adjusted across the attacks of that alpha;
* CEAS minus the best built-in of the column (the highest mean, chosen on the same data, which
  favours the built-in): two-sided paired t-test, Holm-adjusted across attacks; "ahead" /
  "behind" only when the adjusted p < 0.05, else "level".

Seeds 11-13 were not used while designing the filter (seeds 1 and 2 were, in
``experiments/ceas/replies.py``). Writes ``runs.csv``, ``runs/`` (gitignored) and ``table.md``.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from fedqnn.results import read_metrics
from fedqnn.sweep import Table, run_sweep

ATTACKS = ("none,sign-flip,label-flip,alie,ipm,min-max,scaled,boundary,fit-capture,optimising")
BUILTINS = ("fedavg", "multikrum", "median", "trimmed-mean")
COLUMNS = ["alpha", "attack", "strategy", "seed", "final", "honest_rejected", "honest_rounds",
           "byz_rejected", "byz_rounds", "rounds_skipped", "wall_s"]


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="11,12,13")
    p.add_argument("--clients", type=int, default=15)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--attacks", default=ATTACKS)
    p.add_argument("--out", default="experiments/ceas/federated_zoo")
    p.add_argument("--analyse-only", action="store_true", help="only rebuild table.md from runs.csv")
    return p.parse_args(argv)


def _alpha(values: dict[str, Any]) -> str:
    return "iid" if values["data.split"] == "iid" else str(values["data.alpha"])


def rates(rows: list[dict[str, Any]], byzantine: set[str]) -> dict[str, int | str]:
    """Honest and Byzantine node-rounds that replied and that the strategy rejected, from the
    rows' ``weights`` (kept) and ``rejected`` (``outlier:*``); ``n/a`` for a strategy whose rows
    do not name the kept nodes."""
    if not any("weights" in r for r in rows):
        return {k: "n/a" for k in ("honest_rejected", "honest_rounds", "byz_rejected", "byz_rounds")}
    hr = hn = br = bn = 0
    for r in rows:
        if r.get("skipped"):
            continue
        rejected = {x["node"] for x in r.get("rejected") or [] if x["reason"].startswith("outlier")}
        for node in set(r.get("weights") or {}) | rejected:
            if node in byzantine:
                bn, br = bn + 1, br + (node in rejected)
            else:
                hn, hr = hn + 1, hr + (node in rejected)
    return {"honest_rejected": hr, "honest_rounds": hn, "byz_rejected": br, "byz_rounds": bn}


class ZooTable(Table):
    """``runs.csv`` (:data:`COLUMNS`), run directories ``runs/alpha__attack__strategy__seed``."""

    results = "runs.csv"
    cells = "runs"

    def __init__(self) -> None:
        super().__init__(["data.split", "data.alpha", "attack", "strategy"])

    def columns(self) -> list[str]:
        return list(COLUMNS)

    def name(self, values: dict[str, Any], seed: int) -> str:
        return f"{_alpha(values)}__{values['attack']}__{values['strategy']}__{int(seed)}"

    def key(self, row: dict[str, str]) -> str:
        return f"{row['alpha']}__{row['attack']}__{row['strategy']}__{int(row['seed'])}"

    def row(self, cell: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
        cfg = cell["config"]
        rows = read_metrics(cfg["out"])
        acc = summary["metrics"].get("accuracy", {}).get("final", "n/a")
        return {"alpha": _alpha(cell["values"]), "attack": cfg["attack"], "strategy": cfg["strategy"],
                "seed": cfg["seed"], "final": acc, **rates(rows, set(summary.get("byzantine_nodes") or [])),
                "rounds_skipped": summary["rounds_skipped"], "wall_s": summary.get("process_wall_s")}

    def na_row(self, cell: dict[str, Any], why: str) -> dict[str, Any]:
        v = cell["values"]
        return {"alpha": _alpha(v), "attack": v["attack"], "strategy": v["strategy"], "seed": cell["config"]["seed"],
                **{k: "n/a" for k in COLUMNS[4:]}}


def grid(attacks: list[str]) -> list[dict[str, list[Any]]]:
    full = ["ceas", *BUILTINS]
    return [
        {"data.split": ["dirichlet"], "data.alpha": [0.5], "attack": attacks, "strategy": full},
        {"data.split": ["iid"], "data.alpha": [0.5], "attack": attacks, "strategy": full},
        {"data.split": ["dirichlet"], "data.alpha": [0.1, 1.0], "attack": attacks, "strategy": ["ceas", "fedavg"]},
    ]


def run(a: argparse.Namespace) -> None:
    base = {"task": "digits", "clients": a.clients, "rounds": a.rounds, "byzantine_fraction": 0.2,
            "progress": False}
    seeds = [int(s) for s in a.seeds.split(",") if s]
    attacks = [x for x in a.attacks.split(",") if x]
    run_sweep(base, grid(attacks), seeds, a.out, resume=True, table=ZooTable(), label="federated-zoo")


# --------------------------------------------------------------------------- analysis
def _ttest(d: list[float], shift: float = 0.0, alternative: str = "two-sided") -> float:
    from scipy.stats import ttest_1samp

    if len(d) < 2 or np.std(d) == 0:
        if alternative == "greater":
            return 0.0 if min(d, default=-math.inf) > shift else 1.0
        return 1.0
    return float(ttest_1samp(np.asarray(d) - shift, 0.0, alternative=alternative).pvalue)


def analyse(out: Path) -> str:
    from fedqnn.scheduling.stats import holm
    from fedqnn.stats import t_interval

    with (out / "runs.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh)]
    acc: dict[tuple[str, str, str], dict[int, float]] = {}
    for r in rows:
        if r["final"] not in ("n/a", "", "None"):
            acc.setdefault((r["alpha"], r["attack"], r["strategy"]), {})[int(r["seed"])] = 100 * float(r["final"])

    def diff(a: dict[int, float], b: dict[int, float]) -> list[float]:
        return [a[s] - b[s] for s in sorted(set(a) & set(b))]

    def rate(sel: list[dict[str, str]], num: str, den: str) -> str:
        n = sum(int(r[den]) for r in sel if r[den] != "n/a")
        return f"{sum(int(r[num]) for r in sel if r[num] != 'n/a') / n:.1%}" if n else "n/a"

    seeds = sorted({int(r["seed"]) for r in rows})
    lines = [f"Final accuracy (%), digits, 20 % Byzantine, seeds {', '.join(map(str, seeds))} (paired), 95 % "
             "t-intervals; p-values Holm-adjusted across the attacks of each alpha. `vs none`: CEAS under the "
             "attack minus CEAS without (goal: within -3; p of H0 diff <= -3). `vs best`: CEAS minus the best "
             "built-in of the column (chosen on the same data). FRR: CEAS's honest false-rejection rate; det: "
             "its Byzantine detection rate (node-rounds).", ""]
    for alpha in dict.fromkeys(r["alpha"] for r in rows):
        strategies = [s for s in ("ceas", *BUILTINS) if any(k[0] == alpha and k[2] == s for k in acc)]
        attacks = list(dict.fromkeys(r["attack"] for r in rows if r["alpha"] == alpha))
        lines += [f"### alpha = {alpha}", "",
                  "| attack | " + " | ".join(strategies) + " | CEAS vs none | Holm p | within -3? | best built-in | "
                  "CEAS vs best | Holm p | verdict | FRR | det |", "|" + "---|" * (len(strategies) + 10)]
        cells, p_none, p_best = [], [], []
        for atk in attacks:
            ce = acc.get((alpha, atk, "ceas"), {})
            d_none = diff(ce, acc.get((alpha, "none", "ceas"), {})) if atk != "none" else []
            others = {s: acc[(alpha, atk, s)] for s in BUILTINS if (alpha, atk, s) in acc
                      and len(acc[(alpha, atk, s)]) == len(ce)}
            best = max(others, key=lambda s: np.mean(list(others[s].values()))) if others else None
            d_best = diff(ce, others[best]) if best else []
            p_none.append(_ttest(d_none, -3.0, "greater") if d_none else math.nan)
            p_best.append(_ttest(d_best) if d_best else math.nan)
            sel = [r for r in rows if r["alpha"] == alpha and r["attack"] == atk and r["strategy"] == "ceas"]
            cells.append((atk, d_none, best, d_best, rate(sel, "honest_rejected", "honest_rounds"),
                          rate(sel, "byz_rejected", "byz_rounds")))
        adj_none = _holm_nan(p_none, holm)
        adj_best = _holm_nan(p_best, holm)
        for (atk, d_none, best, d_best, frr, det), pn, pb in zip(cells, adj_none, adj_best):
            means = " | ".join(f"{np.mean(list(acc[(alpha, atk, s)].values())):.1f}" if (alpha, atk, s) in acc
                               else "n/a" for s in strategies)
            none_txt = _ci(d_none, t_interval) if d_none else ""
            within = "" if not d_none else ("yes" if pn < 0.05 else ("no" if np.mean(d_none) < -3 else "open"))
            verdict = "" if not d_best else ("level" if pb >= 0.05 else ("ahead" if np.mean(d_best) > 0 else "behind"))
            lines.append(f"| {atk} | {means} | {none_txt} | {_p(pn)} | {within} | {best or ''} | "
                         f"{_ci(d_best, t_interval) if d_best else ''} | {_p(pb)} | {verdict} | {frr} | {det} |")
        lines.append("")
    text = "\n".join(lines)
    (out / "table.md").write_text(text)
    return text


def _holm_nan(p: list[float], holm: Any) -> list[float]:
    idx = [i for i, x in enumerate(p) if not math.isnan(x)]
    out = [math.nan] * len(p)
    for i, q in zip(idx, holm([p[i] for i in idx]) if idx else []):
        out[i] = float(q)
    return out


def _ci(d: list[float], t_interval: Any) -> str:
    m, lo, hi = t_interval(d)
    return f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def _p(p: float) -> str:
    return "" if math.isnan(p) else f"{p:.3f}"


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    if not a.analyse_only:
        run(a)
    print(analyse(Path(a.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
