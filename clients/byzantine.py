"""Byzantine QPUs in simulation: who they are, and the server-side adversary hook.

Adversary model (docs/attacks.md, CEAS Definition 4): Byzantine nodes hold valid keys, train on
their own data, and in omniscient attacks see the honest updates of the round and collude. In
simulation the omniscient/colluding part runs as a hook on the server *after* the honest replies
arrive and *before* verification: it rewrites each Byzantine node's reply and re-signs it with
that node's own key and the nonce the node was issued, exactly as a colluding insider could.

* vector attacks (``sign-flip``, ``gaussian``, ``scaled``, ``alie``, ``ipm``, ``mimic``,
  ``min-max``, ``min-sum``, ``fang-krum``, ``fang-median``, plug-ins): the update D_b = θ_b - θ_t
  becomes ``attack(own, honest, rng, n, f)``;
* ``stamp-inflation``: the update stays honest, the claimed calibration is inflated (errors / 10,
  shots x 10);
* ``label-flip`` (data level): done by the client itself (labels y -> 9 - y; operator targets
  s -> -s), see :func:`poison_targets`;
* ``replay``: the node re-sends its first (accepted) update in every later round, re-signed with
  a fresh nonce;
* ``impersonation``: the node signs its update in the name of an honest node;
* ``bell-drain`` (network level): the update stays honest; every round each Byzantine node asks
  the entanglement broker for ``drain_pairs`` extra pairs it never uses (the server passes
  :meth:`Adversary.drain_requests` to ``Broker.serve_round``; ``broker.quota`` is the defence).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from clients.config import (
    DATA_ATTACKS,
    NETWORK_ATTACKS,
    PROTOCOL_ATTACKS,
    attack_names,
    split_attack,
)
from fedqnn.byzantine_count import byzantine_count
from fedqnn.param_vectors import flatten_state, unflatten_state
from fedqnn.seeding import rng

__all__ = ["PROTOCOL_ATTACKS", "DATA_ATTACKS", "NETWORK_ATTACKS", "byzantine_nodes", "attack_of", "split_attack",
           "poison_targets", "Adversary", "attack_names"]

_SENT_AS_TRAINED = ("none", *DATA_ATTACKS, *NETWORK_ATTACKS)  # the hook leaves these replies alone


def attack_of(cfg: dict[str, Any], node_names: list[str]) -> dict[str, str]:
    """Each Byzantine node's attack. ``attack`` names one attack for all of them, or several
    joined by ``+`` (``alie+bell-drain``): the Byzantine nodes, in node order, take them in turn."""
    parts = split_attack(cfg.get("attack", "none"))
    return {n: parts[i % len(parts)] for i, n in enumerate(byzantine_nodes(cfg, node_names))}


def byzantine_nodes(cfg: dict[str, Any], node_names: list[str]) -> list[str]:
    """byzantine_count(byzantine_fraction, N) = ceil(byzantine_fraction x N - 1e-9) nodes drawn from the stream (seed, 'byzantine'); none if the
    attack is 'none' or the fraction 0."""
    frac = cfg.get("byzantine_fraction", 0.0)
    if cfg.get("attack", "none") == "none" or frac <= 0:
        return []
    names = sorted(node_names, key=lambda s: int(s.rsplit("-", 1)[-1]) if s.rsplit("-", 1)[-1].isdigit() else 0)
    k = min(len(names), byzantine_count(frac, len(names)))
    pick = rng(cfg["seed"], "byzantine").choice(len(names), size=k, replace=False)
    return sorted((names[i] for i in pick), key=names.index)


def poison_targets(cfg: dict[str, Any], target: torch.Tensor, num_classes: int | None) -> torch.Tensor:
    """Label flipping: classes y -> C - 1 - y (:func:`clients.attacks.zoo.flip_labels`);
    regression targets s -> -s."""
    if num_classes:
        from clients.attacks.zoo import flip_labels

        return torch.from_numpy(flip_labels(target.numpy(), num_classes))
    return -target


_CLAIM_KEYS = {"error_keys": ("cal_p", "cal_r"), "shot_keys": ("cal_shots",)}


def _inflated_claim(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` with the node's claimed calibration inflated 10x
    (:func:`clients.attacks.zoo.inflate_calibration`: errors / 10, shots x 10)."""
    from clients.attacks.zoo import inflate_calibration

    claim = {k: float(metrics.get(k, 0.0)) for k in ("cal_p", "cal_r", "cal_shots")}
    return {**metrics, **inflate_calibration(claim, 10.0, **_CLAIM_KEYS)}


def _plugin_claim(metrics: dict[str, Any], claim: Any) -> dict[str, Any]:
    """``metrics`` with ``cal_p``, ``cal_r``, ``cal_shots`` from ``claim({"p", "r", "shots"})``:
    any numbers, valid or not (what is not a number is sent as NaN, which the server refuses)."""
    told = claim({"p": float(metrics.get("cal_p", 0.0)), "r": float(metrics.get("cal_r", 0.0)),
                  "shots": float(metrics.get("cal_shots", 0.0))})
    out = dict(metrics)
    for key, k in (("p", "cal_p"), ("r", "cal_r"), ("shots", "cal_shots")):
        if key in told:
            v = told[key]
            out[k] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")
    return out


