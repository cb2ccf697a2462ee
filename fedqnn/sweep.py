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

``[[sweep.grid]]`` (an array of tables with the same keys) is a union of such crosses, e.g. a
no-attack reference for one policy beside every policy x attack. Every cell (each cross's values,
times the seeds) is validated before anything runs (a bad value names the cell and the field). A
cell whose robust rule's (n, f) precondition fails for the planned participants
(:func:`strategies.preconditions.failed`) is written as ``n/a`` and not run: every round of it
would be skipped. Cells run one after another on one Simulation Engine runtime per federation
size (:func:`fedqnn.simulation.run_batch`). Outputs: each cell's run directory under
``DIR/cells/``, and ``DIR/results.csv``, one row per finished cell: the grid's keys, ``seed``,
``metric``, ``final_metric``, ``best_metric``, ``rounds_skipped``, ``rejected``, ``run``.
``--resume`` skips the cells already in ``results.csv``; without it an existing ``results.csv``
is an error (nothing is overwritten). Read the runs back with :func:`fedqnn.results.load_runs`
and compare them with :func:`fedqnn.results.compare`.

Python: :func:`run_sweep`. A :class:`Table` subclass changes the results file's name, the cell
directories and the row written per cell: ``fedqnn attack-matrix`` and the experiment scripts
in ``experiments/`` are such users.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "main", "cells", "run_sweep", "load_spec", "Table", "Grid", "COLUMNS"]

COLUMNS = ["seed", "metric", "final_metric", "best_metric", "rounds_skipped", "rejected", "run"]

#: one cross (config key -> values) or a union of crosses with the same keys
Grid = dict[str, list[Any]] | list[dict[str, list[Any]]]


class Table:
    """How a sweep lays out its results: ``results`` (the CSV's file name), ``cells`` (the folder of
    the run directories), the CSV's columns and one row per cell. This default is ``fedqnn
    sweep``'s; subclasses override :meth:`columns`, :meth:`name`, :meth:`key`, :meth:`row` and
    :meth:`na_row` (each a cell's ``{"name", "values", "config"}``, see :func:`cells`)."""

    results = "results.csv"
    cells = "cells"

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def columns(self) -> list[str]:
        return [*self.keys, *COLUMNS]

    def name(self, values: dict[str, Any], seed: int) -> str:
        """The cell's directory name: ``key=value,...,seed=S`` (unsafe characters as ``_``)."""
        parts = [f"{k}={v}" for k, v in values.items()] + [f"seed={seed}"]
        return re.sub(r"[^A-Za-z0-9_.=+,-]", "_", ",".join(parts))

    def key(self, row: dict[str, str]) -> str:
        """The name of the cell a ``results.csv`` row belongs to (what ``--resume`` skips)."""
        return Path(row["run"]).name

    def row(self, cell: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
        m = summary["metrics"].get(summary["metric"], {})
        return {**self._ids(cell), "metric": summary["metric"], "final_metric": m.get("final", "n/a"),
                "best_metric": m.get("best", "n/a"), "rounds_skipped": summary["rounds_skipped"],
                "rejected": sum(summary["totals"]["rejected"].values()), "run": cell["config"]["out"]}

    def na_row(self, cell: dict[str, Any], why: str) -> dict[str, Any]:
        """The row of a cell not run because its rule's precondition fails (``why``)."""
        from fedqnn.tasks import get_task

        return {**self._ids(cell), "metric": get_task(cell["config"]["task"]).metric, "final_metric": "n/a",
                "best_metric": "n/a", "rounds_skipped": "n/a", "rejected": "n/a", "run": cell["config"]["out"]}

    def _ids(self, cell: dict[str, Any]) -> dict[str, Any]:
        return {**{k: str(v) for k, v in cell["values"].items()}, "seed": cell["config"]["seed"]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="TOML file with [sweep] (seeds, [sweep.grid]) and a [fedqnn] base config")
    p.add_argument("--out", required=True, help="sweep directory: results.csv and cells/")
    p.add_argument("--resume", action="store_true", help="skip the cells already in DIR/results.csv")


def _check_grid(grid: Any) -> list[dict[str, list[Any]]]:
    from fedqnn.schema import ConfigError

    crosses = grid if isinstance(grid, list) else [grid]
    if not crosses:
        raise ConfigError("sweep.grid: expected at least one table")
    for g in crosses:
        if not isinstance(g, dict) or not all(isinstance(v, list) and v for v in g.values()):
            raise ConfigError("sweep.grid: expected a table of config keys -> non-empty lists of values "
                              "(or an array of such tables)")
        if "seed" in g:
            raise ConfigError("sweep.grid: put seeds in sweep.seeds, not in the grid")
        if list(g) != list(crosses[0]):
            raise ConfigError(f"sweep.grid: every table of the array needs the same keys, got {list(crosses[0])} "
                              f"and {list(g)}")
    return crosses


def load_spec(path: str | Path) -> tuple[dict[str, Any], Grid, list[int]]:
    """(base config, grid, seeds) from a sweep file; errors name the table and key."""
    from fedqnn.schema import ConfigError

    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"sweep: cannot read {path} ({exc})") from exc
    spec = data.get("sweep", {})
    grid = spec.get("grid", {})
    seeds = spec.get("seeds", [0])
    _check_grid(grid)
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"sweep.seeds: expected a non-empty list of integers, got {seeds!r}")
    return dict(data.get("fedqnn", {})), grid, seeds


