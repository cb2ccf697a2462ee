"""CEAS consensus under data heterogeneity and against its scale fit's attackers (issue 16).

Each test has its negative control: the rule before issue 16 (``null="median"``), Theil-Sen in
place of the repeated median, a filter without the directional test, or weights that ignore
the data shares.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import theilslopes

from strategies.ceas_filters import StampConsistencyFilter
from strategies.ceas_scale import fit_noise_scale, repeated_median_line
from strategies.ceas_weights import fidelity_weights, random_effects_weights

D = 120


def _clustered(gen: np.random.Generator, n: int = 20, clusters: int = 3, het: float = 4.0):
    """Honest updates y_k = g + delta_(cluster of k) + small within-cluster spread + QPU noise.

    Heterogeneity is clustered (nodes with similar label mixtures share delta), the QPU noise
    v_k = kappa sigma_k^2 varies 30x across nodes."""
    g = gen.normal(size=D) / np.sqrt(D)
    centres = gen.normal(size=(clusters, D)) * np.sqrt(het / D)
    label = gen.integers(0, clusters, n)
    sigma2 = np.exp(gen.uniform(np.log(0.01), np.log(0.3), n))
    delta = centres[label] + gen.normal(size=(n, D)) * np.sqrt(0.05 * het / D)
    noise = gen.normal(size=(n, D)) * np.sqrt(sigma2 / D)[:, None]
    return g + delta + noise, sigma2


def _frr(filt: StampConsistencyFilter, trials: int = 15, kinds: tuple[str, ...] = ("near", "pair")) -> float:
    """Honest node-rounds rejected by the tests named in ``kinds`` (the noise-floor tests)."""
    rejected = total = 0
    for t in range(trials):
        gen = np.random.default_rng(100 + t)
        y, sigma2 = _clustered(gen)
        fit = fit_noise_scale(y, sigma2)
        stamps = 4.0 / (fit.kappa * sigma2)
        f = StampConsistencyFilter(**{**filt.__dict__, "tau2": fit.tau2})
        res = f(y, stamps, sizes=gen.integers(20, 80, y.shape[0]).astype(float))
        rejected += sum(res.details[i].split(":")[0] in kinds for i in res.reasons)
        total += y.shape[0]
    return rejected / total


def test_clustered_heterogeneity_keeps_the_false_rejection_rate_nominal() -> None:
    """The noise-floor tests (near, pair) hold their nominal rate whatever the data: a
    non-central chi-square is stochastically larger than the central one (ceas_tests)."""
    assert _frr(StampConsistencyFilter()) <= 0.01
    every = ("near", "pair", "far")
    assert _frr(StampConsistencyFilter(directional=False), kinds=every) <= 0.02
    # negative control: the pre-issue-16 null (pairs and near against the median spread)
    assert _frr(StampConsistencyFilter(null="median", directional=False), kinds=every) >= 0.10


def test_colluders_sending_one_vector_are_still_caught_under_heterogeneity() -> None:
    gen = np.random.default_rng(5)
    y, sigma2 = _clustered(gen)
    y[:4] = np.median(y[4:], axis=0)  # four colluders, one vector, at the honest median
    fit = fit_noise_scale(y, sigma2)
    res = StampConsistencyFilter(tau2=fit.tau2)(y, 4.0 / (fit.kappa * sigma2))
    assert set(range(4)) <= set(res.reasons)
    assert all("pair" in res.details[i] or "near" in res.details[i] for i in range(4))


def test_sign_flip_is_caught_by_the_directional_test_only() -> None:
    gen = np.random.default_rng(9)
    n, f = 20, 4
    g = gen.normal(size=D) / np.sqrt(D) * 0.3  # 2||g|| within the far test's tolerance
    sigma2 = np.exp(gen.uniform(np.log(0.1), np.log(1.0), n))
    y = g + gen.normal(size=(n, D)) * np.sqrt(sigma2 / D)[:, None]
    y[:f] = -y[:f]  # sign flip, each with its own honest noise and honest stamp
    stamps = 4.0 / sigma2
    with_dir = StampConsistencyFilter()(y, stamps)
    without = StampConsistencyFilter(directional=False)(y, stamps)
    assert set(range(f)) <= set(with_dir.reasons)
    assert not set(range(f)) & set(without.reasons)  # the distance tests cannot see it


def test_scale_fit_breakdown_point_is_one_half() -> None:
    """Byzantine ordinates anywhere (1e6 and up, on the noisiest server records): for f < n/2 the
    repeated median stays within the range of the honest pairs' slopes (its breakdown point);
    Theil-Sen (the fit before issue 16) leaves that range at f = 10 of 30 (33%)."""
    gen = np.random.default_rng(3)
    n = 30
    x = np.exp(gen.uniform(np.log(0.01), np.log(1.0), n))
    y = 2.0 * x + 0.5 + gen.normal(scale=0.05, size=n)
    for f in (6, 10, 14):
        honest = np.argsort(x)[: n - f]
        hx, hy = x[honest], y[honest]
        dx = hx[None, :] - hx[:, None]
        pair = (hy[None, :] - hy[:, None])[dx != 0] / dx[dx != 0]
        bad = y.copy()
        bad[np.argsort(x)[-f:]] = 1e6 * np.arange(1, f + 1)  # far out, and steep among themselves
        slope, _ = repeated_median_line(x, bad)
        assert pair.min() <= slope <= pair.max(), (f, slope)
        if f == 10:
            assert theilslopes(bad, x)[0] > pair.max()  # negative control: Theil-Sen captured


def test_scale_fit_ignores_claims_and_falls_back_when_devices_tie() -> None:
    gen = np.random.default_rng(4)
    y, sigma2 = _clustered(gen, het=0.0)
    fit = fit_noise_scale(y, sigma2, boot=0)
    assert fit.identifiable
    assert 0.5 < fit.kappa < 2.0  # noise-only data: kappa ~ 1
    tied = fit_noise_scale(y, np.full(y.shape[0], 0.1))
    assert not tied.identifiable and tied.tau2 == 0.0


def test_random_effects_weights_minimise_their_objective_and_reach_both_limits() -> None:
    gen = np.random.default_rng(0)
    v = np.exp(gen.uniform(-3, 1, 12))
    pi = gen.uniform(1, 5, 12)
    pi_n = pi / pi.sum()

    def objective(w: np.ndarray, tau2: float) -> float:
        return float(np.sum(w * w * v) + tau2 * np.sum((w - pi_n) ** 2))

    for tau2 in (0.0, 0.3, 3.0):
        w = random_effects_weights(v, tau2, pi)
        assert w.sum() == pytest.approx(1.0) and np.all(w > 0)
        for _ in range(50):  # any feasible perturbation is worse
            d = gen.normal(size=12)
            d -= d.mean()
            assert objective(w + 1e-3 * d, tau2) > objective(w, tau2)
    np.testing.assert_allclose(random_effects_weights(v, 0.0, pi), (1 / v) / np.sum(1 / v))
    np.testing.assert_allclose(random_effects_weights(v, 1e9, pi), pi_n, atol=1e-6)


def test_data_shares_cap_keeps_fedavg_target_under_heterogeneity() -> None:
    """With heterogeneity dominating, capped weights with the shares reach FedAvg's n_k-weighted
    target; the cap on weights alone (negative control) cuts the large-data nodes."""
    sizes = np.array([400.0] + [20.0] * 9)
    phi = np.full(10, 4.0)
    w = fidelity_weights(phi, tau2=1e6, prior=sizes)
    np.testing.assert_allclose(w, sizes / sizes.sum(), atol=1e-5)
    w_plain = fidelity_weights(phi, tau2=1e6)
    assert w_plain[0] < 0.5 * sizes[0] / sizes.sum()
