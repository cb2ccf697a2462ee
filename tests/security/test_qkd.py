"""Simulated BBM92: QBER statistics, aborts with signature fallback, key length, Toeplitz."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedqnn.security import qkd
from fedqnn.security.flower_glue import verify_reply
from fedqnn.seeding import rng
from tests.security.helpers import signed_reply


@pytest.mark.parametrize("F", [0.97, 0.90, 0.85])
def test_werner_qber_matches_two_thirds_one_minus_f(F):
    expected = 2 * (1 - F) / 3
    assert qkd.qber(qkd.werner(F)) == pytest.approx((expected, expected))
    res = qkd.bbm92_exchange([(40_000, qkd.werner(F))], rng(1, "qber", F))
    # each estimate within 5 binomial standard deviations of 2(1-F)/3
    assert abs(res.qber_x - expected) < 5 * math.sqrt(expected * (1 - expected) / res.k_test_x)
    assert abs(res.qber_z - expected) < 5 * math.sqrt(expected * (1 - expected) / res.k_test_z)


def test_dephased_pairs_have_different_qber_per_basis():
    F = 0.95
    assert qkd.qber(qkd.dephased(F)) == pytest.approx((0.0, 1 - F))
    res = qkd.bbm92_exchange([(40_000, qkd.dephased(F))], rng(2, "deph"))
    assert res.qber_z == 0.0
    assert abs(res.qber_x - (1 - F)) < 5 * math.sqrt(F * (1 - F) / res.k_test_x)


def test_threshold_and_margin():
    assert qkd.qber_threshold(1.0) == pytest.approx(0.110, abs=1e-3)
    assert 0.095 < qkd.qber_threshold(1.15) < 0.102  # "about 10 %" at f_EC 1.1-1.2
    assert qkd.binary_entropy(qkd.qber_threshold(1.15)) == pytest.approx(1 / 2.15, rel=1e-9)
    n, k, eps = 10_000, 5_000, 1e-10
    assert qkd.finite_size_margin(n, k, eps) == pytest.approx(math.sqrt((n + k) * (k + 1) * math.log(1 / eps) / (2 * n * k * k)))
    assert qkd.finite_size_margin(n, k, eps, "hoeffding") == pytest.approx(math.sqrt(math.log(1 / eps) / (2 * k)))
    assert qkd.finite_size_margin(n, 4 * k, eps) < qkd.finite_size_margin(n, k, eps)


def test_key_length_formula():
    n, e, leak, eps = 20_000, 0.05, 3_000, 1e-10
    h = -e * math.log2(e) - (1 - e) * math.log2(1 - e)
    assert qkd.key_length(n, e, leak, eps) == math.floor(n * (1 - h) - leak - 2 * math.log2(1e10))
    assert qkd.leak_ec(n, e, 1.15, eps) == math.ceil(1.15 * n * h) + math.ceil(math.log2(2e10))
    res = qkd.bbm92_exchange([(30_000, qkd.werner(0.97))], rng(3, "len"))
    assert res.ok and len(res.key) == 32
    assert res.max_length == qkd.key_length(res.n_key, res.qber_x + res.delta, res.leak_ec, 1e-10)
    assert res.max_length >= 256


def test_low_fidelity_pairs_abort():
    res = qkd.bbm92_exchange([(60_000, qkd.werner(0.80))], rng(4, "low"))
    assert res.status == "abort" and res.key is None
    assert qkd.pairs_needed(0.80) is None


def test_pairs_needed_grows_as_fidelity_falls_and_planned_exchanges_succeed():
    n97, n90 = qkd.pairs_needed(0.97), qkd.pairs_needed(0.90)
    assert n97 < n90
    assert qkd.pairs_needed(0.97, headroom_sigmas=0) < n97
    # planned with 3 sigma of headroom on the X-basis estimate: almost every exchange succeeds
    outcomes = [qkd.bbm92_exchange([(n97, qkd.werner(0.97))], rng(s, "plan")).status for s in range(20)]
    assert outcomes.count("ok") >= 18, outcomes


def test_toeplitz_is_linear_gf2_with_the_right_shape():
    g = np.random.default_rng(0)
    n, m = 97, 13
    seed_bits = g.integers(0, 2, n + m - 1, dtype=np.uint8)
    T = qkd.toeplitz_matrix(seed_bits, n, m)
    assert T.shape == (m, n)
    assert all(np.array_equal(np.diag(T, d), np.full(len(np.diag(T, d)), np.diag(T, d)[0])) for d in range(-m + 1, n))
    for _ in range(20):
        x, y = g.integers(0, 2, n, dtype=np.uint8), g.integers(0, 2, n, dtype=np.uint8)
        hx, hy = qkd.toeplitz_hash(seed_bits, x, m), qkd.toeplitz_hash(seed_bits, y, m)
        assert hx.shape == (m,)
        assert np.array_equal(hx, T @ x % 2)
        assert np.array_equal(qkd.toeplitz_hash(seed_bits, x ^ y, m), hx ^ hy)
    with pytest.raises(ValueError):
        qkd.toeplitz_hash(seed_bits[:-1], x, m)


def test_toeplitz_collision_rate_is_about_two_to_minus_m():
    # 2-universality: for fixed x != y, Pr_seed[h(x) = h(y)] = 2^-m
    g = np.random.default_rng(1)
    n, m, trials = 40, 4, 4000
    x, y = g.integers(0, 2, n, dtype=np.uint8), g.integers(0, 2, n, dtype=np.uint8)
    y[0] ^= 1 - (x[0] ^ y[0])  # make sure x != y
    hits = sum(
        np.array_equal(qkd.toeplitz_hash(s, x, m), qkd.toeplitz_hash(s, y, m))
        for s in g.integers(0, 2, (trials, n + m - 1), dtype=np.uint8)
    )
    p = 2.0**-m
    assert abs(hits / trials - p) < 5 * math.sqrt(p * (1 - p) / trials)


def test_manager_accumulates_refreshes_and_client_rederives_the_key():
    mgr = qkd.QkdKeyManager(seed=5, refresh_every=2)
    need = mgr.demand("node-0", 1, fidelity=0.97)
    assert need == qkd.pairs_needed(0.97)
    mgr.deposit("node-0", need // 2, 0.97)
    assert mgr.step(1, ["node-0"]) == [] and mgr.key("node-0") is None  # not enough yet
    assert mgr.round_stats()["key_pairs"] == need // 2
    mgr.deposit("node-0", need - need // 2, 0.97)
    assert mgr.step(2, ["node-0"]) == []
    epoch, key = mgr.key("node-0")
    assert epoch == 1 and len(key) == 32
    assert mgr.round_stats() == {"key_pairs": need - need // 2, "consumed": need}
    assert mgr.demand("node-0", 2) == 0  # fresh key
    assert mgr.demand("node-0", 3) > 0  # due at round 4: ask one round ahead
    pub = mgr.public_config("node-0")
    assert qkd.client_key_from_config(pub, None, "node-0", 5) == (1, key)
    assert qkd.client_key_from_config(pub, None, "node-0", 6) != (1, key)  # other seed


def test_low_fidelity_abort_emits_event_and_falls_back_to_signature(verifier):
    mgr = qkd.QkdKeyManager(seed=5, refresh_every=1, min_attempt_pairs=4000)
    mgr.deposit("node-1", qkd.pairs_needed(0.97), 0.97)
    mgr.step(1, ["node-1"])
    mgr.sync_verifier(verifier)
    assert verifier.qkd_key("node-1") is not None
    mgr.deposit("node-1", 5000, 0.80)  # the next refresh gets bad pairs
    events = mgr.step(2, ["node-1"])
    assert events == [{"node": "node-1", "event": "qkd-abort"}]
    assert mgr.key("node-1") is None
    mgr.sync_verifier(verifier)
    assert verifier.qkd_key("node-1") is None
    # the update is then accepted on its signature alone: an abort is not a rejection
    assert verify_reply(verifier, signed_reply(verifier, 2, "node-1"), "node-1", 2) == (True, None)


def test_manager_state_round_trips():
    import json

    mgr = qkd.QkdKeyManager(seed=5, refresh_every=3)
    mgr.deposit("node-0", qkd.pairs_needed(0.97), 0.97)
    mgr.step(1, ["node-0"])
    mgr.deposit("node-1", 10, qkd.dephased(0.9))
    again = qkd.QkdKeyManager(seed=5, refresh_every=3)
    again.load_state_dict(json.loads(json.dumps(mgr.state_dict())))
    assert again.key("node-0") == mgr.key("node-0")
    assert again.public_config("node-0") == mgr.public_config("node-0")
    assert again.state_dict() == mgr.state_dict()
