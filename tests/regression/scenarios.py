"""Seeded runs whose every output is pinned bit for bit (issue 14: redesign without changing behaviour).

Each scenario is a small federated run through the real round loop (``run_server``) and the real
``ClientApp`` on the in-process :class:`tests.faults.helpers.LocalGrid`. What is pinned: every
``metrics.jsonl`` row without ``wall_s``, and ``summary.json`` without its timings, ``config.out``
and ``manifest`` (software versions and git commit). Floats are compared exactly: JSON keeps
``repr``, which round-trips a float.

Regenerate only when behaviour is *meant* to change (that belongs in its own commit)::

    python -m tests.regression.scenarios
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).parent / "data" / "runs.json"

DIGITS = {"task": "digits", "clients": 7, "byzantine_fraction": 0.1}

# name -> overrides on tests.faults.helpers.SMALL (5 clients, 3 rounds, seed 3)
SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "policy_oblivious": {"broker.policy": "oblivious"},
    "policy_random": {"broker.policy": "random", "broker.outage_prob": 0.2},
    "policy_oracle": {"broker.policy": "oracle"},
    "policy_off": {"broker.policy": "off"},
    "qkd": {"auth": "qkd", "broker.F0": 0.99, "broker.F_min": 0.95, "qkd.pairs_per_round": 12000},
    "qkd_abort": {"auth": "qkd", "broker.F0": 0.9, "broker.F_min": 0.8, "qkd.pairs_per_round": 3000},
    "auth_off_dropout": {"auth": "off", "faults.dropout": 0.3, "attack": "sign-flip"},
    "partition_unitary": {"partition": "unitary", "model.layers": 2},
    "partition_circuit": {"partition": "circuit", "model.layers": 2},
    "partition_circuit_adaptive": {"partition": "circuit", "partition.rank": "adaptive", "model.layers": 2},
    "heat_homogeneous": {"task": "heat", "noise": "homogeneous", "attack": "none"},
    "digits_dirichlet": {**DIGITS, "data.split": "dirichlet", "attack": "label-flip"},
    **{f"digits_{s}": {**DIGITS, "strategy": s, "attack": "alie"}
       for s in ("fedavg", "krum", "multikrum", "median", "trimmed-mean", "bulyan", "nnm-cc")},
    **{f"attack_{a}": {"attack": a, "rounds": 2}
       for a in ("sign-flip", "gaussian", "scaled", "label-flip", "ipm", "mimic", "min-max", "min-sum",
                 "stamp-inflation", "replay", "impersonation")},
}
# run 2 rounds, then resume to the 3 of "default": must equal "default"
RESUMED = "default"


def strip_summary(summary: dict[str, Any]) -> dict[str, Any]:
    s = {k: v for k, v in summary.items() if k not in ("total_wall_s", "process_wall_s", "manifest")}
    s["config"] = {k: v for k, v in s["config"].items() if k != "out"}
    return s


def outputs(out: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    return {"rows": [{k: v for k, v in r.items() if k != "wall_s"} for r in rows],
            "summary": strip_summary(summary)}


def run_scenario(name: str, root: Path) -> dict[str, Any]:
    from fedqnn.server_app import run_server
    from tests.faults.helpers import LocalGrid, config

    cfg = config(root / name, **SCENARIOS[name])
    run_server(LocalGrid(cfg["clients"]), cfg)
    return outputs(root / name)


def run_resumed(root: Path) -> dict[str, Any]:
    """SCENARIOS[RESUMED] cut after round 2 and resumed (fresh grid, other node ids) to its end."""
    from fedqnn import checkpoint
    from fedqnn.server_app import run_server
    from tests.faults.helpers import LocalGrid, config

    out = root / "resumed"
    full = config(out, **SCENARIOS[RESUMED])
    short = config(out, **{**SCENARIOS[RESUMED], "rounds": full["rounds"] - 1})
    run_server(LocalGrid(short["clients"]), short)
    cfg = checkpoint.config_for_resume(out)
    cfg["rounds"] = full["rounds"]
    run_server(LocalGrid(cfg["clients"], first_id=77), cfg, resume=True)
    return outputs(out)


# one cell of ``fedqnn attack-matrix`` on the Simulation Engine: its results.csv row is pinned
MATRIX_ARGS = ["--strategies", "ceas", "--attacks", "ipm", "--fractions", "0.2", "--policies", "aware",
               "--seeds", "5", "--clients", "5", "--rounds", "2"]


def run_matrix_cell(root: Path) -> dict[str, Any]:
    import csv
    import os
    import subprocess

    out = root / "matrix"
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "fedqnn.cli", "attack-matrix", *MATRIX_ARGS, "--out", str(out)],
                   check=True, env=env, capture_output=True, text=True, timeout=900)
    with (out / "results.csv").open() as fh:
        table = list(csv.DictReader(fh))
    (cell,) = (out / "cells").iterdir()
    return {"results.csv": table, "cell": outputs(cell)}


def main(argv: list[str]) -> int:
    import tempfile

    from flwr.supercore.task_identity import TaskIdentity  # what tests/conftest.py sets

    TaskIdentity.task_id = TaskIdentity.run_id = 1
    TaskIdentity.node_id = 0
    names = argv or list(SCENARIOS)
    data = json.loads(FIXTURE.read_text()) if FIXTURE.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"recording {name}", flush=True)
            if name == "resumed":
                data[name] = run_resumed(Path(tmp))
            elif name == "matrix":
                data[name] = run_matrix_cell(Path(tmp))
            else:
                data[name] = run_scenario(name, Path(tmp))
    FIXTURE.write_text(json.dumps(data, sort_keys=True, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
