"""Noisy, heterogeneous QPUs: calibrations, their simulation, and the gradient shrink factor.

A QPU's calibration (Flower-free, deterministic from the run seed and the node name):

* ``p``: depolarising probability per qubit per layer. After every layer each qubit goes through
  D_p(ρ) = (1 - p) ρ + p/3 (XρX + YρY + ZρZ). Simulated exactly (the density matrix,
  :mod:`fedqnn.quantum.density`) up to ``EXACT_MAX_QUBITS`` = 10 qubits, so every shot has its own
  errors; wider registers fall back to Pauli trajectories (:func:`pauli_trajectory_gates`: with
  probability p a uniformly random X, Y or Z, one draw per sample, qubit and layer; the average
  over trajectories is exactly the channel; ``fedqnn.quantum.qpu`` states the variance excess).
* ``r``: symmetric readout error. Each measured bit flips with probability r: the confusion
  matrix [[1 - r, r], [r, 1 - r]] acts on the outcome distribution, so an observable of weight m
  (Z_i: m = 1, Z_i Z_j: m = 2) is shrunk exactly by (1 - 2r)^m.
* ``shots``: S bitstrings per sample, counts ~ Multinomial(S, P_read); every observable is
  estimated from the same counts, so a ±1 observable with channel mean μ has variance (1 - μ²)/S
  and ⟨Z_0⟩, ⟨Z_0 Z_1⟩ covary as on hardware (:mod:`fedqnn.quantum.readout`); 0 means analytic
  (the exact noisy expectation).

Shrink factor (how much the noise scales the measured signal and hence the gradient),
under the global-depolarising approximation used by the CEAS stamp:

    c = (1 - 4p/3)^(L n) (1 - 2r)^m

(every one of the L n noisy locations multiplies the surviving Pauli component by 1 - 4p/3; the
readout part is exact). ``tests/ceas`` measures it against the simulated shrink.

Real devices (``noise=devices``, ``docs/devices.md``): a :class:`Calibration` may carry a
:class:`fedqnn.quantum.device_spec.DeviceSpec` (per-qubit T1, T2, gate errors and durations,
readout P(1|0), P(0|1), on a chain layout of a published snapshot). The layer then runs the
device's routed gate program exactly (:mod:`fedqnn.quantum.device_sim`) with per-qubit readout
confusion, and ``p``, ``r`` hold the uniform equivalents that the stamps' product formula, the
broker and the noisy-evaluation reference use (:func:`fedqnn.quantum.device_spec.effective_p`:
same total Pauli contraction; :func:`~fedqnn.quantum.device_spec.effective_r`: mean flip);
:func:`simulated_shrink` of a device calibration is exact (its channel, no trajectories).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedqnn.quantum.device_spec import DeviceSpec, effective_p, effective_r
from fedqnn.quantum.pauli import pauli_trajectory_gates
from fedqnn.seeding import rng

__all__ = [
    "Calibration", "calibration_for", "calibrations", "load_calibration_file", "shrink_factor",
    "pauli_trajectory_gates", "apply_calibration", "device_calibration",
]

PROFILES = ("heterogeneous", "homogeneous", "noiseless", "devices")


@dataclass(frozen=True)
class Calibration:
    p: float  # depolarising probability per qubit per layer (a device: the effective p)
    r: float  # readout bit-flip probability (a device: the mean flip)
    shots: int  # 0 = analytic
    device: DeviceSpec | None = None  # per-qubit device data (noise=devices), None = uniform

    def as_metrics(self) -> dict[str, float]:
        return {"cal_p": float(self.p), "cal_r": float(self.r), "cal_shots": float(self.shots)}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"p": self.p, "r": self.r, "shots": self.shots}
        if self.device is not None:
            out["device"] = self.device.to_dict()
        return out


def device_calibration(spec: DeviceSpec, shots: int, layers: int) -> Calibration:
    """A device calibration with its effective uniform (p, r) for a model of ``layers`` layers."""
    return Calibration(effective_p(spec, layers), effective_r(spec), int(shots), spec)


def _assigned_device(cfg: dict[str, Any], node: str) -> DeviceSpec:
    """``noise=devices``: node-k runs DEVICES[k mod 8] (:data:`fedqnn.quantum.devices.DEVICES`) (a node
    name without an index: one drawn from the stream (seed, 'device', node)) on the backend's
    best chain of ``model.qubits`` qubits. Other assignments: ``fedqnn devices export`` and
    ``qpu.calibration_file``."""
    from fedqnn.quantum.devices import DEVICES, device_spec

    tail = node.rsplit("-", 1)[-1]
    k = int(tail) if tail.isdigit() else int(rng(cfg["seed"], "device", node).integers(len(DEVICES)))
    return device_spec(DEVICES[k % len(DEVICES)], cfg["model"]["qubits"])


def apply_calibration(layer: Any, cal: Calibration) -> None:
    """Set ``cal`` on a quantum layer: ``set_noise(p, r, shots)`` for a uniform calibration (as
    before), the device's gate program and per-qubit confusion for a device calibration."""
    if cal.device is None:
        layer.set_noise(cal.p, cal.r, cal.shots)
        return
    import inspect

    from fedqnn.quantum.device_sim import device_confusion, device_noise
    from fedqnn.schema import ConfigError

    if "channel" not in inspect.signature(layer.set_noise).parameters:
        raise ConfigError(f"noise=devices: the {type(layer).__name__} layer cannot run a device's gate program "
                          "(device calibrations need the data-partitioned QuantumLayer)")
    if cal.device.n != layer.qubits:
        raise ConfigError(f"device {cal.device.backend}: calibration of {cal.device.n} qubits, model.qubits = {layer.qubits}")
    layer.set_noise(0.0, device_confusion(cal.device), cal.shots, channel=device_noise(cal.device, layer.layers))


