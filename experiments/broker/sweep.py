"""Regime sweep of the entanglement broker (issue 4), broker-only (no federated training).

    /work/venv/bin/python experiments/broker/sweep.py [--seeds 5] [--rounds 30] [--nodes 50]

Grid: R = r t_c in {3, 10, 30} x rho in {0.5, 0.9} x memory in {depolarising, dephasing},
trapped-ion links (F0 = 0.96, r = 200 pairs/s per channel, F_min = 0.8) on a 50-node ring
with chords; plus the documented default regime (R = 10, rho = 0.7, depolarising) and an NV-
centre point with literature memory (39 Hz generation, entangled-state decoherence 5 Hz,
F0 = 0.8, F_min = 0.7, dephasing, star network). Every policy (aware, oblivious, random,
oracle) x seeds. Writes experiments/broker/results/{runs.csv, summary.csv, table.md, *.png};
finished runs are skipped on a rerun (runs.csv is the cache).

Not a grid of fedqnn runs (the broker alone): it does not use :mod:`fedqnn.sweep`.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

from fedqnn.network.experiment import run_broker

HERE = Path(__file__).resolve().parent
OUT = HERE / "results"
POLICIES = ("aware", "oblivious", "random", "oracle")
METRICS = ("utilization", "served", "broker_served", "mean_consumed_fidelity", "availability", "R", "rho")
FIELDS = ("scenario", "noise", "target_R", "target_rho", "policy", "seed", *METRICS)
# Student t quantiles (two-sided 95%) by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}

ION = {"F0": 0.96, "p": 2e-4, "tau": 1e-6, "F_min": 0.8}
NV = {"topology": "star", "noise": "dephasing", "F0": 0.8, "F_min": 0.7, "p": 3.9e-4, "tau": 1e-5,
      "memory_T": 0.4, "target_R": None}  # node T 0.4 s -> pair T 0.2 s (5 Hz); r = 39 /s


def scenarios() -> list[tuple[str, str, float | None, float, dict]]:
    out = [("default", "depolarising", 10.0, 0.7, {**ION})]
    for noise in ("depolarising", "dephasing"):
        for R in (3.0, 10.0, 30.0):
            for rho in (0.5, 0.9):
                out.append(("sweep", noise, R, rho, {**ION, "noise": noise, "target_R": R}))
    for rho in (0.5, 0.9):
        out.append(("nv-star", "dephasing", None, rho, dict(NV)))
    return out


def _key(row: dict) -> tuple:
    return (row["scenario"], row["noise"], str(row["target_R"]), str(row["target_rho"]),
            row["policy"], str(row["seed"]))


def run(args: argparse.Namespace) -> list[dict]:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "runs.csv"
    done: dict[tuple, dict] = {}
    if path.exists():
        with path.open() as f:
            for row in csv.DictReader(f):
                done[_key(row)] = row
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            w.writeheader()
        for scen, noise, R, rho, cfg in scenarios():
            for policy in POLICIES:
                for seed in range(args.seeds):
                    row = {"scenario": scen, "noise": noise, "target_R": R, "target_rho": rho,
                           "policy": policy, "seed": seed}
                    if _key({k: str(v) for k, v in row.items()}) in done:
                        continue
                    res = run_broker({**cfg, "policy": policy, "target_rho": rho,
                                      "steps_per_round": args.steps},
                                     args.nodes, args.rounds, seed, participation=args.participation,
                                     common_outages=False)  # as measured for issue 4
                    for m in METRICS[:-2]:
                        row[m] = res[m]
                    row["R"] = res["regime"]["R"]
                    row["rho"] = res["regime"]["rho"]
                    w.writerow(row)
                    f.flush()
                    done[_key({k: str(v) for k, v in row.items()})] = row
                    print(f"{scen:8s} {noise:12s} R={R} rho={rho} {policy:9s} seed={seed} "
                          f"util={row['utilization']:.3f} served={row['served']:.3f}", flush=True)
    with path.open() as f:
        return list(csv.DictReader(f))


def _ci(vals: list[float]) -> tuple[float, float]:
    a = np.asarray([v for v in vals if v not in (None, "", "None")], dtype=float)
    if a.size == 0:
        return math.nan, math.nan
    if a.size == 1:
        return float(a[0]), math.nan
    return float(a.mean()), T95.get(a.size - 1, 1.96) * float(a.std(ddof=1)) / math.sqrt(a.size)


def summarise(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["noise"], r["target_R"], r["target_rho"], r["policy"]), []).append(r)
    out = []
    for (scen, noise, R, rho, pol), rs in groups.items():
        s = {"scenario": scen, "noise": noise, "target_R": R, "target_rho": rho, "policy": pol, "n": len(rs)}
        for m in METRICS:
            mean, hw = _ci([r[m] for r in rs])
            s[m], s[m + "_ci"] = mean, hw
        out.append(s)
    with (OUT / "summary.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(out[0]))
        w.writeheader()
        w.writerows(out)
    return out


def _fmt(s: dict, m: str) -> str:
    v, c = s[m], s[m + "_ci"]
    if math.isnan(v):
        return "n/a"
    return f"{v:.3f} ± {c:.3f}" if not math.isnan(c) else f"{v:.3f}"


def table(summary: list[dict]) -> str:
    head = ("| scenario | memory | R | rho (target) | policy | utilization | served | "
            "mean consumed F | availability | rho (measured) |\n|---|---|---|---|---|---|---|---|---|---|\n")
    order = {p: i for i, p in enumerate(POLICIES)}
    lines = []
    for s in sorted(summary, key=lambda s: (s["scenario"] != "default", s["scenario"], s["noise"],
                                             float(s["target_R"]) if s["target_R"] not in ("", "None") else 0.0,
                                             float(s["target_rho"]), order[s["policy"]])):
        R = f"{s['R']:.1f}"
        lines.append(f"| {s['scenario']} | {s['noise']} | {R} | {s['target_rho']} | {s['policy']} | "
                     f"{_fmt(s, 'utilization')} | {_fmt(s, 'served')} | {_fmt(s, 'mean_consumed_fidelity')} | "
                     f"{_fmt(s, 'availability')} | {s['rho']:.2f} |")
    return head + "\n".join(lines) + "\n"


def plots(summary: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for metric in ("utilization", "served"):
        fig, axes = plt.subplots(2, 2, figsize=(9, 7), sharex=True, sharey=True)
        for i, noise in enumerate(("depolarising", "dephasing")):
            for j, rho in enumerate(("0.5", "0.9")):
                ax = axes[i, j]
                for pol in POLICIES:
                    pts = sorted((float(s["target_R"]), s[metric], s[metric + "_ci"]) for s in summary
                                 if s["scenario"] == "sweep" and s["noise"] == noise
                                 and s["target_rho"] == rho and s["policy"] == pol)
                    if pts:
                        x, y, e = zip(*pts)
                        ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=pol)
                ax.set_xscale("log")
                ax.set_xticks([3, 10, 30], ["3", "10", "30"])
                ax.set_title(f"{noise}, rho = {rho}")
                ax.set_ylim(0, 1.05)
                ax.grid(alpha=0.3)
                if i == 1:
                    ax.set_xlabel("R = r t_c")
                if j == 0:
                    ax.set_ylabel(metric)
        axes[0, 0].legend(loc="lower right")
        fig.suptitle(f"Broker {metric} (50 nodes, mean ± 95% CI over seeds)")
        fig.tight_layout()
        fig.savefig(OUT / f"{metric}.png", dpi=110)
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--steps", type=int, default=16, help="broker.steps_per_round")
    ap.add_argument("--participation", type=float, default=0.5)
    args = ap.parse_args(argv)
    rows = run(args)
    summary = summarise(rows)
    md = table(summary)
    (OUT / "table.md").write_text(md)
    plots(summary)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
