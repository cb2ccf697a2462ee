"""Signed replies: honest ones accepted, every attack rejected with the contract's reason."""

from __future__ import annotations

import json

import numpy as np
from flwr.app import Array, ConfigRecord

from fedqnn.security.flower_glue import (
    SIG_RECORD,
    check_reply,
    parse_reply,
    reply_digest,
    sign_reply,
    verify_reply,
)
from fedqnn.security.keys import KeyRegistry, simulation_node_key
from fedqnn.security.verifier import AUTH_REASONS, Verifier
from tests.security.helpers import NODES, RUN_ID, SEED, auth_config, make_reply, signed_reply


def test_honest_replies_from_every_node_accepted_over_rounds(verifier):
    for rnd in (1, 2, 3):
        for i, node in enumerate(NODES):
            reply = signed_reply(verifier, rnd, node, scale=rnd + 10 * i)
            assert verify_reply(verifier, reply, node, rnd) == (True, None)
    assert verifier.internal_errors == 0


def test_tampered_array_is_bad_signature(verifier):
    reply = signed_reply(verifier, 1, "node-0")
    reply.array_records["arrays"]["w"] = Array(np.full((2, 3), 9.0, dtype=np.float32))
    assert verify_reply(verifier, reply, "node-0", 1) == (False, "bad-signature")


def test_tampered_metric_stamp_and_calibration_are_bad_signature(verifier):
    for key, value in (("num-examples", 10_000), ("stamp", 0.99), ("calib-t1", [1.5, 2.6])):
        reply = signed_reply(verifier, 1, "node-1")
        reply.metric_records["metrics"][key] = value
        assert verify_reply(verifier, reply, "node-1", 1) == (False, "bad-signature"), key


def test_added_record_and_altered_signed_fields_are_bad_signature(verifier):
    reply = signed_reply(verifier, 1, "node-2")
    reply["extra"] = ConfigRecord({"x": 1})
    assert verify_reply(verifier, reply, "node-2", 1)[1] == "bad-signature"
    reply = signed_reply(verifier, 1, "node-3")
    reply.config_records[SIG_RECORD]["server-round"] = 2  # claim a different round
    assert verify_reply(verifier, reply, "node-3", 2)[1] == "bad-signature"


def test_garbage_signature_is_bad_signature(verifier):
    for garbage in (b"\x00" * 64, b"short", bytes(range(64))):
        reply = signed_reply(verifier, 1, "node-0")
        reply.config_records[SIG_RECORD]["signature"] = garbage
        assert verify_reply(verifier, reply, "node-0", 1) == (False, "bad-signature")


def test_unsigned(verifier):
    verifier.issue_nonce(1, "node-0")
    assert verify_reply(verifier, make_reply(), "node-0", 1) == (False, "unsigned")
    reply = signed_reply(verifier, 1, "node-0")
    del reply.config_records[SIG_RECORD]["signature"]
    assert verify_reply(verifier, reply, "node-0", 1) == (False, "unsigned")


def test_unknown_key(verifier):
    # node-9 signs with its own (simulation) key, but the registry does not list node-9
    reply = signed_reply(verifier, 1, "node-9")
    assert verify_reply(verifier, reply, "node-9", 1) == (False, "unknown-key")


def test_stale_round(verifier):
    old = signed_reply(verifier, 1, "node-0")  # signed for round 1, delivered in round 2
    verifier.issue_nonce(2, "node-0")
    assert verify_reply(verifier, old, "node-0", 2) == (False, "stale-round")


def test_replay_of_the_same_reply(verifier):
    reply = signed_reply(verifier, 1, "node-0")
    assert verify_reply(verifier, reply, "node-0", 1) == (True, None)
    assert verify_reply(verifier, reply, "node-0", 1) == (False, "replay")


def test_replay_of_an_old_payload_resigned_with_a_fresh_nonce(verifier):
    assert verify_reply(verifier, signed_reply(verifier, 1, "node-0"), "node-0", 1)[0]
    # round 2: the very same payload, honestly re-signed with round 2's nonce
    again = signed_reply(verifier, 2, "node-0")
    assert verify_reply(verifier, again, "node-0", 2) == (False, "replay")
    # ... also when another node copies it (free-riding on an old update)
    copied = signed_reply(verifier, 2, "node-1")
    assert verify_reply(verifier, copied, "node-1", 2) == (False, "replay")
    # a fresh payload is fine
    assert verify_reply(verifier, signed_reply(verifier, 2, "node-2", scale=3.0), "node-2", 2) == (True, None)


