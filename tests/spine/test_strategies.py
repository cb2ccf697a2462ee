import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fedqnn.config import ConfigError, build_config
from strategies.flower_builtins import PreconditionError
from strategies.registry import REGISTRY, build_strategy, resolve_strategy_name


def _reply(src: int, value: float, n_examples: float) -> Message:
    ins = Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=src, message_type="train")
    arrays = ArrayRecord([np.full(3, value, dtype=np.float32)])
    return Message(RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": n_examples})}), reply_to=ins)


def test_registry_names_and_clear_errors():
    resolve_strategy_name("ceas")
    assert {"ceas", "fedavg", "krum", "multikrum", "median", "trimmed-mean", "bulyan"} <= set(REGISTRY)
    with pytest.raises(ConfigError, match="^strategy"):
        resolve_strategy_name("nope")
    with pytest.raises(ConfigError, match="^strategy: cannot import"):
        resolve_strategy_name("no_such_module:Thing")
    with pytest.raises(ConfigError, match="not a subclass"):
        resolve_strategy_name("collections:OrderedDict")


def test_fedavg_clamps_inflated_num_examples():
    cfg = build_config({"strategy": "fedavg", "data.samples_per_client": 64})
    strat = build_strategy(cfg)
    replies = [_reply(1, 0.0, 64), _reply(2, 0.0, 64), _reply(3, 3.0, 1e9)]  # node 3 inflates its weight
    arrays, _ = strat.aggregate_train(1, replies)
    np.testing.assert_allclose(arrays.to_numpy_ndarrays()[0], np.full(3, 1.0), rtol=1e-6)


@pytest.mark.parametrize("name,n,ok", [("krum", 4, False), ("krum", 5, True), ("multikrum", 4, False),
                                       ("bulyan", 10, False), ("bulyan", 15, True)])
def test_robust_rules_check_their_preconditions(name, n, ok):
    cfg = build_config({"strategy": name, "byzantine_fraction": 0.2})  # f = ceil(0.2 n) = 1 or 2
    strat = build_strategy(cfg)
    replies = [_reply(i + 1, float(i), 64) for i in range(n)]
    if ok:
        arrays, _ = strat.aggregate_train(1, replies)
        assert arrays is not None
    else:
        with pytest.raises(PreconditionError, match=r"n >= \d?f \+ 3"):
            strat.aggregate_train(1, replies)


def test_nnm_cc_resists_outliers_that_move_the_mean_and_checks_n_gt_2f():
    cfg = build_config({"strategy": "nnm-cc", "byzantine_fraction": 0.2})
    strat = build_strategy(cfg)
    rng = np.random.default_rng(0)
    honest = [_reply(i + 1, 1.0 + 0.01 * rng.standard_normal(), 64) for i in range(8)]
    byz = [_reply(9 + i, 100.0, 64) for i in range(2)]  # f = ceil(0.2 x 10) = 2
    arrays, _ = strat.aggregate_train(1, honest + byz)
    agg = arrays.to_numpy_ndarrays()[0]
    assert agg.shape == (3,) and agg.dtype == np.float32
    assert np.all(np.abs(agg - 1.0) < 0.05)  # FedAvg would give ~20.8
    mean, _ = build_strategy(build_config({"strategy": "fedavg"})).aggregate_train(1, honest + byz)
    assert np.all(mean.to_numpy_ndarrays()[0] > 15)
    with pytest.raises(PreconditionError, match="n > 2f"):
        build_strategy(build_config({"strategy": "nnm-cc", "byzantine_fraction": 0.5})).aggregate_train(
            1, [_reply(1, 0.0, 64), _reply(2, 1.0, 64)])
