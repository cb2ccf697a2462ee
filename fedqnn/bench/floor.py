"""The local-training floor of a federated round, measured without Flower.

A round of a federation asks every selected client to train locally; with ``W`` clients training
at once (one per core with ``num_cpus_per_client = 1``) the round can be no faster than

    floor = (sum over the round's selected clients of their local training time) / W,
    W = min(cores, floor(cores / CPUs per ClientApp), clients),

the clients' own work spread perfectly over the cores, with no orchestration, serialisation,
verification or aggregation. This module measures it: in this one process, single-threaded,
for the same config and seed, each selected client trains as its ClientApp would (the cached
model reloaded with the global weights, the node's QPU calibration (p, r, shots) set, the same
RNG streams, half-shot twin trainings when ``ceas.half_shots``). The client's set-up (model
construction, data partitioning) is done once beforehand, as a warm client process caches it.

:class:`ClientSecondsProbe` measures the same inside a run, under the run's own load: a round
plug-in that writes ``client_train_s``, the sum of the replies' ``train_seconds`` (each client's
own timing of its training loop), into the round's row, so ``client_train_s / W`` is the floor
of that very round (``fedqnn bench scale`` adds it to the runs it measures).
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

from fedqnn.plugins import RoundPlugin, RoundState

__all__ = ["Floor", "measure_floor", "workers", "ClientSecondsProbe", "PROBE"]


#: the probe as a ``plugins`` entry of a config
PROBE = "fedqnn.bench.floor:ClientSecondsProbe"


class ClientSecondsProbe(RoundPlugin):
    """Adds ``client_train_s`` (sum of the round's replies' ``train_seconds``) to each row."""

    name = "client_seconds"

    def __init__(self, cfg: dict[str, Any] | None = None) -> None:
        self._seconds = 0.0

    def after_replies(self, state: RoundState) -> None:
        self._seconds = sum(float(m.content["metrics"].get("train_seconds", 0.0))
                            for m in state.replies if not m.has_error() and "metrics" in m.content)

    def on_record(self, state: RoundState, row: dict[str, Any]) -> None:
        row["client_train_s"] = round(self._seconds, 4)


@dataclass
class Floor:
    """The floor of one config: seconds per round (median over the measured rounds)."""

    s_per_round: float  # median over rounds of (sum of client training seconds) / workers
    workers: int
    participants: float  # mean clients trained per round
    client_s: float  # mean local training seconds of one client
    rounds: list[float]  # each measured round's summed client seconds (before dividing)


def workers(cfg: dict[str, Any], cores: int | None = None) -> int:
    """W = min(cores, floor(cores / CPUs per ClientApp), clients), at least 1: the clients that
    train at once on ``cores`` (default: this machine's), each on a core of its own."""
    from fedqnn.sections.simulation import client_cpus

    cores = (os.cpu_count() or 1) if cores is None else cores
    return max(1, min(cores, int(cores // client_cpus(cfg)), cfg["clients"]))


def _selected(cfg: dict[str, Any], server_round: int) -> list[int]:
    """Partition ids the server's seeded uniform selection takes in ``server_round`` (every node
    eligible, as in a run without an eligibility plug-in)."""
    from fedqnn.nodes import node_order, participants_per_round
    from fedqnn.seeding import rng

    names = sorted((f"node-{i}" for i in range(cfg["clients"])), key=node_order)
    k = participants_per_round(cfg["fraction_train"], len(names))
    pick = rng(cfg["seed"], "select", server_round).choice(len(names), size=k, replace=False)
    return sorted(int(names[i].rsplit("-", 1)[1]) for i in pick)


def _train_one(model: Any, state: dict[str, Any], task: Any, data: Any, cfg: dict[str, Any],
               server_round: int, pid: int) -> float:
    """One client's local training as ``clients.qpu_app.local_train`` does it; its seconds."""
    from fedqnn.noise import calibration_for
    from fedqnn.training import train_local, train_local_half_shots

    t0 = time.perf_counter()
    model.load_state_dict(state)
    quantum = getattr(model, "quantum", None)
    noisy = quantum is not None and hasattr(quantum, "set_noise")
    if noisy:
        cal = calibration_for(cfg, f"node-{pid}")
        quantum.set_noise(cal.p, cal.r, cal.shots)
    if cfg["ceas"]["half_shots"] and noisy:
        train_local_half_shots(model, task, data, cfg, server_round, pid)
    else:
        train_local(model, task, data, cfg, server_round, pid)
    return time.perf_counter() - t0


def measure_floor(cfg: dict[str, Any], rounds: int = 2, cores: int | None = None) -> Floor:
    """The floor of ``cfg`` over its rounds ``1..rounds`` (at most ``cfg['rounds']``), in one
    single-threaded process; partitioned configs (``partition`` unitary | circuit) are refused."""
    import torch

    from fedqnn.partitions.federated import kind_of
    from fedqnn.tasks import get_task

    if kind_of(cfg) != "data":
        raise ValueError(f"partition: the floor measures data-partitioned runs only, got {kind_of(cfg)!r}")
    if rounds < 1:
        raise ValueError(f"rounds: expected >= 1, got {rounds}")
    torch.set_num_threads(1)
    task = get_task(cfg["task"])
    model = task.build_model(cfg)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    datas: dict[int, Any] = {}
    summed, per_client = [], []
    for r in range(1, min(rounds, cfg["rounds"]) + 1):
        total = 0.0
        for pid in _selected(cfg, r):
            if pid not in datas:
                datas[pid] = task.client_data(cfg, pid, cfg["clients"])
            s = _train_one(model, state, task, datas[pid], cfg, r, pid)
            total += s
            per_client.append(s)
        summed.append(total)
    w = workers(cfg, cores)
    return Floor(s_per_round=statistics.median(summed) / w, workers=w,
                 participants=len(per_client) / len(summed), client_s=statistics.fmean(per_client),
                 rounds=summed)
