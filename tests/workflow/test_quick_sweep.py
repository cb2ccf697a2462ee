"""``fedqnn sweep`` reproduces the quick attack matrix (issue 20): the committed sweep file
(experiments/attack_matrix/quick_sweep.toml) holds the same cells and configs as
experiments/attack_matrix/quick.toml, and a tiny version of both (5 QPUs, 1 round, 2 defences x
2 attacks, in-process grid) gives the same numbers cell by cell; a cell on another seed does not
(the control: the comparison can fail)."""

from __future__ import annotations

import argparse
import csv
import json
import tomllib
from pathlib import Path
from typing import Any

from fedqnn import attack_matrix
from fedqnn.sweep import cells, load_spec, run_sweep
from tests.faults.helpers import SMALL

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "experiments/attack_matrix/quick.toml"
QUICK_SWEEP = ROOT / "experiments/attack_matrix/quick_sweep.toml"
TINY = {**{k: v for k, v in SMALL.items() if k not in ("clients", "rounds", "seed")}, "data.test_samples": 30}
KEEP = {"strategy": ["fedavg", "bulyan"], "attack": ["none", "sign-flip"]}  # bulyan: n/a at 5 QPUs


def _matrix_args(file: Path) -> argparse.Namespace:
    return argparse.Namespace(file=str(file), strategies=None, attacks=None, fractions=None, policies=None,
                              seeds=None, clients=None, rounds=None, task=None)


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _evals(run: str | Path) -> list[Any]:
    return [json.loads(line).get("eval") for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def _cell_numbers(rows: list[dict[str, str]], policy: str, fraction: str, run_dir: Any) -> dict[tuple, tuple]:
    """(strategy, policy, attack, fraction, seed) -> (metric, final, best, rejected, per-round evals)."""
    table = {}
    for r in rows:
        key = (r["strategy"], r[policy], r["attack"], float(r[fraction]), int(r["seed"]))
        run = run_dir(r)
        evals = _evals(run) if r["final_metric"] != "n/a" else None
        table[key] = (r["metric"], r["final_metric"], r["best_metric"], r["rejected"], evals)
    return table


def test_the_sweep_file_holds_the_quick_matrix_cells(tmp_path: Path) -> None:
    grid_m, base_m = attack_matrix._grid(_matrix_args(QUICK))
    base, grid, seeds = load_spec(QUICK_SWEEP)
    assert grid == attack_matrix.sweep_grid(grid_m) and seeds == grid_m["seeds"]
    ours = cells(base, grid, seeds, tmp_path / "s")
    theirs = cells({**base_m, "progress": False}, attack_matrix.sweep_grid(grid_m), grid_m["seeds"], tmp_path / "m",
                   attack_matrix.MatrixTable())
    assert len(ours) == len(theirs) == 8 * 7
    strip = lambda c: {k: v for k, v in c["config"].items() if k != "out"}  # noqa: E731
    assert [strip(c) for c in ours] == [strip(c) for c in theirs]
    # control: a changed base config is seen
    other = cells({**base, "rounds": 4}, grid, seeds, tmp_path / "x")
    assert [strip(c) for c in other] != [strip(c) for c in theirs]


def test_a_tiny_quick_sweep_matches_the_attack_matrix_cell_by_cell(tmp_path: Path, local_batch: list[str]) -> None:
    quick = tomllib.loads(QUICK.read_text())["matrix"]
    matrix = {**quick, **{f"{k}s" if k != "strategy" else "strategies": v for k, v in KEEP.items()},
              "clients": 5, "rounds": 1}
    spec = tmp_path / "tiny_quick.toml"
    spec.write_text("[matrix]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in matrix.items())
                    + "[fedqnn]\n" + "".join(f'"{k}" = {json.dumps(v)}\n' for k, v in TINY.items()))
    attack_matrix.main(argparse.Namespace(**{**vars(_matrix_args(spec)), "out": str(tmp_path / "matrix")}))
    base, grid, seeds = load_spec(QUICK_SWEEP)
    tiny_base = {**base, **TINY, "clients": 5, "rounds": 1}
    run_sweep(tiny_base, {**grid, **KEEP}, seeds, tmp_path / "sweep")

    m_rows, s_rows = _csv(tmp_path / "matrix" / "results.csv"), _csv(tmp_path / "sweep" / "results.csv")
    mine = _cell_numbers(m_rows, "policy", "byzantine_fraction",
                         lambda r: tmp_path / "matrix" / "cells" / attack_matrix.MatrixTable().key(r))
    swept = _cell_numbers(s_rows, "broker.policy", "byzantine_fraction", lambda r: r["run"])
    assert len(mine) == 4 and mine == swept
    assert sum(v[1] == "n/a" for v in swept.values()) == 2  # bulyan needs n >= 4f + 3: not run
    assert all(v[4] and v[4][-1] for v in swept.values() if v[1] != "n/a")

    # control: the same cell on another seed gives other numbers, which the comparison sees
    run_sweep(tiny_base, {**grid, "strategy": ["fedavg"], "attack": ["sign-flip"]}, [2], tmp_path / "seed2")
    (other,) = _cell_numbers(_csv(tmp_path / "seed2" / "results.csv"), "broker.policy", "byzantine_fraction",
                             lambda r: r["run"]).values()
    assert other != mine[("fedavg", "aware", "sign-flip", 0.2, 1)]
