"""Measured Schmidt ranks never exceed their entangler bound, and the bound is attained."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedqnn.partitions.adaptive import mask_for_rank
from fedqnn.partitions.circuit import cut_gates, make_partition, simulate
from fedqnn.partitions.schmidt import (
    circuit_unitary,
    cut_gate_counts,
    entangler_bound,
    measured_operator_ranks,
    measured_schmidt_ranks,
    operator_bounds,
    operator_schmidt_rank,
    schmidt_bounds,
    schmidt_rank,
)
from fedqnn.quantum.statevector import _apply_1q, _apply_cnot, _ry


def _params(spec, seed, b=3):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(b, spec.layers, spec.qubits, generator=g, dtype=torch.float64) * 2 * math.pi
    w = torch.rand(spec.layers, spec.qubits, 3, generator=g, dtype=torch.float64) * 2 * math.pi
    return a, w


@st.composite
def partitioned(draw):
    n = draw(st.integers(3, 6))
    layers = draw(st.integers(1, 3))
    q = draw(st.integers(1, n - 1))
    spec = make_partition("circuit", n, layers, qpu_qubits=q)
    mask = draw(st.lists(st.booleans(), min_size=len(cut_gates(spec)), max_size=len(cut_gates(spec))))
    return spec, mask, draw(st.integers(0, 2**31 - 1))


@settings(max_examples=40, deadline=None)
@given(partitioned())
def test_state_rank_never_exceeds_the_bound(case):
    spec, mask, seed = case
    a, w = _params(spec, seed)
    ranks = measured_schmidt_ranks(spec, a, w, cut_mask=mask)
    counts = cut_gate_counts(spec, mask)
    dims = schmidt_bounds(spec, mask)
    for name, left in spec.cuts():
        assert ranks[name] <= entangler_bound(counts[name])
        assert ranks[name] <= 2 ** min(len(left), spec.qubits - len(left))
        assert ranks[name] <= dims[name]


@settings(max_examples=15, deadline=None)
@given(partitioned().filter(lambda c: c[0].qubits <= 5))
def test_operator_rank_never_exceeds_the_bound(case):
    spec, mask, seed = case
    a, w = _params(spec, seed, b=1)
    ranks = measured_operator_ranks(spec, a, w, cut_mask=mask)
    bounds = operator_bounds(spec, mask)
    counts = cut_gate_counts(spec, mask)
    for name in ranks:
        assert ranks[name] <= bounds[name] <= entangler_bound(counts[name])


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_k_cnots_on_plus_zero_pairs_attain_two_to_the_k(k):
    """|+>^k |0>^k, CNOT(i, k + i): k Bell pairs across the cut, rank exactly 2^k."""
    n = 2 * k
    state = torch.zeros((1,) + (2,) * n, dtype=torch.complex128)
    state.view(1, -1)[:, 0] = 1.0
    for i in range(k):
        state = _apply_1q(state, _ry(torch.tensor(math.pi / 2)), i, batched_gate=False)
    left = list(range(k))
    for i in range(k):
        assert schmidt_rank(state[0], left, n) == 2**i
        state = _apply_cnot(state, i, k + i)
    assert schmidt_rank(state[0], left, n) == 2**k


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
def test_the_rank_budget_is_attained_in_the_circuit(k):
    """8 qubits on two 4-qubit QPUs, 3 layers, at most k cut gates enabled: rank exactly 2^k."""
    spec = make_partition("circuit", 8, 3, qpu_qubits=4)
    mask = mask_for_rank(spec, k)
    assert cut_gate_counts(spec, mask)["0|1"] == k
    a, w = _params(spec, 11, b=2)
    assert measured_schmidt_ranks(spec, a, w, cut_mask=mask)["0|1"] == 2**k


def test_operator_schmidt_ranks_of_two_qubit_gates():
    cnot = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=complex)
    cz = np.diag([1, 1, 1, -1]).astype(complex)
    swap = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=complex)
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4)))
    assert operator_schmidt_rank(cnot, [0], 2) == 2
    assert operator_schmidt_rank(cz, [0], 2) == 2
    assert operator_schmidt_rank(swap, [0], 2) == 4 == entangler_bound(0, 1)
    assert operator_schmidt_rank(q, [0], 2) == 4  # a general gate: up to 4x per gate


def test_circuit_unitary_is_the_circuit():
    spec = make_partition("circuit", 4, 2, qpu_qubits=2)
    a, w = _params(spec, 4, b=1)
    u = circuit_unitary(spec, a[0], w)
    assert torch.allclose(u.conj().T @ u, torch.eye(16, dtype=torch.complex128), atol=1e-12)
    psi = simulate(spec, a, w, return_state=True).reshape(-1)
    assert torch.allclose(u[:, 0], psi, atol=1e-12)


def test_rank_table_for_the_report(capsys):
    rows = []
    for n, q, layers in [(4, 2, 1), (4, 2, 2), (6, 3, 1), (6, 3, 2), (8, 4, 2), (8, 4, 3)]:
        spec = make_partition("circuit", n, layers, qpu_qubits=q)
        a, w = _params(spec, 0)
        k = cut_gate_counts(spec)["0|1"]
        r = measured_schmidt_ranks(spec, a, w)["0|1"]
        assert r <= min(2**k, 2 ** min(q, n - q))
        rows.append(f"n={n} qpu_qubits={q} L={layers}: k={k} 2^k={2**k} cap={2 ** min(q, n - q)} measured={r}")
    with capsys.disabled():
        print("\n" + "\n".join(rows))