def cells(base: dict[str, Any], grid: Grid, seeds: list[int], out: str | Path,
          table: Table | None = None) -> list[dict[str, Any]]:
    """Every cell's validated config (each cross's values in order, seeds innermost), its ``out``
    under ``out / table.cells``: dicts ``{"name", "values", "config"}``."""
    from fedqnn.config import ConfigError, build_config

    crosses = _check_grid(grid)
    table = table or Table(list(crosses[0]))
    result, seen = [], set()
    for g in crosses:
        for combo in itertools.product(*g.values()):
            values = dict(zip(g, combo))
            for seed in seeds:
                name = table.name(values, seed)
                if name in seen:
                    continue  # the same cell in two crosses runs once
                seen.add(name)
                try:
                    cfg = build_config(base, {**values, "seed": seed, "out": str(Path(out) / table.cells / name)})
                except ConfigError as exc:
                    raise ConfigError(f"sweep cell {name}: {exc}") from exc
                result.append({"name": name, "values": values, "config": cfg})
    return result


def _precondition(cfg: dict[str, Any]) -> str | None:
    from strategies.config import round_shape
    from strategies.preconditions import failed

    return failed(cfg["strategy"], *round_shape(cfg))


def run_sweep(base: dict[str, Any], grid: Grid, seeds: list[int], out: str | Path, resume: bool = False, *,
              table: Table | None = None, on_done: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
              label: str = "sweep") -> list[dict[str, str]]:
    """Run the sweep's unfinished cells and return every finished cell's results row (as read back).

    ``table`` lays out the results (default :class:`Table`); ``on_done(cell, summary)`` runs after
    each cell's row is written (e.g. to append its curve elsewhere); ``label`` starts the log lines.
    """
    from fedqnn.schema import ConfigError
    from fedqnn.simulation import run_batch

    out = Path(out)
    table = table or Table(list(_check_grid(grid)[0]))
    results = out / table.results
    todo = cells(base, grid, seeds, out, table)
    if results.exists() and not resume:
        raise ConfigError(f"--out {out}: {results} exists; pass --resume to finish it (nothing is overwritten)")
    done = _read(results, table)
    pending = [c for c in todo if c["name"] not in done]
    total, position = len(todo), {c["name"]: i for i, c in enumerate(todo, 1)}
    print(f"[fedqnn] {label}: {total} cells, {total - len(pending)} done, {len(pending)} to run", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    fields = table.columns()
    to_run = []
    for c in pending:
        why = _precondition(c["config"])
        if why:
            _append(results, fields, table.na_row(c, why))
            print(f"[{position[c['name']]}/{total}] {c['name']}: n/a ({why})", flush=True)
        else:
            to_run.append(c)
    by_out = {c["config"]["out"]: c for c in to_run}

    def record(cfg: dict[str, Any], summary: dict[str, Any]) -> None:
        cell = by_out[cfg["out"]]
        _append(results, fields, table.row(cell, summary))
        if on_done is not None:
            on_done(cell, summary)
        print(f"[{position[cell['name']]}/{total}] {cell['name']}: done in {summary.get('process_wall_s', 0):.0f} s",
              flush=True)

    by_shape: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for c in to_run:
        by_shape.setdefault((c["config"]["clients"], c["config"]["num_cpus_per_client"]), []).append(c)
    for group in by_shape.values():
        print(f"{label}: {len(group)} runs on one simulation runtime ({total - len(to_run)} done or n/a)", flush=True)
        run_batch([c["config"] for c in group], on_done=record)
    return list(_read(results, table).values())


def _read(path: Path, table: Table) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    with path.open() as fh:
        return {table.key(r): r for r in csv.DictReader(fh)}


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
