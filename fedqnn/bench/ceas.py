"""``fedqnn bench ceas``: the cost of CEAS's physics, side by side in one run.

1. Stamp cost: the server's per-round work for the stamps (QFI on the probe batch, simulated
   shrink factors for the round's calibrations) against one round of local training of the
   participants (summed over clients, as one core would do it). Goal <= 0.25.
2. Noisy simulation (exact density matrix + readout + multinomial shots, ``model.device=torch``)
   against noiseless, same batch, forward + backward. Goal <= 3 (``default.mixed`` measured 19x
   here). Beside it the pre-issue-15 estimator (one shared Pauli trajectory per sample,
   independent binomials) and PennyLane ``default.mixed`` for the same circuit, for reference.
3. Per-shot variance on the digits circuit at p = 0.05: s²/σ² of 2000 S-shot estimates of every
   observable against the physical σ² = (1 - μ²)/S (μ the exact channel mean), for the
   simulator and for the pre-issue-15 estimator, at S = 64 and 1024 (1 = physical).
4. Gradients with shots: straight-through (exact ∂μ of the noisy channel) against the
   shot-measured parameter-shift rule (``model.diff_method=parameter-shift``): cost of forward +
   backward and the spread of the loss gradient of the quantum weights over shot seeds.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from fedqnn.config import build_config

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--qubits", type=int, nargs="+", default=[4, 6])
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-mixed", action="store_true", help="skip the default.mixed reference")
    p.add_argument("--sections", nargs="+", choices=("stamps", "noisy", "variance", "shift"),
                   default=["stamps", "noisy", "variance", "shift"], help="which parts to run (default: all)")


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _stamp_cost(args: argparse.Namespace) -> None:
    from fedqnn.noise import calibration_for, simulated_shrink
    from fedqnn.qfi import quantum_fisher
    from fedqnn.tasks import get_task
    from fedqnn.training import train_local

    cfg = build_config({"clients": args.clients})
    task = get_task(cfg["task"])
    model = task.build_model(cfg)
    probe = task.probe_inputs(cfg, cfg["ceas"]["probe_size"])
    cals = [calibration_for(cfg, f"node-{i}") for i in range(args.clients)]

    def stamps() -> None:
        with torch.no_grad():
            angles = model.angles(probe)
        w = model.quantum.weights.detach()
        quantum_fisher(angles, w)
        for cal in cals:
            simulated_shrink(angles, w, cal, cfg["ceas"]["trajectories"])

    datas = [task.client_data(cfg, i, args.clients) for i in range(args.clients)]

    def local_round() -> None:
        for i in range(args.clients):
            m = copy.deepcopy(model)
            m.quantum.set_noise(cals[i].p, cals[i].r, cals[i].shots)
            train_local(m, task, datas[i], cfg, 1, i)

    t_stamp = _median_time(stamps, max(1, args.repeats // 2))
    t_train = _median_time(local_round, 1)
    print("== 1. stamp cost per round vs the round's local training ==")
    print(f"clients={args.clients}, probe={cfg['ceas']['probe_size']}, trajectories={cfg['ceas']['trajectories']}, "
          f"{cfg['train']['epochs']} epochs x {cfg['data']['samples_per_client']} samples per client")
    print(f"stamps (QFI + shrink factors): {t_stamp:8.3f} s")
    print(f"local training, all clients:   {t_train:8.3f} s")
    print(f"ratio = {t_stamp / t_train:.3f}   goal <= 0.25")


def _noisy_cost(args: argparse.Namespace) -> None:
    from fedqnn.models import QuantumLayer
    from fedqnn.quantum.qpu import _legacy_shared_trajectory

    print("\n== 2. noisy vs noiseless simulation, forward + backward, same batch ==")
    print(f"{'qubits':>6} {'noiseless s':>12} {'noisy s':>10} {'ratio':>7} {'old ratio':>10} "
          f"{'default.mixed s':>16} {'mixed ratio':>12}")
    for q in args.qubits:
        layer = QuantumLayer(q, args.layers, device="torch")
        layer.train()
        angles = torch.randn(args.batch, args.layers, q, dtype=torch.float64)
        gen = torch.Generator().manual_seed(0)
        layer.shot_generator = gen

        def step(layer: QuantumLayer = layer, angles: torch.Tensor = angles) -> None:
            layer.zero_grad()
            layer(angles).sum().backward()

        def old(layer: QuantumLayer = layer, angles: torch.Tensor = angles, gen: torch.Generator = gen) -> None:
            layer.zero_grad()
            _legacy_shared_trajectory(angles, layer.weights, 0.02, 0.02, 256, gen).sum().backward()

        layer.set_noise(0.0, 0.0, 0)
        clean = _median_time(step, args.repeats)
        layer.set_noise(0.02, 0.02, 256)
        noisy = _median_time(step, args.repeats)
        before = _median_time(old, args.repeats)
        mixed = float("nan")
        if not args.skip_mixed:
            mixed = _mixed_time(q, args.layers, angles, layer.weights.detach(), max(1, args.repeats // 2))
        print(f"{q:>6} {clean:12.4f} {noisy:10.4f} {noisy / clean:7.2f} {before / clean:10.2f} "
              f"{mixed:16.4f} {mixed / clean:12.2f}")
    print("goal: noisy / noiseless <= 3 (p = 0.02, r = 0.02, 256 shots)")


def _variance_check(draws: int = 2000, p: float = 0.05) -> None:
    from fedqnn.quantum.qpu import _legacy_shared_trajectory
    from fedqnn.tasks import get_task

    cfg = build_config({"task": "digits"})
    task = get_task("digits")
    model = task.build_model(cfg)
    with torch.no_grad():
        angles = model.angles(task.probe_inputs(cfg, 1)).repeat(draws, 1, 1)
    layer = model.quantum
    layer.train()
    layer.set_noise(p, 0.0, 0)
    with torch.no_grad():
        mu = layer(angles[:1])[0]
    print(f"\n== 3. per-shot variance, digits circuit ({layer.qubits} qubits, {layer.layers} layers), "
          f"p = {p}: s²/σ², σ² = (1 - μ²)/S, {draws} estimates ==")
    print(f"{'shots':>6} {'simulator mean':>15} {'max':>6} {'old mean':>9} {'old max':>8}")
    for shots in (64, 1024):
        layer.set_noise(p, 0.0, shots)
        layer.shot_generator = torch.Generator().manual_seed(shots)
        with torch.no_grad():
            new = layer(angles).var(0) / ((1 - mu**2) / shots)
            old = _legacy_shared_trajectory(angles, layer.weights, p, 0.0, shots, torch.Generator().manual_seed(shots))
        old = old.var(0) / ((1 - mu**2) / shots)
        print(f"{shots:>6} {float(new.mean()):15.2f} {float(new.max()):6.2f} {float(old.mean()):9.2f} "
              f"{float(old.max()):8.2f}")
    print("physical: 1 (sd of a ratio ≈ 0.03 at 2000 estimates)")


def _shift_check(args: argparse.Namespace, seeds: int = 20) -> None:
    cal = (0.02, 0.02, 256)
    print(f"\n== 4. gradients with shots, digits model, batch {args.batch}, p = r = {cal[0]}, S = {cal[2]} ==")
    print(f"{'qubits':>6} {'method':>16} {'fwd+bwd s':>10} {'x noiseless':>12} {'grad sd / |exact|':>18} "
          f"{'rms err / |exact|':>18}")
    for q in args.qubits:
        _shift_rows(q, args, cal, seeds)
    print(f"({seeds} shot seeds; sd and rms error of the weight gradient relative to the exact noisy gradient)")


def _shift_rows(q: int, args: argparse.Namespace, cal: tuple[float, float, int], seeds: int) -> None:
    from fedqnn.tasks import get_task

    task = get_task("digits")
    cfg = build_config({"task": "digits", "model.qubits": q, "model.layers": args.layers})
    model = task.build_model(cfg)
    data = task.client_data(cfg, 0, 1)
    x, y = data.x[: args.batch], data.target[: args.batch]
    layer = model.quantum
    layer.train()

    def grad(seed: int) -> torch.Tensor:
        layer.shot_generator = torch.Generator().manual_seed(seed)
        model.zero_grad()
        task.loss(model, x, y, None).backward()
        return layer.weights.grad.flatten().clone()

    layer.set_noise(0.0, 0.0, 0)
    clean = _median_time(lambda: grad(0), args.repeats)
    layer.set_noise(cal[0], cal[1], 0)
    exact = grad(0)
    for method in ("backprop", "parameter-shift"):
        layer.diff_method = method
        layer.set_noise(*cal)
        t = _median_time(lambda: grad(0), args.repeats)
        g = torch.stack([grad(s) for s in range(seeds)])
        norm = float(exact.norm())
        sd = float(g.var(0).sum().sqrt()) / norm
        rms = float(((g - exact) ** 2).sum(1).mean().sqrt()) / norm
        print(f"{q:>6} {method:>16} {t:10.4f} {t / clean:12.2f} {sd:18.3f} {rms:18.3f}")


def _mixed_time(qubits: int, layers: int, angles: torch.Tensor, weights: torch.Tensor, repeats: int) -> float:
    import pennylane as qml

    dev = qml.device("default.mixed", wires=qubits)

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def circ(w, a):
        for layer in range(layers):
            qml.AngleEmbedding(a[..., layer, :], wires=range(qubits), rotation="Y")
            qml.StronglyEntanglingLayers(w[layer : layer + 1], wires=range(qubits),
                                         ranges=[(layer % (qubits - 1)) + 1])
            for i in range(qubits):
                qml.DepolarizingChannel(0.02, wires=i)
        return [qml.expval(qml.PauliZ(i)) for i in range(qubits)]

    w = weights.clone().requires_grad_(True)

    def step() -> None:
        w.grad = None
        out = circ(w, angles)
        torch.stack(list(out)).sum().backward()

    return _median_time(step, repeats)


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    if "stamps" in args.sections:
        _stamp_cost(args)
    if "noisy" in args.sections:
        _noisy_cost(args)
    if "variance" in args.sections:
        _variance_check()
    if "shift" in args.sections:
        _shift_check(args)
    return 0
