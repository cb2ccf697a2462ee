"""The client signing mod on real Flower Messages, end to end with the server's checks."""

from __future__ import annotations

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.clientapp import ClientApp

from fedqnn.security import qkd
from fedqnn.security.flower_glue import (
    AUTH_RECORD,
    SIG_RECORD,
    add_auth_config,
    make_signing_mod,
    signing_mod,
    verify_reply,
)
from tests.security.helpers import context_for, make_reply


def _train(msg: Message, context) -> Message:
    return Message(make_reply(scale=float(context.node_config["partition-id"]) + 1), reply_to=msg)


def _instruction(verifier, rnd: int, node: str, qkd_public=None) -> Message:
    content = RecordDict({"config": ConfigRecord({"lr": 0.1})})
    add_auth_config(verifier, content, rnd, node, qkd_public=qkd_public)
    return Message(content, dst_node_id=1000, message_type="train")


def test_mod_signs_and_server_accepts(task_identity, verifier):
    msg = _instruction(verifier, 1, "node-2")
    reply = signing_mod(msg, context_for(2), _train)
    sig = reply.content.config_records[SIG_RECORD]
    assert sig["signer"] == "node-2" and sig["server-round"] == 1 and len(sig["signature"]) == 64
    assert verify_reply(verifier, reply.content, "node-2", 1) == (True, None)


def test_mod_inside_a_clientapp(task_identity, verifier):
    app = ClientApp(mods=[signing_mod])
    app.train()(_train)
    reply = app(_instruction(verifier, 3, "node-1"), context_for(1))
    assert verify_reply(verifier, reply.content, "node-1", 3) == (True, None)


def test_mod_leaves_unauthenticated_instructions_alone(task_identity):
    msg = Message(RecordDict({"config": ConfigRecord({"lr": 0.1})}), dst_node_id=1000, message_type="train")
    reply = signing_mod(msg, context_for(0), _train)
    assert SIG_RECORD not in reply.content and AUTH_RECORD not in reply.content


def test_wrong_seed_on_the_client_is_bad_signature(task_identity, verifier):
    reply = make_signing_mod(seed=999)(_instruction(verifier, 1, "node-0"), context_for(0), _train)
    assert verify_reply(verifier, reply.content, "node-0", 1) == (False, "bad-signature")


def test_mod_uses_a_key_file_from_node_config(task_identity, verifier, tmp_path):
    from fedqnn.security.keys import KeyRegistry, generate_node_key, save_private_key

    key = generate_node_key()
    path = save_private_key(key, tmp_path / "node-3.key")
    verifier.registry.add("node-3", key.public_key())
    ctx = context_for(3)
    ctx.node_config = {"partition-id": 3, "auth-key": str(path)}
    reply = signing_mod(_instruction(verifier, 1, "node-3"), ctx, _train)
    assert verify_reply(verifier, reply.content, "node-3", 1) == (True, None)
    assert isinstance(verifier.registry, KeyRegistry)


def test_qkd_mode_adds_a_mac_the_server_checks(task_identity, verifier):
    from tests.security.helpers import SEED

    mgr = qkd.QkdKeyManager(seed=SEED, refresh_every=5)
    mgr.deposit("node-1", qkd.pairs_needed(0.97), 0.97)
    assert mgr.step(1, ["node-1"]) == []
    mgr.sync_verifier(verifier)
    msg = _instruction(verifier, 1, "node-1", qkd_public=mgr.public_config("node-1"))
    reply = signing_mod(msg, context_for(1), _train)
    sig = reply.content.config_records[SIG_RECORD]
    assert len(sig["mac"]) == 32 and sig["qkd-epoch"] == 1
    assert verify_reply(verifier, reply.content, "node-1", 1) == (True, None)
