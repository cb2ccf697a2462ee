"""Property tests of the vector-level robust rules (strategies.robust): Flower's rules through the
adapter onto the run's guarded strategies, and ours (geometric median, centred clipping, NNM)."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from hypothesis import given, settings
from hypothesis import strategies as st

from fedqnn.config import build_config
from strategies.registry import build_strategy
from strategies.robust import (
    RULES,
    PreconditionError,
    bulyan,
    centered_clipping,
    coordinate_median,
    geometric_median,
    get_rule,
    krum,
    krum_select,
    mean,
    multi_krum,
    nnm,
    precondition_holds,
    trimmed_mean,
)

AGG_RULES = [name for name in RULES if name != "nnm"]


def _data(seed: int, n: int, d: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def _max_f(name: str, n: int) -> int:
    f = n
    while f > 0 and not precondition_holds(name, n, f):
        f -= 1
    return f


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(3, 14), d=st.integers(1, 6), name=st.sampled_from(AGG_RULES))
def test_permutation_invariant_and_not_mutating(seed: int, n: int, d: int, name: str) -> None:
    x = _data(seed, n, d)
    before = x.copy()
    f = _max_f(name, n)
    out = get_rule(name, f=f)(x)
    np.testing.assert_array_equal(x, before)
    perm = np.random.default_rng(seed + 1).permutation(n)
    out_p = get_rule(name, f=f)(x[perm])
    assert out.shape == (d,)
    if name == "krum" and n - f - 2 == 1:
        # k = n - f - 2 = 1: the two ends of the closest pair tie by construction, and Flower's
        # Krum (np.argsort) takes whichever comes first; only the pair itself is order-free
        d2 = ((x[:, None] - x[None]) ** 2).sum(-1) + np.diag(np.full(n, np.inf))
        pair = np.unravel_index(np.argmin(d2), d2.shape)
        assert all(any(np.array_equal(o, x[i]) for i in pair) for o in (out, out_p))
        return
    np.testing.assert_allclose(out, out_p, rtol=1e-7, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(3, 12), d=st.integers(1, 5), name=st.sampled_from(AGG_RULES))
def test_identical_inputs_come_back(seed: int, n: int, d: int, name: str) -> None:
    v = np.random.default_rng(seed).normal(size=d)
    x = np.tile(v, (n, 1))
    f = _max_f(name, n)
    np.testing.assert_allclose(get_rule(name, f=f)(x), v, rtol=1e-9, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(5, 14), d=st.integers(1, 5))
def test_outputs_inside_coordinate_range(seed: int, n: int, d: int) -> None:
    x = _data(seed, n, d)
    lo, hi = x.min(axis=0) - 1e-12, x.max(axis=0) + 1e-12
    for name in ["median", "trimmed-mean", "krum", "multikrum", "bulyan"]:
        f = _max_f(name, n)
        out = get_rule(name, f=f)(x)
        assert np.all(out >= lo) and np.all(out <= hi), name


def test_krum_precondition_message() -> None:
    x = _data(0, 6, 3)
    with pytest.raises(PreconditionError, match=r"n >= 2f \+ 3"):
        krum(x, f=2)
    krum(x[:5], f=1)  # 5 >= 2*1 + 3 holds
    with pytest.raises(PreconditionError, match=r"n >= 2f \+ 3"):
        multi_krum(x[:4], f=1)


def test_bulyan_precondition_message() -> None:
    x = _data(1, 10, 3)
    with pytest.raises(PreconditionError, match=r"n >= 4f \+ 3"):
        bulyan(x, f=2)
    assert bulyan(x[:7], f=1).shape == (3,)


@pytest.mark.parametrize("name,need", [("trimmed-mean", r"f/n < 1/2"), ("geometric-median", r"n > 2f"),
                                       ("centered-clipping", r"n > 2f")])
def test_majority_preconditions(name: str, need: str) -> None:
    with pytest.raises(PreconditionError, match=need):
        get_rule(name, f=2)(_data(2, 4, 2))
    get_rule(name, f=1)(_data(2, 4, 2))  # n > 2f holds


def test_median_takes_no_f_as_in_runs() -> None:
    # Flower's FedMedian has no f and the run's guard checks none: a "majority" of f is not refused
    x = _data(2, 4, 2)
    np.testing.assert_array_equal(coordinate_median(x, f=2), np.median(x, axis=0))
    assert precondition_holds("median", 4, 2) and not precondition_holds("trimmed-mean", 4, 2)


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((2, 2, 2)), [[1.0, np.nan]], [[np.inf, 0.0]], np.zeros((0, 2))])
def test_malformed_vectors_refused(bad) -> None:
    with pytest.raises(PreconditionError):
        coordinate_median(bad)


def test_f_must_be_nonnegative_int() -> None:
    with pytest.raises(PreconditionError, match="non-negative integer"):
        trimmed_mean(_data(0, 5, 2), f=-1)
    with pytest.raises(PreconditionError, match="non-negative integer"):
        trimmed_mean(_data(0, 5, 2), f=1.5)


def test_trimmed_mean_and_median_by_hand() -> None:
    x = np.array([[0.0], [1.0], [2.0], [3.0], [100.0]])
    assert trimmed_mean(x, f=1)[0] == pytest.approx(2.0)
    assert coordinate_median(x, f=2)[0] == pytest.approx(2.0)


def test_krum_picks_the_cluster_not_the_outliers() -> None:
    rng = np.random.default_rng(3)
    honest = rng.normal(size=(8, 4)) * 0.1
    byz = np.full((2, 4), 50.0)
    x = np.vstack([honest, byz])
    assert np.linalg.norm(mean(x)) > 10.0  # negative control: the plain mean is dragged away
    assert int(krum_select(x, f=2)[0]) < 8
    assert set(krum_select(x, f=2, m=8).tolist()) == set(range(8))
    assert np.linalg.norm(krum(x, f=2)) < 1.0
    assert np.linalg.norm(multi_krum(x, f=2)) < 1.0
    assert np.linalg.norm(bulyan(np.vstack([honest, rng.normal(size=(3, 4)) * 0.1, byz]), f=2)) < 1.0


def test_geometric_median_of_symmetric_points() -> None:
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [0.0, 0.0]])
    np.testing.assert_allclose(geometric_median(x), [0.0, 0.0], atol=1e-6)
    # robust to one far point: stays near the cluster
    far = np.vstack([x, [[1e6, 1e6]]])
    assert np.linalg.norm(geometric_median(far)) < 2.0


def test_centered_clipping_bounds_each_step() -> None:
    x = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [1e3, 1e3]])
    out = centered_clipping(x, tau=0.5, center=np.zeros(2), iters=1)
    # one step moves at most tau (each clipped difference has norm <= tau)
    assert np.linalg.norm(out) <= 0.5 + 1e-12


def test_nnm_shape_and_neighbours() -> None:
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    mixed = nnm(x, f=2)
    np.testing.assert_allclose(mixed[:, 0], [0.5, 0.5, 10.5, 10.5])
    with pytest.raises(PreconditionError, match="n > f"):
        nnm(x, f=4)


def test_registry_unknown_and_composite() -> None:
    with pytest.raises(KeyError, match="unknown robust rule"):
        get_rule("nope")
    x = _data(5, 9, 3)
    np.testing.assert_allclose(get_rule("nnm+trimmed-mean", f=2)(x), trimmed_mean(nnm(x, f=2), f=2))
    assert not precondition_holds("bulyan", 14, 3) and precondition_holds("bulyan", 15, 3)


def _reply(i: int, vec: np.ndarray) -> Message:
    ins = Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=i + 1, message_type="train")
    content = RecordDict({"arrays": ArrayRecord([vec]), "metrics": MetricRecord({"num-examples": 1})})
    return Message(content, reply_to=ins)


@pytest.mark.parametrize("name", ["fedavg", "median", "trimmed-mean", "krum", "multikrum", "bulyan"])
def test_vector_rules_are_the_runs_strategies(name: str) -> None:
    # one implementation: the vector rule is bit for bit what a run's strategy aggregates
    n, fraction = 15, 0.2  # f = ceil(0.2 x 15) = 3; Bulyan's n >= 4f + 3 just holds
    x = _data(7, n, 5)
    x[-3:] += 40.0
    strat = build_strategy(build_config({"strategy": name, "byzantine_fraction": fraction}))
    arrays, _ = strat.aggregate_train(1, [_reply(i, x[i]) for i in range(n)])
    run = arrays.to_numpy_ndarrays()[0]
    np.testing.assert_array_equal(get_rule("mean" if name == "fedavg" else name, f=3)(x), run)
    # negative control: the three shifted vectors drag the mean, not the robust rules
    assert (np.abs(run).max() > 5.0) == (name == "fedavg")
