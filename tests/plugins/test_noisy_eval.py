"""``eval_noisy``: the global model evaluated on the reference QPU (fedqnn/noisy_eval.py)."""

from __future__ import annotations

import statistics

import pytest
import torch

import fedqnn.noisy_eval as noisy_eval
from fedqnn.config import build_config
from fedqnn.noise import Calibration, calibration_for
from fedqnn.server_app import run_server
from fedqnn.tasks import get_task
from tests.faults.helpers import LocalGrid, config, rows


def _run(out, **kw):
    cfg = config(out, rounds=2, **kw)
    run_server(LocalGrid(cfg["clients"]), cfg)
    return rows(out)


def test_rows_carry_eval_noisy_and_nothing_else_changes(tmp_path, monkeypatch) -> None:
    on = _run(tmp_path / "on")
    again = _run(tmp_path / "again")
    import fedqnn.plugins as plugins

    monkeypatch.setattr(plugins, "BUILTINS", tuple(b for b in plugins.BUILTINS if b != "noisy_eval"))
    off = _run(tmp_path / "off")
    strip = [{k: v for k, v in r.items() if k not in ("wall_s", "eval_noisy")} for r in on]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"} for r in off]  # eval etc. untouched
    for r, r2 in zip(on, again, strict=True):
        assert set(r["eval_noisy"]) == set(r["eval"])  # same inner keys
        assert r["eval_noisy"] != r["eval"]  # the reference QPU is noisy
        assert r["eval_noisy"] == r2["eval_noisy"]  # deterministic given the seed
    assert all("eval_noisy" not in r for r in off)


def test_a_resumed_run_has_the_same_eval_noisy(tmp_path) -> None:
    from fedqnn import checkpoint

    full = config(tmp_path / "full", rounds=3)
    run_server(LocalGrid(5), full)
    out = tmp_path / "cut"
    run_server(LocalGrid(5), config(out, rounds=2))
    cfg = checkpoint.config_for_resume(out)
    cfg["rounds"] = 3
    run_server(LocalGrid(5, first_id=77), cfg, resume=True)
    assert [r["eval_noisy"] for r in rows(out)] == [r["eval_noisy"] for r in rows(tmp_path / "full")]


def test_the_reference_qpu_is_the_fleet_median() -> None:
    cfg = build_config({"clients": 5, "seed": 3})
    nodes = [f"node-{i}" for i in range(5)]
    cals = [calibration_for(cfg, n) for n in nodes]
    ref = noisy_eval.reference_calibration(cfg, nodes)
    assert ref.p == statistics.median(c.p for c in cals)
    assert ref.r == statistics.median(c.r for c in cals)
    assert ref.shots in {c.shots for c in cals}


def test_off_for_a_noiseless_fleet_classical_models_and_pennylane_devices() -> None:
    assert noisy_eval.from_config(build_config({"noise": "noiseless"})) is None
    assert noisy_eval.from_config(build_config({"model.classical": True})) is None
    assert noisy_eval.from_config(build_config({})) is not None
    noisy_eval_on = noisy_eval.from_config(build_config({"noise": "noiseless", "qpu.nodes": {"node-0": {"p": 0.01}}}))
    assert noisy_eval_on is not None  # records make a fleet noisy


def test_evaluate_noisy_restores_the_layer() -> None:
    cfg = build_config({"task": "digits", "data.test_samples": 30})
    task = get_task("digits")
    model = task.build_model(cfg)
    model.eval()
    sets = task.test_data(cfg)
    q = model.quantum
    q.set_noise(0.01, 0.02, 128)
    before = task.evaluate(model, sets)
    cal = Calibration(0.05, 0.03, 64)
    got = noisy_eval.evaluate_noisy(task, model, sets, cal, torch.Generator().manual_seed(0))
    assert set(got) == set(before) and got != before
    assert (q.depolarizing, q.readout_error, q.shots, q.training) == (0.01, 0.02, 128, False)
    assert task.evaluate(model, sets) == before
    again = noisy_eval.evaluate_noisy(task, model, sets, cal, torch.Generator().manual_seed(0))
    assert again == got


@pytest.mark.parametrize("shots", [0, 256])
def test_analytic_reference_is_the_exact_noisy_metric(shots: int) -> None:
    cfg = build_config({"task": "digits", "data.test_samples": 30})
    task = get_task("digits")
    model = task.build_model(cfg)
    sets = task.test_data(cfg)
    a = noisy_eval.evaluate_noisy(task, model, sets, Calibration(0.05, 0.03, shots), torch.Generator().manual_seed(1))
    b = noisy_eval.evaluate_noisy(task, model, sets, Calibration(0.05, 0.03, shots), torch.Generator().manual_seed(2))
    assert (a == b) == (shots == 0)  # analytic: no randomness; shots: the generator matters
