"""Markdown tables from the CSVs that ``fedqnn bench schedule --csv`` writes.

    python experiments/scheduling/summarize.py gap   results/bench_gap_all1_full.csv  > results/gap_summary.md
    python experiments/scheduling/summarize.py large results/bench_large30.csv       > results/large_summary.md

gap: per method (instances, optima, infeasible, mean / worst gap % to the proven optimum,
mean / max seconds); paired Wilcoxon signed-rank tests across instances (the instance is
the unit) of ``--ref`` (default hybrid) against every other method, Holm-corrected over the
family, with the mean paired difference and its bootstrap 95% CI (resampling instances) and
the matched-pairs rank-biserial correlation; infeasible counts as a 100% gap.  A second
family compares the ablation arms (hybrid-uniform / -greedy / -sa) with the QAOA-seeded
hybrid only.  Time to target from the hybrid rows' trace columns.
large: objective per solver, best bound, gap to it, and auto's verdict.
"""

from __future__ import annotations

import argparse
import csv
import sys

import numpy as np

from fedqnn.scheduling.stats import paired_compare, with_holm
from fedqnn.seeding import rng


def _f(v: str) -> float:
    return float(v) if v not in ("", "None") else float("nan")


def gap(path: str, ref: str) -> None:
    rows = [r for r in csv.DictReader(open(path)) if r["section"] == "gap"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    by = {m: {r["instance"]: r for r in rows if r["method"] == m} for m in methods}
    inst = [i for i in by[methods[0]] if all(i in by[m] for m in methods)]
    print(f"Source: `{path}`; {len(inst)} instances with every method.\n")
    print("| method | optima | infeasible | mean gap % | worst gap % | mean s | max s |")
    print("|---|---|---|---|---|---|---|")
    G = {}
    for m in methods:
        g = np.array([_f(by[m][i]["gap_pct"]) for i in inst])
        s = np.array([_f(by[m][i]["seconds"]) for i in inst])
        G[m] = np.nan_to_num(g, nan=100.0)
        feas = ~np.isnan(g)
        mg = f"{g[feas].mean():.2f}" if feas.all() else (f"{g[feas].mean():.2f} (feasible only)" if feas.any() else "-")
        wg = f"{g.max():.2f}" if feas.all() else "inf"
        print(f"| {m} | {int(np.sum(g < 1e-9))}/{len(g)} | {int((~feas).sum())} | {mg} | {wg} | "
              f"{s.mean():.2f} | {s.max():.2f} |")
    files = list(dict.fromkeys(i.split("-")[0] for i in inst))
    print("\nMean gap % per file (inf = an infeasible run):\n")
    print("| file | " + " | ".join(methods) + " |")
    print("|---" * (len(methods) + 1) + "|")
    for f in files:
        sel = [k for k, i in enumerate(inst) if i.split("-")[0] == f]
        cells = []
        for m in methods:
            g = np.array([_f(by[m][inst[k]]["gap_pct"]) for k in sel])
            cells.append("inf" if np.isnan(g).any() else f"{g.mean():.2f}")
        print(f"| {f} | " + " | ".join(cells) + " |")
    if ref not in methods:
        return
    for title, others in (
            (f"{ref} vs every other method", [m for m in methods if m != ref]),
            (f"seeding ablation: {ref} (QAOA-seeded) vs the same refinement otherwise seeded",
             [m for m in methods if m.startswith(ref + "-")])):
        if not others:
            continue
        comps = with_holm([paired_compare(G[ref], G[m], f"{ref} - {m}", rng(0, "summ", m))
                           for m in others])
        print(f"\n{title} (d = gap_{ref} - gap_other in percentage points per instance; "
              f"Wilcoxon signed-rank, Holm over {len(comps)}):\n")
        print("| comparison | n | mean d | 95% CI | rank-biserial | better/equal/worse | p | p Holm | verdict |")
        print("|---|---|---|---|---|---|---|---|---|")
        for c, m in zip(comps, others):
            d = G[ref] - G[m]
            v = {"A better": f"{ref} better", "B better": f"{ref} worse"}.get(c.verdict(), c.verdict())
            print(f"| {c.name} | {c.n} | {c.mean_diff:.3f} | [{c.ci[0]:.3f}, {c.ci[1]:.3f}] | "
                  f"{c.rank_biserial:.2f} | {int((d < -1e-9).sum())}/{int((abs(d) <= 1e-9).sum())}/"
                  f"{int((d > 1e-9).sum())} | {c.p:.2g} | {c.p_holm:.2g} | {v} |")
    tt = [m for m in methods if m.startswith(ref) and "t_gap1" in rows[0]]
    if tt:
        print("\nTime to target (seconds since start, from the refinement's improvement trace; "
              "reached = within that gap of the optimum by the end of the run):\n")
        print("Cells: reached / instances, median s since start [median / p90 / max s after the "
              "seeding phase ended, i.e. spent in the tabu refinement].\n")
        print("| method | mean s/run | seeding s (mean) | gap<=1% | gap<=0.5% | optimum |")
        print("|---|---|---|---|---|---|")
        for m in tt:
            cells = []
            ss = np.array([_f(by[m][i]["seed_seconds"]) for i in inst])
            for key in ("t_gap1", "t_gap0.5", "t_gap0"):
                v = np.array([_f(by[m][i][key]) for i in inst])
                ok = ~np.isnan(v)
                a = (v - ss)[ok]
                cells.append(f"{int(ok.sum())}/{len(v)}, {np.median(v[ok]):.2f} [{np.median(a):.2f} / "
                             f"{np.quantile(a, 0.9):.2f} / {a.max():.2f}]" if ok.any() else f"0/{len(v)}")
            s = np.array([_f(by[m][i]["seconds"]) for i in inst])
            print(f"| {m} | {s.mean():.2f} | {np.nanmean(ss):.2f} | " + " | ".join(cells) + " |")


def large(path: str) -> None:
    rows = [r for r in csv.DictReader(open(path)) if r["section"] == "large"]
    inst = list(dict.fromkeys(r["instance"] for r in rows))
    print(f"Source: `{path}`.\n")
    print("| instance | auto | HiGHS | CP-SAT | best bound | gap to bound % (auto / HiGHS / CP-SAT) | auto vs better exact |")
    print("|---|---|---|---|---|---|---|")
    tally = {"better": 0, "equal": 0, "worse": 0}
    for i in inst:
        o = {r["method"]: r for r in rows if r["instance"] == i}
        obj = {k: (_f(v["objective"]) if v["feasible"] == "True" else float("inf")) for k, v in o.items()}
        lb = np.nanmax([_f(v["bound"]) for v in o.values()])
        other = min(obj["highs"], obj["cpsat"])
        v = "better" if obj["auto"] < other - 1e-9 else ("equal" if obj["auto"] <= other + 1e-9 else "worse")
        tally[v] += 1
        gaps = " / ".join(f"{100 * (obj[k] - lb) / abs(lb):.2f}" for k in ("auto", "highs", "cpsat"))
        print(f"| {i} | {obj['auto']:.0f} | {obj['highs']:.0f} | {obj['cpsat']:.0f} | {lb:.1f} | {gaps} | {v} |")
    print(f"\nauto better {tally['better']}, equal {tally['equal']}, worse {tally['worse']} "
          f"against the better of HiGHS and CP-SAT.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("section", choices=("gap", "large"))
    ap.add_argument("csv")
    ap.add_argument("--ref", default="hybrid")
    a = ap.parse_args()
    gap(a.csv, a.ref) if a.section == "gap" else large(a.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
