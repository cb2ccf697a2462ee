"""CEAS's consensus on the same honest replies, IID and non-IID (issue 16's experiment).

    python experiments/ceas/replies.py [--alphas 0.1,0.5,1,iid] [--seeds 11,12,13] [--clients 20]
        [--rounds 5] [--out experiments/ceas/replies] [--set k=v ...]

For each (split, seed) the federation runs in-process with the project's own parts (task data,
calibrations, local training on each node's noisy QPU and, for the reference, noiselessly from the
same theta_t on the same data) along FedAvg's trajectory, with no attacker. Each round, CEAS's
strategy is handed the real replies and its ``consensus_round`` call is recorded (updates, claimed
and server noise factors, data sizes, the metric G); every rule below is then evaluated on exactly
those inputs, so the rules are paired on identical replies:

* ``fedavg``: sum_k pi_k x_k, pi_k = n_k / N;
* ``ceas``: the run's default (:func:`strategies.ceas_math.consensus_round`);
* ``ceas-nodir``: without the directional test;
* ``ceas-median-null``: the pre-issue-16 collusion/near null (normalised by the median spread,
  ``null="median"``), no directional test.

Error: ||agg - ref||^2 with ref = sum_k pi_k Delta_k^noiseless (the round's noiseless FedAvg
update). Reported per rule and split: the mean over rounds and seeds of err / err_fedavg, its
maximum, and the honest false-rejection rate (rejected node-rounds / node-rounds). Seeds 1 and 2
were used while designing the tests; the table reports seeds 11, 12 and 13. Writes ``runs.csv``
and ``table.md``.

``--attacks a,b,...`` (with ``--fraction``, default 0.2): on the same recorded rounds the last
f = round(fraction x n) nodes send the attack's vector instead (the zoo's functions, given the
honest updates, as the run's adversary plug-in does; ``fit-capture`` also claims its shots / 20),
and every rule (CEAS, FedAvg, the plain robust rules of :mod:`strategies.robust`) aggregates
them; the error is to the honest nodes' noiseless FedAvg update, relative to honest FedAvg's
error on the same round without attackers. Reported per (split, attack, rule): that ratio,
CEAS's honest false-rejection and Byzantine detection rates, and per attack a paired comparison
of CEAS with the best other rule (per-seed mean log ratios, t-interval; Holm across attacks).
Limits: the rounds follow FedAvg's honest trajectory, so an attack does not compound over
rounds; accuracy needs full runs (``fedqnn attack-matrix``). Writes ``attacks.csv`` and
``attacks.md``; the recorded rounds are cached in ``rounds.pkl``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fedqnn.config import build_config, parse_set
from fedqnn.inprocess import NodeGrid, set_task_identity
from fedqnn.noise import calibration_for
from fedqnn.param_vectors import flatten_state, unflatten_state
from fedqnn.tasks import get_task
from fedqnn.training import train_local
from strategies import ceas_math
from strategies.registry import build_strategy

RULES = {
    "ceas": {},
    "ceas-nodir": {"outlier_params": {"directional": False}},
    "ceas-median-null": {"outlier_params": {"directional": False, "null": "median"}},
}


def capture(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Per round: CEAS's recorded consensus_round inputs and the noiseless reference update."""
    set_task_identity()
    torch.set_num_threads(1)
    task = get_task(cfg["task"])
    n = cfg["clients"]
    names = [f"node-{i}" for i in range(n)]
    datas = [task.client_data(cfg, i, n) for i in range(n)]
    cals = [calibration_for(cfg, nm) for nm in names]
    strategy = build_strategy(cfg)
    strategy.bind_nodes({1000 + i: nm for i, nm in enumerate(names)})
    model = task.build_model(cfg)
    rounds, real = [], ceas_math.consensus_round
    for rnd in range(1, cfg["rounds"] + 1):
        base = {k: v.clone() for k, v in model.state_dict().items()}
        keys = list(base)
        theta = flatten_state(base, keys)
        msgs = list(strategy.configure_train(rnd, ArrayRecord(base), ConfigRecord({}), NodeGrid([1000 + i for i in range(n)])))
        replies, clean = [], []
        for i in range(n):
            local = copy.deepcopy(model)
            local.quantum.set_noise(cals[i].p, cals[i].r, cals[i].shots)
            res = train_local(local, task, datas[i], cfg, rnd, i)
            ref_model = copy.deepcopy(model)
            ref_model.quantum.set_noise(0.0, 0.0, 0)
            train_local(ref_model, task, datas[i], cfg, rnd, i)
            clean.append(flatten_state(ref_model.state_dict(), keys) - theta)
            ins = next(m for m in msgs if m.metadata.dst_node_id == 1000 + i)
            metrics = {"num-examples": res.num_examples, "train_loss": res.loss, "partition-id": i, **cals[i].as_metrics()}
            replies.append(Message(RecordDict({"arrays": ArrayRecord(local.state_dict()),
                                               "metrics": MetricRecord(metrics)}), reply_to=ins))
        seen: dict[str, Any] = {}

        def spy(x, factors, server_factors, seen=seen, **kw):
            seen.update(x=np.array(x), factors=np.array(factors), server=np.array(server_factors), kw=kw)
            return real(x, factors, server_factors, **kw)

        ceas_math.consensus_round = spy
        try:
            strategy.aggregate_train(rnd, replies)
        finally:
            ceas_math.consensus_round = real
        sizes = np.asarray(seen["kw"]["sizes"], dtype=np.float64)
        rounds.append({**seen, "clean": np.stack(clean), "sizes": sizes})
        fedavg = (sizes / sizes.sum()) @ seen["x"]
        model.load_state_dict(unflatten_state(theta + fedavg, base, keys))
    return rounds


