"""``fedqnn attack-matrix`` end to end: one runtime for all cells, n/a cells, resume, and a cell
that repeats exactly as a standalone run."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

import fedqnn
from fedqnn.config import build_config

pytestmark = pytest.mark.slow

BASE = """
[matrix]
strategies = ["median", "krum"]
attacks = ["ipm"]
fractions = [0.2]
seeds = [4]
clients = 4
rounds = 2

[fedqnn]
min_replies = 2
"train.epochs" = 1
"data.samples_per_client" = 16
"data.test_samples" = 30
"""


def _rows(path):
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_matrix_runs_on_one_runtime_marks_na_resumes_and_repeats(tmp_path):
    spec = tmp_path / "grid.toml"
    spec.write_text(BASE)
    out = tmp_path / "m"
    cmd = [sys.executable, "-m", "fedqnn.cli", "attack-matrix", str(spec), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("on one simulation runtime") == 1
    rows = _rows(out / "results.csv")
    assert len(rows) == 2
    krum = [r for r in rows if r["strategy"] == "krum"]
    assert krum and all(r["final_metric"] == "n/a" for r in krum)  # 4 < 2f + 3 with f = 1
    ran = [r for r in rows if r["strategy"] != "krum"]
    assert all(float(r["final_metric"]) > 0 for r in ran)
    assert (out / "heatmap.png").stat().st_size > 0 and (out / "curves.png").stat().st_size > 0
    # rerun: every cell is done, nothing runs again
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "on one simulation runtime" not in again.stdout
    assert len(_rows(out / "results.csv")) == 2
    # a cell run inside the batch equals the same config run on its own runtime
    cell = out / "cells" / "median__aware__ipm__0.2__4"
    cfg = json.loads((cell / "summary.json").read_text())["config"]
    solo = tmp_path / "solo"
    fedqnn.run(build_config({**cfg, "out": str(solo)}))
    evals = lambda d: [json.loads(line)["eval"] for line in (d / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert evals(cell) == evals(solo)
