"""Server-side verification of signed train replies.

The :class:`Verifier` issues a fresh nonce per (round, node) for the train instruction and
checks each reply's claim against the envelope it signed. Checks, in this order (the first
failure is the reason; the reasons of docs/outputs.md):

1. no signature record / no signature                    -> ``unsigned``
2. signed node name != node the reply came from          -> ``impersonation``
3. signed node name not in the key registry               -> ``unknown-key``
4. Ed25519 signature over the envelope rebuilt from the claim and the payload digest the
   server computed itself fails (tampered payload, garbage signature, altered fields); or,
   when the node holds an established QKD key, its HMAC-SHA256 tag is missing or wrong
                                                          -> ``bad-signature``
5. signed run id != this run (a reply from another run)   -> ``replay``
6. signed round != current server round                   -> ``stale-round``
7. nonce not the one issued to this node this round, or already used
                                                          -> ``replay``
8. payload digest already accepted in an earlier round (an old update re-signed with a
   fresh nonce)                                           -> ``replay``

Otherwise accept; the nonce is marked used and the digest remembered. Identical payloads
from two nodes in the same round are not a replay (a later round would be). ``verify``
never raises: any unexpected internal error maps to ``bad-signature`` and increments
``internal_errors`` (the fuzz test checks it stays 0).

Nonces: ``nonce = hex(HKDF-SHA256(secret, info="nonce|<round>|<node>", 16 bytes))``. With a
``seed`` the secret is derived from it (reproducible simulations); without, it is 32
random bytes. Either way a nonce is unique per (round, node) and re-issuing is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fedqnn.security import crypto
from fedqnn.security.envelope import Envelope, verify_envelope, verify_mac
from fedqnn.security.keys import KeyRegistry

__all__ = ["AUTH_REASONS", "Claim", "Verdict", "Verifier"]

AUTH_REASONS = (
    "bad-signature",
    "unsigned",
    "unknown-key",
    "stale-round",
    "replay",
    "impersonation",
)
STATE_FORMAT = "fedqnn-verifier/1"


@dataclass(frozen=True)
class Claim:
    """What a reply's signature record asserts (parsed by :mod:`.flower_glue`)."""

    signer: str
    run_id: str
    server_round: int
    nonce: str
    signature: bytes
    mac: bytes | None = None
    qkd_epoch: int | None = None


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None = None

    def __iter__(self):  # allows ``ok, reason = verdict``
        yield self.ok
        yield self.reason


ACCEPT = Verdict(True, None)


