"""Stamps: the claim rule, κ, the CEAS strategy. Calibration against measured update errors and
the half-shot check: tests/ceas/test_stamp_validation.py."""

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fedqnn.config import build_config
from fedqnn.noise import Calibration
from fedqnn.stamps import node_variance_factor, stamps_from_factors
from strategies.ceas_math import consensus_round


def test_a_claim_can_only_lower_the_stamp():
    cfg = build_config({"noise": "heterogeneous"})
    honest = Calibration(0.01, 0.02, 256)
    better = Calibration(0.001, 0.0, 4096)
    worse = Calibration(0.05, 0.05, 64)
    f_h = node_variance_factor(honest, cfg)
    assert max(f_h, node_variance_factor(better, cfg)) == f_h  # the lie buys nothing
    assert max(f_h, node_variance_factor(worse, cfg)) > f_h  # an honest admission lowers the stamp


def test_median_scale_is_robust_to_a_minority_of_huge_updates():
    rng = np.random.default_rng(0)
    factors = np.array([1.0, 2.0, 4.0, 1.0, 2.0, 4.0, 1.0, 2.0])
    x = rng.normal(size=(8, 50)) * np.sqrt(factors)[:, None] * 0.1
    k = consensus_round(x, factors, factors, scale='median').kappa
    assert 0.2 < k < 1.0  # ~ d * 0.01 = 0.5
    x_bad = x.copy()
    x_bad[:3] *= 1000.0
    assert consensus_round(x_bad, factors, factors, scale='median').kappa < 10 * k
    s = stamps_from_factors(factors, k)
    assert np.allclose(s * factors * k, 4.0)


# -- the Flower strategy on real Messages ------------------------------------------------------


def _reply(src: int, arrays: dict, metrics: dict) -> Message:
    ins = Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=src, message_type="train")
    rep = Message(RecordDict({"arrays": ArrayRecord(arrays), "metrics": MetricRecord(metrics)}), reply_to=ins)
    return rep


def _setup(extra=None):
    from strategies.ceas import CEAS

    cfg = build_config({"strategy": "ceas", "attack": "none", "clients": 6, **(extra or {})})
    strat = CEAS(cfg)
    base = strat.model.state_dict()
    strat._current = ArrayRecord(base)
    strat.bind_nodes({100 + i: f"node-{i}" for i in range(6)})
    return cfg, strat, base


def _metrics(cfg, i, **over):
    from fedqnn.noise import calibration_for

    m = {"num-examples": 64, "train_loss": 0.1, "partition-id": i, **calibration_for(cfg, f"node-{i}").as_metrics()}
    m.update(over)
    return m


def test_ceas_aggregate_weights_sum_to_one_and_report_per_node():
    cfg, strat, base = _setup({"ceas.filter": "none"})
    rng = np.random.default_rng(1)
    replies = []
    for i in range(6):
        arrays = {k: v + torch.tensor(rng.normal(scale=0.01, size=v.shape)) for k, v in base.items()}
        replies.append(_reply(100 + i, arrays, _metrics(cfg, i)))
    arrays, _ = strat.aggregate_train(1, replies)
    rep = strat.round_report(1)
    w = rep["weights"]
    assert set(w) == {f"node-{i}" for i in range(6)} and abs(sum(w.values()) - 1) < 1e-12
    assert max(w.values()) <= 3.0 * np.median(list(w.values())) + 1e-12  # the cap
    assert rep["rejected"] == []
    # the result is the weighted mean of the updates
    vec = {n: np.concatenate([(r.content["arrays"].to_torch_state_dict()[k] - base[k]).flatten().numpy()
                              for k in base]) for n, r in zip(w, replies)}
    expect = sum(w[n] * vec[n] for n in w)
    got = np.concatenate([(arrays.to_torch_state_dict()[k] - base[k]).flatten().numpy() for k in base])
    np.testing.assert_allclose(got, expect, atol=1e-12)


def test_equal_calibrations_give_the_plain_mean():
    cal = {f"node-{i}": {"p": 0.01, "r": 0.01, "shots": 256} for i in range(6)}
    cfg, strat, base = _setup({"ceas.filter": "none", "qpu.nodes": cal})
    rng = np.random.default_rng(2)
    replies = [_reply(100 + i, {k: v + torch.tensor(rng.normal(scale=0.01, size=v.shape)) for k, v in base.items()},
                      _metrics(cfg, i)) for i in range(6)]
    strat.aggregate_train(1, replies)
    w = np.array(list(strat.round_report(1)["weights"].values()))
    np.testing.assert_allclose(w, np.full(6, 1 / 6), atol=1e-12)


def test_stamp_inflation_buys_no_weight_and_outliers_are_rejected():
    cal = {f"node-{i}": {"p": 0.01, "r": 0.01, "shots": 256} for i in range(6)}
    cfg, strat, base = _setup({"qpu.nodes": cal})
    rng = np.random.default_rng(3)
    replies = []
    for i in range(6):
        arrays = {k: v + torch.tensor(rng.normal(scale=0.01, size=v.shape)) for k, v in base.items()}
        metrics = _metrics(cfg, i)
        if i == 0:  # claims a perfect QPU
            metrics.update(cal_p=0.0, cal_r=0.0, cal_shots=1e6)
        if i == 5:  # a gross outlier
            arrays = {k: v + 5.0 for k, v in base.items()}
        replies.append(_reply(100 + i, arrays, metrics))
    strat.aggregate_train(1, replies)
    rep = strat.round_report(1)
    assert rep["stamps"]["node-0"] == pytest.approx(rep["stamps"]["node-1"])
    assert {"node": "node-5", "reason": "outlier:stamp"} in rep["rejected"]
    assert rep["weights"]["node-5"] == 0.0


def test_fit_separates_qpu_noise_from_between_node_spread():
    from strategies.ceas_scale import fit_noise_scale

    rng = np.random.default_rng(7)
    d, n = 200, 30
    factors = rng.choice([1.0, 2.0, 4.0, 8.0, 16.0], size=n)
    kappa_true, tau2_true = 0.5, 3.0
    mu = rng.normal(size=d)
    x = mu + rng.normal(size=(n, d)) * np.sqrt(kappa_true * factors[:, None] / d) \
        + rng.normal(size=(n, d)) * np.sqrt(tau2_true / d)
    point = fit_noise_scale(x, factors, boot=0)
    assert point.kappa == pytest.approx(kappa_true, rel=0.35)
    assert point.tau2 == pytest.approx(tau2_true, rel=0.35)
    bound = fit_noise_scale(x, factors)  # the default: kappa's lower confidence bound
    assert 0 < bound.kappa <= point.kappa
    # pure heterogeneity, no noise signal: kappa ~ 0, the weights flatten to the data shares
    x_h = mu + rng.normal(size=(n, d)) * np.sqrt(tau2_true / d)
    fit = fit_noise_scale(x_h, factors)
    assert fit.kappa < 0.2 * tau2_true / factors.max() and fit.tau2 > 0.5 * tau2_true
