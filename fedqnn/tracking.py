"""Experiment trackers as a round plugin: TensorBoard and MLflow (``tracking = ...``).

After every round (``round_end``: the row is on disk) the tracker logs the row's scalars at step
= round: every ``eval`` metric (``eval/<name>``), ``train_loss``, ``num_participants``,
``rejected/<reason>`` counts, ``bell/served`` and ``bell/utilization``, and the weights' summary
(``weights/max``, ``weights/effective_n`` = 1 / Σ w², Kish's effective sample size). TensorBoard
writes event files under ``DIR/tensorboard``; MLflow logs the flattened config as params, the same
metrics, and at ``teardown`` the run's files (``metrics.jsonl``, ``summary.json``,
``metrics.png``) as artifacts, to ``tracking.uri`` (default ``file:DIR/mlruns``). The MLflow run
id is the plugin's checkpoint state, so a resumed run keeps logging into the same MLflow run.

Both need the optional extra ``track`` (``pip install -e ".[track]"``); a clear error names it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fedqnn.plugins import PluginError, RoundPlugin, RoundState, RunContext

__all__ = ["TrackingPlugin", "from_config", "row_scalars"]

_EXTRA = 'the optional extra "track" (pip install -e ".[track]")'


def row_scalars(row: dict[str, Any]) -> dict[str, float]:
    """The scalars a tracker logs for one ``metrics.jsonl`` row (None values left out)."""
    out: dict[str, float] = {}
    for k, v in (row.get("eval") or {}).items():
        if v is not None:
            out[f"eval/{k}"] = float(v)
    for k in ("train_loss", "num_participants"):
        if row.get(k) is not None:
            out[k] = float(row[k])
    for rej in row.get("rejected") or []:
        key = f"rejected/{rej['reason'].split(':')[0]}"
        out[key] = out.get(key, 0.0) + 1.0
    for k in ("served", "utilization"):
        if (row.get("bell") or {}).get(k) is not None:
            out[f"bell/{k}"] = float(row["bell"][k])
    w = [float(x) for x in (row.get("weights") or {}).values()]
    if w and sum(x * x for x in w) > 0:
        out["weights/max"] = max(w)
        out["weights/effective_n"] = 1.0 / sum(x * x for x in w)
    return out


class _TensorBoard:
    def __init__(self, out: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise PluginError(f"tracking: tensorboard needs {_EXTRA} ({exc})") from exc
        self.writer = SummaryWriter(str(out / "tensorboard"))

    def log(self, step: int, scalars: dict[str, float]) -> None:
        for k, v in scalars.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self, out: Path) -> None:
        self.writer.close()


class _MLflow:
    def __init__(self, cfg: dict[str, Any], out: Path, run_id: str | None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise PluginError(f"tracking: mlflow needs {_EXTRA} ({exc})") from exc
        uri = cfg.get("tracking", {}).get("uri") or f"file:{(out / 'mlruns').resolve()}"
        if uri.startswith("file:"):  # MLflow 3 keeps its file store only on request
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        self.run_id = run_id or self._new_run(cfg)

    def _new_run(self, cfg: dict[str, Any]) -> str:
        from fedqnn.config import flatten

        exp = self.client.get_experiment_by_name("fedqnn")
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment("fedqnn")
        run = self.client.create_run(exp_id, run_name=Path(cfg["out"]).name)
        for k, v in flatten(cfg).items():
            self.client.log_param(run.info.run_id, k, str(v)[:6000])
        return run.info.run_id

    def log(self, step: int, scalars: dict[str, float]) -> None:
        for k, v in scalars.items():
            self.client.log_metric(self.run_id, k, v, step=step)

    def close(self, out: Path) -> None:
        for name in ("metrics.jsonl", "summary.json", "metrics.png"):
            if (out / name).is_file():
                self.client.log_artifact(self.run_id, str(out / name))
        self.client.set_terminated(self.run_id)


class TrackingPlugin(RoundPlugin):
    name = "tracking"

    def __init__(self, kinds: list[str]) -> None:
        self.kinds = kinds
        self.mlflow_run: str | None = None
        self.backends: list[Any] = []

    def setup(self, run: RunContext) -> None:
        self.out = Path(run.cfg["out"])
        self.cfg = run.cfg

    def _open(self) -> None:  # after a resume's load_state_dict, so MLflow reuses its run
        if self.backends:
            return
        for kind in self.kinds:
            if kind == "tensorboard":
                self.backends.append(_TensorBoard(self.out))
            else:
                backend = _MLflow(self.cfg, self.out, self.mlflow_run)
                self.mlflow_run = backend.run_id
                self.backends.append(backend)

    def filter_eligible(self, state: RoundState, nodes: list[str]) -> list[str]:
        self._open()
        return nodes

    def round_end(self, state: RoundState, row: dict[str, Any]) -> None:
        scalars = row_scalars(row)
        for b in self.backends:
            b.log(state.round, scalars)

    def teardown(self, run: RunContext, summary: dict[str, Any]) -> None:
        self._open()
        for b in self.backends:
            b.close(self.out)

    def state_dict(self) -> dict[str, Any] | None:
        return {"mlflow_run": self.mlflow_run} if self.mlflow_run else None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mlflow_run = state.get("mlflow_run")


def from_config(cfg: dict[str, Any]) -> TrackingPlugin | None:
    from fedqnn.sections.tracking import trackers_of

    kinds = trackers_of(cfg.get("tracking", {}).get("kind", ""))
    return TrackingPlugin(kinds) if kinds else None
