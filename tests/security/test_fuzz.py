"""Fuzz: arbitrary replies thrown at the parser, validator and verifier never crash the
server; every outcome is an accept or a contract reason."""

from __future__ import annotations

import warnings

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedqnn.security.flower_glue import SIG_RECORD, check_reply, verify_reply
from fedqnn.security.keys import KeyRegistry
from fedqnn.security.validator import ValidationSpec, template_from_arrays
from fedqnn.security.verifier import AUTH_REASONS, Verifier
from tests.security.helpers import NODES, RUN_ID, SEED, model_arrays, signed_reply

SPEC = ValidationSpec(template=template_from_arrays(model_arrays()), max_bytes=1 << 16)
REGISTRY = KeyRegistry.for_simulation(SEED, NODES)
NAMES = st.sampled_from(["w", "b", "arrays", "metrics", "num-examples", "stamp", "calib-t1", SIG_RECORD, "x", ""])
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
INTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
DTYPES = st.sampled_from(["float32", "float64", "int64", "uint8", "bool", "complex64", "float16", ">f8"])


@st.composite
def arrays(draw) -> Array:
    kind = draw(st.integers(0, 3))
    if kind == 0:  # a real small array, maybe with NaNs
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
        vals = draw(st.lists(FLOATS, min_size=1, max_size=4))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = np.resize(np.array(vals), shape).astype(draw(DTYPES))
        return Array(a)
    if kind == 1:  # the template's arrays, honest
        return Array(model_arrays()[draw(st.sampled_from(["w", "b"]))])
    shape = tuple(draw(st.lists(st.integers(-3, 2**40), max_size=4)))  # huge or negative shapes
    if kind == 2:  # a real header, lying shape fields
        data = Array(np.zeros(draw(st.integers(0, 8)), dtype=np.float32)).data
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
    else:  # garbage bytes
        data = draw(st.binary(max_size=64))
    stype = draw(st.sampled_from(["numpy.ndarray", "torch", ""]))
    return Array(dtype=draw(DTYPES), shape=shape, stype=stype, data=data)


METRIC_VALUES = st.one_of(INTS, FLOATS, st.lists(INTS, max_size=4), st.lists(FLOATS, max_size=4))
CONFIG_VALUES = st.one_of(METRIC_VALUES, st.text(max_size=8), st.binary(max_size=80), st.booleans())


@st.composite
def sig_records(draw) -> ConfigRecord:
    fields = {
        "signer": st.one_of(st.sampled_from(NODES + ["node-9", ""]), st.text(max_size=6)),
        "run-id": st.one_of(st.just(RUN_ID), st.text(max_size=6)),
        "server-round": st.one_of(st.integers(-2, 4), st.just(2**70), FLOATS),
        "nonce": st.text(max_size=34),
        "signature": st.one_of(st.binary(min_size=64, max_size=64), st.binary(max_size=80)),
        "mac": st.binary(max_size=40),
        "qkd-epoch": st.integers(-1, 3),
    }
    rec = {}
    for k, s in fields.items():
        if draw(st.booleans()):
            rec[k] = draw(s)
    return ConfigRecord(rec)


@st.composite
def replies(draw):
    mode = draw(st.integers(0, 4))
    if mode == 0:  # not even a RecordDict
        return draw(st.sampled_from([None, {}, "reply", 3, [RecordDict()]]))
    if mode in (1, 2):  # an honestly signed reply, then mutated
        node = draw(st.sampled_from(NODES + ["node-9"]))
        rnd = draw(st.integers(1, 3))
        content = signed_reply(draw(st.just(VERIFIER)), rnd, node, scale=draw(st.floats(-2, 2)),
                               num_examples=draw(st.integers(-2, 50)))
        if mode == 2:
            target = draw(st.sampled_from(["array", "metric", "sig", "drop"]))
            if target == "array":
                content.array_records["arrays"][draw(NAMES)] = draw(arrays())
            elif target == "metric":
                content.metric_records["metrics"][draw(NAMES)] = draw(METRIC_VALUES)
            elif target == "sig":
                content.config_records[SIG_RECORD][draw(NAMES)] = draw(CONFIG_VALUES)
            else:
                del content[draw(st.sampled_from(sorted(content.keys())))]
        return content
    records: dict = {}  # built as a dict first: Flower logs a warning per overwritten record
    for _ in range(draw(st.integers(0, 3))):
        name, kind = draw(NAMES), draw(st.integers(0, 2))
        if kind == 0:
            records[name] = ArrayRecord({draw(NAMES): draw(arrays()) for _ in range(draw(st.integers(0, 3)))})
        elif kind == 1:
            records[name] = MetricRecord({draw(NAMES): draw(METRIC_VALUES) for _ in range(draw(st.integers(0, 3)))})
        else:
            records[name] = ConfigRecord({draw(NAMES): draw(CONFIG_VALUES) for _ in range(draw(st.integers(0, 3)))})
    if mode == 4:
        records[SIG_RECORD] = draw(sig_records())
    return RecordDict(records)


VERIFIER = Verifier(REGISTRY, RUN_ID, seed=SEED)


def _is_contract_reason(outcome: tuple[bool, str | None]) -> bool:
    ok, reason = outcome
    if ok:
        return reason is None
    return reason in AUTH_REASONS or reason == "oversized" or (isinstance(reason, str) and reason.startswith("malformed:"))


