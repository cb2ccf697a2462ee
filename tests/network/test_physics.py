"""Physics functions against closed forms and limits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedqnn.network import physics as ph


def test_depolarising_limits_and_cutoff() -> None:
    F0, T, Fmin = 0.95, 0.7, 0.8
    assert ph.depolarising_fidelity(F0, 0.0, T) == pytest.approx(F0)
    assert ph.depolarising_fidelity(F0, 1e6, T) == pytest.approx(0.25)
    t = 0.3
    assert ph.depolarising_fidelity(F0, t, T) == pytest.approx(0.25 + (F0 - 0.25) * math.exp(-t / T))
    tmax = ph.depolarising_cutoff(F0, Fmin, T)
    assert tmax == pytest.approx(T * math.log((F0 - 0.25) / (Fmin - 0.25)))
    assert ph.depolarising_fidelity(F0, tmax, T) == pytest.approx(Fmin)  # cut-off inverts decay
    assert ph.depolarising_cutoff(0.7, 0.8, T) == 0.0


def test_combined_time_constant() -> None:
    assert ph.combined_T(2.0, 2.0) == pytest.approx(1.0)
    assert ph.combined_T(1.0, 3.0) == pytest.approx(1.0 / (1.0 + 1.0 / 3.0))


def test_dephasing_limits_and_cutoff() -> None:
    F0, B0, T, Fmin = 0.9, 0.05, 0.4, 0.8
    assert ph.dephasing_fidelity(F0, B0, 0.0, T) == pytest.approx(F0)
    assert ph.dephasing_fidelity(F0, B0, 1e6, T) == pytest.approx((F0 + B0) / 2)
    tmax = ph.dephasing_cutoff(F0, B0, Fmin, T)
    assert tmax == pytest.approx(T * math.log((F0 - B0) / (2 * Fmin - F0 - B0)))
    assert ph.dephasing_fidelity(F0, B0, tmax, T) == pytest.approx(Fmin)
    # asymptote above F_min: never expires
    assert math.isinf(float(ph.dephasing_cutoff(0.9, 0.08, 0.45, T)))


@pytest.mark.parametrize("noise", ["depolarising", "dephasing"])
def test_character_picture_matches_closed_forms(noise: str) -> None:
    F0, T, t = 0.93, 0.5, np.linspace(0.0, 2.0, 7)
    B0 = (1 - F0) / 3
    c0 = ph.characters(ph.bell_weights(F0))
    assert ph.weights_from_characters(c0) == pytest.approx(ph.bell_weights(F0))
    c = c0 * np.exp(-ph.decay_rates(noise, T) * t[:, None])
    expect = (ph.depolarising_fidelity(F0, t, T) if noise == "depolarising"
              else ph.dephasing_fidelity(F0, B0, t, T))
    assert ph.fidelity_from_characters(c) == pytest.approx(expect)


def test_swapping() -> None:
    assert ph.swap_werner(1.0, 1.0) == pytest.approx(1.0)  # perfect pairs stay perfect
    F1, F2 = 0.9, 0.85
    w = (4 * F1 - 1) / 3 * (4 * F2 - 1) / 3
    assert ph.swap_werner(F1, F2) == pytest.approx((1 + 3 * w) / 4)
    c = ph.swap_characters(ph.characters(ph.bell_weights(F1)), ph.characters(ph.bell_weights(F2)))
    assert ph.fidelity_from_characters(c) == pytest.approx(ph.swap_werner(F1, F2))
    F, p = ph.swap_success_fidelity(0.9, 0.5, 3)
    assert p == pytest.approx(0.25) and F == pytest.approx(ph.fidelity_from_werner(((4 * 0.9 - 1) / 3) ** 3))
    # swapping with a maximally mixed pair gives the maximally mixed state
    assert ph.swap_werner(0.9, 0.25) == pytest.approx(0.25)


def test_purification() -> None:
    F, p = ph.bbpssw(1.0)
    assert F == pytest.approx(1.0) and p == pytest.approx(1.0)  # perfect pairs
    F0 = 0.8
    x = (1 - F0) / 3
    Fp, pp = ph.bbpssw(F0)
    assert pp == pytest.approx(F0**2 + 2 * F0 * x + 5 * x**2)
    assert Fp == pytest.approx((F0**2 + x**2) / pp)
    assert Fp > F0
    assert ph.bbpssw(0.5)[0] == pytest.approx(0.5)  # fixed point of the recurrence
    lam, N = ph.dejmps(ph.bell_weights(F0))  # DEJMPS on Werner inputs = BBPSSW's first step
    assert N == pytest.approx(pp) and lam[0] == pytest.approx(Fp)
    assert lam.sum() == pytest.approx(1.0)
    lam1, N1 = ph.dejmps(np.array([1.0, 0.0, 0.0, 0.0]))
    assert lam1[0] == pytest.approx(1.0) and N1 == pytest.approx(1.0)
    # DEJMPS beats BBPSSW on a dephased (Phi+/Phi-) state
    lam_d = ph.bell_weights(0.8, 0.2)
    assert ph.dejmps(lam_d)[0][0] > ph.bbpssw(0.8)[0]


def test_path_budget_closed_form() -> None:
    F0, Fmin, T, h = 0.96, 0.8, np.array([1.0, 2.0, 0.5]), 3
    c0 = np.tile(ph.characters(ph.bell_weights(F0)), (h, 1))
    rates = ph.decay_rates("depolarising", T)
    x = ph.path_cutoff_budget(c0, rates, T, Fmin)
    w0, wmin = (4 * F0 - 1) / 3, (4 * Fmin - 1) / 3
    assert x == pytest.approx(math.log(w0**h / wmin) / h, rel=1e-6)
    assert ph.path_fidelity(c0, rates, x * T) == pytest.approx(Fmin, abs=1e-9)
    assert ph.path_cutoff_budget(c0, rates, T, 0.95) == 0.0  # fresh pairs already too poor


def test_generation_waiting_times_are_geometric() -> None:
    rng = np.random.default_rng(3)
    p, tau, horizon = 0.01, 1e-3, 200.0
    times = ph.sample_generation_times(rng, p, tau, horizon)
    rate = len(times) / horizon
    assert rate == pytest.approx(ph.generation_rate(p, tau), rel=0.05)
    gaps = np.diff(times) / tau
    assert np.all(gaps >= 1 - 1e-6) and np.allclose(gaps, np.round(gaps), atol=1e-6)