class Verifier:
    """Nonce issuer and reply checker for one run.

    Parameters
    ----------
    registry: allowed public keys (node name -> Ed25519 public key).
    run_id: this run's id as carried in the instruction (``str``).
    seed: makes nonces reproducible; ``None`` draws a random secret.
    keep_rounds: issued/used nonces are kept for the current and the previous
        ``keep_rounds - 1`` rounds (older replies are ``stale-round`` anyway).
    """

    def __init__(
        self,
        registry: KeyRegistry,
        run_id: str | int,
        *,
        seed: int | None = None,
        keep_rounds: int = 2,
    ) -> None:
        self.registry = registry
        self.run_id = str(run_id)
        if seed is None:
            self._secret = crypto.random_bytes(32)
        else:
            self._secret = crypto.hkdf(b"fedqnn-nonce" + str(int(seed)).encode(), info=self.run_id.encode())
        self.keep_rounds = max(1, int(keep_rounds))
        self._issued: dict[int, dict[str, str]] = {}
        self._used: dict[int, set[str]] = {}
        self._accepted: dict[str, int] = {}  # payload digest hex -> first round accepted
        self._qkd: dict[str, tuple[int, bytes]] = {}  # node -> (epoch, key)
        self.internal_errors = 0

    # --- nonces --------------------------------------------------------------------------

    def issue_nonce(self, server_round: int, node: str) -> str:
        """The nonce for ``node``'s train instruction of ``server_round`` (32 hex chars)."""
        server_round = int(server_round)
        nonce = crypto.hkdf(self._secret, info=f"nonce|{server_round}|{node}".encode(), length=16).hex()
        self._issued.setdefault(server_round, {})[node] = nonce
        self._prune(server_round)
        return nonce

    def _prune(self, current: int) -> None:
        floor = current - self.keep_rounds + 1
        for d in (self._issued, self._used):
            for r in [r for r in d if r < floor]:
                del d[r]

    # --- QKD keys ------------------------------------------------------------------------

    def set_qkd_key(self, node: str, epoch: int, key: bytes | None) -> None:
        """Require (``key`` given) or stop requiring (``None``) an HMAC tag from ``node``."""
        if key is None:
            self._qkd.pop(node, None)
        else:
            self._qkd[node] = (int(epoch), bytes(key))

    def qkd_key(self, node: str) -> tuple[int, bytes] | None:
        return self._qkd.get(node)

    # --- verification --------------------------------------------------------------------

    def verify(self, claim: Claim | None, src_node: str, server_round: int, payload_sha256: bytes) -> Verdict:
        """Accept, or reject with one of :data:`AUTH_REASONS`. Never raises."""
        try:
            return self._verify(claim, src_node, int(server_round), payload_sha256)
        except Exception:  # noqa: BLE001 - a client must never crash the server
            self.internal_errors += 1
            return Verdict(False, "bad-signature")

    def _verify(self, claim: Claim | None, src_node: str, server_round: int, digest: Any) -> Verdict:
        if claim is None or not isinstance(claim, Claim) or not claim.signature:
            return Verdict(False, "unsigned")
        if claim.signer != src_node:
            return Verdict(False, "impersonation")
        public = self.registry.get(claim.signer)
        if public is None:
            return Verdict(False, "unknown-key")
        if not isinstance(digest, bytes) or len(digest) != 32:
            return Verdict(False, "bad-signature")
        env = Envelope(claim.run_id, claim.server_round, claim.signer, claim.nonce, digest)
        if not verify_envelope(public, env, claim.signature):
            return Verdict(False, "bad-signature")
        qkd = self._qkd.get(claim.signer)
        if qkd is not None:
            epoch, key = qkd
            if claim.qkd_epoch != epoch or not verify_mac(key, env, claim.mac):
                return Verdict(False, "bad-signature")
        if claim.run_id != self.run_id:
            return Verdict(False, "replay")
        if claim.server_round != server_round:
            return Verdict(False, "stale-round")
        issued = self._issued.get(server_round, {}).get(claim.signer)
        used = self._used.setdefault(server_round, set())
        if issued is None or claim.nonce != issued or claim.nonce in used:
            return Verdict(False, "replay")
        used.add(claim.nonce)
        h = digest.hex()
        first = self._accepted.get(h)
        if first is not None and first < server_round:
            return Verdict(False, "replay")
        self._accepted.setdefault(h, server_round)
        return ACCEPT

    # --- crash-safe state ----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (issued/used nonces, accepted digests, QKD keys, nonce secret)."""
        return {
            "format": STATE_FORMAT,
            "run_id": self.run_id,
            "secret": self._secret.hex(),
            "keep_rounds": self.keep_rounds,
            "issued": {str(r): dict(v) for r, v in self._issued.items()},
            "used": {str(r): sorted(v) for r, v in self._used.items()},
            "accepted": dict(self._accepted),
            "qkd": {n: {"epoch": e, "key": k.hex()} for n, (e, k) in self._qkd.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the registry is not part of the state)."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a {STATE_FORMAT} state")
        self.run_id = str(state["run_id"])
        self._secret = bytes.fromhex(state["secret"])
        self.keep_rounds = int(state.get("keep_rounds", self.keep_rounds))
        self._issued = {int(r): {str(n): str(x) for n, x in v.items()} for r, v in state["issued"].items()}
        self._used = {int(r): {str(x) for x in v} for r, v in state["used"].items()}
        self._accepted = {str(h): int(r) for h, r in state["accepted"].items()}
        self._qkd = {str(n): (int(v["epoch"]), bytes.fromhex(v["key"])) for n, v in state.get("qkd", {}).items()}