def calibration_for(cfg: dict[str, Any], node: str) -> Calibration:
    """The calibration of ``node`` under the profile ``cfg['noise']`` and the ranges ``cfg['qpu']``
    (the same for every strategy).

    ``heterogeneous`` (default): p log-uniform in [p_min, p_max], r uniform in [r_min, r_max],
    shots uniform from ``shots_choices``, each drawn from the stream (seed, 'calibration', node).
    ``homogeneous``: p = sqrt(p_min p_max), r = (r_min + r_max)/2, shots = the median choice.
    ``noiseless``: p = r = 0, analytic. ``devices``: a real device's snapshot per node
    (:func:`_assigned_device`), shots drawn as for ``heterogeneous``. Per-node records, applied over the profile in this order:
    ``qpu.calibration_file`` (a JSON or TOML file mapping a node name or partition id to
    ``{p, r, shots}`` or ``{device, shots}``: the server's calibration record, see
    :func:`load_calibration_file`), then ``qpu.nodes`` (the same mapping inline). A record with
    ``device`` sets a device calibration; one with ``p`` or ``r`` a uniform one; ``shots`` alone
    keeps the profile's calibration with those shots.
    """
    n = cfg["qpu"]
    profile = cfg["noise"]
    nodes = n.get("nodes") or {}
    override = nodes.get(node) or nodes.get(node.rsplit("-", 1)[-1])
    if n.get("calibration_file"):
        table = load_calibration_file(n["calibration_file"])
        recorded = table.get(node) or table.get(node.rsplit("-", 1)[-1])
        if recorded:
            override = {**recorded, **(override or {})}
    if profile == "noiseless":
        cal = Calibration(0.0, 0.0, 0)
    elif profile == "devices":
        g = rng(cfg["seed"], "calibration", node)
        shots = int(g.choice(np.asarray(n["shots_choices"], dtype=np.int64)))
        cal = device_calibration(_assigned_device(cfg, node), shots, cfg["model"]["layers"])
    elif profile == "homogeneous":
        choices = sorted(n["shots_choices"])
        cal = Calibration(math.sqrt(n["p_min"] * n["p_max"]), 0.5 * (n["r_min"] + n["r_max"]),
                          int(choices[len(choices) // 2]))
    else:
        g = rng(cfg["seed"], "calibration", node)
        p = math.exp(g.uniform(math.log(n["p_min"]), math.log(n["p_max"]))) if n["p_max"] > 0 else 0.0
        r = float(g.uniform(n["r_min"], n["r_max"]))
        shots = int(g.choice(np.asarray(n["shots_choices"], dtype=np.int64)))
        cal = Calibration(p, r, shots)
    if override:
        cal = _overridden(cfg, cal, override)
    return cal


def _overridden(cfg: dict[str, Any], cal: Calibration, override: dict[str, Any]) -> Calibration:
    from fedqnn.schema import ConfigError

    shots = int(override.get("shots", cal.shots))
    if "device" in override:
        spec = override["device"]
        if not isinstance(spec, DeviceSpec):
            spec = DeviceSpec.from_dict(spec, "qpu.nodes.device")
        if spec.n != cfg["model"]["qubits"]:
            raise ConfigError(f"device calibration {spec.backend}: {spec.n} qubits, expected model.qubits = "
                              f"{cfg['model']['qubits']}")
        return device_calibration(spec, shots, cfg["model"]["layers"])
    if cal.device is not None and not ({"p", "r"} & set(override)):
        return replace(cal, shots=shots)
    return Calibration(float(override.get("p", cal.p)), float(override.get("r", cal.r)), shots)


def _check_entry(where: str, entry: Any) -> dict[str, Any]:
    from fedqnn.schema import ConfigError

    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a table {{p, r, shots}}, got {entry!r}")
    unknown = sorted(set(entry) - {"p", "r", "shots", "device"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: p, r, shots, device)")
    out: dict[str, Any] = {}
    if "device" in entry:
        if {"p", "r"} & set(entry):
            raise ConfigError(f"{where}: p and r are derived from 'device'; give either {{device, shots}} or {{p, r, shots}}")
        out["device"] = DeviceSpec.from_dict(entry["device"], f"{where}.device").to_dict()  # checked, kept plain
    for key, lo, hi in (("p", 0.0, 0.75), ("r", 0.0, 0.5)):
        if key in entry:
            v = entry[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or not (lo <= float(v) <= hi):
                raise ConfigError(f"{where}.{key}: expected a number in [{lo}, {hi}], got {v!r}")
            out[key] = float(v)
    if "shots" in entry:
        v = entry["shots"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"{where}.shots: expected an integer >= 0 (0 = analytic), got {v!r}")
        out["shots"] = int(v)
    return out


_FILE_CACHE: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}


def load_calibration_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read ``qpu.calibration_file``: JSON (``{"node-0": {"p": .., "r": .., "shots": ..}}``) or TOML
    (``[node-0]`` tables, or all of them under ``[nodes]``). Keys are node names or partition
    ids; every entry is checked. Raises :class:`fedqnn.config.ConfigError` naming the problem."""
    import json
    import tomllib

    from fedqnn.schema import ConfigError

    p = Path(path)
    try:
        stat = p.stat()
    except OSError as exc:
        raise ConfigError(f"qpu.calibration_file: cannot read {str(path)!r} ({exc.strerror})") from exc
    key = (str(p.resolve()), stat.st_mtime_ns)
    if key in _FILE_CACHE:
        return _FILE_CACHE[key]
    text = p.read_text()
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"qpu.calibration_file: {str(path)!r} is not valid {p.suffix[1:].upper() or 'TOML'} ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("nodes"), dict) and len(data) == 1:
        data = data["nodes"]
    if not isinstance(data, dict):
        raise ConfigError(f"qpu.calibration_file: {str(path)!r} must map node names to {{p, r, shots}}")
    table = {str(k): _check_entry(f"qpu.calibration_file[{k}]", v) for k, v in data.items()}
    _FILE_CACHE.clear()
    _FILE_CACHE[key] = table
    return table


def calibrations(cfg: dict[str, Any], nodes: list[str]) -> dict[str, Calibration]:
    return {node: calibration_for(cfg, node) for node in nodes}


def shrink_factor(cal: Calibration, layers: int, qubits: int, weight: float = 1.0) -> float:
    """c = (1 - 4p/3)^(L n) (1 - 2r)^m (global-depolarising approximation; readout exact)."""
    return (1.0 - 4.0 * cal.p / 3.0) ** (layers * qubits) * (1.0 - 2.0 * cal.r) ** weight


def effective_shots(cal: Calibration, analytic_shots: float) -> float:
    """S for the variance model; analytic expectations count as ``analytic_shots``."""
    return float(cal.shots) if cal.shots > 0 else float(analytic_shots)


def simulated_shrink(
    angles: torch.Tensor, weights: torch.Tensor, cal: Calibration, trajectories: int = 32, seed: int = 0
) -> float:
    """The shrink factor c of ``cal`` measured by simulating its noise on a probe batch:

        c = Σ ⟨e_noisy, e_clean⟩ / Σ ⟨e_clean, e_clean⟩

    over the probe inputs, with e the 2n - 1 readout expectations, e_noisy averaged over
    ``trajectories`` Pauli trajectories (an unbiased estimate of the depolarising channel's mean,
    which is all c needs; the per-shot statistics of training do not enter) and multiplied by the
    exact readout shrink (1 - 2r)^m. The product formula (1 - 4p/3)^(L n) (1 - 2r)^m overstates the
    shrink (Z errors before a Z readout do not flip it; errors in the light cone's shadow do
    nothing): docs/ceas.md shows both against simulation.
    """
    from fedqnn.quantum.statevector import circuit_state, expectations, observable_weights

    with torch.no_grad():
        clean = expectations(circuit_state(angles, weights))
        if cal.device is not None:
            return _device_shrink(angles, weights, cal.device, clean)
        if cal.p <= 0 and cal.r <= 0:
            return 1.0
        b = angles.shape[0]
        rep = angles.repeat(trajectories, 1, 1)
        g = torch.Generator().manual_seed(int(seed))
        noisy = expectations(circuit_state(rep, weights, depolarizing=cal.p, generator=g))
        noisy = noisy.view(trajectories, b, -1).mean(0)
        noisy = noisy * (1.0 - 2.0 * cal.r) ** observable_weights(clean.shape[1] // 2 + 1)
        den = float((clean * clean).sum())
        return float((noisy * clean).sum()) / den if den > 0 else 1.0


def _device_shrink(angles: torch.Tensor, weights: torch.Tensor, spec: DeviceSpec, clean: torch.Tensor) -> float:
    """The least-squares slope of the device's exact noisy expectations on the clean ones, per
    observable j with its own intercept (centred over the probe inputs b):

        c = Σ_{b,j} (e_noisy - ē_noisy_j)(e_clean - ē_clean_j) / Σ_{b,j} (e_clean - ē_clean_j)²

    e_noisy from the gate program and the per-qubit readout confusion (exact: no trajectories, no
    shots). Centred because a device's noise is not unital: amplitude damping and asymmetric
    readout add an offset toward |0⟩ that does not scale the signal (nor the gradient); the
    uncentred ratio of the uniform profiles would count it, and can be <= 0 on a device."""
    from fedqnn.quantum.device_sim import device_confusion, device_noise, device_probs
    from fedqnn.quantum.readout import apply_confusion, observable_signs

    probs = apply_confusion(device_probs(angles, weights, device_noise(spec, angles.shape[1])), device_confusion(spec))
    noisy = probs @ observable_signs(angles.shape[-1])
    x, y = clean - clean.mean(0), noisy - noisy.mean(0)
    den = float((x * x).sum())
    return float((y * x).sum()) / den if den > 0 else 1.0
