"""Bell-pair draining: how much it takes from honest QPUs, and what ``broker.quota`` gives back.

    python experiments/attacks/bell_drain.py [--nodes 50] [--rounds 30] [--seeds 20]
        [--drain 0,4,10,40,160] [--quotas none,4,8] [--fed-seeds 1,2,3,4,5] [--fed-rounds 8]
        [--skip-federated] [--resume] [--set key=value ...] [--out experiments/attacks/results/bell_drain]

The attack (``attack=bell-drain``, docs/attacks.md): every round each Byzantine node (20 %)
asks the entanglement broker for ``drain_pairs`` end-to-end pairs on top of the fixed demand
and never uses them. The broker cannot tell them from real requests; only a per-node quota
(``broker.quota``: pairs one node may receive per round) caps them.

1. Broker only (no training; ``fedqnn.network.experiment.run_broker``): ``--nodes`` nodes,
   ``--rounds`` rounds, participation 0.5, 4 pairs per participant, every policy x drain size
   x quota, ``--seeds`` seeds (paired: the same seed gives the same network, demand and
   drainers). Measured: ``honest_served`` (fraction of the honest participants' pairs
   delivered in time with F >= F_min), drained pairs per round, utilization.
2. Federated (Flower Simulation Engine, one runtime): 50 QPUs, strategy ceas, broker aware,
   digits, ``--fed-rounds`` rounds, ``--fed-seeds`` paired seeds: no attack, bell-drain
   (``drain_pairs`` 40 = 10 x the per-node demand), and bell-drain with ``broker.quota=4``.
   Measured: final accuracy, the fixed demand's ``served``, participants per round. The runs
   are a sweep (:func:`fedqnn.sweep.run_sweep`) on one runtime; ``--resume`` keeps those already
   in ``federated.csv`` (after an interruption), otherwise they all run again.

Outputs in ``--out``: ``broker.csv``, ``federated.csv``, ``table.md`` and ``honest_served.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from fedqnn.network.experiment import run_broker
from fedqnn.stats import t_interval
from fedqnn.sweep import Table

POLICIES = ("aware", "oblivious", "random")
FED_CELLS = (("none", None), ("bell-drain", None), ("bell-drain", 4))
FED_COLUMNS = ["attack", "quota", "seed", "final", "served", "participants", "drained_per_round", "wall_s"]


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=50)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--drain", default="0,4,10,40,160", help="drain_pairs values (0 = no attack)")
    p.add_argument("--quotas", default="none,4,8")
    p.add_argument("--fed-seeds", default="1,2,3,4,5")
    p.add_argument("--fed-rounds", type=int, default=8)
    p.add_argument("--fed-clients", type=int, default=50)
    p.add_argument("--skip-federated", action="store_true")
    p.add_argument("--resume", action="store_true",
                   help="keep the federated runs already in federated.csv (default: run them all again)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every federated run (e.g. train.epochs=1)")
    p.add_argument("--out", default="experiments/attacks/results/bell_drain")
    return p.parse_args(argv)


def _quota(q: str) -> int | None:
    return None if q == "none" else int(q)


def broker_sweep(a: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    drains = [int(x) for x in a.drain.split(",")]
    quotas = [_quota(q) for q in a.quotas.split(",")]
    rows = []
    for policy in POLICIES:
        for d in drains:
            for q in (quotas if d else [None]):
                for seed in range(a.seeds):
                    r = run_broker({"policy": policy, "quota": q}, a.nodes, a.rounds, seed,
                                   participation=0.5, drain_fraction=0.2, drain_pairs=d)
                    rows.append({"policy": policy, "drain_pairs": d, "quota": "none" if q is None else q,
                                 "seed": seed, "honest_served": r["honest_served"],
                                 "drained_per_round": r["drained"] / a.rounds, "utilization": r["utilization"]})
        print(f"broker: {policy} done", flush=True)
    with (out / "broker.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


class FederatedTable(Table):
    """``federated.csv`` (:data:`FED_COLUMNS`), run directories ``runs/attack__qQUOTA__seed``."""

    results = "federated.csv"
    cells = "runs"

    def __init__(self) -> None:
        super().__init__(["attack", "broker.quota"])

    def columns(self) -> list[str]:
        return list(FED_COLUMNS)

    def name(self, values: dict[str, Any], seed: int) -> str:
        return f"{values['attack']}__q{values['broker.quota'] or 'none'}__{int(seed)}"

    def key(self, row: dict[str, str]) -> str:
        return self.name({"attack": row["attack"], "broker.quota": _quota(row["quota"])}, int(row["seed"]))

    def row(self, cell: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
        from fedqnn.results import read_metrics

        mrows = read_metrics(cell["config"]["out"])
        bell = summary["totals"].get("bell") or {}
        return {"attack": cell["values"]["attack"], "quota": cell["values"]["broker.quota"] or "none",
                "seed": cell["config"]["seed"], "final": summary["metrics"]["accuracy"]["final"],
                "served": bell.get("served"),
                "participants": float(np.mean([r["num_participants"] for r in mrows])),
                "drained_per_round": sum((r.get("bell") or {}).get("drained", 0) for r in mrows) / len(mrows),
                "wall_s": summary.get("process_wall_s")}


def federated(a: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """The federated cells (:data:`FED_CELLS` x ``--fed-seeds``) as one sweep on one runtime
    (:func:`fedqnn.sweep.run_sweep`); with ``--resume`` the runs already in ``federated.csv`` are kept."""
    from fedqnn.config import parse_set
    from fedqnn.sweep import run_sweep

    base = {"task": "digits", "clients": a.fed_clients, "rounds": a.fed_rounds, "fraction_train": 0.5,
            "strategy": "ceas", "broker.policy": "aware", "byzantine_fraction": 0.2, "drain_pairs": 40,
            "progress": False, **parse_set(a.set)}  # a bad override fails before anything runs
    grid = [{"attack": [attack], "broker.quota": [quota]} for attack, quota in FED_CELLS]
    if not a.resume:
        (out / FederatedTable.results).unlink(missing_ok=True)  # a fresh table, as the script always wrote
    return run_sweep(base, grid, [int(s) for s in a.fed_seeds.split(",") if s], out, resume=True,
                     table=FederatedTable(), label="bell-drain")


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _fmt(m: float, lo: float, hi: float, nd: int = 3) -> str:
    return f"{m:+.{nd}f} [{lo:+.{nd}f}, {hi:+.{nd}f}]"


def analyse(a: argparse.Namespace, out: Path) -> str:
    b = _read(out / "broker.csv")
    key = lambda r: (r["policy"], int(r["drain_pairs"]), r["quota"])  # noqa: E731
    by: dict[tuple, dict[int, dict[str, Any]]] = {}
    for r in b:
        by.setdefault(key(r), {})[int(r["seed"])] = r
    lines = [f"Broker only: {a.nodes} nodes, {a.rounds} rounds, 20 % drainers, {a.seeds} paired seeds "
             "(4 pairs per participant, participation 0.5). Honest served = fraction of the honest "
             "participants' pairs delivered; the difference is to the same policy without attack "
             "(95 % t-interval).", "",
             "| policy | drain_pairs | quota | honest served | minus no attack | drained / round | utilization |",
             "|---|---|---|---|---|---|---|"]
    for (policy, d, q), seeds in by.items():
        base = by[(policy, 0, "none")]
        hs = [float(seeds[s]["honest_served"]) for s in sorted(seeds)]
        diff = "(reference)" if d == 0 else _fmt(*t_interval(
            [float(seeds[s]["honest_served"]) - float(base[s]["honest_served"]) for s in sorted(seeds)]))
        lines.append(f"| {policy} | {d} | {q} | {np.mean(hs):.3f} | {diff} | "
                     f"{np.mean([float(seeds[s]['drained_per_round']) for s in seeds]):.1f} | "
                     f"{np.mean([float(seeds[s]['utilization']) for s in seeds]):.3f} |")
    if (out / "federated.csv").exists():
        f = _read(out / "federated.csv")
        cell = lambda atk, q: {int(r["seed"]): r for r in f if r["attack"] == atk and r["quota"] == q}  # noqa: E731
        ref = cell("none", "none")
        lines += ["", f"Federated: {a.fed_clients} QPUs, {a.fed_rounds} rounds, ceas + aware broker, digits, 20 % "
                  f"Byzantine, drain_pairs 40, {len(ref)} paired seeds; accuracy in points, differences to the "
                  "no-attack run with 95 % t-intervals.", "",
                  "| attack | broker.quota | final accuracy | minus no attack | served | participants / round | "
                  "drained / round |", "|---|---|---|---|---|---|---|"]
        for atk, q in FED_CELLS:
            c = cell(atk, str(q or "none"))
            seeds = sorted(set(c) & set(ref))
            if not seeds:
                continue
            acc = [100 * float(c[s]["final"]) for s in seeds]
            diff = "(reference)" if atk == "none" else _fmt(*t_interval(
                [100 * (float(c[s]["final"]) - float(ref[s]["final"])) for s in seeds]), 2)
            lines.append(f"| {atk} | {q or 'none'} | {np.mean(acc):.2f} | {diff} | "
                         f"{np.mean([float(c[s]['served']) for s in seeds]):.3f} | "
                         f"{np.mean([float(c[s]['participants']) for s in seeds]):.1f} | "
                         f"{np.mean([float(c[s]['drained_per_round']) for s in seeds]):.1f} |")
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    _plot(out, by)
    return text


def _plot(out: Path, by: dict[tuple, dict[int, dict[str, Any]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    for ax, policy in zip(axes, POLICIES):
        quotas = sorted({q for (p, d, q) in by if p == policy and d}, key=lambda q: (q != "none", q))
        for q in quotas:
            ds = sorted({d for (p, d, qq) in by if p == policy and (qq == q or d == 0)})
            ms, los, his = [], [], []
            for d in ds:
                seeds = by[(policy, d, "none" if d == 0 else q)]
                m, lo, hi = t_interval([float(r["honest_served"]) for r in seeds.values()])
                ms, los, his = ms + [m], los + [lo], his + [hi]
            x = [max(d, 1) for d in ds]
            ax.plot(x, ms, marker="o", label=f"quota {q}")
            ax.fill_between(x, los, his, alpha=0.2)
        ax.set_xscale("log")
        ax.set_title(f"broker {policy}")
        ax.set_xlabel("pairs each drainer asks per round (0 shown at 1)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("honest participants' pairs served")
    axes[0].legend()
    fig.suptitle("Bell-pair draining by 20 % of the nodes (mean and 95 % CI over seeds)")
    fig.tight_layout()
    fig.savefig(out / "honest_served.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    out = Path(a.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    broker_sweep(a, out)
    if not a.skip_federated:
        federated(a, out)
    text = analyse(a, out)
    (out / "args.json").write_text(json.dumps(vars(a), indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
