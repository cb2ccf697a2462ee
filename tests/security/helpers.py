"""Reply builders shared by the security tests."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, MetricRecord, RecordDict

from fedqnn.security.flower_glue import sign_reply
from fedqnn.security.keys import simulation_node_key
from fedqnn.security.verifier import Verifier

SEED = 7
RUN_ID = "run-42"
NODES = [f"node-{i}" for i in range(4)]


def model_arrays(scale: float = 1.0) -> dict[str, np.ndarray]:
    return {
        "w": (np.arange(6, dtype=np.float32).reshape(2, 3) * scale),
        "b": np.array([0.5, -1.0], dtype=np.float64) * scale,
    }


def make_reply(scale: float = 1.0, num_examples: int = 10, stamp: float = 0.9) -> RecordDict:
    arrays = model_arrays(scale)
    return RecordDict(
        {
            "arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
            "metrics": MetricRecord({"num-examples": num_examples, "train_loss": 0.25, "stamp": stamp,
                                     "calib-t1": [1.5, 2.5]}),
        }
    )


def auth_config(verifier: Verifier, server_round: int, node: str) -> ConfigRecord:
    nonce = verifier.issue_nonce(server_round, node)
    return ConfigRecord({"run-id": verifier.run_id, "server-round": server_round, "nonce": nonce})


def signed_reply(verifier: Verifier, server_round: int, node: str, *, signer: str | None = None,
                 key_node: str | None = None, scale: float = 1.0, **kw) -> RecordDict:
    content = make_reply(scale, **kw)
    auth = auth_config(verifier, server_round, node)
    sign_reply(content, auth, signer or node, simulation_node_key(SEED, key_node or signer or node))
    return content


def context_for(pid: int, seed: int = SEED) -> Context:
    return Context(run_id=42, node_id=1000 + pid, node_config={"partition-id": pid, "num-partitions": 4},
                   state=RecordDict(), run_config={"seed": seed})

