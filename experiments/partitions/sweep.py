"""QNet-NO section 4.3 redone at a scale this machine affords: a circuit-partitioned quantum
neural operator against its Schmidt-rank budget and the task's complexity.

For each (qubits, length scale, k, seed) one fresh subprocess trains the fedqnn operator model
(antiderivative task, ``partition=circuit``, two QPUs of n/2 qubits, Werner pairs of fidelity
``--fidelity`` at every enabled cut gate, trajectory simulation, noiseless QPUs, analytic) with
**plain-torch local training** (``fedqnn.training.train_local``, one client holding all the
training data; no federation: the rank's effect on one model is what section 4.3 is about) and
reports

* test error: mean relative L2 error on held-out functions (``rel_l2``);
* the measured Schmidt rank across the cut (noiseless final states of 8 test inputs) and its
  bound 2^k capped by the register;
* training time (process CPU seconds of the training loop) and peak memory (the process's peak
  RSS growth during training, in MB; the baseline is the RSS after imports and data);
* Bell pairs a QPU implementation would consume for that training (accounting.round_demand:
  enabled cut gates x 1000 shots x samples x (1 + 2P) x epochs) and the window D = M / (rho r)
  at r = 100 pairs/s, rho = 0.7.

Task complexity is m99 (``adaptive.spectral_complexity``): the cosine modes holding 99 % of the
targets' energy; shorter GRF length scales give rougher inputs and more modes. The adaptive
rule's own choice (``choose_rank`` with the pair fidelity, no history) is reported beside the
best measured k.

    /work/venv/bin/python experiments/partitions/sweep.py            # ~8 min CPU, 1 thread
    /work/venv/bin/python experiments/partitions/sweep.py --quick    # a 1-minute smoke run

Not a grid of fedqnn runs (one model trained with plain torch per point, no federation): it
does not use :mod:`fedqnn.sweep`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RATE, RHO, SHOTS = 100.0, 0.7, 1000


def one(args: argparse.Namespace) -> dict[str, Any]:
    """Train one configuration in this process; returns its measurements."""
    import torch

    torch.set_num_threads(1)
    from fedqnn import data as D
    from fedqnn.config import build_config
    from fedqnn.partitions.accounting import round_demand
    from fedqnn.partitions.adaptive import choose_rank, mask_for_rank, spectral_complexity
    from fedqnn.partitions.federated import apply_round, schmidt_metrics, spec_from_config
    from fedqnn.tasks import _cached_pool, get_task
    from fedqnn.training import train_local

    cfg = build_config({
        "task": "antiderivative", "seed": args.seed, "partition": "circuit", "model.qubits": args.qubits,
        "model.layers": args.layers, "partition.qpus": 2, "partition.rank": args.k,
        "partition.pair_fidelity": args.fidelity, "partition.method": "trajectory", "noise": "noiseless",
        "broker.policy": "off", "train.epochs": args.epochs, "train.lr": args.lr, "train.lr_decay": 1.0,
        "train.batch_size": 16, "data.samples_per_client": args.samples, "data.test_samples": args.test,
        "data.length_scale": args.length_scale, "strategy": "fedavg", "attack": "none",
    })
    task = get_task("antiderivative")
    model = task.build_model(cfg)
    apply_round(model, {"partition-k": args.k})
    train = task.client_data(cfg, 0, 1)
    test = task.test_data(cfg)["rel_l2"]
    pool = _cached_pool(task.name, cfg["seed"], 64, args.length_scale, "probe")
    modes = spectral_complexity(D.resample(pool.s, cfg["data"]["queries"]))
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu0 = time.process_time()
    res = train_local(model, task, train, cfg, 1, 0)
    cpu = time.process_time() - cpu0
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model.eval()
    ev = task.evaluate(model, {"rel_l2": test})
    sm = schmidt_metrics(model, test.x[:8])
    spec = spec_from_config(cfg)
    mask = mask_for_rank(spec, args.k)
    dem = round_demand(spec, samples=args.samples, batches=1, epochs=args.epochs, shots=0, rate=RATE, rho=RHO,
                       cut_mask=mask, analytic_shots=SHOTS)
    side = (args.qubits // 2, args.qubits - args.qubits // 2)
    rule = choose_rank(modes, args.fidelity, (), cut_qubits=side, batch=16, k_min=0, k_max=6)
    return {
        "qubits": args.qubits, "layers": args.layers, "length_scale": args.length_scale, "modes": modes,
        "k": args.k, "rank_budget": 2**args.k, "enabled_cut_gates": sum(mask), "cut_gates": len(mask),
        "seed": args.seed, "schmidt_rank": sm["schmidt_rank/0|1"], "schmidt_bound": sm["schmidt_bound/0|1"],
        "test_rel_l2": ev["rel_l2"], "train_loss": res.loss, "train_cpu_s": round(cpu, 3),
        "peak_mem_mb": round(peak_rss - base_rss, 2), "rss_mb": round(peak_rss, 1),
        "bell_pairs": dem.pairs, "window_h": dem.round_s / 3600.0, "rule_k": rule.k, "rule_bound": rule.bound,
    }


def grid(quick: bool) -> list[dict[str, Any]]:
    if quick:
        return [dict(qubits=6, layers=3, length_scale=0.2, k=k, seed=0, epochs=2) for k in (0, 3)]
    out = []
    for ls in (0.5, 0.2, 0.08):  # task complexity (m99 grows as the length scale shrinks)
        for k in range(4):  # 3 + 3 qubits: rank <= 2^3
            for seed in ((0, 1) if ls == 0.2 else (0,)):
                out.append(dict(qubits=6, layers=3, length_scale=ls, k=k, seed=seed, epochs=12))
    for k in range(5):  # 4 + 4 qubits: rank <= 2^4 = 16
        out.append(dict(qubits=8, layers=3, length_scale=0.2, k=k, seed=0, epochs=5))
    return out


def run_all(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for g in grid(args.quick):
        cmd = [sys.executable, __file__, "--one", "--qubits", str(g["qubits"]), "--layers", str(g["layers"]),
               "--length-scale", str(g["length_scale"]), "--k", str(g["k"]), "--seed", str(g["seed"]),
               "--epochs", str(g["epochs"]), "--fidelity", str(args.fidelity)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        row = json.loads(r.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    meta = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(children.ru_utime + children.ru_stime, 1),
            "fidelity": args.fidelity, "rate": RATE, "rho": RHO, "shots": SHOTS, "quick": args.quick}
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    report(out)


def report(out: Path) -> None:
    """table.md and plots from results.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = list(csv.DictReader(open(out / "results.csv")))
    meta = json.loads((out / "meta.json").read_text())
    num = lambda r, k: float(r[k])  # noqa: E731
    groups: dict[tuple[int, float, int], list[dict[str, str]]] = {}
    for r in rows:
        groups.setdefault((int(r["qubits"]), float(r["length_scale"]), int(r["k"])), []).append(r)
    lines = [
        f"Circuit partition, 2 QPUs, Werner pairs F = {meta['fidelity']}, antiderivative operator, plain-torch local "
        f"training (no federation). Bell pairs: what the training would consume on QPUs at {meta['shots']} shots per "
        f"circuit with parameter-shift gradients; window D = M / (rho r) at r = {meta['rate']:g} pairs/s, "
        f"rho = {meta['rho']}. Mean over seeds (n = seeds). Sweep: {meta['cpu_s']} s CPU, {meta['wall_s']} s wall.",
        "",
        "| qubits | m99 | k | rank budget 2^k | measured rank (max) | test rel. L2 | train CPU s | peak mem MB | "
        "Bell pairs | window h | n |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (n, _ls, k), rs in sorted(groups.items(), key=lambda t: (t[0][0], -t[0][1], t[0][2])):
        err = np.mean([num(r, "test_rel_l2") for r in rs])
        sd = np.std([num(r, "test_rel_l2") for r in rs]) if len(rs) > 1 else 0.0
        lines.append(
            f"| {n} | {rs[0]['modes']} | {k} | {2**k} | {max(int(r['schmidt_rank']) for r in rs)} "
            f"(bound {rs[0]['schmidt_bound']}) | {err:.3f}{f' ± {sd:.3f}' if len(rs) > 1 else ''} | "
            f"{np.mean([num(r, 'train_cpu_s') for r in rs]):.1f} | {np.mean([num(r, 'peak_mem_mb') for r in rs]):.1f} | "
            f"{int(rs[0]['bell_pairs']):.2e} | {num(rs[0], 'window_h'):.0f} | {len(rs)} |")
    lines += ["", "Best k per task complexity (lowest mean test error) against the adaptive rule's choice:", "",
              "| qubits | length scale | m99 | best k (rank) | its test rel. L2 | k = 0 test rel. L2 | "
              "improvement over k = 0 | rule's k (decided by) |", "|---|---|---|---|---|---|---|---|"]
    for n, ls in sorted({(g[0], g[1]) for g in groups}, key=lambda t: (t[0], -t[1])):
        ks = sorted(k for (nn, ll, k) in groups if nn == n and ll == ls)
        errs = {k: np.mean([num(r, "test_rel_l2") for r in groups[(n, ls, k)]]) for k in ks}
        best = min(errs, key=errs.get)
        r0 = groups[(n, ls, ks[0])][0]
        imp = 100 * (errs[ks[0]] - errs[best]) / errs[ks[0]] if 0 in errs else float("nan")
        lines.append(f"| {n} | {ls} | {r0['modes']} | {best} ({2**best}) | {errs[best]:.3f} | "
                     f"{errs.get(0, float('nan')):.3f} | {imp:.0f} % | {r0['rule_k']} ({r0['rule_bound']}) |")
    (out / "table.md").write_text("\n".join(lines) + "\n")

    fig, ax = plt.subplots(2, 2, figsize=(10, 7.5))
    for n, ls in sorted({(g[0], g[1]) for g in groups}, key=lambda t: (t[0], -t[1])):
        ks = sorted(k for (nn, ll, k) in groups if nn == n and ll == ls)
        rs = [groups[(n, ls, k)] for k in ks]
        r = [2**k for k in ks]
        lab = f"n={n}, m99={rs[0][0]['modes']}"
        ax[0, 0].plot(r, [np.mean([num(x, "test_rel_l2") for x in g]) for g in rs], "o-", label=lab)
        ax[0, 1].plot(r, [np.mean([num(x, "train_cpu_s") for x in g]) for g in rs], "o-", label=lab)
        ax[1, 0].plot(r, [np.mean([num(x, "peak_mem_mb") for x in g]) for g in rs], "o-", label=lab)
        ax[1, 1].plot(r, [num(g[0], "bell_pairs") or np.nan for g in rs], "o-", label=lab)  # k = 0: none
    for a, t in zip(ax.flat, ("test rel. L2 error", "training CPU s", "peak memory growth (MB)",
                              "Bell pairs consumed (training)"), strict=True):
        a.set_xscale("log", base=2)
        a.set_xlabel("Schmidt rank budget 2^k")
        a.set_title(t)
        a.grid(alpha=0.3)
    ax[1, 1].set_yscale("log")
    ax[0, 0].legend(fontsize=8)
    fig.suptitle("Circuit partition vs Schmidt rank budget (QNet-NO 4.3, redone)")
    fig.tight_layout()
    fig.savefig(out / "rank_sweep.png", dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--one", action="store_true", help="train one configuration (internal)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--report-only", action="store_true", help="rebuild table.md and plots from results.csv")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--qubits", type=int, default=6)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--length-scale", type=float, default=0.2)
    p.add_argument("--k", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--test", type=int, default=100)
    p.add_argument("--fidelity", type=float, default=0.95)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args)))
    elif args.report_only:
        report(Path(args.out))
    else:
        run_all(args)


if __name__ == "__main__":
    main()
