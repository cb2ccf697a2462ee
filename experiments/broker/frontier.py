"""Utilization-served frontier of the broker policies, broker only (issue 17 items 2 and 5).

    PYTHONPATH=. python experiments/broker/frontier.py [--seeds 100-119] [--rounds 30] [--nodes 50]

50 nodes, default regime except R = r t_c in {3, 10}; K = 25 participants a round drawn
among the eligible nodes (and, as a second view, among all nodes whatever the links' state:
``--select any``, what federated runs do with a fixed demand). Seeds 100-119 are held out:
the default policy's constants were set on seeds 0-9. Link outages are common random numbers
(:meth:`Broker.common_outages`), so policies are compared on the same outages, seed by seed.

The *best mixture* of ``jit`` and ``full`` at utilization u is the chord between their
(utilization, served) points (time-sharing between the two; a utilization below full's gets
full's served, above jit's none): a policy's *margin* is its served minus the chord at its
utilization, per seed (paired), mean and 95 % t-interval (above jit's utilization, where no
mixture reaches, the comparison is with jit's served). To show how much of the margin the
default's eligibility test earns, the script also runs jit and full with the default's test
(``jit+la-test``, ``full+la-test``; the chord of the better of each pair is the second
baseline) and the default's generation with aware's test (``la-gen+aware-test``).
The exact frontier of the small solved instances (the optimal policy for a range of waste
costs w, beside the policies) is the second figure (``--mdp``).

Writes ``experiments/broker/frontier/{runs.json, table.md}``, ``docs/figures/broker_frontier.png``
and with ``--mdp`` ``docs/figures/broker_mdp_frontier.png``; finished runs are kept in
``runs.json`` and skipped on a rerun.

Not a grid of fedqnn runs (the broker alone): it does not use :mod:`fedqnn.sweep`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from fedqnn.network.cli import parse_seeds, run_sim
from fedqnn.network.experiment import mixture_served as chord
from fedqnn.network.policies import FullPolicy, JitPolicy, LookaheadPolicy
from fedqnn.registry import POLICIES

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "experiments" / "broker" / "frontier"
FIG = ROOT / "docs" / "figures"
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
       10: 2.228, 14: 2.145, 19: 2.093, 29: 2.045}


class JitLaTest(JitPolicy):
    """jit with the default (lookahead) policy's eligibility test."""

    name = "jit+la-test"
    ELIGIBILITY_Z = LookaheadPolicy.ELIGIBILITY_Z
    servable = LookaheadPolicy.servable


class FullLaTest(FullPolicy):
    """full with the default (lookahead) policy's eligibility test."""

    name = "full+la-test"
    ELIGIBILITY_Z = LookaheadPolicy.ELIGIBILITY_Z
    servable = LookaheadPolicy.servable


class LaGenAwareTest(LookaheadPolicy):
    """lookahead's generation with aware's eligibility test."""

    name = "la-gen+aware-test"

    def servable(self, b: Any) -> None:  # type: ignore[override]
        return None


