"""Learning tasks: data, model, loss and metrics per task name (a registry, plug-in group
``fedqnn.tasks``).

| task | kind | metric (direction) | data |
|---|---|---|---|
| ``antiderivative`` | operator | ``rel_l2`` (min) | GRF inputs, s(y) = ∫_0^y u |
| ``heat`` | operator | ``rel_l2`` (min) | periodic GRF inputs, 1-D diffusion at T |
| ``digits`` | classification | ``accuracy`` (max) | scikit-learn digits, PCA features |

Relative L2 error of one output function: ||ŝ - s||_2 / ||s||_2 on the query grid, averaged over
samples. Operator tasks also report ``rel_l2_hires``: the same at sensor and query resolutions
never seen in training (2m - 1 sensors, ``data.eval_queries`` queries).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from fedqnn import data as D
from fedqnn.registry import TASKS
from fedqnn.schema import ConfigError

__all__ = ["Task", "TASKS", "get_task", "build_model", "LocalData"]


@dataclass
class LocalData:
    """Tensors of one client's (or the server's) data; ``y`` is the query grid of operator tasks."""

    x: torch.Tensor
    target: torch.Tensor
    y: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


class Task:
    name: str = ""
    kind: str = ""
    metric: str = ""
    direction: str = "min"

    def build_model(self, cfg: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    def client_data(self, cfg: dict[str, Any], partition_id: int, num_partitions: int) -> LocalData:
        raise NotImplementedError

    def test_data(self, cfg: dict[str, Any]) -> dict[str, LocalData]:
        """Named evaluation sets (the first is the headline metric's)."""
        raise NotImplementedError

    def loss(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: nn.Module, sets: dict[str, LocalData]) -> dict[str, float]:
        raise NotImplementedError

    def probe_inputs(self, cfg: dict[str, Any], n: int) -> torch.Tensor:
        """A public batch of inputs (the server's QFI probe), disjoint from clients' and test data."""
        raise NotImplementedError


def _shares(groups: np.ndarray, cfg: dict[str, Any], num_partitions: int) -> list[np.ndarray]:
    d = cfg["data"]
    if d["split"] == "iid":
        return D.iid_partition(len(groups), num_partitions, cfg["seed"])
    return D.dirichlet_partition(groups, num_partitions, d["alpha"], cfg["seed"])


class OperatorTask(Task):
    kind = "operator"
    metric = "rel_l2"
    direction = "min"

    def build_model(self, cfg: dict[str, Any]) -> nn.Module:
        from fedqnn.models import QuantumNeuralOperator

        return QuantumNeuralOperator(cfg, seed=cfg["seed"])

    @staticmethod
    def _tensors(pool: D.OperatorPool, idx: np.ndarray, sensors: int, queries: int) -> LocalData:
        u = D.resample(pool.u[idx], sensors)
        s = D.resample(pool.s[idx], queries)
        y = np.linspace(0.0, 1.0, queries)
        return LocalData(torch.tensor(u), torch.tensor(s), torch.tensor(y))

    def client_data(self, cfg: dict[str, Any], partition_id: int, num_partitions: int) -> LocalData:
        d = cfg["data"]
        pool = _cached_pool(self.name, cfg["seed"], num_partitions * d["samples_per_client"], d["length_scale"], "train")
        idx = _shares(pool.groups, cfg, num_partitions)[partition_id]
        return self._tensors(pool, idx, d["sensors"], d["queries"])

    def test_data(self, cfg: dict[str, Any]) -> dict[str, LocalData]:
        d = cfg["data"]
        pool = _cached_pool(self.name, cfg["seed"], d["test_samples"], d["length_scale"], "test")
        idx = np.arange(len(pool))
        return {
            "rel_l2": self._tensors(pool, idx, d["sensors"], d["queries"]),
            "rel_l2_hires": self._tensors(pool, idx, 2 * d["sensors"] - 1, d["eval_queries"]),
        }

    def probe_inputs(self, cfg: dict[str, Any], n: int) -> torch.Tensor:
        d = cfg["data"]
        pool = _cached_pool(self.name, cfg["seed"], n, d["length_scale"], "probe")
        return torch.tensor(D.resample(pool.u, d["sensors"]))

    def loss(self, model, x, target, y):  # type: ignore[override]
        return torch.mean((model(x, y) - target) ** 2)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, sets: dict[str, LocalData]) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, ds in sets.items():
            pred = model(ds.x, ds.y)
            err = torch.linalg.norm(pred - ds.target, dim=1) / torch.linalg.norm(ds.target, dim=1).clamp_min(1e-12)
            out[name] = float(err.mean())
            if name == self.metric:
                out["loss"] = float(torch.mean((pred - ds.target) ** 2))
        return out


