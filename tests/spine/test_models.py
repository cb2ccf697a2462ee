import math

import pytest
import torch

from fedqnn.config import build_config
from fedqnn.models import (
    ClassicalSurrogate,
    ProductStateLayer,
    QuantumLayer,
    count_parameters,
    sample_expectations,
)
from fedqnn.quantum.qnode import make_qnode
from fedqnn.quantum.statevector import circuit_state, expectations
from fedqnn.tasks import get_task
from fedqnn.training import train_local


@pytest.mark.parametrize("qubits,layers", [(1, 1), (3, 2), (4, 3)])
def test_torch_statevector_matches_pennylane(qubits, layers):
    g = torch.Generator().manual_seed(qubits * 10 + layers)
    a = torch.randn(5, layers, qubits, generator=g, dtype=torch.float64)
    w = torch.randn(layers, qubits, 3, generator=g, dtype=torch.float64)
    ours = expectations(circuit_state(a, w))
    ref = make_qnode(qubits, layers, "default.qubit", "backprop", 0)(w, a)
    assert ours.shape == (5, 2 * qubits - 1)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)


def test_state_is_normalised_and_gradients_match_pennylane():
    a = torch.randn(3, 2, 3, dtype=torch.float64)
    w1 = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_(True)
    psi = circuit_state(a, w1)
    norms = (psi.abs() ** 2).flatten(1).sum(1)
    torch.testing.assert_close(norms, torch.ones(3, dtype=torch.float64))
    expectations(psi).sum().backward()
    make_qnode(3, 2, "default.qubit", "backprop", 0)(w2, a).sum().backward()
    torch.testing.assert_close(w1.grad, w2.grad, atol=1e-10, rtol=0)


@pytest.mark.parametrize("task", ["antiderivative", "heat", "digits"])
@pytest.mark.parametrize("device", ["torch", "default.qubit"])
def test_model_shapes_and_gradients_flow(task, device):
    cfg = build_config({"task": task, "model.device": device, "data.samples_per_client": 8, "noise": "noiseless"})
    t = get_task(task)
    model = t.build_model(cfg)
    data = t.client_data(cfg, 0, 2)
    if t.kind == "operator":
        out = model(data.x, data.y)
        assert out.shape == data.target.shape
    else:
        out = model(data.x)
        assert out.shape == (len(data), 10)
    loss = t.loss(model, data.x, data.target, data.y)
    loss.backward()
    qgrad = model.quantum.weights.grad
    assert qgrad is not None and torch.isfinite(qgrad).all() and qgrad.abs().sum() > 0


def test_operator_evaluates_at_unseen_resolutions():
    cfg = build_config({"data.sensors": 32, "data.queries": 16, "data.test_samples": 5})
    t = get_task("antiderivative")
    model = t.build_model(cfg)
    sets = t.test_data(cfg)
    hi = sets["rel_l2_hires"]
    assert hi.x.shape[1] == 63 and hi.y.shape[0] == cfg["data"]["eval_queries"]
    metrics = t.evaluate(model, sets)
    assert set(metrics) >= {"rel_l2", "rel_l2_hires", "loss"}
    assert all(math.isfinite(v) for v in metrics.values())


def test_loss_falls_on_a_tiny_task():
    cfg = build_config({"model.device": "torch", "train.epochs": 15, "train.lr": 0.03,
                        "data.samples_per_client": 32})
    t = get_task("antiderivative")
    model = t.build_model(cfg)
    data = t.client_data(cfg, 0, 1)
    before = float(t.loss(model, data.x, data.target, data.y))
    train_local(model, t, data, cfg, 1, 0)
    after = float(t.loss(model, data.x, data.target, data.y))
    assert after < 0.5 * before


def test_training_repeats_exactly_from_its_seed():
    cfg = build_config({"model.device": "torch", "data.samples_per_client": 16})
    t = get_task("antiderivative")
    states = []
    for _ in range(2):
        model = t.build_model(cfg)
        train_local(model, t, t.client_data(cfg, 1, 2), cfg, 3, 1)
        states.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(states[0], states[1])


def test_classical_surrogate_has_about_the_quantum_parameter_count():
    for qubits, layers in [(4, 2), (6, 3), (8, 4)]:
        q = count_parameters(QuantumLayer(qubits, layers, device="torch"))
        c = count_parameters(ClassicalSurrogate(qubits, layers))
        assert abs(c - q) <= (3 * qubits * layers + 2 * (2 * qubits - 1)) / 2, (q, c)


def _single_qubit_z(angles: torch.Tensor, theta: torch.Tensor, i: int) -> torch.Tensor:
    """<Z> of qubit i evolved alone by RY(a_l) then Rot(theta_l), l = 0..L-1 (2 x 2 matrices)."""
    from fedqnn.quantum.statevector import _rot, _ry

    psi = torch.zeros(angles.shape[0], 2, dtype=torch.complex128)
    psi[:, 0] = 1.0
    for layer in range(angles.shape[1]):
        psi = torch.einsum("bij,bj->bi", _ry(angles[:, layer, i]), psi)
        w = theta[layer, i]
        psi = psi @ _rot(w[0], w[1], w[2]).T
    return psi[:, 0].abs() ** 2 - psi[:, 1].abs() ** 2


def test_product_state_control_is_the_circuit_without_entanglement():
    """The fair classical control: same parameters and init as the quantum layer, outputs the
    product-state formulas <Z_i> (one qubit alone) and <Z_i Z_i+1> = <Z_i><Z_i+1>; the entangling
    layer (negative control) violates the factorisation."""
    qubits, layers = 4, 2
    ctrl, quantum = ProductStateLayer(qubits, layers, seed=3), QuantumLayer(qubits, layers, device="torch", seed=3)
    assert count_parameters(ctrl) == count_parameters(quantum) == 3 * qubits * layers
    assert torch.equal(ctrl.theta, quantum.weights)  # the same initial angles
    angles = torch.rand(16, layers, qubits, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    out = ctrl(angles)
    z = torch.stack([_single_qubit_z(angles, ctrl.theta.detach(), i) for i in range(qubits)], 1)
    torch.testing.assert_close(out[:, :qubits], z, rtol=0, atol=1e-12)
    torch.testing.assert_close(out[:, qubits:], z[:, :-1] * z[:, 1:], rtol=0, atol=1e-12)
    q = quantum(angles).detach()
    assert (q[:, qubits:] - q[:, :qubits - 1] * q[:, 1:qubits]).abs().max() > 0.05  # entangled: no product
    out.sum().backward()
    assert ctrl.theta.grad is not None and ctrl.theta.grad.abs().sum() > 0
    cfg = build_config({}, {"model.classical": True, "model.classical_layer": "product-state"})
    assert isinstance(get_task(cfg["task"]).build_model(cfg).quantum, ProductStateLayer)


def test_shot_sampling_is_unbiased_with_binomial_variance():
    mu = torch.tensor([[-0.6, 0.0, 0.9]], dtype=torch.float64).repeat(20000, 1)
    g = torch.Generator().manual_seed(1)
    est = sample_expectations(mu, shots=50, generator=g)
    torch.testing.assert_close(est.mean(0), mu[0], atol=0.01, rtol=0)
    expected_var = (1 - mu[0] ** 2) / 50
    torch.testing.assert_close(est.var(0), expected_var, atol=0.002, rtol=0.1)
