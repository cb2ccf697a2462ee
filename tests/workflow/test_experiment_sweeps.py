"""The experiment scripts that are grids of fedqnn runs are thin users of :mod:`fedqnn.sweep`
(issue 20): experiments/headline/ceas_headline.py and the federated part of
experiments/attacks/bell_drain.py. Tiny versions run on the in-process grid (conftest.local_batch):
their tables hold one row per cell that agrees with the cell's own summary, a rerun runs
nothing, and the committed headline table is read back as done (its rows name its cells) and
rebuilt identically."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import fedqnn.simulation as simulation
from tests.faults.helpers import SMALL

ROOT = Path(__file__).resolve().parents[2]
SETS = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in SMALL.items()
        if k not in ("clients", "rounds", "seed", "progress")]


def _script(rel: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(rel).stem, ROOT / rel)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_headline_is_a_sweep(tmp_path: Path, local_batch: list[str]) -> None:
    headline = _script("experiments/headline/ceas_headline.py")
    argv = ["--clients", "5", "--rounds", "1", "--seeds", "1,2", "--attacks", "sign-flip", "--policies",
            "random", "--out", str(tmp_path)] + [x for kv in SETS for x in ("--set", kv)]
    assert headline.main(argv) == 0
    rows = _csv(tmp_path / "runs.csv")
    assert [(r["policy"], r["attack"], r["seed"]) for r in rows] == [
        ("lookahead", "none", "1"), ("lookahead", "none", "2"),  # the reference: broker.policy's default
        ("random", "sign-flip", "1"), ("random", "sign-flip", "2")]
    for r in rows:
        summary = json.loads((tmp_path / "runs" / f"{r['policy']}__{r['attack']}__{r['seed']}" / "summary.json").read_text())
        assert summary["config"]["broker"]["policy"] == r["policy"] and summary["config"]["seed"] == int(r["seed"])
        assert float(r["final"]) == summary["metrics"]["accuracy"]["final"]
    assert len(_csv(tmp_path / "curves.csv")) == 4  # one evaluated round per run
    assert (tmp_path / "table.md").read_text() and (tmp_path / "figure4.png").exists()
    ran = len(local_batch)
    headline.run(headline._args(argv))
    assert len(local_batch) == ran == 4  # the rerun finds every cell done


def test_the_committed_headline_table_reads_back_as_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    headline = _script("experiments/headline/ceas_headline.py")
    sent: list[str] = []
    monkeypatch.setattr(simulation, "run_batch", lambda cfgs, on_done=None: sent.extend(c["out"] for c in cfgs))
    src = ROOT / "experiments/headline/iid"
    argv = ["--rounds", "8", "--attacks", "alie,sign-flip,label-flip,boundary", "--policies",
            "lookahead,oblivious,random", "--out", str(tmp_path)]  # docs/results.md's command
    shutil.copy(src / "runs.csv", tmp_path / "runs.csv")
    shutil.copy(src / "curves.csv", tmp_path / "curves.csv")
    assert headline.main(argv) == 0
    assert sent == []  # all 65 runs are in runs.csv
    assert (tmp_path / "table.md").read_text() == (src / "table.md").read_text()  # the same command, the same table
    rows = _csv(src / "runs.csv")
    with (tmp_path / "runs.csv").open("w", newline="") as fh:  # control: drop one row, that cell runs
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(r for r in rows if (r["policy"], r["attack"], r["seed"]) != ("random", "alie", "3"))
    headline.run(headline._args(argv))
    assert sent == [str(tmp_path / "runs" / "random__alie__3")]


def test_bell_drain_federated_runs_are_a_sweep(tmp_path: Path, local_batch: list[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    drain = _script("experiments/attacks/bell_drain.py")
    argv = ["--nodes", "6", "--rounds", "2", "--seeds", "1", "--drain", "0,4", "--quotas", "none,4",
            "--fed-seeds", "1", "--fed-rounds", "1", "--fed-clients", "5", "--out", str(tmp_path)]
    argv += [x for kv in SETS for x in ("--set", kv)]
    assert drain.main(argv) == 0
    rows: list[dict[str, Any]] = _csv(tmp_path / "federated.csv")
    assert [(r["attack"], r["quota"]) for r in rows] == [("none", "none"), ("bell-drain", "none"), ("bell-drain", "4")]
    for r in rows:
        summary = json.loads((tmp_path / "runs" / f"{r['attack']}__q{r['quota']}__1" / "summary.json").read_text())
        assert summary["config"]["attack"] == r["attack"] and float(r["final"]) == summary["metrics"]["accuracy"]["final"]
        assert summary["config"]["broker"]["quota"] == (None if r["quota"] == "none" else int(r["quota"]))
    assert float(rows[1]["drained_per_round"]) > 0 == float(rows[0]["drained_per_round"])
    drain.federated(drain._args([*argv, "--resume"]), tmp_path)
    assert len(local_batch) == 3  # --resume: federated.csv is the cache
    sent: list[str] = []
    monkeypatch.setattr(simulation, "run_batch", lambda cfgs, on_done=None: sent.extend(c["out"] for c in cfgs))
    drain.federated(drain._args(argv), tmp_path)
    assert len(sent) == 3  # without it every federated run runs again, as the script always did


def test_the_committed_federated_zoo_reads_back_as_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """experiments/ceas/federated_zoo.py (issue 16 item 5) with its defaults on a copy of the committed
    runs.csv runs nothing and rebuilds the committed table.md; control: drop one CEAS row at
    alpha 0.5 and exactly that cell runs."""
    zoo = _script("experiments/ceas/federated_zoo.py")
    sent: list[str] = []
    monkeypatch.setattr(simulation, "run_batch", lambda cfgs, on_done=None: sent.extend(c["out"] for c in cfgs))
    src = ROOT / "experiments/ceas/federated_zoo"
    shutil.copy(src / "runs.csv", tmp_path / "runs.csv")
    assert zoo.main(["--out", str(tmp_path)]) == 0
    assert sent == []
    assert (tmp_path / "table.md").read_text() == (src / "table.md").read_text()
    rows = _csv(src / "runs.csv")
    drop = next(r for r in rows if r["alpha"] == "0.5" and r["strategy"] == "ceas" and r["attack"] == "boundary")
    with (tmp_path / "runs.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(r for r in rows if r is not drop)
    zoo.run(zoo._args(["--out", str(tmp_path)]))
    assert len(sent) == 1 and "boundary" in sent[0] and "ceas" in sent[0] and sent[0].endswith(drop["seed"]), sent
