"""``fedqnn bench spine``: orchestration overhead and simulator speed, side by side in one run.

(a) wall time of one federated round (10 clients, FedAvg, noiseless, no broker or signatures: the
orchestration alone) on Flower's Simulation Engine, against
(b) the same clients' local training in one process without Flower, divided by the cores used;
goal (a)/(b) <= 1.5.  Then the QNN's training throughput (samples/s, forward + backward) for each
device option next to the plain-torch statevector of the same circuit (the floor); goal: the
default device within 2x of the floor.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from typing import Any

import torch

from fedqnn.config import build_config

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3, help="rounds of the Flower run (round 1 is warm-up)")
    p.add_argument("--qubits", type=int, nargs="+", default=[4, 6])
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--devices", nargs="+", default=["torch", "default.qubit", "lightning.qubit"])
    p.add_argument("--skip-flower", action="store_true")


def _flower_vs_plain(args: argparse.Namespace) -> None:
    from fedqnn.simulation import run_simulation_from_config
    from fedqnn.tasks import get_task
    from fedqnn.training import train_local

    # orchestration overhead only: the same local training on both sides (FedAvg, noiseless QPUs,
    # no broker, no signatures, no attackers); the default physics adds its own costs on top
    base: dict[str, Any] = {"clients": args.clients, "rounds": args.rounds, "progress": False, "seed": 0,
                            "strategy": "fedavg", "noise": "noiseless", "broker.policy": "off", "auth": "off",
                            "attack": "none", "byzantine_fraction": 0.0}
    with tempfile.TemporaryDirectory() as out:
        cfg = build_config(base, {"out": out})
        t0 = time.perf_counter()
        summary = run_simulation_from_config(cfg, validated=True)
        total = time.perf_counter() - t0
        from fedqnn.results import read_metrics

        rows = read_metrics(out)
    flower_rounds = [r["wall_s"] for r in rows[1:]] or [rows[0]["wall_s"]]
    flower = statistics.median(flower_rounds)
    # (b): the same clients, same config, same rounds' work, in this process without Flower
    task = get_task(cfg["task"])
    global_model = task.build_model(cfg)
    datas = [task.client_data(cfg, i, cfg["clients"]) for i in range(cfg["clients"])]
    torch.set_num_threads(1)
    plain_rounds = []
    for r in range(2, cfg["rounds"] + 1):
        t0 = time.perf_counter()
        for i in range(cfg["clients"]):
            m = copy.deepcopy(global_model)
            train_local(m, task, datas[i], cfg, r, i)
        plain_rounds.append(time.perf_counter() - t0)
    cores = min(os.cpu_count() or 1, cfg["clients"])
    plain = statistics.median(plain_rounds) / cores
    print("== (a) Flower Simulation Engine vs (b) plain local training / cores ==")
    print(f"clients={cfg['clients']}  cores={cores}  start-up+run total {total:.1f} s "
          f"({summary['rounds_completed']} rounds)")
    print(f"(a) Flower round (median of rounds 2..{cfg['rounds']}): {flower:8.3f} s")
    print(f"(b) plain training / {cores} cores:                {plain:8.3f} s")
    print(f"(a)/(b) = {flower / plain:.2f}   goal <= 1.5")


def _throughput(device: str, qubits: int, layers: int, batch: int, repeats: int) -> float | None:
    from fedqnn.models import QuantumLayer

    diff = "adjoint" if device.startswith("lightning") else "backprop"
    try:
        layer = QuantumLayer(qubits, layers, device=device, diff_method=diff)
    except Exception as exc:  # noqa: BLE001 - report, don't crash the benchmark
        print(f"  {device}: unavailable ({exc.__class__.__name__}: {exc})")
        return None
    angles = torch.randn(batch, layers, qubits, dtype=torch.float64)
    times = []
    for _ in range(repeats + 1):
        layer.zero_grad()
        t0 = time.perf_counter()
        layer(angles).sum().backward()
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times[1:])


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    if not args.skip_flower:
        _flower_vs_plain(args)
    print("\n== QNN training throughput (forward + backward, samples/s) vs plain-torch floor ==")
    print(f"layers={args.layers} batch={args.batch}; default device: {build_config()['model']['device']}")
    header = f"{'qubits':>6} " + " ".join(f"{d:>18}" for d in args.devices) + "   ratio floor/device"
    print(header)
    for q in args.qubits:
        res = {d: _throughput(d, q, args.layers, args.batch, args.repeats) for d in args.devices}
        floor = res.get("torch")
        cells = " ".join(f"{(v or float('nan')):18.1f}" for v in res.values())
        ratios = ", ".join(
            f"{d}: {floor / v:.2f}x" for d, v in res.items() if v and floor and d != "torch"
        )
        print(f"{q:>6} {cells}   {ratios}")
    return 0