class Antiderivative(OperatorTask):
    name = "antiderivative"


class Heat(OperatorTask):
    name = "heat"


@lru_cache(maxsize=8)
def _cached_pool(task: str, seed: int, num: int, length_scale: float, stream: str) -> D.OperatorPool:
    if task == "antiderivative":
        return D.antiderivative_pool(num, length_scale, seed, stream)
    if task == "heat":
        return D.heat_pool(num, length_scale, seed, stream)
    raise KeyError(task)


class Digits(Task):
    name = "digits"
    kind = "classification"
    metric = "accuracy"
    direction = "max"

    def build_model(self, cfg: dict[str, Any]) -> nn.Module:
        from fedqnn.models import QuantumClassifier

        return QuantumClassifier(cfg, num_classes=10, seed=cfg["seed"])

    def client_data(self, cfg: dict[str, Any], partition_id: int, num_partitions: int) -> LocalData:
        train, _ = D.digits_pool(cfg["model"]["features"], cfg["seed"])
        idx = _shares(train.labels, cfg, num_partitions)[partition_id][: cfg["data"]["samples_per_client"]]
        return LocalData(torch.tensor(train.features[idx]), torch.tensor(train.labels[idx]))

    def test_data(self, cfg: dict[str, Any]) -> dict[str, LocalData]:
        _, test = D.digits_pool(cfg["model"]["features"], cfg["seed"])
        n = min(cfg["data"]["test_samples"], len(test))
        return {"accuracy": LocalData(torch.tensor(test.features[:n]), torch.tensor(test.labels[:n]))}

    def probe_inputs(self, cfg: dict[str, Any], n: int) -> torch.Tensor:
        # public: the last n test images (the server evaluates on the first data.test_samples)
        _, test = D.digits_pool(cfg["model"]["features"], cfg["seed"])
        return torch.tensor(test.features[-n:])

    def loss(self, model, x, target, y):  # type: ignore[override]
        return nn.functional.cross_entropy(model(x), target)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, sets: dict[str, LocalData]) -> dict[str, float]:
        ds = sets["accuracy"]
        logits = model(ds.x)
        return {
            "accuracy": float((logits.argmax(1) == ds.target).double().mean()),
            "loss": float(nn.functional.cross_entropy(logits, ds.target)),
        }


# TASKS (fedqnn.registry) names the built-ins lazily as this module; here they are filled in.
for _task in (Antiderivative(), Heat(), Digits()):
    TASKS.provide(_task.name, _task)


def _load_plugins() -> None:
    for name, ep in TASKS.entry_points().items():
        if name not in TASKS:
            TASKS[name] = ep.load()()


def get_task(name: str) -> Task:
    if name not in TASKS:
        _load_plugins()
    if name not in TASKS:
        raise ConfigError(f"task: expected one of {', '.join(sorted(TASKS))}; got {name!r}")
    return TASKS[name]


def build_model(cfg: dict[str, Any]) -> nn.Module:
    """The task's model, initialised from the run seed (identical on server and clients)."""
    return get_task(cfg["task"]).build_model(cfg)