def _check_all(reply, src, rnd) -> None:
    a = verify_reply(VERIFIER, reply, src, rnd)
    b = check_reply(VERIFIER, reply, src, rnd, SPEC)
    c = check_reply(None, reply, src, rnd, SPEC)
    assert _is_contract_reason(a), a
    assert _is_contract_reason(b), b
    assert _is_contract_reason(c), c
    assert VERIFIER.internal_errors == 0


# Structured strategy (hypothesis builds and shrinks every field): rich but ~3 ms/example.
@settings(max_examples=1_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(reply=replies(), src=st.sampled_from(NODES + ["node-9"]), rnd=st.integers(0, 4))
def test_fuzz_structured_replies(reply, src, rnd):
    _check_all(reply, src, rnd)


# --- bulk: 10,000 examples, the reply drawn by a NumPy stream hypothesis seeds (fast) ------

_NAMES = ["w", "b", "arrays", "metrics", "num-examples", "stamp", "calib-t1", SIG_RECORD, "x", ""]
_DTYPES = ["float32", "float64", "int64", "uint8", "bool", "complex64", "float16", ">f8", "object", "U3"]
_SPECIALS = [np.nan, np.inf, -np.inf, -0.0, 1e308, -1.0, 0.0, 2**63 - 1]


def _rand_array(g: np.random.Generator) -> Array:
    kind = g.integers(0, 4)
    if kind == 0:
        shape = tuple(int(d) for d in g.integers(0, 4, size=g.integers(0, 3)))
        a = g.choice(_SPECIALS + [0.5, 2.0], size=shape).astype(g.choice(_DTYPES[:7]))
        return Array(a)
    if kind == 1:
        return Array(model_arrays()[str(g.choice(["w", "b"]))])
    shape = tuple(int(d) for d in g.choice([-1, 0, 2, 3, 2**31, 2**40, 2**62], size=g.integers(0, 4)))
    if kind == 2:
        data = Array(np.zeros(int(g.integers(0, 8)), dtype=np.float32)).data
        data = data[: int(g.integers(0, len(data) + 1))]
    else:
        data = g.bytes(int(g.integers(0, 64)))
    return Array(dtype=str(g.choice(_DTYPES)), shape=shape, stype=str(g.choice(["numpy.ndarray", "torch", ""])), data=data)


def _rand_metric(g: np.random.Generator):
    kind = g.integers(0, 4)
    if kind == 0:
        return int(g.choice([-1, 0, 7, 2**62, -(2**63)]))
    if kind == 1:
        return float(g.choice(_SPECIALS + [0.25]))
    if kind == 2:
        return [int(x) for x in g.integers(-5, 5, size=g.integers(0, 4))]
    return [float(x) for x in g.choice(_SPECIALS, size=g.integers(0, 4))]


def _rand_config(g: np.random.Generator):
    kind = g.integers(0, 4)
    if kind == 0:
        return _rand_metric(g)
    if kind == 1:
        return str(g.choice(NODES + ["node-9", "", "\u00e9", RUN_ID]))
    if kind == 2:
        return g.bytes(int(g.choice([0, 31, 32, 63, 64, 65])))
    return bool(g.integers(0, 2))


def _rand_reply(g: np.random.Generator, mode: int):
    if mode == 0:
        return [None, {}, "reply", 3, [RecordDict()]][int(g.integers(0, 5))]
    if mode in (1, 2):
        node = str(g.choice(NODES + ["node-9"]))
        content = signed_reply(VERIFIER, int(g.integers(1, 4)), node, scale=float(g.normal()),
                               num_examples=int(g.integers(-2, 50)))
        if mode == 2:
            target = g.integers(0, 4)
            name = str(g.choice(_NAMES))
            if target == 0:
                content.array_records["arrays"][name] = _rand_array(g)
            elif target == 1:
                content.metric_records["metrics"][name] = _rand_metric(g)
            elif target == 2:
                content.config_records[SIG_RECORD][name] = _rand_config(g)
            else:
                del content[str(g.choice(sorted(content.keys())))]
        return content
    records: dict = {}
    for _ in range(int(g.integers(0, 4))):
        name, kind, n = str(g.choice(_NAMES)), g.integers(0, 3), int(g.integers(0, 4))
        if kind == 0:
            records[name] = ArrayRecord({str(g.choice(_NAMES)): _rand_array(g) for _ in range(n)})
        elif kind == 1:
            records[name] = MetricRecord({str(g.choice(_NAMES)): _rand_metric(g) for _ in range(n)})
        else:
            records[name] = ConfigRecord({str(g.choice(_NAMES)): _rand_config(g) for _ in range(n)})
    if mode == 4:
        sig = {k: _rand_config(g) for k in ("signer", "run-id", "server-round", "nonce", "signature", "mac", "qkd-epoch")
               if g.integers(0, 2)}
        if g.integers(0, 2):
            sig["signature"] = g.bytes(64)
        records[SIG_RECORD] = ConfigRecord(sig)
    return RecordDict(records)


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(seed=st.integers(0, 2**32 - 1), mode=st.integers(0, 4), src=st.sampled_from(NODES + ["node-9"]),
       rnd=st.integers(0, 4))
def test_fuzz_10k_replies_never_crash(seed, mode, src, rnd):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NaN -> int casts while building inputs
        reply = _rand_reply(np.random.default_rng(seed), mode)
    _check_all(reply, src, rnd)
