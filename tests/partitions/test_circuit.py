"""The partitioned simulator: noiseless = the plain circuit, trajectories average to the exact
density matrix, gradients flow, masks and validation."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from fedqnn.models import QuantumLayer
from fedqnn.partitions.circuit import (
    cut_gates,
    expectations_from_probs,
    full_cnot_mask,
    make_partition,
    simulate,
)
from fedqnn.partitions.model import PartitionedQuantumLayer
from fedqnn.quantum.statevector import circuit_state, expectations

SPECS = [("data", {}), ("unitary", {"qpus": 2}), ("unitary", {"qpus": 3}),
         ("circuit", {"qpu_qubits": 2}), ("circuit", {"qpu_qubits": 3})]


def _inputs(b=3, L=3, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(b, L, n, generator=g, dtype=torch.float64) * 2 * math.pi
    w = torch.rand(L, n, 3, generator=g, dtype=torch.float64) * 2 * math.pi
    return a, w


@pytest.mark.parametrize("kind,kw", SPECS)
@pytest.mark.parametrize("method", ["trajectory", "density"])
def test_noiseless_partition_is_the_plain_circuit(kind, kw, method):
    a, w = _inputs()
    spec = make_partition(kind, 4, 3, **kw)
    got = expectations_from_probs(simulate(spec, a, w, method=method))
    assert torch.allclose(got, expectations(circuit_state(a, w)), atol=1e-12)


def test_cut_mask_is_the_statevector_mask():
    a, w = _inputs()
    spec = make_partition("circuit", 4, 3, qpu_qubits=2)
    cm = [i % 2 == 0 for i in range(len(cut_gates(spec)))]
    full = full_cnot_mask(spec, cm)
    assert int((~full).sum()) == cm.count(False)
    got = expectations_from_probs(simulate(spec, a, w, cut_mask=cm))
    assert torch.allclose(got, expectations(circuit_state(a, w, mask=full)), atol=1e-12)


@pytest.mark.parametrize("kind,kw", [("unitary", {"qpus": 2}), ("circuit", {"qpu_qubits": 2})])
def test_trajectories_average_to_the_exact_channel(kind, kw):
    """20000 trajectories vs the density matrix: every observable within 5 standard errors."""
    a, w = _inputs(b=1)
    spec = make_partition(kind, 4, 3, **kw)
    exact = expectations_from_probs(simulate(spec, a, w, pair_fidelity=0.8, depolarizing=0.02,
                                             method="density"))[0]
    clean = expectations_from_probs(simulate(spec, a, w, method="density"))[0]
    assert (exact - clean).abs().max() > 0.02  # the noise is visible
    g = torch.Generator().manual_seed(1)
    s = 20000
    traj = expectations_from_probs(simulate(spec, a.expand(s, -1, -1), w, pair_fidelity=0.8,
                                            depolarizing=0.02, generator=g))
    se = traj.std(0) / math.sqrt(s) + 1e-12
    assert ((traj.mean(0) - exact).abs() / se).max() < 5.0


def test_density_gradient_matches_finite_differences():
    a, w = _inputs(b=2, L=2, n=4)
    spec = make_partition("circuit", 4, 2, qpu_qubits=2)
    w = w.clone().requires_grad_(True)

    def f(weights):
        return expectations_from_probs(simulate(spec, a, weights, pair_fidelity=0.9, method="density")).sum()

    f(w).backward()
    eps = 1e-6
    for idx in [(0, 1, 0), (1, 2, 1), (1, 3, 2)]:
        wp, wm = w.detach().clone(), w.detach().clone()
        wp[idx] += eps
        wm[idx] -= eps
        fd = (f(wp) - f(wm)) / (2 * eps)
        assert w.grad[idx].item() == pytest.approx(fd.item(), abs=1e-7)


def test_trajectory_gradient_flows_and_is_seeded():
    a, w = _inputs(b=8)
    spec = make_partition("unitary", 4, 3, qpus=3)
    outs = []
    for _ in range(2):
        ww = w.clone().requires_grad_(True)
        e = expectations_from_probs(simulate(spec, a, ww, pair_fidelity=0.7,
                                             generator=torch.Generator().manual_seed(5)))
        e.sum().backward()
        assert torch.isfinite(ww.grad).all() and ww.grad.abs().sum() > 0
        outs.append(e.detach())
    assert torch.equal(outs[0], outs[1])


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match="partition:"):
        make_partition("pipeline", 4, 2)
    with pytest.raises(ValueError, match="partition.qpus"):
        make_partition("unitary", 4, 2, qpus=3)
    with pytest.raises(ValueError, match="partition.qpu_qubits"):
        make_partition("circuit", 4, 2, qpu_qubits=4)
    with pytest.raises(ValueError, match="partition.qpu_qubits"):
        make_partition("circuit", 4, 2)
    spec = make_partition("circuit", 4, 2, qpu_qubits=2)
    a, w = _inputs(L=2)
    with pytest.raises(ValueError, match="cut_mask"):
        simulate(spec, a, w, cut_mask=[True])
    with pytest.raises(ValueError, match="angles"):
        simulate(spec, a[:, :1], w)
    with pytest.raises(ValueError, match="method"):
        simulate(spec, a, w, method="mps")
    with pytest.raises(ValueError, match="pair_fidelity"):
        PartitionedQuantumLayer(4, 2, "unitary", qpus=2, pair_fidelity=0.1)


def test_layer_is_a_drop_in_for_quantum_layer():
    ql = QuantumLayer(4, 3, device="torch", seed=3)
    for kind, kw in SPECS:
        pl = PartitionedQuantumLayer(4, 3, kind, seed=3, **kw)
        assert torch.equal(pl.weights, ql.weights)  # same init from the same seed
        assert list(dict(pl.named_parameters())) == list(dict(ql.named_parameters()))
        assert list(pl.state_dict()) == list(ql.state_dict())  # the mask is not exchanged
        a, _ = _inputs(b=5, L=3)
        pl.eval()
        ql.eval()
        assert torch.allclose(pl(a), ql(a), atol=1e-12)  # noiseless pairs by default
        assert pl.out_features == ql.out_features
    pl = PartitionedQuantumLayer(4, 3, "circuit", qpu_qubits=2, pair_fidelity=0.8, seed=3)
    pl.set_noise(0.01, 0.02, 100)
    pl.train()
    model = torch.nn.Sequential(torch.nn.Linear(6, 12, dtype=torch.float64), torch.nn.Unflatten(1, (3, 4)), pl)
    out = model(torch.randn(7, 6, dtype=torch.float64))
    assert out.shape == (7, 7)
    out.sum().backward()
    assert pl.weights.grad is not None and model[0].weight.grad is not None
    clone = pickle.loads(pickle.dumps(pl))
    assert torch.equal(clone.weights, pl.weights)


def test_unitary_layer_blocks_for_layerwise_consensus():
    pl = PartitionedQuantumLayer(4, 5, "unitary", qpus=2, qpu_names=["node-0", "node-1"])
    assert pl.layer_blocks() == {"node-0": (0, 3), "node-1": (3, 5)}
    blocks = pl.parameter_blocks(prefix="quantum.")
    assert blocks == {"node-0": {"quantum.weights": slice(0, 3)}, "node-1": {"quantum.weights": slice(3, 5)}}
    covered = torch.zeros(5, dtype=torch.int64)
    for b in blocks.values():
        covered[b["quantum.weights"]] += 1
    assert covered.tolist() == [1] * 5  # a partition of the layers


def test_cut_noise_is_on_in_eval_and_masking_changes_nothing_else():
    a, _ = _inputs(b=4)
    pl = PartitionedQuantumLayer(4, 3, "circuit", qpu_qubits=2, pair_fidelity=0.8, method="density").eval()
    clean = PartitionedQuantumLayer(4, 3, "circuit", qpu_qubits=2, method="density").eval()
    assert not torch.allclose(pl(a), clean(a), atol=1e-3)
    pl.set_cut_mask([False] * len(cut_gates(pl.spec)))
    shapes = [p.shape for p in pl.parameters()]
    assert shapes == [torch.Size([3, 4, 3])]
    with pytest.raises(ValueError, match="cut_mask"):
        pl.set_cut_mask([True])