VARIANTS = (JitLaTest, FullLaTest, LaGenAwareTest)
ELIGIBLE_POLICIES = ("default", "aware", "jit", "full", "oracle", "oblivious", *(v.name for v in VARIANTS))
ANY_POLICIES = ("default", "aware", "jit", "full")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (select, policy, R, seed) record, from ``runs.json`` or run now."""
    for v in VARIANTS:
        POLICIES.register(v.name, v)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "runs.json"
    recs: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    done = {(r["select"], r["policy"], r["R"], r["seed"], r["nodes"], r["rounds"]) for r in recs}
    for select, pols in (("eligible", ELIGIBLE_POLICIES), ("any", ANY_POLICIES)):
        for pol in pols:
            for R in args.R:
                for seed in args.seeds:
                    if (select, pol, R, seed, args.nodes, args.rounds) in done:
                        continue
                    (rec,) = run_sim(args.nodes, args.rounds, [seed], [pol], [R], {}, select=select)
                    recs.append({**rec, "select": select, "nodes": args.nodes, "rounds": args.rounds})
                    path.write_text(json.dumps(recs, indent=0))
                    print(f"{select:8s} {pol:18s} R={R:<4} seed={seed} util={rec['utilization']:.3f} "
                          f"served={rec['served']:.3f}", flush=True)
    keep = set(args.seeds)
    return [r for r in recs if r["seed"] in keep and r["nodes"] == args.nodes and r["rounds"] == args.rounds
            and r["R"] in args.R]


def _ci(x: list[float]) -> tuple[float, float]:
    a = np.asarray(x, dtype=float)
    if a.size < 2:
        return float(a.mean()), math.nan
    t = T95.get(a.size - 1, 1.96 if a.size > 30 else 2.0)
    return float(a.mean()), t * float(a.std(ddof=1)) / math.sqrt(a.size)


def summarise(recs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (select, R, policy): means and CIs; per (R, policy): margins over the two chords."""
    by: dict[tuple, dict[int, dict[str, Any]]] = {}
    for r in recs:
        by.setdefault((r["select"], r["R"], r["policy"]), {})[r["seed"]] = r
    rows = []
    for (select, R, pol), runs in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        row = {"select": select, "R": R, "policy": pol, "n": len(runs)}
        for m in ("utilization", "served", "shortfall", "mean_consumed_fidelity"):
            row[m], row[m + "_ci"] = _ci([x[m] for x in runs.values()])
        rows.append(row)
    margins = []
    for R in sorted({r["R"] for r in recs}):
        runs = {p: by.get(("eligible", R, p), {}) for p in ELIGIBLE_POLICIES}
        mean = {p: (np.mean([x["utilization"] for x in v.values()]), np.mean([x["served"] for x in v.values()]))
                for p, v in runs.items() if v}
        best_j = max(("jit", "jit+la-test"), key=lambda p: mean[p][1])
        best_f = max(("full", "full+la-test"), key=lambda p: mean[p][1])
        for pol in ELIGIBLE_POLICIES:
            if pol in ("jit", "full") or not runs[pol]:
                continue
            seeds = sorted(set(runs[pol]) & set(runs["jit"]) & set(runs["full"]) & set(runs[best_j]) & set(runs[best_f]))
            m1 = [runs[pol][s]["served"] - chord(runs[pol][s]["utilization"], _pt(runs["jit"][s]), _pt(runs["full"][s]))
                  for s in seeds]
            m2 = [runs[pol][s]["served"] - chord(runs[pol][s]["utilization"], _pt(runs[best_j][s]), _pt(runs[best_f][s]))
                  for s in seeds]
            (a, ac), (b, bc) = _ci(m1), _ci(m2)
            margins.append({"R": R, "policy": pol, "margin": a, "margin_ci": ac, "margin_best_test": b,
                            "margin_best_test_ci": bc, "best_jit": best_j, "best_full": best_f, "n": len(seeds)})
    return {"rows": rows, "margins": margins}


def _pt(r: dict[str, Any]) -> tuple[float, float]:
    return float(r["utilization"]), float(r["served"])


def table(summary: dict[str, Any], seeds: list[int]) -> str:
    """Markdown tables: per policy and regime, then the margins."""
    lines = [f"Broker only, held-out seeds {seeds[0]}-{seeds[-1]} (n = {len(seeds)}), mean ± 95 % CI.", "",
             "| select | R | policy | utilization | served | shortfall | mean consumed F |", "|---|---|---|---|---|---|---|"]
    f = lambda r, m: f"{r[m]:.3f} ± {r[m + '_ci']:.3f}"  # noqa: E731
    for r in summary["rows"]:
        lines.append(f"| {r['select']} | {r['R']:g} | {r['policy']} | {f(r, 'utilization')} | {f(r, 'served')} | "
                     f"{f(r, 'shortfall')} | {f(r, 'mean_consumed_fidelity')} |")
    lines += ["", "Margin = served - best jit/full mixture at the same utilization (paired by seed).", "",
              "| R | policy | margin (jit, full: aware's test) | margin (better test of each) |", "|---|---|---|---|"]
    for m in summary["margins"]:
        lines.append(f"| {m['R']:g} | {m['policy']} | {m['margin']:+.3f} ± {m['margin_ci']:.3f} | "
                     f"{m['margin_best_test']:+.3f} ± {m['margin_best_test_ci']:.3f} ({m['best_jit']}, {m['best_full']}) |")
    return "\n".join(lines) + "\n"


