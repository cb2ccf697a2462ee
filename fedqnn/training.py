"""Local training and evaluation, Flower-free (clients and benchmarks call these)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fedqnn.seeding import torch_generator
from fedqnn.tasks import LocalData, Task

__all__ = ["TrainResult", "train_local", "set_threads"]


@dataclass
class TrainResult:
    loss: float  # mean training loss over the local steps
    num_examples: int
    steps: int
    seconds: float


def set_threads(n: int) -> None:
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def train_local(
    model: nn.Module, task: Task, data: LocalData, cfg: dict[str, Any], server_round: int,
    partition_id: int, stream: str = "train", noise_stream: str = "qpu-noise",
) -> TrainResult:
    """``train.epochs`` epochs of ``train.optimizer`` (Adam or SGD) on shuffled mini-batches.

    The learning rate of round r is lr x lr_decay^(r - 1). Shuffling draws from the stream
    (seed, ``stream``, round, partition-id) and the QPU's noise (shots; trajectories when used) from
    (seed, ``noise_stream``, round, partition-id), so a run repeats exactly and the noise can be
    resampled with the data order fixed.
    """
    t = cfg["train"]
    gen = torch_generator(cfg["seed"], stream, server_round, partition_id)
    quantum = getattr(model, "quantum", None)
    if quantum is not None and hasattr(quantum, "shot_generator"):
        quantum.shot_generator = torch_generator(cfg["seed"], noise_stream, server_round, partition_id)
    lr = t["lr"] * t["lr_decay"] ** (server_round - 1)
    if t["optimizer"] == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    start = time.perf_counter()
    losses: list[float] = []
    n = len(data)
    for _ in range(t["epochs"]):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, t["batch_size"]):
            idx = order[i : i + t["batch_size"]]
            opt.zero_grad()
            loss = task.loss(model, data.x[idx], data.target[idx], data.y)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    model.eval()
    return TrainResult(
        loss=float(sum(losses) / max(len(losses), 1)),
        num_examples=n,
        steps=len(losses),
        seconds=time.perf_counter() - start,
    )


def train_local_half_shots(
    model: nn.Module, task: Task, data: LocalData, cfg: dict[str, Any], server_round: int, partition_id: int
) -> tuple[TrainResult, torch.Tensor]:
    """Two half-shot trainings from the same start, same data order, independent QPU noise.

    With S/2 shots each, D_a and D_b have covariance Σ_{S/2} = 2 Σ_S, so the returned model
    (the mean of the two, covariance Σ_S: the S-shot update's) is as noisy as one S-shot
    training, and the difference δ = D_a - D_b (of the quantum weights) has covariance 4 Σ_S:
    the server measures tr(F_Q Σ_k) as δᵀ F_Q δ / 4 (expected value).
    """
    import copy

    quantum = model.quantum
    shots = quantum.shots
    half = max(1, shots // 2) if shots else 0
    twin = copy.deepcopy(model)
    quantum.shots = half
    twin.quantum.shots = half
    res_a = train_local(model, task, data, cfg, server_round, partition_id, noise_stream="qpu-noise-a")
    res_b = train_local(twin, task, data, cfg, server_round, partition_id, noise_stream="qpu-noise-b")
    quantum.shots = shots
    delta = (model.quantum.weights.detach() - twin.quantum.weights.detach()).flatten().clone()
    with torch.no_grad():
        for p, q in zip(model.parameters(), twin.parameters()):
            p.add_(q).mul_(0.5)
    res = TrainResult(loss=0.5 * (res_a.loss + res_b.loss), num_examples=res_a.num_examples,
                      steps=res_a.steps, seconds=res_a.seconds + res_b.seconds)
    return res, delta
