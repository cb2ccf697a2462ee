"""Property tests of the CEAS aggregation maths (strategies.ceas_math)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.attacks import alie, ipm
from strategies.ceas_math import (
    MedianDistanceFilter,
    StampConsistencyFilter,
    cap_weights,
    claim_rule,
    fidelity_aggregate,
    fidelity_weights,
    get_outlier_filter,
    metric_transform,
    predicted_variance,
    robust_fidelity_aggregate,
    stamps_from_variance,
)
from strategies.robust import PreconditionError

positive = st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False)
caps = st.one_of(st.none(), st.floats(1.0, 5.0))


@settings(max_examples=60, deadline=None)
@given(raw=st.lists(positive, min_size=1, max_size=30), cap=caps)
def test_cap_weights_sum_to_one_and_cap_holds(raw: list[float], cap: float | None) -> None:
    r = np.array(raw)
    w = cap_weights(r, cap)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(w > 0)
    if cap is not None:
        assert w.max() <= cap * np.median(w) * (1 + 1e-9)
    # order preserved (capping is monotone)
    order = np.argsort(r, kind="stable")
    assert np.all(np.diff(w[order]) >= -1e-15)


def test_cap_even_count_below_two_iterates_to_the_fixed_point() -> None:
    # one pass at cap 1 gives [1, 2] whose median is 1.5 < 2: the cap needs the fixed point
    w = cap_weights(np.array([1.0, 3.0]), 1.0)
    assert w.max() <= np.median(w) * (1 + 1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 20), d=st.integers(1, 8), cap=caps)
def test_fidelity_aggregate_properties(seed: int, n: int, d: int, cap: float | None) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    phi = np.exp(rng.normal(size=n))
    x0, phi0 = x.copy(), phi.copy()
    agg, w = fidelity_aggregate(x, phi, cap_multiple=cap)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(phi, phi0)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(agg, w @ x)
    perm = rng.permutation(n)
    agg_p, w_p = fidelity_aggregate(x[perm], phi[perm], cap_multiple=cap)
    np.testing.assert_allclose(agg_p, agg, atol=1e-12)
    np.testing.assert_allclose(w_p, w[perm], atol=1e-15)
    # equal stamps give the plain mean
    agg_eq, w_eq = fidelity_aggregate(x, np.full(n, phi[0]), cap_multiple=cap)
    np.testing.assert_allclose(agg_eq, x.mean(axis=0), atol=1e-12)
    # identical inputs come back
    agg_id, _ = fidelity_aggregate(np.tile(x[0], (n, 1)), phi, cap_multiple=cap)
    np.testing.assert_allclose(agg_id, x[0], atol=1e-12)


def test_uncapped_weights_are_proportional_to_stamps() -> None:
    phi = np.array([1.0, 2.0, 5.0])
    np.testing.assert_allclose(fidelity_weights(phi, cap_multiple=None), phi / phi.sum())
    # random-effects weights flatten toward equal as tau2 grows
    w_re = fidelity_weights(phi, cap_multiple=None, tau2=1e6)
    np.testing.assert_allclose(w_re, np.full(3, 1 / 3), atol=1e-5)


def test_proposition_1_inverse_variance_minimises_error() -> None:
    # Monte Carlo: weights prop. to phi beat equal weights and beat a perturbation of themselves
    rng = np.random.default_rng(0)
    n, d, trials = 6, 50, 400
    tr = np.array([0.1, 0.3, 1.0, 2.0, 4.0, 8.0])
    phi = stamps_from_variance(tr)
    g = rng.normal(size=d)
    err = {"fw": 0.0, "mean": 0.0, "tilted": 0.0}
    w_fw = fidelity_weights(phi, cap_multiple=None)
    w_tilt = w_fw * np.exp(0.3 * np.arange(n))
    w_tilt /= w_tilt.sum()
    for _ in range(trials):
        x = g + rng.normal(size=(n, d)) * np.sqrt(tr / d)[:, None]
        err["fw"] += np.sum((w_fw @ x - g) ** 2)
        err["mean"] += np.sum((x.mean(axis=0) - g) ** 2)
        err["tilted"] += np.sum((w_tilt @ x - g) ** 2)
    assert err["fw"] < err["tilted"] < err["mean"]
    # and it matches the closed form 1 / sum(1/tr)
    assert err["fw"] / trials == pytest.approx(1 / np.sum(1 / tr), rel=0.1)


def test_claim_rule_only_lowers() -> None:
    server = np.array([1.0, 2.0, 3.0])
    claim = np.array([5.0, 1.0, np.nan])
    np.testing.assert_array_equal(claim_rule(server, claim), [1.0, 1.0, 3.0])
    np.testing.assert_array_equal(claim_rule(server, None), server)
    with pytest.raises(PreconditionError):
        claim_rule(server, np.array([1.0, 0.0, 1.0]))


def test_stamp_variance_roundtrip_and_errors() -> None:
    tr = np.array([0.5, 2.0])
    np.testing.assert_allclose(predicted_variance(stamps_from_variance(tr)), tr)
    with pytest.raises(PreconditionError):
        fidelity_weights(np.array([1.0, -1.0]))
    with pytest.raises(PreconditionError):
        cap_weights(np.array([1.0, 2.0]), 0.5)


def test_metric_transform_matches_quadratic_form() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3))
    a = rng.normal(size=(3, 3))
    g = a @ a.T
    y = metric_transform(x, g)
    diff = x[0] - x[1]
    assert np.sum((y[0] - y[1]) ** 2) == pytest.approx(diff @ g @ diff)
    yd = metric_transform(x, np.diag(g))
    assert np.sum((yd[0] - yd[1]) ** 2) == pytest.approx(diff @ np.diag(np.diag(g)) @ diff)


def _federation(seed: int, n: int = 20, d: int = 200):
    rng = np.random.default_rng(seed)
    tr = np.exp(rng.uniform(np.log(0.05), np.log(2.0), n))
    g = rng.normal(size=d) * 0.1
    x = g + rng.normal(size=(n, d)) * np.sqrt(tr / d)[:, None]
    return g, x, stamps_from_variance(tr), tr


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_robust_aggregate_weights_and_reasons(seed: int) -> None:
    g, x, phi, _ = _federation(seed)
    n = x.shape[0]
    x0 = x.copy()
    res = robust_fidelity_aggregate(x, phi)
    np.testing.assert_array_equal(x, x0)
    assert res.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert set(res.rejected) | set(res.kept.tolist()) == set(range(n))
    assert all(res.weights[i] == 0 for i in res.rejected)
    assert all(reason.startswith("outlier:") for reason in res.rejected.values())
    kept_w = res.weights[res.kept]
    assert kept_w.max() <= 3.0 * np.median(kept_w) * (1 + 1e-9)
    perm = np.random.default_rng(seed).permutation(n)
    res_p = robust_fidelity_aggregate(x[perm], phi[perm])
    np.testing.assert_allclose(res_p.aggregate, res.aggregate, atol=1e-10)


def test_robust_aggregate_equal_stamps_no_outliers_is_the_mean() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(12, 300)) * math.sqrt(1 / 300)
    phi = stamps_from_variance(np.ones(12))
    res = robust_fidelity_aggregate(x, phi)
    assert res.rejected == {}
    np.testing.assert_allclose(res.aggregate, x.mean(axis=0))


def test_low_variance_attack_with_inflated_stamps_is_rejected_as_far() -> None:
    g, x, phi, tr = _federation(11)
    m, f = 16, 4
    honest = x[:m]
    bad = alie(honest[0], honest, None, n=20, f=f)
    xs = x.copy()
    xs[m:] = bad
    phis = phi.copy()
    phis[m:] = 10 * phi[:m].max()  # claims 10x the best honest fidelity
    res = StampConsistencyFilter()(xs, phis)
    assert set(range(m, 20)) <= set(res.reasons)
    assert all(res.reasons[i] == "outlier:stamp" for i in range(m, 20))
    assert all(res.details[i].startswith("far") for i in range(m, 20))
    # the stamp-blind median filter keeps them: ALIE sits closer to the median than honest nodes
    med = MedianDistanceFilter()(xs, phis)
    assert not set(range(m, 20)) & set(med.reasons)


def test_alie_with_honest_looking_stamps_is_near_or_pair() -> None:
    g, x, phi, tr = _federation(12)
    m = 16
    xs = x.copy()
    xs[m:] = alie(x[0], x[:m], None, n=20, f=4)
    phis = phi.copy()
    phis[m:] = np.median(phi[:m])
    res = StampConsistencyFilter()(xs, phis)
    assert set(range(m, 20)) <= set(res.reasons)
    assert all(res.details[i].split(":")[0] in {"near", "pair"} for i in range(m, 20))


def test_ipm_kept_out_and_error_bounded() -> None:
    g, x, phi, tr = _federation(13)
    m = 16
    xs = x.copy()
    xs[m:] = ipm(x[0], x[:m], None, epsilon=2.0)
    phis = phi.copy()
    phis[m:] = 10 * phi.max()
    res = robust_fidelity_aggregate(xs, phis)
    oracle = (1 / tr[:m]) @ x[:m] / np.sum(1 / tr[:m])
    plain, _ = fidelity_aggregate(xs, phis)
    assert np.linalg.norm(res.aggregate - oracle) < np.linalg.norm(plain - oracle)
    assert all(res.weights[i] == 0 for i in range(m, 20))


def test_filter_registry() -> None:
    assert get_outlier_filter("stamp").name == "stamp"
    assert get_outlier_filter("median").name == "median"
    assert get_outlier_filter("none").name == "none"
    with pytest.raises(KeyError):
        get_outlier_filter("bogus")
    custom = MedianDistanceFilter(z=2.0)
    assert get_outlier_filter(custom) is custom


@pytest.mark.parametrize("premix", ["nnm", "clip"])
def test_premix_options_keep_contract(premix: str) -> None:
    g, x, phi, _ = _federation(21)
    res = robust_fidelity_aggregate(x, phi, premix=premix, f=2)
    assert res.weights.sum() == pytest.approx(1.0)
    assert res.aggregate.shape == (x.shape[1],)


def test_filter_with_low_rank_metric_keeps_honest_nodes() -> None:
    # noise isotropic in a rank-10 metric of a 60-dim space: d_eff follows the metric, so honest
    # nodes are not rejected by a chi-square bound computed for 60 dimensions
    rng = np.random.default_rng(4)
    d, r, n = 60, 10, 15
    basis = np.linalg.qr(rng.normal(size=(d, r)))[0]
    metric = basis @ basis.T
    tr = np.exp(rng.uniform(-1, 1, n))
    x = rng.normal(size=(n, d)) * np.sqrt(tr / r)[:, None]
    filt = StampConsistencyFilter()
    assert filt._eff_dim(d, metric) == pytest.approx(r, rel=1e-6)
    res = filt(x, stamps_from_variance(tr), metric=metric)
    assert len(res.reasons) <= 1
