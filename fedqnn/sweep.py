"""``fedqnn sweep FILE.toml --out DIR [--resume]``: a grid of federated runs in one place.

The file::

    [sweep]
    seeds = [1, 2, 3]                  # every cell runs once per seed (paired across cells)
    [sweep.grid]                       # dotted config keys -> the values to cross
    strategy = ["ceas", "fedavg"]
    "broker.policy" = ["aware", "oblivious"]
    [fedqnn]                           # the base config of every cell
    clients = 10
    rounds = 5

Every cell (the product of the grid's values, times the seeds) is validated before anything
runs (a bad value names the cell and the field). Cells run one after another on one Simulation
Engine runtime per federation size (:func:`fedqnn.simulation.run_batch`). Outputs: each cell's run
directory under ``DIR/cells/``, and ``DIR/results.csv``, one row per finished cell: the grid's
keys, ``seed``, ``metric``, ``final_metric``, ``best_metric``, ``rounds_skipped``, ``rejected``,
``run``. ``--resume`` skips the cells already in ``results.csv``; without it an existing
``results.csv`` is an error (nothing is overwritten). Read the runs back with
:func:`fedqnn.results.load_runs` and compare them with :func:`fedqnn.results.compare`.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import re
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "main", "cells", "run_sweep", "load_spec", "COLUMNS"]

COLUMNS = ["seed", "metric", "final_metric", "best_metric", "rounds_skipped", "rejected", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="TOML file with [sweep] (seeds, [sweep.grid]) and a [fedqnn] base config")
    p.add_argument("--out", required=True, help="sweep directory: results.csv and cells/")
    p.add_argument("--resume", action="store_true", help="skip the cells already in DIR/results.csv")


def load_spec(path: str | Path) -> tuple[dict[str, Any], dict[str, list[Any]], list[int]]:
    """(base config, grid, seeds) from a sweep file; errors name the table and key."""
    from fedqnn.schema import ConfigError

    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"sweep: cannot read {path} ({exc})") from exc
    spec = data.get("sweep", {})
    grid = spec.get("grid", {})
    seeds = spec.get("seeds", [0])
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError("sweep.grid: expected a table of config keys -> non-empty lists of values")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"sweep.seeds: expected a non-empty list of integers, got {seeds!r}")
    if "seed" in grid:
        raise ConfigError("sweep.grid: put seeds in sweep.seeds, not in the grid")
    return dict(data.get("fedqnn", {})), grid, seeds


def _name(values: dict[str, Any], seed: int) -> str:
    parts = [f"{k}={v}" for k, v in values.items()] + [f"seed={seed}"]
    return re.sub(r"[^A-Za-z0-9_.=+,-]", "_", ",".join(parts))


def cells(base: dict[str, Any], grid: dict[str, list[Any]], seeds: list[int], out: str | Path) -> list[dict[str, Any]]:
    """Every cell's validated config (grid values crossed, then seeds), ``out`` under DIR/cells."""
    from fedqnn.config import ConfigError, build_config

    keys = list(grid)
    result = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo))
        for seed in seeds:
            name = _name(values, seed)
            try:
                cfg = build_config(base, {**values, "seed": seed, "out": str(Path(out) / "cells" / name)})
            except ConfigError as exc:
                raise ConfigError(f"sweep cell {name}: {exc}") from exc
            result.append({"name": name, "values": values, "config": cfg})
    return result


def _row(cell: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    m = summary["metrics"].get(summary["metric"], {})
    return {**{k: str(v) for k, v in cell["values"].items()}, "seed": cell["config"]["seed"],
            "metric": summary["metric"], "final_metric": m.get("final"), "best_metric": m.get("best"),
            "rounds_skipped": summary["rounds_skipped"], "rejected": sum(summary["totals"]["rejected"].values()),
            "run": cell["config"]["out"]}


def run_sweep(base: dict[str, Any], grid: dict[str, list[Any]], seeds: list[int], out: str | Path,
              resume: bool = False) -> list[dict[str, Any]]:
    """Run the sweep's unfinished cells and return every finished cell's ``results.csv`` row."""
    from fedqnn.schema import ConfigError
    from fedqnn.simulation import run_batch

    out = Path(out)
    results = out / "results.csv"
    todo = cells(base, grid, seeds, out)
    if results.exists() and not resume:
        raise ConfigError(f"--out {out}: {results} exists; pass --resume to finish it (nothing is overwritten)")
    fields = [*grid, *COLUMNS]
    done = _read(results)
    pending = [c for c in todo if c["config"]["out"] not in done]
    print(f"[fedqnn] sweep: {len(todo)} cells, {len(todo) - len(pending)} done, {len(pending)} to run", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    by_shape: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for c in pending:
        by_shape.setdefault((c["config"]["clients"], c["config"]["num_cpus_per_client"]), []).append(c)
    index = {c["config"]["out"]: c for c in pending}
    for group in by_shape.values():
        run_batch([c["config"] for c in group], on_done=lambda cfg, s: _append(results, fields, _row(index[cfg["out"]], s)))
    return list(_read(results).values())


def _read(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    with path.open() as fh:
        return {r["run"]: r for r in csv.DictReader(fh)}


def _append(path: Path, fields: list[str], row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerow(row)


def main(args: argparse.Namespace) -> int:
    base, grid, seeds = load_spec(args.file)
    rows = run_sweep(base, grid, seeds, args.out, resume=args.resume)
    print(f"[fedqnn] sweep done: {len(rows)} cells in {Path(args.out) / 'results.csv'}", flush=True)
    return 0
