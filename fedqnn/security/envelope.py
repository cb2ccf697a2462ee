"""The canonical signed envelope of a train reply, and the canonical payload serialisation.

Envelope bytes (what Ed25519 signs and, with ``auth=qkd``, HMAC-SHA256 also tags)::

    E = str(DOMAIN) || str(run_id) || u64(server_round) || str(node) || str(nonce)
        || payload_sha256                                   (32 raw bytes)

with ``DOMAIN = "fedqnn/train-reply/v1"``, ``str(s) = u32(len(utf8(s))) || utf8(s)`` and
all integers big-endian unsigned. The length prefixes make the encoding injective, so two
different envelopes never share bytes.

Payload digest: ``payload_sha256 = SHA-256(P)`` where ``P`` is the canonical serialisation
of every record of the reply except the signature record::

    P = "FQNN-PAYLOAD\\x01" || u32(#records) || for each record, names sorted by UTF-8 bytes:
            str(name) || kind (b"A" arrays | b"M" metrics | b"C" config) || body

    body(arrays) = u32(#arrays) || for each key sorted by UTF-8 bytes:
            str(key) || str(dtype) || u32(ndim) || u64(dim)* || u64(nbytes) || data
        dtype is NumPy's ``dtype.str`` after conversion to little-endian (``<f4``, ``<i8``,
        ``|b1``...); data is the C-order little-endian buffer. Object, void and structured
        dtypes are refused.

    body(metrics | config) = u32(#entries) || for each key sorted: str(key) || value
        value = b"b" u8                 (bool)
              | b"i" u32(n) two's-complement big-endian bytes (int, any size)
              | b"f" IEEE-754 binary64 big-endian   (float; NaN/inf kept bit-exact)
              | b"s" str(value)         (str)
              | b"y" u32(n) bytes       (bytes)
              | b"l" u32(n) value*      (list/tuple, nested at most 4 deep)
        NumPy scalars count as their Python type.

Stamps and calibration values are ordinary metrics/config entries and are covered.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedqnn.security import crypto

__all__ = [
    "DOMAIN",
    "Envelope",
    "serialize_arrays",
    "serialize_metrics",
    "serialize_payload",
    "payload_digest",
    "sign_envelope",
    "verify_envelope",
    "mac_envelope",
    "verify_mac",
]

DOMAIN = "fedqnn/train-reply/v1"
_MAX_DEPTH = 4
_U64 = (1 << 64) - 1


def _str(s: str) -> bytes:
    if not isinstance(s, str):
        raise TypeError(f"expected str, got {type(s).__name__}")
    b = s.encode("utf-8", "surrogatepass")
    return struct.pack(">I", len(b)) + b


def _sort_key(k: str) -> bytes:
    if not isinstance(k, str):
        raise TypeError(f"keys must be str, got {type(k).__name__}")
    return k.encode("utf-8", "surrogatepass")


# --- arrays ------------------------------------------------------------------------------


def _canonical_array(a: Any) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.hasobject or arr.dtype.kind in "OVU" or arr.dtype.fields is not None:
        raise TypeError(f"dtype {arr.dtype} has no canonical serialisation")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return np.ascontiguousarray(arr)


def _iter_arrays(d: Mapping[str, Any]) -> Iterator[bytes]:
    keys = sorted(d.keys(), key=_sort_key)
    yield struct.pack(">I", len(keys))
    for k in keys:
        arr = _canonical_array(d[k])
        yield _str(k) + _str(arr.dtype.str) + struct.pack(">I", arr.ndim)
        yield struct.pack(f">{arr.ndim}Q", *arr.shape) + struct.pack(">Q", arr.nbytes)
        yield memoryview(arr).cast("B") if arr.nbytes else b""


def serialize_arrays(d: Mapping[str, Any]) -> bytes:
    """Canonical bytes of ``dict[str, ndarray]`` (module docstring; raises on bad input)."""
    return b"".join(bytes(c) for c in _iter_arrays(d))


# --- metrics / config --------------------------------------------------------------------


def _value(v: Any, depth: int = 0) -> bytes:
    if isinstance(v, (bool, np.bool_)):
        return b"b" + (b"\x01" if v else b"\x00")
    if isinstance(v, (int, np.integer)):
        iv = int(v)
        n = (iv.bit_length() + 8) // 8  # room for the sign bit
        return b"i" + struct.pack(">I", n) + iv.to_bytes(n, "big", signed=True)
    if isinstance(v, (float, np.floating)):
        return b"f" + struct.pack(">d", float(v))
    if isinstance(v, str):
        return b"s" + _str(v)
    if isinstance(v, (bytes, bytearray)):
        return b"y" + struct.pack(">I", len(v)) + bytes(v)
    if isinstance(v, (list, tuple)):
        if depth >= _MAX_DEPTH:
            raise ValueError("lists nested too deep")
        return b"l" + struct.pack(">I", len(v)) + b"".join(_value(x, depth + 1) for x in v)
    raise TypeError(f"no canonical serialisation for {type(v).__name__}")


def serialize_metrics(d: Mapping[str, Any]) -> bytes:
    """Canonical bytes of a metrics/config dict of str -> bool/int/float/str/bytes/list."""
    keys = sorted(d.keys(), key=_sort_key)
    return struct.pack(">I", len(keys)) + b"".join(_str(k) + _value(d[k]) for k in keys)


# --- payload -----------------------------------------------------------------------------

_KINDS = {"arrays": b"A", "metrics": b"M", "config": b"C"}


def _iter_payload(
    arrays: Mapping[str, Mapping[str, Any]],
    metrics: Mapping[str, Mapping[str, Any]],
    configs: Mapping[str, Mapping[str, Any]],
) -> Iterator[bytes]:
    records: list[tuple[bytes, str, str, Mapping[str, Any]]] = []
    for kind, group in (("arrays", arrays), ("metrics", metrics), ("config", configs)):
        for name, rec in group.items():
            records.append((_sort_key(name), kind, name, rec))
    records.sort(key=lambda r: (r[0], r[1]))
    yield b"FQNN-PAYLOAD\x01" + struct.pack(">I", len(records))
    for _, kind, name, rec in records:
        yield _str(name) + _KINDS[kind]
        if kind == "arrays":
            yield from _iter_arrays(rec)
        else:
            yield serialize_metrics(rec)


def serialize_payload(
    arrays: Mapping[str, Mapping[str, Any]],
    metrics: Mapping[str, Mapping[str, Any]] | None = None,
    configs: Mapping[str, Mapping[str, Any]] | None = None,
) -> bytes:
    """Canonical bytes ``P`` of a reply: record name -> {key: value} per record kind."""
    return b"".join(bytes(c) for c in _iter_payload(arrays, metrics or {}, configs or {}))


def payload_digest(
    arrays: Mapping[str, Mapping[str, Any]],
    metrics: Mapping[str, Mapping[str, Any]] | None = None,
    configs: Mapping[str, Mapping[str, Any]] | None = None,
) -> bytes:
    """``SHA-256(P)``, streamed (no copy of the arrays). Raises ``TypeError``/``ValueError``
    on values with no canonical form (callers on the server catch that)."""
    h = crypto.Sha256()
    for chunk in _iter_payload(arrays, metrics or {}, configs or {}):
        h.update(chunk)
    return h.digest()


# --- envelope ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """What a node signs for one train reply."""

    run_id: str
    server_round: int
    node: str
    nonce: str
    payload_sha256: bytes

    def to_bytes(self) -> bytes:
        """The envelope bytes ``E`` (module docstring). Raises ``ValueError`` if a field
        is out of range (round outside [0, 2^64), digest not 32 bytes)."""
        r = self.server_round
        if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= _U64:
            raise ValueError("server_round must be an int in [0, 2^64)")
        if not isinstance(self.payload_sha256, bytes) or len(self.payload_sha256) != 32:
            raise ValueError("payload_sha256 must be 32 bytes")
        return (
            _str(DOMAIN) + _str(str(self.run_id)) + struct.pack(">Q", r) + _str(self.node)
            + _str(self.nonce) + self.payload_sha256
        )


def sign_envelope(key: crypto.Ed25519PrivateKey, env: Envelope) -> bytes:
    """Ed25519 signature (64 bytes) over ``env.to_bytes()``."""
    return crypto.ed25519_sign(key, env.to_bytes())


def verify_envelope(public: crypto.Ed25519PublicKey, env: Envelope, signature: Any) -> bool:
    """True iff ``signature`` verifies over ``env``; never raises."""
    try:
        data = env.to_bytes()
    except (TypeError, ValueError, UnicodeError):
        return False
    return crypto.ed25519_verify(public, signature, data)


def mac_envelope(key: bytes, env: Envelope) -> bytes:
    """HMAC-SHA256(key, E): the QKD-keyed tag, sent alongside the signature."""
    return crypto.hmac_sha256(key, env.to_bytes())


def verify_mac(key: bytes, env: Envelope, tag: Any) -> bool:
    """Constant-time tag check; never raises."""
    try:
        data = env.to_bytes()
    except (TypeError, ValueError, UnicodeError):
        return False
    return crypto.hmac_verify(key, data, tag)


