"""Per-round cost from 10 to 1000 QPUs beside the local-training floor (issue 19 item 4).

    PYTHONPATH=. python experiments/scale/sweep.py [--sizes 10 30 100 300 1000] [--rounds 3]
                                                   [--big-rounds 2] [--baseline]

For each size N, one ``fedqnn bench scale --clients N --json`` (the CEAS defaults; with
``--baseline`` also plain FedAvg) in a process of its own: rounds ``--rounds`` (``--big-rounds``
from 300 QPUs up: a 1000-QPU round takes minutes on 2 cores), the floor over one round of local
training. The figure plots, log-log against N, the steady seconds per round (median ``wall_s``
of rounds 2..), the floor measured in the same run (the clients' own ``train_seconds`` / workers;
dashed, the run's colour) and the CEAS floor measured alone after the runs, with a slope-1 guide
(linear cost) through the smallest in-run floor. Writes ``experiments/scale/results/runs.jsonl`` (one JSON object a size; sizes
already there are skipped on a rerun) and ``docs/figures/scale_floor.png``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "scale" / "results" / "runs.jsonl"
FIGURE = ROOT / "docs" / "figures" / "scale_floor.png"


def measure(n: int, rounds: int, baseline: bool) -> dict[str, Any]:
    """One ``fedqnn bench scale --json`` of ``n`` QPUs; its JSON object."""
    with tempfile.TemporaryDirectory(prefix="fedqnn-sweep-") as out:
        cmd = [sys.executable, "-m", "fedqnn.cli", "bench", "scale", "--clients", str(n), "--rounds", str(rounds),
               "--floor-rounds", "1", "--json", "--out", out, *(["--baseline"] if baseline else [])]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def load(path: Path) -> dict[int, dict[str, Any]]:
    if not path.exists():
        return {}
    return {r["clients"]: r for r in map(json.loads, path.read_text().splitlines()) if r}


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    """Log-log: steady s/round of each run, the in-run floor and the separate floor, against N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["clients"])
    n = [r["clients"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    series = [("ceas_steady_s_per_round", "CEAS defaults (steady round)", "o-", "C0"),
              ("fedavg_steady_s_per_round", "plain FedAvg (steady round)", "s-", "C2"),
              ("ceas_inrun_floor_s_per_round", "floor, in the CEAS run", "v--", "C0"),
              ("fedavg_inrun_floor_s_per_round", "floor, in the FedAvg run", "v--", "C2"),
              ("floor_s_per_round", "CEAS floor, measured alone", "^:", "C3")]
    for key, label, style, color in series:
        pts = [(x, r[key]) for x, r in zip(n, rows) if r.get(key)]
        if pts:
            ax.plot(*zip(*pts), style, color=color, label=label)
    base = rows[0].get("ceas_inrun_floor_s_per_round") or rows[0]["floor_s_per_round"]
    ax.plot([n[0], n[-1]], [base, base * n[-1] / n[0]], color="grey", lw=0.8, label="slope 1 (linear)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("QPUs (clients)")
    ax.set_ylabel("seconds per round")
    ax.set_title("Per-round cost vs the local-training floor (2 shared cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 30, 100, 300, 1000])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--big-rounds", type=int, default=2, help="rounds from 300 QPUs up")
    p.add_argument("--baseline", action="store_true")
    p.add_argument("--plot-only", action="store_true")
    args = p.parse_args(argv)
    done = load(RESULTS)
    for n in args.sizes:
        if n in done or args.plot_only:
            continue
        row = measure(n, args.big_rounds if n >= 300 else args.rounds, args.baseline)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as fh:
            fh.write(json.dumps(row, sort_keys=True) + "\n")
        done[n] = row
        print(json.dumps(row, sort_keys=True), flush=True)
    rows = [done[n] for n in sorted(done) if n in args.sizes]
    if rows:
        plot(rows, FIGURE)
        print(f"figure: {FIGURE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
