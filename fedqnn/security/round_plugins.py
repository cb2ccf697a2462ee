"""Update authentication and QKD keys as round plugins (``docs/security.md``).

* ``verifier`` (``auth`` = ``signed`` or ``qkd``): builds the :class:`~fedqnn.security.verifier.Verifier`
  and publishes it as ``run.services["verifier"]`` (the server's verification step checks every
  reply with it); ``before_send`` issues each instruction's nonce and ``fedqnn-auth`` record, with
  the node's QKD entries when there is a key.
* ``qkd`` (``auth = "qkd"``): asks the broker for key pairs (``state.data["key_demand"]``), pools
  what it delivered (``state.data["key_pairs"]``), runs the BBM92 exchanges and tells the verifier
  which nodes must MAC; an aborted exchange is a ``qkd-abort`` event.
"""

from __future__ import annotations

from logging import INFO
from typing import Any

from flwr.common.logger import log

from fedqnn.plugins import RoundPlugin, RoundState, RunContext

__all__ = ["VerifierPlugin", "QkdPlugin", "verifier_from_config", "qkd_from_config", "build_verifier"]


def build_verifier(cfg: dict[str, Any], node_names: list[str], flower_run_id: int | None = None) -> Any:
    """The update verifier for ``cfg['auth']`` (None when off). Its run id includes Flower's run
    id in deployments, so nonces never repeat across runs with the same seed."""
    from fedqnn.schema import ConfigError
    from fedqnn.security.keys import KeyRegistry
    from fedqnn.security.verifier import Verifier

    if cfg["auth"] == "off":
        return None
    if cfg["security"]["registry"]:
        try:
            registry = KeyRegistry.load(cfg["security"]["registry"])
        except (OSError, ValueError) as exc:
            raise ConfigError(f"security.registry: cannot load {cfg['security']['registry']!r} ({exc})") from exc
    else:
        registry = KeyRegistry.for_simulation(cfg["seed"], node_names)
    run_id = f"fedqnn-{cfg['seed']}" if flower_run_id is None else f"fedqnn-{cfg['seed']}-{flower_run_id}"
    return Verifier(registry, run_id=run_id, seed=cfg["seed"])


class VerifierPlugin(RoundPlugin):
    name = "verifier"

    def setup(self, run: RunContext) -> None:
        self.verifier = build_verifier(run.cfg, run.node_names, run.flower_run_id)
        self.run = run
        run.services["verifier"] = self.verifier

    def before_send(self, state: RoundState) -> None:
        from fedqnn.security.flower_glue import add_auth_config

        qkd = self.run.services.get("qkd")
        for m in state.messages:
            node = self.run.names[m.metadata.dst_node_id]
            add_auth_config(self.verifier, m.content, state.round, node,
                            qkd_public=qkd.public_config(node) if qkd is not None else None)

    def state_dict(self) -> dict[str, Any]:
        return self.verifier.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.verifier.load_state_dict(state)


class QkdPlugin(RoundPlugin):
    name = "qkd"

    def setup(self, run: RunContext) -> None:
        from fedqnn.security.qkd import QkdKeyManager

        q = run.cfg["qkd"]
        self.qkd = QkdKeyManager(run.cfg["seed"], refresh_every=q["refresh_every"], key_bits=q["key_bits"],
                                 eps=q["eps"], f_ec=q["f_ec"])
        self.run = run
        run.services["qkd"] = self.qkd

    def round_start(self, state: RoundState) -> None:
        if "broker" in self.run.services:  # fixed per-round demand of every node whose next key is not ready
            per = self.run.cfg["qkd"]["pairs_per_round"]
            state.data["key_demand"] = {n: per for n in self.run.node_names if self.qkd.demand(n, state.round)}

    def before_send(self, state: RoundState) -> None:
        if "key_pairs" not in state.data:  # no broker, no key pairs
            return
        for n, (count, bell) in state.data["key_pairs"].items():
            self.qkd.deposit(n, count, bell)
        for ev in self.qkd.step(state.round, self.run.node_names):
            log(INFO, "fedqnn: round %s: the key exchange of %s aborted (QBER too high); its update "
                "falls back to the signature", state.round, ev["node"])
            state.event(self, ev["node"], ev["event"])
        self.qkd.sync_verifier(self.run.services["verifier"])

    def state_dict(self) -> dict[str, Any]:
        return self.qkd.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.qkd.load_state_dict(state)


def verifier_from_config(cfg: dict[str, Any]) -> VerifierPlugin | None:
    return None if cfg["auth"] == "off" else VerifierPlugin()


def qkd_from_config(cfg: dict[str, Any]) -> QkdPlugin | None:
    return QkdPlugin() if cfg["auth"] == "qkd" else None
