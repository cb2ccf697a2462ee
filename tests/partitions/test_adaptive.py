"""The adaptive rank rule: monotone in complexity and fidelity, memory cap respected."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedqnn.partitions.adaptive import (
    break_even_fidelity,
    choose_rank,
    complexity_rank,
    fidelity_rank,
    mask_for_rank,
    memory_rank,
    performance_delta,
    spectral_complexity,
)
from fedqnn.partitions.circuit import make_partition, state_bytes
from fedqnn.partitions.schmidt import cut_gate_counts

fid = st.floats(0.3, 1.0)
modes = st.integers(1, 4096)
mem = st.floats(1e3, 1e12)
errs = st.lists(st.floats(1e-3, 10.0), max_size=8)


def test_spectral_complexity_counts_cosine_modes():
    x = (np.arange(64) + 0.5) / 64
    one = np.cos(np.pi * 3 * x)[None, :]
    assert spectral_complexity(one) == 1
    many = sum(np.cos(np.pi * k * x) for k in range(10))[None, :]
    assert spectral_complexity(many) == 10
    rng = np.random.default_rng(0)
    smooth = np.stack([np.cumsum(rng.normal(size=64)) for _ in range(16)])  # red spectrum
    rough = rng.normal(size=(16, 64))  # white: needs ~99 % of the modes
    assert spectral_complexity(smooth) < spectral_complexity(rough) and spectral_complexity(rough) > 55


@settings(max_examples=200, deadline=None)
@given(modes, modes, fid, errs, mem)
def test_more_complexity_never_lowers_k(m1, m2, f, e, b):
    lo, hi = sorted((m1, m2))
    assert choose_rank(lo, f, e, b).k <= choose_rank(hi, f, e, b).k


@settings(max_examples=200, deadline=None)
@given(modes, fid, fid, errs, mem)
def test_worse_fidelity_never_raises_k(m, f1, f2, e, b):
    lo, hi = sorted((f1, f2))
    assert choose_rank(m, lo, e, b).k <= choose_rank(m, hi, e, b).k


@settings(max_examples=200, deadline=None)
@given(modes, fid, errs, mem, st.integers(1, 64), st.integers(0, 3))
def test_memory_cap_is_respected(m, f, e, b, batch, k_min):
    d = choose_rank(m, f, e, b, batch=batch, k_min=k_min, k_max=8)
    assert d.k <= d.k_memory and d.rank == 2**d.k
    if d.k > 0:
        assert state_bytes(2 * d.k, batch) <= b  # the register the rank needs fits


def test_components():
    assert [complexity_rank(m) for m in (1, 2, 3, 4, 5, 64)] == [0, 1, 2, 2, 3, 6]
    assert fidelity_rank(1.0) == 64 and fidelity_rank(0.5) == 0  # w = 1/3 < 0.5
    k = fidelity_rank(0.95)  # w = 0.9333: floor(ln .5 / ln .9333) = 10
    assert k == 10 and break_even_fidelity(10) <= 0.95 < break_even_fidelity(11)
    assert memory_rank(16 * 2**8, batch=1) == 4 and memory_rank(16 * 2**8 - 1) == 3
    assert performance_delta([1.0, 0.8, 0.6, 0.5]) == 0  # improving: keep
    assert performance_delta([0.5, 0.5, 0.5, 0.5]) == 1  # stalled: more rank
    assert performance_delta([0.5, 0.5, 0.5, 0.5], target=0.6) == 0  # stalled but good enough
    assert performance_delta([0.3, 0.4, 0.5, 0.6]) == -1  # worsening: less cut noise


def test_decision_reports_what_bound_it():
    assert choose_rank(16, 0.99, memory_bytes=2**40).bound == "complexity"
    assert choose_rank(2**20, 1.0, memory_bytes=2**40, k_max=6).bound == "k_max"
    assert choose_rank(2**20, 1.0, memory_bytes=16 * 32 * 2**6, k_max=6).bound == "memory"
    assert choose_rank(64, 0.9, memory_bytes=2**40).bound == "fidelity"
    assert choose_rank(64, 0.999, memory_bytes=2**40, cut_qubits=(2, 2)).bound == "dimension"
    with pytest.raises(ValueError, match="k_min/k_max"):
        choose_rank(4, 0.9, k_min=3, k_max=2)
    with pytest.raises(ValueError, match="modes"):
        choose_rank(0, 0.9)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_mask_for_rank_caps_every_cut(k):
    spec = make_partition("circuit", 6, 3, qpu_qubits=2)
    counts = cut_gate_counts(spec, mask_for_rank(spec, k))
    assert all(c <= k for c in counts.values())
    assert max(counts.values()) == k
