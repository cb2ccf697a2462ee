"""The spine's longer run and its ablation, side by side.

    python experiments/spine/long_run.py [--config experiments/configs/long_antiderivative.toml]
                                         [--out experiments/spine/results] [--set key=value ...]

Runs the config four times through ``fedqnn.run``: with the quantum layer; with the quantum layer
replaced by a classical layer of (nearly) the same parameter count (``model.classical=true``: a
width-1 tanh bottleneck at 4 qubits x 2 layers); with a wider classical layer (hidden width 8,
more parameters) as the control that shows whether the gap is parameter efficiency; and with the
same circuit without its CNOTs (``model.classical_layer=product-state``: the same trigonometric
features and the same 24 parameters, a product state that a classical computer evaluates in
O(qubits)), the fair control for "the entanglement is what helps".
Writes each run's directory, ``table.md`` and ``curves.png`` (rel_l2 per round, every variant).

Four single runs, not a grid: it calls ``fedqnn.run`` per variant and does not use
:mod:`fedqnn.sweep` (experiments/spine/README.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import fedqnn
from fedqnn.config import build_config, load_toml, parse_set
from fedqnn.models import count_parameters
from fedqnn.results import read_metrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="experiments/configs/long_antiderivative.toml")
    p.add_argument("--out", default="experiments/spine/results")
    p.add_argument("--set", dest="sets", action="append", default=[])
    p.add_argument("--overwrite", action="store_true", help="replace the runs already in --out")
    args = p.parse_args()
    out = Path(args.out)
    base = load_toml(args.config)
    over = parse_set(args.sets)
    rows = []
    curves = {}
    variants = (
        ("quantum", "quantum", {"model.classical": False}),
        ("classical, equal parameter count", "classical", {"model.classical": True}),
        ("classical, hidden width 8 (more parameters)", "classical-h8",
         {"model.classical": True, "model.classical_hidden": 8}),
        ("classical, same features and parameters (the circuit without CNOTs)", "classical-product",
         {"model.classical": True, "model.classical_layer": "product-state"}),
    )
    for label, dirname, variant in variants:
        run_dir = out / dirname
        layers = [base, over, {**variant, "out": str(run_dir), "progress": True}]
        cfg = build_config(*layers)
        from fedqnn.tasks import get_task

        model = get_task(cfg["task"]).build_model(cfg)
        summary = fedqnn.run(*layers, overwrite=args.overwrite)
        m = summary["metrics"]
        curves[label] = [(r["round"], (r.get("eval") or {}).get("rel_l2")) for r in read_metrics(run_dir)]
        rows.append((label, count_parameters(model.quantum), count_parameters(model),
                     m["rel_l2"]["final"], m["rel_l2"]["best"], m["rel_l2_hires"]["final"],
                     summary["total_wall_s"]))
    table = ["| variant | params in the quantum / substitute layer | params total | final rel_l2 | best rel_l2 | final rel_l2 at unseen resolution | wall s |",
             "|---|---|---|---|---|---|---|"]
    table += [f"| {a} | {b} | {c} | {d:.4f} | {e:.4f} | {f:.4f} | {g:.0f} |" for a, b, c, d, e, f, g in rows]
    cfg_text = json.dumps({**base, **over}, sort_keys=True)
    (out / "table.md").write_text(
        f"Config: `{args.config}` {cfg_text}\n\n" + "\n".join(table) + "\n"
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, pts in curves.items():
        ax.plot([r for r, _ in pts], [v for _, v in pts], marker=".", label=label)
    ax.axhline(0.10, color="gray", ls="--", lw=0.8, label="0.10")
    ax.set_yscale("log")
    ax.set_xlabel("round")
    ax.set_ylabel("test rel_l2")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    print("\n".join(table))


if __name__ == "__main__":
    main()
