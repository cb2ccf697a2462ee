"""Bell-pair accounting: the issue's ~3e6 pairs per cut gate per client per round, and D = M/(ρ r)."""

from __future__ import annotations

import pytest

from fedqnn.partitions.accounting import (
    circuit_executions,
    pairs_per_execution,
    pairs_per_round,
    round_demand,
    round_duration,
    shift_parameters,
)
from fedqnn.partitions.adaptive import mask_for_rank
from fedqnn.partitions.circuit import cut_gates, make_partition


def test_the_issues_example(capsys):
    """1 cut gate, 1000 shots, 32 samples, 1 + 2 x 50 = 101 circuits per sample."""
    x = circuit_executions(samples=32, shift_params=50)
    assert x == 32 * 101
    m = pairs_per_round(per_execution=1, shots=1000, executions=x)
    assert m == 3_232_000
    assert 3e6 <= m < 3.5e6
    d = round_duration(m, rate=100.0, rho=0.7)
    assert d == pytest.approx(m / 70.0)
    with capsys.disabled():
        print(f"\n1 cut gate x 1000 shots x 32 samples x 101 circuits = {m:,} pairs per client per round; "
              f"at 100 pairs/s and rho = 0.7 the round lasts D = {d:,.0f} s = {d / 3600:.1f} h")


def test_fedqnn_default_circuit_demand(capsys):
    """4 qubits, 3 layers on two 2-qubit QPUs: P = 4 L n = 48 shifted angles (97 circuits/sample)."""
    spec = make_partition("circuit", 4, 3, qpu_qubits=2)
    assert shift_parameters(4, 3) == 48 and shift_parameters(4, 3, trainable_encoder=False) == 36
    dem = round_demand(spec, samples=32, batches=4, epochs=1, shots=0, rate=200.0, rho=0.7,
                       deadline_fraction=0.5)
    k = len(cut_gates(spec))
    assert dem.per_execution == k
    assert dem.executions == 32 * 97 * 4
    assert dem.pairs == k * 1000 * 32 * 97 * 4  # analytic runs charged at 1000 shots
    assert dem.deadline_s == pytest.approx(0.5 * dem.round_s)
    masked = round_demand(spec, samples=32, batches=4, epochs=1, shots=0, rate=200.0, rho=0.7,
                          cut_mask=mask_for_rank(spec, 1))
    assert masked.pairs == dem.pairs // k  # the rank budget is also the demand budget
    with capsys.disabled():
        print(f"\n4 qubits x 3 layers, circuit cut, {k} cut gates: {dem.pairs:.3g} pairs/round, "
              f"D = {dem.round_s:.3g} s at 200 /s, rho 0.7; k = 1: {masked.pairs:.3g} pairs")


def test_per_execution_by_partition():
    assert pairs_per_execution(make_partition("data", 4, 3)) == 0
    assert pairs_per_execution(make_partition("unitary", 4, 3, qpus=3)) == 4 * 2
    spec = make_partition("circuit", 6, 2, qpu_qubits=2)
    assert pairs_per_execution(spec) == len(cut_gates(spec))
    assert pairs_per_execution(spec, general_gates=1) == len(cut_gates(spec)) + 2


def test_accounting_validation():
    with pytest.raises(ValueError, match="samples"):
        circuit_executions(-1, 10)
    with pytest.raises(ValueError, match="rho"):
        round_duration(10, 100.0, 0.0)
    with pytest.raises(ValueError, match="rate"):
        round_duration(10, 0.0, 0.5)
    with pytest.raises(ValueError, match="shots"):
        pairs_per_round(1, -5, 10)
    with pytest.raises(ValueError, match="cut_mask"):
        pairs_per_execution(make_partition("circuit", 4, 1, qpu_qubits=2), cut_mask=[True])
