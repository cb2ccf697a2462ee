"""experiments/attack_matrix/compare.py: best built-in chosen per attack, paired verdicts."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _compare_module():
    spec = importlib.util.spec_from_file_location("matrix_compare", ROOT / "experiments/attack_matrix/compare.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def _write(path: Path, rows: list[tuple[str, str, int, str]]) -> None:
    cols = ["strategy", "policy", "attack", "byzantine_fraction", "seed", "metric", "final_metric", "best_metric",
            "rejected", "utilization"]
    with (path / "results.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for s, a, seed, v in rows:
            w.writerow({"strategy": s, "policy": "aware", "attack": a, "byzantine_fraction": 0.2, "seed": seed,
                        "metric": "accuracy", "final_metric": v, "best_metric": v, "rejected": 0, "utilization": 0.9})


def test_verdicts_follow_the_paired_intervals(tmp_path: Path) -> None:
    rows = []
    for seed, jitter in zip((1, 2, 3, 4), (0.0, 0.01, -0.01, 0.005)):
        rows += [("ceas", "none", seed, str(0.70 + jitter)),
                 ("ceas", "alie", seed, str(0.695 + jitter)),      # within 3 points, above every built-in
                 ("ceas", "ipm", seed, str(0.55 + jitter)),        # 15 points down: fails both goals
                 ("fedavg", "alie", seed, str(0.60 + jitter)),
                 ("krum", "alie", seed, str(0.65 + jitter)),       # the best built-in under alie
                 ("krum", "ipm", seed, str(0.66 + jitter)),
                 ("bulyan", "ipm", seed, "n/a"),                   # n/a cells are never "best"
                 ("nnm-cc", "alie", seed, str(0.60 + jitter))]
    _write(tmp_path, rows)
    text = _compare_module().compare(tmp_path)
    lines = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[1:-1]] for ln in text.splitlines()
             if ln.startswith("| ") and not ln.startswith("| attack")}
    alie, ipm = lines["alie"], lines["ipm"]
    assert alie[2].startswith("krum 65.1") and alie[4] == "yes" and alie[7] == "yes"
    assert alie[3].startswith("+4.50")
    assert ipm[2].startswith("krum 66.1") and ipm[4] == "no" and ipm[7] == "no"
    assert (tmp_path / "compare.md").read_text() == text
