"""The validator's reasons: malformed:<field> and oversized."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict

from fedqnn.security.flower_glue import check_reply, parse_reply
from fedqnn.security.validator import ValidationSpec, template_from_arrays, validate
from tests.security.helpers import make_reply, model_arrays

SPEC = ValidationSpec(template=template_from_arrays(model_arrays()))
GOOD_METRICS = {"num-examples": 10, "stamp": 0.5, "calib-t1": [1.0, 2.0], "train_loss": 0.1}


def test_valid_reply_passes():
    assert validate(model_arrays(), GOOD_METRICS, SPEC) is None
    assert check_reply(None, make_reply(), "node-0", 1, SPEC) == (True, None)


def test_non_finite_values():
    for bad in (np.nan, np.inf, -np.inf):
        arrays = model_arrays()
        arrays["b"] = np.array([0.0, bad])
        assert validate(arrays, GOOD_METRICS, SPEC) == "malformed:b"


def test_wrong_shape_dtype_missing_and_extra_keys():
    arrays = model_arrays()
    arrays["w"] = arrays["w"].reshape(3, 2)
    assert validate(arrays, GOOD_METRICS, SPEC) == "malformed:w"
    arrays = model_arrays()
    arrays["w"] = arrays["w"].astype(np.float64)
    assert validate(arrays, GOOD_METRICS, SPEC) == "malformed:w"
    arrays = model_arrays()
    del arrays["b"]
    assert validate(arrays, GOOD_METRICS, SPEC) == "malformed:b"
    arrays = model_arrays()
    arrays["zzz"] = np.zeros(1)
    assert validate(arrays, GOOD_METRICS, SPEC) == "malformed:zzz"


def test_metrics_num_examples_stamps_calibration():
    cases = {
        "num-examples": [-1, float("nan"), float("inf"), 2.5, "ten"],
        "stamp": [-0.1, float("nan")],
        "calib-t1": [[1.0, float("inf")], [1.0, -2.0]],
        "train_loss": [float("nan")],
    }
    for key, values in cases.items():
        for v in values:
            metrics = dict(GOOD_METRICS, **{key: v})
            assert validate(model_arrays(), metrics, SPEC) == f"malformed:{key}", (key, v)
    metrics = dict(GOOD_METRICS)
    del metrics["num-examples"]
    assert validate(model_arrays(), metrics, SPEC) == "malformed:num-examples"


def test_oversized():
    small = ValidationSpec(template=None, max_bytes=1000)
    assert validate({"w": np.zeros(1000)}, GOOD_METRICS, small) == "oversized"
    reply = RecordDict({"a": ArrayRecord({"w": Array(np.zeros(1000))}), "m": MetricRecord({"num-examples": 1})})
    assert parse_reply(reply, max_bytes=1000) == "oversized"
    assert check_reply(None, reply, "node-0", 1, small) == (False, "oversized")


def test_lying_array_headers_are_malformed_not_allocated():
    good = Array(np.zeros((2, 3), dtype=np.float32))
    huge_shape = Array(dtype="float32", shape=(10**12, 10**6), stype="numpy.ndarray", data=good.data)
    reply = RecordDict({"a": ArrayRecord({"w": huge_shape}), "m": MetricRecord({"num-examples": 1})})
    assert parse_reply(reply) == "malformed:w"
    header = good.data.replace(b"(2, 3)", b"(9999999999, 9999999)")
    lying = Array(dtype="float32", shape=(9999999999, 9999999), stype="numpy.ndarray", data=header)
    reply = RecordDict({"a": ArrayRecord({"w": lying}), "m": MetricRecord({"num-examples": 1})})
    assert parse_reply(reply) == "oversized"
    pickled = Array(dtype="object", shape=(1,), stype="numpy.ndarray", data=b"\x93NUMPY garbage")
    reply = RecordDict({"a": ArrayRecord({"w": pickled}), "m": MetricRecord({"num-examples": 1})})
    assert parse_reply(reply) == "malformed:w"


def test_missing_array_record():
    reply = RecordDict({"m": MetricRecord({"num-examples": 1})})
    assert check_reply(None, reply, "node-0", 1) == (False, "malformed:arrays")