def test_nonce_not_issued_to_this_node_or_round_is_replay(verifier):
    content = make_reply(scale=5.0)
    auth = auth_config(verifier, 1, "node-1")  # node-1's nonce ...
    verifier.issue_nonce(1, "node-0")
    sign_reply(content, auth, "node-0", simulation_node_key(SEED, "node-0"))  # ... used by node-0
    assert verify_reply(verifier, content, "node-0", 1) == (False, "replay")
    other_run = Verifier(verifier.registry, "another-run", seed=SEED)
    reply = signed_reply(other_run, 1, "node-0", scale=6.0)
    assert verify_reply(verifier, reply, "node-0", 1) == (False, "replay")


def test_impersonation(verifier):
    # node-1 sends, through its own connection, a reply claiming to be node-0's
    forged = signed_reply(verifier, 1, "node-0", signer="node-0", key_node="node-1")
    assert verify_reply(verifier, forged, "node-1", 1) == (False, "impersonation")
    # node-1 relays node-0's genuine reply as its own
    genuine = signed_reply(verifier, 1, "node-0", scale=2.0)
    assert verify_reply(verifier, genuine, "node-1", 1) == (False, "impersonation")
    # node-1 signs with its key but claims node-0's name: fails as node-0's signature
    fake = signed_reply(verifier, 1, "node-0", signer="node-0", key_node="node-1", scale=3.0)
    assert verify_reply(verifier, fake, "node-0", 1) == (False, "bad-signature")


def test_state_round_trips_through_json_for_resume(verifier, registry):
    reply = signed_reply(verifier, 1, "node-0")
    assert verify_reply(verifier, reply, "node-0", 1)[0]
    state = json.loads(json.dumps(verifier.state_dict()))
    resumed = Verifier(registry, "ignored", seed=None)
    resumed.load_state_dict(state)
    assert resumed.run_id == RUN_ID
    assert verify_reply(resumed, reply, "node-0", 1) == (False, "replay")  # nonce already used
    assert verify_reply(resumed, signed_reply(resumed, 2, "node-0"), "node-0", 2) == (False, "replay")
    assert resumed.issue_nonce(5, "node-1") == verifier.issue_nonce(5, "node-1")


def test_nonces_reproducible_from_seed_and_unique(registry):
    a, b = Verifier(registry, RUN_ID, seed=1), Verifier(registry, RUN_ID, seed=1)
    nonces = {a.issue_nonce(r, n) for r in range(1, 6) for n in NODES}
    assert len(nonces) == 5 * len(NODES)
    assert a.issue_nonce(3, "node-2") == b.issue_nonce(3, "node-2")
    assert Verifier(registry, RUN_ID).issue_nonce(3, "node-2") != a.issue_nonce(3, "node-2")


def test_qkd_mac_required_once_a_key_is_established(verifier):
    key = bytes(range(32))
    verifier.set_qkd_key("node-0", 1, key)
    no_mac = signed_reply(verifier, 1, "node-0")
    assert verify_reply(verifier, no_mac, "node-0", 1) == (False, "bad-signature")
    content = make_reply(scale=2.0)
    sign_reply(content, auth_config(verifier, 2, "node-0"), "node-0", simulation_node_key(SEED, "node-0"), (1, key))
    assert verify_reply(verifier, content, "node-0", 2) == (True, None)
    wrong = make_reply(scale=3.0)
    sign_reply(wrong, auth_config(verifier, 3, "node-0"), "node-0", simulation_node_key(SEED, "node-0"), (1, b"\x01" * 32))
    assert verify_reply(verifier, wrong, "node-0", 3) == (False, "bad-signature")
    verifier.set_qkd_key("node-0", 1, None)  # abort: back to signature only
    assert verify_reply(verifier, signed_reply(verifier, 4, "node-0", scale=4.0), "node-0", 4) == (True, None)


def test_check_reply_authenticates_then_validates(verifier):
    reply = signed_reply(verifier, 1, "node-0", num_examples=-3)
    assert check_reply(verifier, reply, "node-0", 1) == (False, "malformed:num-examples")
    assert check_reply(None, make_reply(), "node-0", 1) == (True, None)  # auth=off


def test_digest_ignores_record_and_key_order():
    a = make_reply()
    b = make_reply()
    b_arrays = b.array_records["arrays"]
    w = b_arrays["w"]
    del b_arrays["w"]
    b_arrays["w"] = w  # reinserted: different insertion order
    da, db = reply_digest(parse_reply(a)), reply_digest(parse_reply(b))
    assert da == db and len(da) == 32


def test_reasons_are_the_contracts():
    assert set(AUTH_REASONS) == {"bad-signature", "unsigned", "unknown-key", "stale-round", "replay", "impersonation"}
    assert KeyRegistry.for_simulation(SEED, NODES).names() == sorted(NODES)