COLORS = {"default": "C3", "aware": "C0", "jit": "C2", "full": "C1", "oracle": "C4", "oblivious": "C7",
          "jit+la-test": "C2", "full+la-test": "C1", "la-gen+aware-test": "C9"}


def plot(summary: dict[str, Any], path: Path) -> None:
    """One panel per R: every policy's (utilization, served) with CIs, and the two chords.
    Filled: K of the eligible nodes; hollow squares: K of all nodes; points below served 0.6
    are listed in the title instead (oblivious at R = 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Rs = sorted({r["R"] for r in summary["rows"]})
    fig, axes = plt.subplots(1, len(Rs), figsize=(6.4 * len(Rs), 5.6), squeeze=False)
    for ax, R in zip(axes[0], Rs):
        rows = {(r["select"], r["policy"]): r for r in summary["rows"] if r["R"] == R}
        off = []
        for (select, pol), r in sorted(rows.items()):
            if r["served"] < 0.6:
                off.append(f"{pol} ({r['utilization']:.2f}, {r['served']:.2f})")
                continue
            hollow, dashed = select == "any", "+" in pol
            ax.errorbar(r["utilization"], r["served"], xerr=r["utilization_ci"], yerr=r["served_ci"],
                        fmt="s" if hollow else ("D" if dashed else "o"), color=COLORS.get(pol, "k"),
                        mfc="none" if hollow or dashed else None, capsize=2, ms=6)
            ax.annotate(pol + (" (any)" if hollow else ""), (r["utilization"], r["served"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points", color=COLORS.get(pol, "k"))
        for a, b, style, lab in (("jit", "full", "-", "mixture jit / full"),
                                 ("jit+la-test", "full+la-test", ":", "mixture, the default's test")):
            if ("eligible", a) in rows and ("eligible", b) in rows:
                pa, pb = rows[("eligible", a)], rows[("eligible", b)]
                ax.plot([pa["utilization"], pb["utilization"]], [pa["served"], pb["served"]], "k" + style, lw=1,
                        label=lab)
        ax.set_title(f"R = {R:g}" + (f"; off the chart: {', '.join(off)}" if off else ""), fontsize=9)
        ax.set_xlabel("utilization")
        ax.set_ylabel("served")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("Broker only, 50 nodes, K = 25 a round: circles among the eligible, squares among all nodes; "
                 "held-out seeds, mean ± 95 % CI", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def mdp_frontier(path: Path, names: list[str], ws: list[float]) -> list[dict[str, Any]]:
    """The exact frontier of small instances: the optimal (utilization, served) for each w, and
    the policies' points; one panel per instance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fedqnn.network.mdp_instances import compare

    out = []
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        recs = [compare([name], ["aware", "jit", "full"], w)[0] for w in ws]
        out.extend(recs)
        ax.plot([r["optimal_utilization"] for r in recs], [r["optimal_served"] for r in recs], "k.-",
                label="optimal (w = " + ", ".join(f"{w:g}" for w in ws) + ")")
        for pol, m in recs[0]["policies"].items():
            ax.plot(m["utilization"], m["served"], "o", label=pol,
                    color=COLORS.get("default" if pol == recs[0]["policy"] else pol, "k"))
        ax.set_title(name)
        ax.set_xlabel("utilization")
        ax.set_ylabel("served")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="100-119", help="held-out seeds (tuning used 0-9)")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--R", default="3,10")
    ap.add_argument("--mdp", action="store_true", help="also the exact frontier of small instances")
    args = ap.parse_args(argv)
    args.seeds = parse_seeds(args.seeds)
    args.R = [float(x) for x in args.R.split(",")]
    summary = summarise(run(args))
    md = table(summary, args.seeds)
    (OUT / "table.md").write_text(md)
    plot(summary, FIG / "broker_frontier.png")
    if args.mdp:
        recs = mdp_frontier(FIG / "broker_mdp_frontier.png", ["link-R3", "star2-R3", "link-R10-C8-q4"],
                            [0.02, 0.1, 0.2, 0.5, 1.0])
        (OUT / "mdp_frontier.json").write_text(json.dumps(recs, indent=1))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
