"""Flower records <-> envelope: the client signing mod and the server-side checks.

Wire names (a contract between the server and client apps):

Instruction (server -> client), ConfigRecord ``"fedqnn-auth"`` in the train message:
    ``run-id`` (str), ``server-round`` (int), ``nonce`` (str, 32 hex chars), and with
    ``auth=qkd`` optionally ``qkd-epoch`` (int), ``qkd-counts`` (list[int]) and
    ``qkd-bell`` (list[float], 4 Bell-diagonal weights per batch) - the public data from
    which the client re-derives its half of the key (see :mod:`.qkd`).

Reply (client -> server), ConfigRecord ``"fedqnn-sig"``:
    ``signer`` (str, ``node-<partition-id>``), ``run-id`` (str), ``server-round`` (int),
    ``nonce`` (str), ``signature`` (bytes, 64: Ed25519 over the envelope), and with an
    established QKD key ``mac`` (bytes, 32: HMAC-SHA256 over the envelope) and
    ``qkd-epoch`` (int).

The payload digest covers every record of the reply except ``"fedqnn-sig"`` (arrays,
metrics, config; see :mod:`.envelope`). Node keys: ``node_config["auth-key"]`` (a PEM path)
in deployment; otherwise the simulation key derived from (seed, node name), the seed
being ``run_config["seed"]`` (default 0) unless :func:`make_signing_mod` fixes it.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict

from fedqnn.security import crypto
from fedqnn.security.envelope import Envelope, mac_envelope, payload_digest, sign_envelope
from fedqnn.security.keys import load_private_key, simulation_node_key
from fedqnn.security.validator import ValidationSpec, validate
from fedqnn.security.verifier import Claim, Verifier

__all__ = [
    "AUTH_RECORD",
    "SIG_RECORD",
    "ParsedReply",
    "parse_reply",
    "reply_digest",
    "node_name",
    "add_auth_config",
    "sign_reply",
    "signing_mod",
    "make_signing_mod",
    "verify_reply",
    "check_reply",
]

log = logging.getLogger(__name__)

AUTH_RECORD = "fedqnn-auth"
SIG_RECORD = "fedqnn-sig"
DEFAULT_MAX_BYTES = 64 * 2**20
_NUMPY_STYPE = "numpy.ndarray"


# --- parsing a reply (server and client use the same code) -------------------------------


@dataclass
class ParsedReply:
    """A reply's content in plain Python: what the digest and the validator see."""

    array_records: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    metric_records: dict[str, dict[str, Any]] = field(default_factory=dict)
    config_records: dict[str, dict[str, Any]] = field(default_factory=dict)
    claim: Claim | None = None
    total_bytes: int = 0

    def merged_arrays(self) -> dict[str, np.ndarray] | str:
        out: dict[str, np.ndarray] = {}
        for rec in self.array_records.values():
            for k, v in rec.items():
                if k in out:
                    return f"malformed:{k}"
                out[k] = v
        return out

    def merged_metrics(self) -> dict[str, Any] | str:
        out: dict[str, Any] = {}
        for rec in self.metric_records.values():
            for k, v in rec.items():
                if k in out:
                    return f"malformed:{k}"
                out[k] = v
        return out


def _array_to_numpy(arr: Any, max_bytes: int) -> np.ndarray | str:
    """Decode a Flower ``Array`` without trusting its header: a size check before any
    allocation, then a zero-copy view. Returns an ndarray or a reason suffix."""
    data, shape, stype = getattr(arr, "data", None), getattr(arr, "shape", None), getattr(arr, "stype", None)
    if stype != _NUMPY_STYPE or not isinstance(data, bytes) or not isinstance(shape, tuple | list):
        return "malformed"
    if len(data) > max_bytes:
        return "oversized"
    fp = io.BytesIO(data)
    try:
        major, _ = np.lib.format.read_magic(fp)
        if major == 1:
            hdr_shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif major == 2:
            hdr_shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            return "malformed"
    except Exception:  # noqa: BLE001 - any header error is malformed input
        return "malformed"
    if dtype.hasobject or dtype.kind not in "biufc" or dtype.fields is not None:
        return "malformed"
    try:
        declared = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        return "malformed"
    if tuple(hdr_shape) != declared or any(d < 0 for d in declared):
        return "malformed"
    count = 1
    for d in declared:
        count *= d
        if count * dtype.itemsize > max_bytes:
            return "oversized"
    offset = fp.tell()
    if len(data) - offset != count * dtype.itemsize:
        return "malformed"
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return flat.reshape(declared, order="F" if fortran else "C")


def _plain_value(v: Any) -> Any:
    return list(v) if isinstance(v, list | tuple) else v


