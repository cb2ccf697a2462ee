"""Device calibrations (issue 15 item 4) without qiskit: the routed program, its exact simulation,
the calibration records and their errors. ``test_aer_crosscheck.py`` compares with qiskit-aer.

* Routing: with every error off, the device program is the model's ideal circuit (its CX
  sequence is the ring of CNOTs); a program missing one CX is told apart (negative control).
* The Pauli-basis simulator against an independent dense density matrix (Kraus operators and
  explicit Pauli twirls, numpy) of the same program on a strongly noisy synthetic device, and
  against the same reference without relaxation (negative control).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fedqnn.noise import (
    Calibration,
    apply_calibration,
    calibration_for,
    device_calibration,
    load_calibration_file,
)
from fedqnn.quantum.density import (
    amplitude_damping_kraus,
    phase_damping_kraus,
    relaxation_parameters,
)
from fedqnn.quantum.device_sim import DeviceNoise, device_confusion, device_probs
from fedqnn.quantum.device_spec import (
    DeviceSpec,
    LinkCal,
    QubitCal,
    effective_p,
    effective_r,
    layer_program,
)
from fedqnn.quantum.statevector import circuit_state
from fedqnn.schema import ConfigError


def synthetic(n: int, noisy: float = 1.0) -> DeviceSpec:
    """A made-up device with strong, distinct errors per qubit and link (errors x ``noisy``)."""
    g = np.random.default_rng(n)
    qubits = tuple(QubitCal(t1=float(g.uniform(4e-6, 8e-6)), t2=float(g.uniform(3e-6, 9e-6)),
                            sx_error=0.01 * noisy, sx_time=5e-8, p10=float(g.uniform(0, 0.05)),
                            p01=float(g.uniform(0.02, 0.1))) for _ in range(n))
    links = tuple(LinkCal(0.03 * noisy, float(g.uniform(2e-7, 4e-7)), 0.05 * noisy, float(g.uniform(2e-7, 4e-7)))
                  for _ in range(n - 1))
    return DeviceSpec("synthetic", tuple(range(n)), qubits, links, "test")


def _params(n: int, layers: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    angles = (torch.rand((3, layers, n), generator=g, dtype=torch.float64) - 0.5) * 2 * math.pi
    weights = torch.rand((layers, n, 3), generator=g, dtype=torch.float64) * 2 * math.pi
    return angles, weights


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_noise_free_device_program_is_the_model_circuit(n: int) -> None:
    angles, weights = _params(n, 3)
    ideal = circuit_state(angles, weights).reshape(3, -1).abs() ** 2
    off = DeviceNoise(synthetic(n), 3, scale=0.0, relaxation=False)
    assert torch.allclose(device_probs(angles, weights, off), ideal, atol=1e-12)
    mask = torch.ones(3, n)
    mask[1, 0] = 0  # one CNOT of the ring missing: must be told apart
    assert not torch.allclose(device_probs(angles, weights, off), circuit_state(angles, weights, mask).reshape(3, -1).abs() ** 2,
                              atol=1e-3)


def _dense_reference(spec: DeviceSpec, angles: np.ndarray, weights: np.ndarray, layers: int,
                     relaxation: bool = True) -> np.ndarray:
    """diag ρ of the program by an explicit 2^n x 2^n density matrix (qubit 0 most significant)."""
    n = spec.n
    eye, x = np.eye(2), np.array([[0, 1], [1, 0]], dtype=complex)
    paulis = [eye, x, np.array([[0, -1j], [1j, 0]]), np.diag([1.0, -1.0])]

    def embed(ops: dict[int, np.ndarray]) -> np.ndarray:
        out = np.ones((1, 1))
        for q in range(n):
            out = np.kron(out, ops.get(q, eye))
        return out

    def relax(rho: np.ndarray, q: int, t: float) -> np.ndarray:
        if not relaxation:
            return rho
        c = spec.qubits[q]
        gamma, lam = relaxation_parameters(t, c.t1, min(c.t2, 2 * c.t1))
        for kraus in (amplitude_damping_kraus(gamma), phase_damping_kraus(lam)):
            rho = sum(embed({q: k.numpy()}) @ rho @ embed({q: k.numpy()}).conj().T for k in kraus)
        return rho

    def depolarize(rho: np.ndarray, qs: tuple[int, ...], lam: float) -> np.ndarray:
        twirl = [embed({q: paulis[i] for q, i in zip(qs, combo)}) for combo in np.ndindex(*(4,) * len(qs))]
        return (1 - lam) * rho + lam * sum(p @ rho @ p.conj().T for p in twirl) / len(twirl)

    def cx(a: int, b: int) -> np.ndarray:
        p0, p1 = np.diag([1.0, 0.0]), np.diag([0.0, 1.0])
        return embed({a: p0}) + embed({a: p1, b: x})

    from tests.quantum.aer_reference import _u

    rho = np.zeros((2**n, 2**n), dtype=complex)
    rho[0, 0] = 1
    for layer in range(layers):
        u = embed({q: _u(angles[layer, q], weights[layer, q]) for q in range(n)})
        rho = u @ rho @ u.conj().T
        for op in layer_program(spec, layer):
            if op.kind == "u":
                for _ in range(2):
                    rho = relax(depolarize(rho, op.qubits, op.lam), op.qubits[0], op.time)
            elif op.kind == "idle":
                rho = relax(rho, op.qubits[0], op.time)
            else:
                g = cx(*op.qubits)
                rho = depolarize(g @ rho @ g.T, op.qubits, op.lam)
                for q in op.qubits:
                    rho = relax(rho, q, op.time)
    return np.real(np.diag(rho))


def test_pauli_basis_simulator_matches_a_dense_density_matrix() -> None:
    n, layers = 3, 2
    spec = synthetic(n)
    angles, weights = _params(n, layers, seed=1)
    ours = device_probs(angles[:1], weights, DeviceNoise(spec, layers))[0].numpy()
    ref = _dense_reference(spec, angles[0].numpy(), weights.numpy(), layers)
    assert np.abs(ours - ref).max() < 1e-10
    wrong = _dense_reference(spec, angles[0].numpy(), weights.numpy(), layers, relaxation=False)
    assert np.abs(ours - wrong).max() > 1e-2  # negative control: relaxation matters at this T1
    ours_no_relax = device_probs(angles[:1], weights, DeviceNoise(spec, layers, relaxation=False))[0].numpy()
    assert np.abs(ours_no_relax - wrong).max() < 1e-10


def test_device_layer_trains_and_its_gradient_is_finite() -> None:
    from fedqnn.models import QuantumLayer

    spec = synthetic(4)
    layer = QuantumLayer(4, 2, device="torch", seed=0)
    apply_calibration(layer, device_calibration(spec, 128, 2))
    layer.shot_generator = torch.Generator().manual_seed(0)
    layer.train()
    angles, _ = _params(4, 2)
    out = layer(angles.requires_grad_(True))
    assert out.shape == (3, 7) and torch.all(out.abs() <= 1.0)
    assert torch.all(((out.detach() * 128).round() - out.detach() * 128).abs()[:, :4] < 1e-9)  # k/S values
    out.sum().backward()
    assert torch.isfinite(layer.weights.grad).all() and layer.weights.grad.abs().sum() > 0


def test_effective_parameters_and_records() -> None:
    spec = synthetic(4)
    cal = device_calibration(spec, 256, 2)
    assert cal.r == pytest.approx(np.mean([(q.p10 + q.p01) / 2 for q in spec.qubits]))
    assert 0 < effective_p(synthetic(4, 0.5), 2) < cal.p < 0.75  # more gate error: larger p
    m = device_confusion(spec)
    assert torch.allclose(m.sum(1), torch.ones(4, 2, dtype=torch.float64))
    assert cal.as_metrics().keys() == {"cal_p", "cal_r", "cal_shots"}
    assert Calibration(0.01, 0.02, 64).to_dict() == {"p": 0.01, "r": 0.02, "shots": 64}  # unchanged for uniform
    assert DeviceSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert effective_r(spec) == cal.r


def test_calibration_file_with_devices(tmp_path, monkeypatch) -> None:
    from fedqnn.config import build_config

    spec = synthetic(4)
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({"node-0": {"shots": 128, "device": spec.to_dict()}, "node-1": {"p": 0.01}}))
    cfg = build_config({"qpu": {"calibration_file": str(path)}, "noise": "homogeneous"})
    c0, c1 = calibration_for(cfg, "node-0"), calibration_for(cfg, "node-1")
    assert c0.device == spec and c0.shots == 128 and c0 == device_calibration(spec, 128, cfg["model"]["layers"])
    assert c1.device is None and c1.p == 0.01
    assert calibration_for(cfg, "node-2") == calibration_for(build_config({"noise": "homogeneous"}), "node-2")


@pytest.mark.parametrize("entry, says", [
    ({"device": {"backend": "x"}}, "missing key(s) layout, links, qubits"),
    ({"p": 0.01, "device": {}}, "p and r are derived from 'device'"),
    ({"device": {**synthetic(2).to_dict(), "links": []}}, "n - 1 links"),
    ({"device": {**synthetic(2).to_dict(), "qubits": [{**synthetic(2).to_dict()["qubits"][0], "t1": -1.0}] * 2}},
     "qubits[0].t1: expected a number"),
])
def test_bad_device_records_name_the_field(tmp_path, entry, says) -> None:
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({"node-0": entry}))
    with pytest.raises(ConfigError) as err:
        load_calibration_file(path)
    assert says in str(err.value) and "qpu.calibration_file[node-0]" in str(err.value)


def test_device_list_matches_the_documented_one() -> None:
    pytest.importorskip("qiskit_ibm_runtime", reason="the 'devices' extra (qiskit-ibm-runtime) is not installed")
    from fedqnn.quantum.devices import DEVICES, device_spec

    assert len(DEVICES) == 8
    cfg_nodes = [calibration_for(_devices_cfg(), f"node-{k}").device.backend for k in range(10)]
    assert cfg_nodes == [DEVICES[k % 8] for k in range(10)]
    spec = device_spec("fake_manila", 4)
    assert spec.layout == (1, 2, 3, 4)  # fake_manila is the chain 0-1-2-3-4; 1-4 has the best fidelities
    assert spec.n == 4 and all(0 < q.t1 < 1e-2 for q in spec.qubits)


def _devices_cfg():
    from fedqnn.config import build_config

    return build_config({"noise": "devices"})


def test_parameter_shift_on_a_device_estimates_the_noisy_gradient() -> None:
    """Shot-measured parameter shift through the device program has the exact noisy expectation's
    gradient as its mean (the channels do not depend on the angles); the noiseless gradient,
    the negative control, is told apart."""
    from fedqnn.models import QuantumLayer

    spec = synthetic(3)
    angles, _ = _params(3, 1, seed=2)
    grads = {}
    for mode, shots in (("parameter-shift", 4096), ("backprop", 0)):
        layer = QuantumLayer(3, 1, device="torch", diff_method=mode, seed=1)
        apply_calibration(layer, device_calibration(spec, shots, 1))
        layer.shot_generator = torch.Generator().manual_seed(5)
        layer.train()
        layer(angles)[:, :3].sum().backward()
        grads[mode] = layer.weights.grad.clone()
    clean = QuantumLayer(3, 1, device="torch", seed=1)
    clean.train()
    clean(angles)[:, :3].sum().backward()
    # 3 samples x 3 readouts, each shift term of variance <= 1/(2S): se <= 3 sqrt(1/4096) ~ 0.05
    assert (grads["parameter-shift"] - grads["backprop"]).abs().max() < 0.15
    assert (clean.weights.grad - grads["backprop"]).abs().max() > 0.3


def test_devices_profile_refuses_partitioned_models() -> None:
    from fedqnn.config import build_config

    with pytest.raises(ConfigError, match=r"noise=devices: .* partition.kind='circuit'"):
        build_config({"noise": "devices", "partition": {"kind": "circuit"}})
    assert build_config({"noise": "devices"})["noise"] == "devices"
