"""CEAS vs FedAvg under heterogeneous QPU noise, no attack (issue 3's experiment).

    python experiments/ceas/consensus.py [--clients 20] [--rounds 10] [--seeds 1,2,3,4,5]
        [--splits iid,dirichlet] [--task digits] [--out experiments/ceas/results] [--set k=v ...]

For each (split, seed) and strategy, the federation is run in-process with the project's own
parts (task data, QPU noise, local training, and the strategies' own ``aggregate_train`` on real
Flower ``Message`` objects) but without the Simulation Engine, because every round also needs
the *noiseless* counterfactual: each client trains twice from the same θ_t on the same data in
the same order, once on its noisy QPU and once noiselessly. The aggregate's error is

    err_t = || Δ_agg - Δ_ref ||²,   Δ_ref = Σ_k n_k Δ_k^noiseless / Σ_k n_k

(the same round's noiseless honest aggregate). Seeds are paired across strategies (same data,
calibrations, noise streams). Writes ``runs.csv`` (one row per run and round), ``table.md``
(paired differences with 95% t-intervals over seeds) and ``curves.png``.

Not a grid of fedqnn runs (each round needs the noiseless counterfactual, so the federation
runs in-process here): it does not use :mod:`fedqnn.sweep`; ``runs.csv`` is its own cache.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fedqnn.config import build_config, parse_set
from fedqnn.inprocess import NodeGrid, set_task_identity
from fedqnn.noise import calibration_for
from fedqnn.stats import t_interval
from fedqnn.tasks import get_task
from fedqnn.training import train_local
from strategies.registry import build_strategy


def _flat(sd: dict[str, torch.Tensor]) -> np.ndarray:
    return torch.cat([v.flatten().to(torch.float64) for v in sd.values()]).numpy()


def run_one(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    set_task_identity()
    torch.set_num_threads(1)
    task = get_task(cfg["task"])
    n = cfg["clients"]
    names = [f"node-{i}" for i in range(n)]
    datas = [task.client_data(cfg, i, n) for i in range(n)]
    cals = [calibration_for(cfg, nm) for nm in names]
    test = task.test_data(cfg)
    strategy = build_strategy(cfg)
    if hasattr(strategy, "bind_nodes"):
        strategy.bind_nodes({1000 + i: nm for i, nm in enumerate(names)})
    model = task.build_model(cfg)
    rows = []
    for rnd in range(1, cfg["rounds"] + 1):
        base = {k: v.clone() for k, v in model.state_dict().items()}
        arrays = ArrayRecord(base)
        msgs = list(strategy.configure_train(rnd, arrays, ConfigRecord({}), NodeGrid([1000 + i for i in range(n)])))
        theta = _flat(base)
        replies, noiseless, sizes = [], [], []
        for i in range(n):
            local = copy.deepcopy(model)
            local.load_state_dict(base)
            local.quantum.set_noise(cals[i].p, cals[i].r, cals[i].shots)
            res = train_local(local, task, datas[i], cfg, rnd, i)
            clean = copy.deepcopy(model)
            clean.load_state_dict(base)
            clean.quantum.set_noise(0.0, 0.0, 0)
            train_local(clean, task, datas[i], cfg, rnd, i)
            noiseless.append(_flat(clean.state_dict()) - theta)
            sizes.append(len(datas[i]))
            ins = next(m for m in msgs if m.metadata.dst_node_id == 1000 + i)
            metrics = {"num-examples": res.num_examples, "train_loss": res.loss, "partition-id": i,
                       **cals[i].as_metrics()}
            replies.append(Message(RecordDict({"arrays": ArrayRecord(local.state_dict()),
                                               "metrics": MetricRecord(metrics)}), reply_to=ins))
        new, _ = strategy.aggregate_train(rnd, replies)
        model.load_state_dict(new.to_torch_state_dict())
        w = np.asarray(sizes, dtype=np.float64)
        ref = (w[:, None] * np.stack(noiseless)).sum(0) / w.sum()
        agg = _flat(model.state_dict()) - theta
        ev = task.evaluate(model, test)
        rows.append({"round": rnd, task.metric: ev[task.metric], "loss": ev["loss"],
                     "agg_err": float(((agg - ref) ** 2).sum()), "ref_norm2": float((ref**2).sum())})
    return rows


_ci = t_interval


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--splits", default="iid,dirichlet")
    p.add_argument("--strategies", default="ceas,fedavg")
    p.add_argument("--task", default="digits")
    p.add_argument("--out", default="experiments/ceas/results")
    p.add_argument("--set", dest="sets", action="append", default=[])
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    over = parse_set(args.sets)
    path = out / "runs.csv"
    done: set[tuple[str, str, int]] = set()
    if path.exists():
        with path.open() as fh:
            done = {(r["split"], r["strategy"], int(r["seed"])) for r in csv.DictReader(fh)}
    fields = ["split", "strategy", "seed", "round", "metric", "value", "loss", "agg_err", "ref_norm2"]
    new_file = not path.exists()
    with path.open("a", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=fields)
        if new_file:
            wr.writeheader()
        for split in args.splits.split(","):
            for seed in [int(s) for s in args.seeds.split(",")]:
                for strat in args.strategies.split(","):
                    if (split, strat, seed) in done:
                        continue
                    cfg = build_config({
                        "task": args.task, "clients": args.clients, "rounds": args.rounds, "seed": seed,
                        "strategy": strat, "data.split": split, "attack": "none", "byzantine_fraction": 0.0,
                        "broker.policy": "off", "auth": "off", "noise": "heterogeneous", "progress": False,
                    }, over)
                    metric = get_task(cfg["task"]).metric
                    rows = run_one(cfg)
                    for r in rows:
                        wr.writerow({"split": split, "strategy": strat, "seed": seed, "round": r["round"],
                                     "metric": metric, "value": r[metric], "loss": r["loss"],
                                     "agg_err": r["agg_err"], "ref_norm2": r["ref_norm2"]})
                    fh.flush()
                    print(f"{split} seed={seed} {strat}: final {metric}={rows[-1][metric]:.4f} "
                          f"mean agg_err={np.mean([r['agg_err'] for r in rows]):.3e}", flush=True)
    summarize(out, args.strategies.split(","), over)


def summarize(out: Path, strategies: list[str], over: dict[str, Any]) -> None:
    with (out / "runs.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    a, b = strategies[0], strategies[1]
    lines = [f"Settings: {json.dumps(over)}; paired seeds; 95% t-intervals over seeds.", "",
             f"| split | seeds | final metric {a} | final metric {b} | diff ({a} - {b}) [95% CI] | "
             f"mean agg err {a} / {b} [95% CI of the ratio, geometric] |",
             "|---|---|---|---|---|---|"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = sorted({r["split"] for r in rows})
    fig, axes = plt.subplots(2, len(splits), figsize=(5 * len(splits), 6.5), squeeze=False)
    for j, split in enumerate(splits):
        sub = [r for r in rows if r["split"] == split]
        seeds = sorted({int(r["seed"]) for r in sub if r["strategy"] == a} & {int(r["seed"]) for r in sub if r["strategy"] == b})
        last = max(int(r["round"]) for r in sub)

        def final(s: str, seed: int, sub=sub, last=last) -> float:
            return next(float(r["value"]) for r in sub if r["strategy"] == s and int(r["seed"]) == seed and int(r["round"]) == last)

        def err(s: str, seed: int, sub=sub) -> float:
            return float(np.mean([float(r["agg_err"]) for r in sub if r["strategy"] == s and int(r["seed"]) == seed]))

        fa = np.array([final(a, s) for s in seeds])
        fb = np.array([final(b, s) for s in seeds])
        m, lo, hi = _ci(fa - fb)
        lr = np.log([err(a, s) / err(b, s) for s in seeds])
        rm, rlo, rhi = _ci(lr)
        metric = sub[0]["metric"]
        lines.append(f"| {split} | {len(seeds)} | {fa.mean():.4f} | {fb.mean():.4f} | {m:+.4f} [{lo:+.4f}, {hi:+.4f}] | "
                     f"{math.exp(rm):.3f} [{math.exp(rlo):.3f}, {math.exp(rhi):.3f}] |")
        for s in (a, b):
            curves = np.array([[float(r["value"]) for r in sub if r["strategy"] == s and int(r["seed"]) == seed]
                               for seed in seeds])
            errs = np.array([[float(r["agg_err"]) for r in sub if r["strategy"] == s and int(r["seed"]) == seed]
                             for seed in seeds])
            x = np.arange(1, curves.shape[1] + 1)
            axes[0, j].plot(x, curves.mean(0), marker=".", label=s)
            axes[0, j].fill_between(x, curves.min(0), curves.max(0), alpha=0.2)
            axes[1, j].plot(x, errs.mean(0), marker=".", label=s)
        axes[0, j].set_title(f"{split}: test {metric} (mean, min-max over seeds)")
        axes[1, j].set_title(f"{split}: aggregate error vs noiseless aggregate")
        axes[1, j].set_yscale("log")
        axes[1, j].set_xlabel("round")
        axes[0, j].legend()
        axes[1, j].legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
