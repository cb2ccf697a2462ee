"""CEAS against the best Flower built-in, attack by attack, with paired seeds (issue 7's goal).

    python experiments/attack_matrix/compare.py experiments/attack_matrix/zoo

Reads ``DIR/results.csv`` (from ``fedqnn attack-matrix``) and writes ``DIR/compare.md``. For
every attack: CEAS's mean final metric; the best Flower built-in (``fedavg``, ``krum``,
``multikrum``, ``median``, ``trimmed-mean``, ``bulyan``: the highest mean among those with a
value for every seed, chosen on the same data, which favours the built-in); CEAS minus it and
CEAS minus ``nnm-cc`` (paired by seed); and CEAS under the attack minus CEAS without attack.
Intervals are 95 % t-intervals on the per-seed differences (``fedqnn.stats.t_interval``).
Verdicts: "yes" when the interval clears the goal, "no" when it lies wholly on the wrong side,
"open" otherwise (too few seeds or too close to tell). A second table summarises each defence
over the whole zoo: its mean over the attacks and its worst attack, and CEAS minus it in both.

An analysis of ``fedqnn attack-matrix``'s table (itself a :mod:`fedqnn.sweep`); it runs nothing.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np

from fedqnn.stats import t_interval

BUILTINS = ("fedavg", "krum", "multikrum", "median", "trimmed-mean", "bulyan")


def load(path: Path) -> tuple[dict[tuple[str, str], dict[int, float]], str]:
    cells: dict[tuple[str, str], dict[int, float]] = {}
    metric = "metric"
    with path.open() as fh:
        for r in csv.DictReader(fh):
            metric = r["metric"]
            if r["final_metric"] in ("", "n/a", "None"):
                continue
            cells.setdefault((r["strategy"], r["attack"]), {})[int(r["seed"])] = float(r["final_metric"])
    return cells, metric


def _diff(a: dict[int, float], b: dict[int, float], scale: float) -> tuple[float, float, float, int]:
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return math.nan, math.nan, math.nan, 0
    return (*t_interval([scale * (a[s] - b[s]) for s in seeds]), len(seeds))


def _verdict(lo: float, hi: float, threshold: float) -> str:
    if math.isnan(lo):
        return "open"
    return "yes" if lo >= threshold else ("no" if hi < threshold else "open")


def _over_the_zoo(cells: dict[tuple[str, str], dict[int, float]], attacks: list[str], scale: float,
                  fmt) -> list[str]:  # noqa: ANN001
    """Per defence, over every attack but ``none``: the mean and the worst attack; CEAS minus the
    defence in both, paired by seed (per seed: the mean / the minimum over the attacks)."""
    atks = [a for a in attacks if a != "none"]
    strategies = list(dict.fromkeys(s for s, _ in cells))
    seeds = sorted({s for v in cells.values() for s in v})

    def per_seed(strategy: str, how) -> dict[int, float] | None:  # noqa: ANN001
        out = {}
        for seed in seeds:
            vals = [cells.get((strategy, a), {}).get(seed) for a in atks]
            if any(v is None for v in vals):
                return None  # an n/a cell: no full-zoo summary for this defence
            out[seed] = how(vals)
        return out

    ceas_mean, ceas_min = per_seed("ceas", np.mean), per_seed("ceas", min)
    lines = ["", f"Over the whole zoo ({len(atks)} attacks), per defence: the mean over attacks and the worst "
             "attack (means over seeds); CEAS minus the defence, paired by seed (per seed: mean / minimum "
             "over the attacks).", "",
             "| defence | mean over attacks | worst attack | CEAS minus it: mean | CEAS minus it: worst case |",
             "|---|---|---|---|---|"]
    for st in strategies:
        mean_s, min_s = per_seed(st, np.mean), per_seed(st, min)
        if mean_s is None or min_s is None:
            lines.append(f"| {st} | n/a (some cell n/a) | | | |")
            continue
        by_attack = {a: np.mean(list(cells[(st, a)].values())) for a in atks}
        worst = min(by_attack, key=by_attack.get)
        if st == "ceas" or ceas_mean is None or ceas_min is None:
            dm = dw = "(reference)" if st == "ceas" else "n/a"
        else:
            dm, dw = fmt(*_diff(ceas_mean, mean_s, scale)[:3]), fmt(*_diff(ceas_min, min_s, scale)[:3])
        lines.append(f"| {st} | {scale * np.mean(list(mean_s.values())):.2f} | {worst} "
                     f"{scale * by_attack[worst]:.2f} | {dm} | {dw} |")
    return lines


def compare(out: Path) -> str:
    cells, metric = load(out / "results.csv")
    scale = 100.0 if metric == "accuracy" else 1.0
    attacks = list(dict.fromkeys(a for _, a in cells))
    seeds_all = sorted({s for v in cells.values() for s in v})
    ceas_none = cells.get(("ceas", "none"), {})
    lines = [f"CEAS vs the best Flower built-in per attack ({metric}{' in points' if scale == 100 else ''}; "
             f"seeds {', '.join(map(str, seeds_all))}; 95 % t-intervals on paired differences).", "",
             "| attack | CEAS | best built-in | CEAS minus best | >= best? | CEAS minus nnm-cc | "
             "CEAS minus its no-attack run | within 3 points? |", "|---|---|---|---|---|---|---|---|"]
    fmt = lambda m, lo, hi: "n/a" if math.isnan(m) else (  # noqa: E731
        f"{m:+.2f}" if math.isnan(lo) else f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]")
    for atk in attacks:
        ceas = cells.get(("ceas", atk), {})
        if not ceas:
            continue
        full = {s: cells[(s, atk)] for s in BUILTINS if len(cells.get((s, atk), {})) == len(ceas)}
        best = max(full, key=lambda s: np.mean(list(full[s].values()))) if full else None
        m, lo, hi, _ = _diff(ceas, full[best], scale) if best else (math.nan,) * 4
        best_txt = f"{best} {scale * np.mean(list(full[best].values())):.2f}" if best else "n/a"
        nm, nlo, nhi, _ = _diff(ceas, cells.get(("nnm-cc", atk), {}), scale)
        if atk == "none":
            own, verdict3 = "(reference)", ""
        else:
            am, alo, ahi, _ = _diff(ceas, ceas_none, scale)
            own, verdict3 = fmt(am, alo, ahi), _verdict(alo, ahi, -3.0)
        lines.append(f"| {atk} | {scale * np.mean(list(ceas.values())):.2f} | {best_txt} | {fmt(m, lo, hi)} | "
                     f"{_verdict(lo, hi, 0.0) if best else 'n/a'} | {fmt(nm, nlo, nhi)} | {own} | {verdict3} |")
    lines += _over_the_zoo(cells, attacks, scale, fmt)
    text = "\n".join(lines) + "\n"
    (out / "compare.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", type=Path, help="an attack-matrix output directory (with results.csv)")
    a = p.parse_args(argv)
    if not (a.dir / "results.csv").exists():
        p.error(f"dir: expected {a.dir / 'results.csv'} (run fedqnn attack-matrix first)")
    print(compare(a.dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
