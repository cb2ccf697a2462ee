"""``fedqnn sweep`` (issue 20 item 4): a grid x seeds, validated before anything runs, resumable,
one results.csv row per cell that agrees with the cell's own summary, read back by load_runs.
The fast tests run the cells on the in-process grid (conftest.local_batch);
the slow one runs the CLI on the Simulation Engine."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedqnn.config import ConfigError
from fedqnn.sweep import cells, load_spec, run_sweep
from tests.faults.helpers import SMALL

BASE = {**SMALL, "rounds": 1, "progress": False}
GRID = {"strategy": ["fedavg", "median"], "broker.policy": ["aware", "off"]}


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_a_sweep_runs_every_cell_once_and_resumes(tmp_path: Path, local_batch: list[str]) -> None:
    rows = run_sweep(BASE, GRID, [1, 2], tmp_path)
    assert len(rows) == 8 == len(local_batch) == len(set(local_batch))
    for r in _csv(tmp_path / "results.csv"):
        summary = json.loads((Path(r["run"]) / "summary.json").read_text())
        assert summary["config"]["strategy"] == r["strategy"] and summary["config"]["seed"] == int(r["seed"])
        assert float(r["final_metric"]) == summary["metrics"][summary["metric"]]["final"]
    with pytest.raises(ConfigError, match="pass --resume"):
        run_sweep(BASE, GRID, [1, 2], tmp_path)  # nothing is overwritten
    local_batch.clear()
    assert len(run_sweep(BASE, GRID, [1, 2, 3], tmp_path, resume=True)) == 12
    assert len(local_batch) == 4  # only the new seed's cells ran
    from fedqnn.results import load_runs

    assert load_runs(tmp_path / "cells")["run"].nunique() == 12


def test_a_bad_cell_fails_before_anything_runs(tmp_path: Path, local_batch: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"sweep cell strategy=fedavgg,seed=1: strategy"):
        cells(BASE, {"strategy": ["fedavg", "fedavgg"]}, [1], tmp_path)
    with pytest.raises(ConfigError, match="broker.nope"):
        run_sweep(BASE, {"broker.nope": [1]}, [1], tmp_path)
    assert local_batch == []


def test_the_spec_file_is_checked(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('[sweep]\nseeds = [1, 2]\n[sweep.grid]\nstrategy = ["ceas"]\n[fedqnn]\nclients = 3\n')
    assert load_spec(f) == ({"clients": 3}, {"strategy": ["ceas"]}, [1, 2])
    f.write_text('[sweep]\nseeds = []\n')
    with pytest.raises(ConfigError, match="sweep.seeds"):
        load_spec(f)
    f.write_text('[sweep.grid]\nstrategy = "ceas"\n')
    with pytest.raises(ConfigError, match="sweep.grid"):
        load_spec(f)


@pytest.mark.slow
def test_the_cli_runs_a_sweep_on_the_simulation_engine(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('[sweep]\nseeds = [4]\n[sweep.grid]\nstrategy = ["fedavg", "median"]\n'
                 '[fedqnn]\nclients = 3\nrounds = 1\nprogress = false\n"train.epochs" = 1\n'
                 '"data.samples_per_client" = 8\n"data.test_samples" = 10\n"model.qubits" = 3\n"model.layers" = 1\n'
                 'byzantine_fraction = 0.0\n')
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    res = subprocess.run([sys.executable, "-m", "fedqnn.cli", "sweep", str(f), "--out", str(tmp_path / "sw")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert sorted(r["strategy"] for r in _csv(tmp_path / "sw" / "results.csv")) == ["fedavg", "median"]


def test_a_union_of_grids_and_a_failed_precondition(tmp_path: Path, local_batch: list[str]) -> None:
    union = [{"strategy": ["median"], "attack": ["none"]}, {"strategy": ["median", "bulyan"], "attack": ["none", "ipm"]}]
    names = [c["name"] for c in cells(BASE, union, [1], tmp_path)]
    assert names == ["strategy=median,attack=none,seed=1", "strategy=median,attack=ipm,seed=1",
                     "strategy=bulyan,attack=none,seed=1", "strategy=bulyan,attack=ipm,seed=1"]  # shared cell once
    with pytest.raises(ConfigError, match="same keys"):
        cells(BASE, [{"strategy": ["median"]}, {"attack": ["ipm"]}], [1], tmp_path)
    rows = run_sweep(BASE, {"strategy": ["bulyan"]}, [1], tmp_path)  # 5 QPUs, f = 1: bulyan needs n >= 7
    assert local_batch == [] and rows[0]["final_metric"] == "n/a" and rows[0]["rounds_skipped"] == "n/a"
    assert run_sweep(BASE, {"strategy": ["bulyan"]}, [1], tmp_path, resume=True) == rows  # n/a is done