class Adversary:
    """The colluding Byzantine nodes of one run (simulation only)."""

    def __init__(self, cfg: dict[str, Any], node_names: list[str]) -> None:
        self.cfg = cfg
        self.by_node = attack_of(cfg, node_names)  # node -> its attack (a mixture gives several)
        self.nodes = list(self.by_node)
        self.specs: dict[str, Any] = {}
        for a in set(self.by_node.values()):
            if a not in (*_SENT_AS_TRAINED, *PROTOCOL_ATTACKS):
                from clients.attacks import get_attack

                self.specs[a] = get_attack(a)
        self._history: dict[str, RecordDict] = {}  # replay: each node's earlier signed content

    def state_dict(self) -> dict[str, RecordDict]:
        """What a checkpoint keeps of the adversary: node -> the content its replay attack re-sends
        (the signed payload accepted in its first round). A new dict, same entries."""
        return dict(self._history)

    def load_state_dict(self, state: dict[str, RecordDict]) -> None:
        """Restore :meth:`state_dict` (on resume)."""
        self._history = dict(state)

    @property
    def active(self) -> bool:
        """Whether some Byzantine node rewrites its reply (vector and protocol attacks)."""
        return any(a not in _SENT_AS_TRAINED for a in self.by_node.values())

    def drain_requests(self) -> dict[str, int] | None:
        """Bell-pair draining: the extra pairs each draining node asks the broker for this
        round (every round, participant or not: a node controls its own links), else None."""
        drain = {n: int(self.cfg["drain_pairs"]) for n, a in self.by_node.items() if a == "bell-drain"}
        return drain or None

    def rewrite(
        self, server_round: int, global_arrays: ArrayRecord, replies: list[tuple[str, Message]],
        instructions: dict[str, Message],
    ) -> list[tuple[str, str]]:
        """Rewrite the Byzantine nodes' replies in place (content replaced, re-signed).

        Returns ``(node, reason)`` for each node whose attack could not be crafted this round
        (e.g. too few honest replies left after dropouts); its reply goes out as trained and
        the other nodes' attacks go ahead."""
        byz = [(n, m) for n, m in replies if n in self.nodes and not m.has_error()]
        failed: list[tuple[str, str]] = []
        if not byz or not self.active:
            return failed
        base = global_arrays.to_torch_state_dict()
        keys = list(base)
        theta = flatten_state(base, keys)
        honest = [m for n, m in replies if n not in self.nodes and not m.has_error()]
        h = np.stack([flatten_state(m.content["arrays"].to_torch_state_dict(), keys) - theta for m in honest]) if honest else None
        gen = rng(self.cfg["seed"], "adversary", server_round)
        n_total, f = len([m for _, m in replies if not m.has_error()]), len(byz)
        for name, msg in byz:
            attack = self.by_node[name]
            if attack in _SENT_AS_TRAINED:
                continue
            content = msg.content
            auth = instructions[name].content.config_records.get("fedqnn-auth")
            signer = name
            if attack == "replay":
                old = self._history.get(name)
                if old is None:  # the first round goes out honestly (and is accepted):
                    self._history[name] = _copy(content)  # that accepted payload is replayed
                    continue
                content = _copy(old)
            elif attack == "impersonation":
                victims = [n for n, _ in replies if n not in self.nodes]
                if not victims:
                    continue
                signer = victims[int(gen.integers(len(victims)))]
            else:
                content, why = self._vector_attack(attack, content, base, keys, theta, h, gen, n_total, f)
                if content is None:
                    failed.append((name, why))
                    continue
            if auth is not None:
                _resign(self.cfg, content, auth, name, signer)
            msg.content = content
        return failed

    def _vector_attack(
        self, attack: str, content: RecordDict, base: dict[str, torch.Tensor], keys: list[str], theta: np.ndarray,
        h: np.ndarray | None, gen: np.random.Generator, n_total: int, f: int,
    ) -> tuple[RecordDict | None, str]:
        """(the reply's new content, "") with D_b = attack(own, honest, ...), or (None, why not)."""
        from clients.attacks.zoo import AttackError

        spec = self.specs[attack]
        own = flatten_state(content["arrays"].to_torch_state_dict(), keys) - theta
        if spec.omniscient and h is None:
            return None, f"{attack}: no honest reply to craft it from"
        try:
            bad = spec(own, h, gen, n=n_total, f=f)
        except AttackError as exc:
            return None, str(exc)
        metrics = dict(content["metrics"])
        if spec.claims:  # errors / 10, shots x 10
            metrics = _inflated_claim(metrics)
        if spec.claim is not None:  # a plug-in attack decides what calibration the node reports
            metrics = _plugin_claim(metrics, spec.claim)
        return RecordDict({
            "arrays": ArrayRecord(unflatten_state(theta + bad, base, keys)),
            "metrics": MetricRecord(metrics),
        }), ""


def _copy(content: RecordDict) -> RecordDict:
    out = RecordDict()
    for k, v in content.items():
        if k == "fedqnn-sig":
            continue
        if isinstance(v, ArrayRecord):
            out[k] = ArrayRecord({kk: vv.clone() for kk, vv in v.to_torch_state_dict().items()})
        elif isinstance(v, MetricRecord):
            out[k] = MetricRecord(dict(v))
        elif isinstance(v, ConfigRecord):
            out[k] = ConfigRecord(dict(v))
    return out


def _resign(cfg: dict[str, Any], content: RecordDict, auth: ConfigRecord, name: str, signer: str) -> None:
    """Sign with the Byzantine node's own (valid) key, and MAC with its own QKD key when the
    instruction carries one (an insider holds both); ``signer`` != name is impersonation."""
    from fedqnn.security.flower_glue import sign_reply
    from fedqnn.security.keys import simulation_node_key

    qkd_key = None
    if "qkd-epoch" in auth:
        from fedqnn.security.qkd import client_key_from_config

        qkd_key = client_key_from_config(auth, None, name, cfg["seed"])
    sign_reply(content, auth, signer, simulation_node_key(cfg["seed"], name), qkd_key)