def evaluate(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (round, rule): err, err / err_fedavg, honest rejections."""
    rows = []
    for rnd, r in enumerate(rounds, start=1):
        pi = r["sizes"] / r["sizes"].sum()
        ref = pi @ r["clean"]
        fed = float(np.sum((pi @ r["x"] - ref) ** 2))
        rows.append({"round": rnd, "rule": "fedavg", "err": fed, "ratio": 1.0, "rejected": 0, "nodes": len(pi)})
        for rule, over in RULES.items():
            kw = {**r["kw"], **over}
            res = ceas_math.consensus_round(r["x"], r["factors"], r["server"], **kw).result
            err = float(np.sum((res.aggregate - ref) ** 2))
            rows.append({"round": rnd, "rule": rule, "err": err, "ratio": err / fed, "rejected": len(res.rejected),
                         "nodes": len(pi)})
    return rows


PLAIN = ["median", "trimmed-mean", "multikrum", "geometric-median", "nnm+trimmed-mean"]


def attacked(r: dict[str, Any], attack: str, f: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(updates, claimed factors) with the last f nodes running ``attack``."""
    from clients.attacks import get_attack
    from fedqnn.seeding import rng

    spec = get_attack(attack)
    x, factors = r["x"].copy(), r["factors"].copy()
    m = x.shape[0] - f
    honest = r["x"][:m]
    gen = rng(seed, "replies-attack", attack)
    for b in range(m, x.shape[0]):
        x[b] = spec(r["x"][b], honest if spec.omniscient else None, gen, n=x.shape[0], f=f)
        if spec.claim is not None:
            told = spec.claim({"p": 0.0, "r": 0.0, "shots": 1_000_000})
            factors[b] = max(factors[b], r["server"][b] * 1_000_000 / max(float(told["shots"]), 1.0))
    return x, factors


def evaluate_attacks(rounds: list[dict[str, Any]], attacks: list[str], fraction: float, seed: int) -> list[dict]:
    """One row per (round, attack, rule): err / honest FedAvg's error, and CEAS's decisions."""
    from strategies.robust import get_rule, precondition_holds

    rows = []
    for rnd, r in enumerate(rounds, start=1):
        n = r["x"].shape[0]
        f = int(round(fraction * n))
        m = n - f
        pi_h = r["sizes"][:m] / r["sizes"][:m].sum()
        ref = pi_h @ r["clean"][:m]
        base = float(np.sum(((r["sizes"] / r["sizes"].sum()) @ r["x"] - (r["sizes"] / r["sizes"].sum()) @ r["clean"]) ** 2))
        for attack in attacks:
            x, factors = attacked(r, attack, f, seed)
            out = {"fedavg": (r["sizes"] / r["sizes"].sum()) @ x}
            res = ceas_math.consensus_round(x, factors, r["server"], **{**r["kw"], "f": f}).result
            out["ceas"] = res.aggregate
            for name in PLAIN:
                if precondition_holds(name, n, f):
                    out[name] = get_rule(name, f=f)(x)
            rej = set(res.rejected)
            for rule, agg in out.items():
                rows.append({"round": rnd, "attack": attack, "rule": rule,
                             "ratio": float(np.sum((agg - ref) ** 2)) / base,
                             "honest_rejected": len(rej - set(range(m, n))) if rule == "ceas" else "",
                             "byz_rejected": len(rej & set(range(m, n))) if rule == "ceas" else "",
                             "honest": m, "byzantine": f})
    return rows


def summarize_attacks(out: Path) -> str:
    """attacks.md: per split and attack, each rule's mean ratio, CEAS's rates, CEAS vs the best
    other rule (paired over seeds on log ratios, 95% t-interval, Holm-adjusted p across attacks)."""
    from scipy.stats import ttest_1samp

    from fedqnn.scheduling.stats import holm
    from fedqnn.stats import t_interval

    with (out / "attacks.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    lines = ["| split | attack | " + " | ".join(rules) + " | CEAS FRR | CEAS detection | CEAS vs best other: "
             "log ratio [95% CI] | Holm p |", "|" + "---|" * (len(rules) + 6)]
    for split in dict.fromkeys(r["split"] for r in rows):
        cells, pvals = [], []
        for attack in dict.fromkeys(r["attack"] for r in rows if r["split"] == split):
            sel = [r for r in rows if r["split"] == split and r["attack"] == attack]
            mean = {ru: float(np.mean([float(r["ratio"]) for r in sel if r["rule"] == ru])) for ru in rules
                    if any(r["rule"] == ru for r in sel)}
            ce = [r for r in sel if r["rule"] == "ceas"]
            frr = sum(int(r["honest_rejected"]) for r in ce) / max(sum(int(r["honest"]) for r in ce), 1)
            det = sum(int(r["byz_rejected"]) for r in ce) / max(sum(int(r["byzantine"]) for r in ce), 1)
            best = min((ru for ru in mean if ru not in ("ceas", "fedavg")), key=lambda ru: mean[ru])
            seeds = sorted({r["seed"] for r in sel})
            diffs = [np.mean([math.log(float(r["ratio"])) for r in sel if r["seed"] == s and r["rule"] == "ceas"])
                     - np.mean([math.log(float(r["ratio"])) for r in sel if r["seed"] == s and r["rule"] == best])
                     for s in seeds]
            _, lo, hi = t_interval(diffs)
            pvals.append(float(ttest_1samp(diffs, 0.0).pvalue) if len(diffs) > 1 and np.std(diffs) > 0 else 1.0)
            cells.append((attack, mean, frr, det, best, float(np.mean(diffs)), lo, hi))
        for (attack, mean, frr, det, best, d, lo, hi), p in zip(cells, holm(pvals)):
            vals = " | ".join(f"{mean[ru]:.2f}" if ru in mean else "n/a" for ru in rules)
            lines.append(f"| {split} | {attack} | {vals} | {frr:.1%} | {det:.0%} | {d:+.2f} [{lo:+.2f}, {hi:+.2f}] "
                         f"vs {best} | {p:.3f} |")
    seeds = sorted({int(r["seed"]) for r in rows})
    text = (f"Seeds {', '.join(map(str, seeds))}; cells: mean over rounds and seeds of err / honest FedAvg's "
            "err without attackers; negative log ratio = CEAS better.\n\n" + "\n".join(lines) + "\n")
    (out / "attacks.md").write_text(text)
    return text


def summarize(out: Path) -> str:
    with (out / "runs.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    lines = ["| split | rule | err / FedAvg (mean) | max | honest false rejections |", "|---|---|---|---|---|"]
    for split in dict.fromkeys(r["split"] for r in rows):
        for rule in ["fedavg", *RULES]:
            sel = [r for r in rows if r["split"] == split and r["rule"] == rule]
            ratio = np.array([float(r["ratio"]) for r in sel])
            rej = sum(int(r["rejected"]) for r in sel) / max(sum(int(r["nodes"]) for r in sel), 1)
            lines.append(f"| {split} | {rule} | {ratio.mean():.3f} | {ratio.max():.2f} | {rej:.1%} |")
    seeds = sorted({int(r["seed"]) for r in rows})
    text = f"Seeds {', '.join(map(str, seeds))}; {len(rows)} rule-rounds.\n\n" + "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alphas", default="0.1,0.5,1,iid")
    p.add_argument("--seeds", default="11,12,13")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--task", default="digits")
    p.add_argument("--attacks", default="", help="comma-separated zoo attacks (empty: the no-attack table only)")
    p.add_argument("--fraction", type=float, default=0.2)
    p.add_argument("--out", default="experiments/ceas/replies")
    p.add_argument("--set", dest="sets", action="append", default=[])
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / "rounds.pkl"
    cache: dict[str, Any] = pickle.loads(cache_path.read_bytes()) if cache_path.exists() else {}
    attacks = [a for a in args.attacks.split(",") if a]
    fields = ["split", "seed", "round", "rule", "err", "ratio", "rejected", "nodes"]
    afields = ["split", "seed", "round", "attack", "rule", "ratio", "honest_rejected", "byz_rejected", "honest",
               "byzantine"]
    with (out / "runs.csv").open("w", newline="") as fh, (out / "attacks.csv").open("w", newline="") as fa:
        wr, wa = csv.DictWriter(fh, fieldnames=fields), csv.DictWriter(fa, fieldnames=afields)
        wr.writeheader()
        wa.writeheader()
        for alpha in args.alphas.split(","):
            split = {"data.split": "iid"} if alpha == "iid" else {"data.split": "dirichlet", "data.alpha": float(alpha)}
            name = "iid" if alpha == "iid" else f"dirichlet {alpha}"
            for seed in [int(s) for s in args.seeds.split(",")]:
                cfg = build_config({"task": args.task, "clients": args.clients, "rounds": args.rounds, "seed": seed,
                                    "strategy": "ceas", "attack": "none", "byzantine_fraction": 0.0,
                                    "broker.policy": "off", "auth": "off", "progress": False, **split},
                                   parse_set(args.sets))
                key = f"{name}|{seed}|{args.clients}|{args.rounds}|{args.task}|{sorted(parse_set(args.sets).items())}"
                if key not in cache:
                    cache[key] = capture(cfg)
                    cache_path.write_bytes(pickle.dumps(cache))
                for row in evaluate(cache[key]):
                    wr.writerow({"split": name, "seed": seed, **row})
                for row in evaluate_attacks(cache[key], attacks, args.fraction, seed):
                    wa.writerow({"split": name, "seed": seed, **row})
                fh.flush()
                fa.flush()
                print(f"{name} seed {seed}: done", flush=True)
    print(summarize(out))
    if attacks:
        print(summarize_attacks(out))


if __name__ == "__main__":
    main()
