"""Defining properties of the attacks in the zoo (clients.attacks)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from clients.attacks import (
    ATTACKS,
    AttackError,
    alie,
    alie_z,
    fang_krum,
    fang_median,
    flip_labels,
    get_attack,
    inflate_calibration,
    inflate_stamp,
    ipm,
    list_attacks,
    mimic,
    min_max,
    min_sum,
    perturbation,
    scaled,
    sign_flip,
    stamp_adaptive,
    stamp_inflation,
)
from strategies.robust import krum


def _honest(seed: int, m: int, d: int, shift: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return shift * rng.normal(size=d) + rng.normal(size=(m, d))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), d=st.integers(1, 20), s=st.floats(0.1, 5.0))
def test_sign_flip_negates_own_update(seed: int, d: int, s: float) -> None:
    own = np.random.default_rng(seed).normal(size=d)
    before = own.copy()
    np.testing.assert_array_equal(sign_flip(own, None, None), -own)
    np.testing.assert_allclose(sign_flip(own, None, None, scale=s), -s * own)
    np.testing.assert_array_equal(own, before)
    np.testing.assert_allclose(scaled(own, None, None, factor=s), s * own)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), m=st.integers(1, 15), d=st.integers(1, 20), eps=st.floats(0.01, 10.0))
def test_ipm_has_negative_inner_product_with_honest_mean(seed: int, m: int, d: int, eps: float) -> None:
    h = _honest(seed, m, d)
    mu = h.mean(axis=0)
    bad = ipm(h[0], h, None, epsilon=eps)
    if np.linalg.norm(mu) > 1e-9:
        assert float(bad @ mu) < 0
    assert float(bad @ mu) == pytest.approx(-eps * float(mu @ mu))


@pytest.mark.parametrize("n,f", [(10, 2), (20, 4), (25, 5), (50, 10), (15, 3), (7, 1)])
def test_alie_z_is_baruch_formula(n: int, f: int) -> None:
    s = math.floor(n / 2 + 1) - f
    assert alie_z(n, f) == pytest.approx(norm.ppf((n - s) / n))
    # e.g. n = 50, f = 10: s = 16, z = Phi^-1(34/50) ~ 0.468
    if (n, f) == (50, 10):
        assert alie_z(n, f) == pytest.approx(0.4677, abs=1e-3)


def test_alie_vector_and_errors() -> None:
    h = _honest(0, 12, 6)
    z = alie_z(15, 3)
    np.testing.assert_allclose(alie(h[0], h, None, n=15, f=3), h.mean(0) + z * h.std(0, ddof=1))
    np.testing.assert_allclose(alie(h[0], h, None, n=15, f=3, z=1.5, sign=-1), h.mean(0) - 1.5 * h.std(0, ddof=1))
    with pytest.raises(AttackError, match="omniscient"):
        alie(h[0], None, None, n=15, f=3)
    with pytest.raises(AttackError):
        alie_z(4, 4)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), m=st.integers(2, 15), d=st.integers(1, 12),
       kind=st.sampled_from(["unit", "std", "sign"]))
def test_min_max_within_max_honest_distance(seed: int, m: int, d: int, kind: str) -> None:
    h = _honest(seed, m, d)
    bad = min_max(h[0], h, None, kind=kind)
    dmax = max(np.linalg.norm(a - b) for a in h for b in h)
    assert np.linalg.norm(bad - h, axis=1).max() <= dmax * (1 + 1e-9)
    # and it is a real move along p (not just the mean) when p is non-zero
    p = perturbation(h, kind)
    if np.linalg.norm(p) > 1e-9 and dmax > 1e-9:
        assert float((bad - h.mean(0)) @ p) > 0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), m=st.integers(2, 15), d=st.integers(1, 12),
       kind=st.sampled_from(["unit", "std", "sign"]))
def test_min_sum_sum_of_squares_bound(seed: int, m: int, d: int, kind: str) -> None:
    h = _honest(seed, m, d)
    bad = min_sum(h[0], h, None, kind=kind)
    bound = max(sum(float(np.sum((a - b) ** 2)) for b in h) for a in h)
    assert float(np.sum((bad - h) ** 2)) <= bound * (1 + 1e-9)
    # tight: a slightly larger gamma would break the bound
    p = perturbation(h, kind)
    if np.linalg.norm(p) > 1e-9:
        gamma = float((bad - h.mean(0)) @ p / (p @ p))
        worse = h.mean(0) + gamma * 1.001 * p + 1e-9 * p
        assert float(np.sum((worse - h) ** 2)) > bound


def test_fang_krum_gets_selected_by_krum() -> None:
    h = _honest(1, 16, 10, shift=0.3)
    f = 4
    bad = fang_krum(h[0], h, None, n=20, f=f)
    np.testing.assert_allclose(bad, -abs(bad[0]) * np.sign(h.mean(0)))
    chosen = krum(np.vstack([h, np.tile(bad, (f, 1))]), f=f)
    np.testing.assert_allclose(chosen, bad)


def test_fang_median_opposes_the_honest_direction() -> None:
    h = _honest(2, 10, 30, shift=2.0)
    bad = fang_median(h[0], h, np.random.default_rng(0), f=2)
    s = np.sign(h.mean(0))
    # coordinates go to the far side: below the min where honest increase, above the max where they decrease
    assert np.all(np.where(s > 0, bad <= h.min(0) + 1e-12, bad >= h.max(0) - 1e-12))
    np.testing.assert_array_equal(bad, fang_median(h[0], h, np.random.default_rng(0), f=2))


def test_mimic_copies_an_honest_update() -> None:
    h = _honest(3, 8, 5)
    np.testing.assert_array_equal(mimic(h[0], h, None, index=3), h[3])
    assert any(np.array_equal(mimic(h[0], h, None, index=None), row) for row in h)


def test_gaussian_is_seeded() -> None:
    spec = get_attack("gaussian")
    own = np.zeros(7)
    a = spec(own, None, np.random.default_rng(5), sigma=2.0)
    b = spec(own, None, np.random.default_rng(5), sigma=2.0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, spec(own, None, np.random.default_rng(6), sigma=2.0))
    with pytest.raises(AttackError, match="rng"):
        spec(own, None, None)


def test_stamp_inflation_lies_only_in_the_claim() -> None:
    own = np.arange(4.0)
    np.testing.assert_array_equal(stamp_inflation(own, None, None), own)
    assert inflate_stamp(2.0, 10.0) == pytest.approx(20.0)
    cal = {"shots": 1000, "readout_error": 0.05, "depolarizing": [0.01, 0.02], "name": "qpu-3",
           "nested": {"gate_error": 0.001}}
    fake = inflate_calibration(cal, 10.0)
    assert fake["shots"] == 10000 and fake["readout_error"] == pytest.approx(0.005)
    assert fake["depolarizing"] == pytest.approx([0.001, 0.002]) and fake["name"] == "qpu-3"
    assert fake["nested"]["gate_error"] == pytest.approx(1e-4)
    assert cal["shots"] == 1000 and cal["depolarizing"] == [0.01, 0.02]  # not mutated
    assert ATTACKS["stamp-inflation"].claims


def test_flip_labels() -> None:
    y = np.array([0, 1, 9, 3])
    np.testing.assert_array_equal(flip_labels(y, 10), [9, 8, 0, 6])
    with pytest.raises(AttackError):
        flip_labels(np.array([10]), 10)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), m=st.integers(1, 12), d=st.integers(2, 20), kappa=st.floats(0.0, 1.0))
def test_stamp_adaptive_keeps_its_own_distance_and_opposes_the_mean(seed: int, m: int, d: int, kappa: float) -> None:
    h = _honest(seed, m, d)
    own = h[0] + np.random.default_rng(seed + 1).normal(size=d)
    mu = h.mean(axis=0)
    x = stamp_adaptive(own, h, np.random.default_rng(seed))
    x_k = stamp_adaptive(own, h, np.random.default_rng(seed), kappa=kappa)
    r = np.linalg.norm(own - mu)
    assert np.linalg.norm(x_k - mu) == pytest.approx(r, rel=1e-9)  # the filter sees its honest spread
    assert (x_k - mu) @ mu == pytest.approx(-np.sqrt(kappa) * r * np.linalg.norm(mu), rel=1e-6, abs=1e-9)
    assert (x - mu) @ mu < 0


def test_stamp_adaptive_parallel_and_bad_kappa() -> None:
    h = np.array([[1.0, 0.0], [1.0, 0.0]])
    x = stamp_adaptive(np.array([3.0, 0.0]), h, np.random.default_rng(0))  # own - mean parallel to the mean
    assert np.linalg.norm(x - h[0]) == pytest.approx(2.0)
    with pytest.raises(AttackError, match="kappa"):
        stamp_adaptive(np.array([3.0, 0.0]), h, kappa=1.5)


def test_registry_names_and_entry_points() -> None:
    for name in ["sign-flip", "gaussian", "scaled", "alie", "ipm", "mimic", "min-max", "min-sum",
                 "fang-krum", "fang-median", "stamp-inflation", "stamp-adaptive"]:
        assert get_attack(name).name == name
        assert name in list_attacks()
    with pytest.raises(KeyError, match="unknown attack"):
        get_attack("definitely-not-an-attack")
    assert get_attack("alie").omniscient and not get_attack("sign-flip").omniscient


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_is_deterministic_and_pure(name: str) -> None:
    h = _honest(4, 10, 6)
    own = h[0].copy()
    h0 = h.copy()
    spec = get_attack(name)
    a = spec(own, h, np.random.default_rng(1), n=13, f=3)
    b = spec(own, h, np.random.default_rng(1), n=13, f=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == own.shape and np.all(np.isfinite(a))
    np.testing.assert_array_equal(h, h0)
    np.testing.assert_array_equal(own, h0[0])