def _parse_claim(rec: Any) -> Claim | None:
    sig = rec.get("signature") if hasattr(rec, "get") else None
    if not isinstance(sig, bytes) or not sig:
        return None

    def typed(key: str, t: type, default: Any) -> Any:
        v = rec.get(key)
        return v if isinstance(v, t) and not (t is int and isinstance(v, bool)) else default

    mac = rec.get("mac")
    epoch = rec.get("qkd-epoch")
    return Claim(
        signer=typed("signer", str, ""),
        run_id=typed("run-id", str, ""),
        server_round=typed("server-round", int, -1),
        nonce=typed("nonce", str, ""),
        signature=sig,
        mac=mac if isinstance(mac, bytes) else None,
        qkd_epoch=epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
    )


def parse_reply(content: Any, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedReply | str:
    """Parse a reply ``RecordDict`` into a :class:`ParsedReply`, or return a reason
    (``oversized``, ``malformed:<record>`` or ``malformed:<key>``). Never raises."""
    try:
        return _parse_reply(content, max_bytes)
    except Exception:  # noqa: BLE001 - nothing a client sends may crash the server
        return "malformed:reply"


def _parse_reply(content: Any, max_bytes: int) -> ParsedReply | str:
    if not isinstance(content, RecordDict):
        return "malformed:reply"
    out = ParsedReply()
    total = 0
    for name, rec in content.items():
        if not isinstance(name, str):
            return "malformed:reply"
        if isinstance(rec, ArrayRecord):
            total += sum(len(getattr(a, "data", b"") or b"") + len(k) for k, a in rec.items())
        elif isinstance(rec, MetricRecord | ConfigRecord):
            total += rec.count_bytes()
        else:
            return f"malformed:{name}"
        if total > max_bytes:
            return "oversized"
    out.total_bytes = total
    for name, rec in content.items():
        if isinstance(rec, ArrayRecord):
            arrays: dict[str, np.ndarray] = {}
            for k, a in rec.items():
                val = _array_to_numpy(a, max_bytes)
                if isinstance(val, str):
                    return "oversized" if val == "oversized" else f"malformed:{k}"
                arrays[k] = val
            out.array_records[name] = arrays
        elif isinstance(rec, MetricRecord):
            out.metric_records[name] = {k: _plain_value(v) for k, v in rec.items()}
        elif name == SIG_RECORD:
            out.claim = _parse_claim(rec)
        else:
            out.config_records[name] = {k: _plain_value(v) for k, v in rec.items()}
    return out


def reply_digest(parsed: ParsedReply) -> bytes:
    """SHA-256 of the canonical payload (all records but ``fedqnn-sig``); may raise
    ``TypeError``/``ValueError`` on values with no canonical form."""
    return payload_digest(parsed.array_records, parsed.metric_records, parsed.config_records)


# --- server side --------------------------------------------------------------------------


def add_auth_config(
    verifier: Verifier,
    content: RecordDict,
    server_round: int,
    node: str,
    *,
    qkd_public: dict[str, Any] | None = None,
) -> str:
    """Issue ``node``'s nonce for ``server_round`` and put the ``"fedqnn-auth"`` record into
    an outgoing train instruction's ``content``. ``qkd_public`` (from
    :meth:`fedqnn.security.qkd.QkdKeyManager.public_config`) adds the QKD entries.
    Returns the nonce."""
    nonce = verifier.issue_nonce(server_round, node)
    cfg: dict[str, Any] = {"run-id": verifier.run_id, "server-round": int(server_round), "nonce": nonce}
    if qkd_public:
        cfg.update(qkd_public)
    content[AUTH_RECORD] = ConfigRecord(cfg)
    return nonce


def verify_reply(
    verifier: Verifier,
    reply_content: Any,
    src_node_name: str,
    server_round: int,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[bool, str | None]:
    """Authenticate one train reply: ``(True, None)`` or ``(False, reason)``, reason from
    the contract (``unsigned``, ``impersonation``, ``unknown-key``, ``bad-signature``,
    ``stale-round``, ``replay``; or ``oversized``/``malformed:<field>`` if the content
    cannot even be parsed). Never raises."""
    ok, reason, _ = _authenticate(verifier, reply_content, src_node_name, server_round, max_bytes)
    return ok, reason


def _authenticate(
    verifier: Verifier | None, content: Any, src: str, server_round: int, max_bytes: int
) -> tuple[bool, str | None, ParsedReply | None]:
    parsed = parse_reply(content, max_bytes=max_bytes)
    if isinstance(parsed, str):
        return False, parsed, None
    if verifier is None:
        return True, None, parsed
    if parsed.claim is None:
        return False, "unsigned", parsed
    try:
        digest = reply_digest(parsed)
    except Exception:  # noqa: BLE001 - a value without canonical form cannot be signed
        return False, "bad-signature", parsed
    verdict = verifier.verify(parsed.claim, src, server_round, digest)
    return verdict.ok, verdict.reason, parsed


def check_reply(
    verifier: Verifier | None,
    reply_content: Any,
    src_node_name: str,
    server_round: int,
    spec: ValidationSpec | None = None,
) -> tuple[bool, str | None]:
    """Authenticate (skipped when ``verifier`` is None, i.e. ``auth=off``) then validate:
    ``(True, None)`` or ``(False, reason)``. Never raises."""
    spec = spec or ValidationSpec()
    ok, reason, parsed = _authenticate(verifier, reply_content, src_node_name, server_round, spec.max_bytes)
    if not ok or parsed is None:
        return False, reason
    if not parsed.array_records:
        return False, "malformed:arrays"
    arrays = parsed.merged_arrays()
    if isinstance(arrays, str):
        return False, arrays
    metrics = parsed.merged_metrics()
    if isinstance(metrics, str):
        return False, metrics
    reason = validate(arrays, metrics, spec, total_bytes=parsed.total_bytes)
    return reason is None, reason


# --- client side --------------------------------------------------------------------------


def node_name(context: Context) -> str | None:
    """``node-<partition-id>`` from ``context.node_config`` (or ``node_config["node-name"]``)."""
    cfg = context.node_config or {}
    if "partition-id" in cfg:
        return f"node-{int(cfg['partition-id'])}"
    name = cfg.get("node-name")
    return str(name) if name is not None else None


@lru_cache(maxsize=256)
def _sim_key(seed: int, name: str) -> crypto.Ed25519PrivateKey:
    return simulation_node_key(seed, name)


@lru_cache(maxsize=16)
def _file_key(path: str) -> crypto.Ed25519PrivateKey:
    return load_private_key(path)


def _client_key(context: Context, name: str, seed: int | None) -> crypto.Ed25519PrivateKey:
    path = (context.node_config or {}).get("auth-key")
    if path:
        return _file_key(str(path))
    if seed is None:
        seed = int((context.run_config or {}).get("seed", 0))
    return _sim_key(int(seed), name)


def sign_reply(
    reply_content: RecordDict,
    auth: ConfigRecord,
    name: str,
    key: crypto.Ed25519PrivateKey,
    qkd_key: tuple[int, bytes] | None = None,
) -> None:
    """Sign ``reply_content`` in place: compute the digest, sign the envelope and add the
    ``"fedqnn-sig"`` record (plus ``mac``/``qkd-epoch`` with a QKD key ``(epoch, key)``)."""
    if SIG_RECORD in reply_content:
        del reply_content[SIG_RECORD]
    parsed = parse_reply(reply_content, max_bytes=2**62)
    if isinstance(parsed, str):
        raise ValueError(f"cannot sign a reply that does not parse ({parsed})")
    env = Envelope(
        run_id=str(auth["run-id"]),
        server_round=int(auth["server-round"]),
        node=name,
        nonce=str(auth["nonce"]),
        payload_sha256=reply_digest(parsed),
    )
    sig: dict[str, Any] = {
        "signer": name,
        "run-id": env.run_id,
        "server-round": env.server_round,
        "nonce": env.nonce,
        "signature": sign_envelope(key, env),
    }
    if qkd_key is not None:
        epoch, k = qkd_key
        sig["mac"] = mac_envelope(k, env)
        sig["qkd-epoch"] = int(epoch)
    reply_content[SIG_RECORD] = ConfigRecord(sig)


QkdClientHook = Callable[[ConfigRecord, Context, str, int], "tuple[int, bytes] | None"]


def make_signing_mod(seed: int | None = None, qkd_hook: QkdClientHook | None = None):
    """A Flower client mod ``(msg, context, call_next) -> Message`` that signs replies to
    instructions carrying ``"fedqnn-auth"``. ``seed`` fixes the simulation key seed (else
    ``run_config["seed"]``, default 0); ``qkd_hook(auth, context, name, seed)`` returns the
    client's ``(epoch, key)`` (default: :func:`fedqnn.security.qkd.client_key_from_config`)."""

    def signing_mod(msg: Message, context: Context, call_next: Callable[[Message, Context], Message]) -> Message:
        reply = call_next(msg, context)
        auth = msg.content.config_records.get(AUTH_RECORD) if msg.has_content() else None
        if auth is None or reply.has_error() or not reply.has_content():
            return reply
        name = node_name(context)
        if name is None:
            log.warning("fedqnn-auth: no partition-id/node-name in node_config; reply left unsigned")
            return reply
        eff_seed = int((context.run_config or {}).get("seed", 0)) if seed is None else int(seed)
        key = _client_key(context, name, eff_seed)
        hook = qkd_hook
        if hook is None and "qkd-epoch" in auth:
            from fedqnn.security.qkd import client_key_from_config

            hook = client_key_from_config
        qkd_key = hook(auth, context, name, eff_seed) if hook is not None else None
        sign_reply(reply.content, auth, name, key, qkd_key)
        return reply

    return signing_mod


signing_mod = make_signing_mod()
"""The default signing mod: ``ClientApp(mods=[signing_mod])``."""
