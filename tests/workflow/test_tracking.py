"""Trackers as round plugins (issue 20): ``tracking=tensorboard`` and ``tracking=mlflow`` record
the run, read back with TensorBoard's own reader and MLflow's own client; several at once; a cut
and resume keeps logging into the same MLflow run. The control: a run without ``tracking``
writes neither (and its config hashes as before)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedqnn import checkpoint
from fedqnn.config import build_config, config_hash
from fedqnn.server_app import run_server
from fedqnn.tracking import row_scalars
from tests.faults.helpers import LocalGrid, config, rows

pytest.importorskip("tensorboard", reason="the 'track' extra is not installed")
pytest.importorskip("mlflow", reason="the 'track' extra is not installed")


def _scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def _mlflow_runs(uri: str) -> list:
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("fedqnn")
    return [] if exp is None else client.search_runs([exp.experiment_id])


def test_tensorboard_and_mlflow_record_every_round(tmp_path: Path) -> None:
    out, uri = tmp_path / "run", f"file:{tmp_path / 'store'}"
    cfg = config(out, rounds=2, tracking="tensorboard+mlflow", **{"tracking.uri": uri})
    run_server(LocalGrid(cfg["clients"]), cfg)
    written = rows(out)
    tb = _scalars(out / "tensorboard")
    for step, row in enumerate(written, start=1):
        for key, value in row_scalars(row).items():
            assert (step, pytest.approx(value, rel=1e-6)) in [(s, v) for s, v in tb[key]]
    assert "eval/rel_l2" in tb and "bell/served" in tb and "weights/effective_n" in tb
    (run,) = _mlflow_runs(uri)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    hist = client.get_metric_history(run.info.run_id, "eval/rel_l2")
    assert [(m.step, m.value) for m in hist] == [(r["round"], pytest.approx(r["eval"]["rel_l2"])) for r in written]
    assert run.data.params["strategy"] == "ceas" and run.data.params["tracking.kind"] == "tensorboard+mlflow"
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.jsonl", "summary.json", "metrics.png"} <= arts
    assert run.info.status == "FINISHED"


def test_a_resumed_run_logs_into_the_same_mlflow_run(tmp_path: Path) -> None:
    out, uri = tmp_path / "run", f"file:{tmp_path / 'store'}"
    run_server(LocalGrid(5), config(out, rounds=2, tracking="mlflow", **{"tracking.uri": uri}))
    run_server(LocalGrid(5, first_id=77), checkpoint.config_for_resume(out, rounds=3), resume=True)
    (run,) = _mlflow_runs(uri)  # one run, not two
    from mlflow.tracking import MlflowClient

    steps = [m.step for m in MlflowClient(tracking_uri=uri).get_metric_history(run.info.run_id, "train_loss")]
    assert sorted(set(steps)) == [1, 2, 3]


def test_control_no_tracking_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = config(out, rounds=1)
    assert "tracking" not in cfg and config_hash(cfg) == config_hash(build_config(cfg, {"tracking": "none"}))
    run_server(LocalGrid(5), cfg)
    assert not (out / "tensorboard").exists() and not (out / "mlruns").exists()


def test_an_unknown_tracker_is_a_config_error() -> None:
    from fedqnn.config import ConfigError

    with pytest.raises(ConfigError, match="tracking.kind: expected none, tensorboard, mlflow"):
        build_config({"tracking": "wandb"})
