"""The defining property of each adaptive attack aimed at CEAS (issue 16), and what the filter
does with it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clients.attacks import get_attack
from clients.attacks.adaptive import (
    _far_bound,
    _stand_ins,
    boundary,
    fit_capture,
    fit_capture_claim,
    optimising,
)
from strategies.ceas_filters import StampConsistencyFilter
from strategies.ceas_math import consensus_round
from strategies.ceas_scale import fit_noise_scale

D = 100


def _honest(seed: int, n: int = 16, snr: float = 0.5) -> np.ndarray:
    gen = np.random.default_rng(seed)
    g = gen.normal(size=D) * math.sqrt(snr / D)
    return g + gen.normal(size=(n, D)) / math.sqrt(D)


def test_boundary_sits_just_inside_the_far_bound_along_one_direction() -> None:
    h = _honest(1)
    m = h.mean(axis=0)
    e = float(np.median(np.sum((h - m) ** 2, axis=1)))
    bad = np.stack([boundary(h[i], h, None, n=20, f=4, margin=0.9) for i in range(4)])
    d2 = np.sum((bad - m) ** 2, axis=1)
    np.testing.assert_allclose(d2, 0.9 * _far_bound(D) * e, rtol=1e-9)
    u = -m / np.linalg.norm(m)
    along = (bad - m) @ u
    assert np.all(along > 0.5 * math.sqrt(e))  # one common harmful direction
    # the colluders keep honest residuals apart: their pairwise distances are honest-sized
    pair = np.linalg.norm(bad[0] - bad[1])
    assert pair > 0.5 * math.sqrt(2 * e)


def test_boundary_passes_the_distance_tests_and_the_directional_test_catches_it() -> None:
    h = _honest(2)
    f = 4
    bad = np.stack([boundary(h[i], h, None, n=20, f=f) for i in range(f)])
    x = np.vstack([h, bad])
    stamps = np.full(x.shape[0], 4.0 / float(np.median(np.sum((h - h.mean(0)) ** 2, axis=1))))
    byz = set(range(16, 20))
    assert not byz & set(StampConsistencyFilter(directional=False)(x, stamps).reasons)
    assert byz <= set(StampConsistencyFilter()(x, stamps).reasons)


def test_boundary_evading_the_directional_test_is_kept_with_a_bias_below_it() -> None:
    h = _honest(3)
    m = h.mean(axis=0)
    e = float(np.median(np.sum((h - m) ** 2, axis=1)))
    bad = np.stack([boundary(h[i], h, None, n=20, f=4, evade_direction=True) for i in range(4)])
    along = (bad - m) @ (-m / np.linalg.norm(m))
    assert np.all(along <= 0.9 * 4.0 * math.sqrt(e / D) + 1e-12)


def test_fit_capture_claims_noisier_and_sits_farther_than_its_claim_predicts() -> None:
    h = _honest(4)
    m = h.mean(axis=0)
    bad = fit_capture(h[0], h, None, n=20, f=4, factor=20.0, stretch=4.0)
    np.testing.assert_allclose(np.sum((bad - m) ** 2), 80.0 * np.sum((h[0] - m) ** 2), rtol=1e-9)
    assert fit_capture_claim({"p": 0.01, "r": 0.02, "shots": 1000}) == {"p": 0.01, "r": 0.02, "shots": 50}
    assert get_attack("fit-capture").claim is fit_capture_claim


def test_fit_capture_cannot_move_the_scale_fit_on_server_records() -> None:
    """Identical devices (tied server records), attackers claiming 20x noisier: the fit on the
    server's records is the honest one; fitting on the claimed factors (its negative control,
    the fit before issue 16) takes its slope from the attackers and reads kappa > 3x too large."""
    gen = np.random.default_rng(5)
    n, f = 20, 4
    server = np.full(n, 0.5)
    h = gen.normal(size=(n - f, D)) * math.sqrt(0.5 / D)
    bad = np.stack([fit_capture(gen.normal(size=D) * math.sqrt(0.5 / D), h, None, n=n, f=f) for _ in range(f)])
    x = np.vstack([h, bad])
    claimed = server.copy()
    claimed[n - f:] *= 20.0
    on_server = fit_noise_scale(x, server, boot=0).kappa_point
    on_claims = fit_noise_scale(x, claimed, boot=0).kappa_point
    honest_only = fit_noise_scale(h, server[: n - f], boot=0).kappa_point
    assert on_server == pytest.approx(honest_only, rel=0.3)
    assert on_claims > 3.0 * on_server


def test_optimising_picks_the_most_damaging_gamma_on_its_grid() -> None:
    h = _honest(6)
    m = h.mean(axis=0)
    f = 4
    x_b = optimising(h[0], h, None, n=20, f=f, grid=8)
    u = -m / np.linalg.norm(m)
    r = h[0] - m
    gamma = float((x_b - m - (r - (r @ u) * u)) @ u)
    rms = math.sqrt(float(np.mean(np.sum((h - m) ** 2, axis=1))))
    stand = _stand_ins(h, m, u, f)

    def damage(g: float) -> float:
        sim = np.vstack([h, m + stand + g * u])
        return float(np.linalg.norm(consensus_round(sim, np.ones(len(sim)), np.ones(len(sim))).result.aggregate - m))

    grid = np.concatenate([[0.0], rms * 4.0 * np.geomspace(1e-3, 1.0, 7)])
    assert damage(gamma) >= max(damage(g) for g in grid) - 1e-12
    assert damage(gamma) > damage(0.0)
