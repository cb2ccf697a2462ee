"""All of fedqnn's cryptography, in one module, on ``cryptography``'s primitives only.

Nothing else in ``fedqnn`` imports ``cryptography`` or ``hashlib``/``hmac`` for security
purposes; the other security modules call the functions here. Primitives used:

* Ed25519 (RFC 8032) signatures for update envelopes (deterministic: same key and message
  give the same 64-byte signature, which keeps seeded simulations reproducible);
* SHA-256 for payload digests; HMAC-SHA256 for the QKD-keyed envelope MAC;
* HKDF-SHA256 (RFC 5869) only for *key derivation* from a high-entropy secret (per-node
  simulation keys from the run seed, nonces from a server secret). HKDF is not privacy
  amplification; the QKD key goes through Toeplitz hashing in :mod:`fedqnn.security.qkd`;
* ECDSA P-384 keys in OpenSSH format for Flower's SuperNode authentication;
* X.509 (a self-signed CA and a CA-signed server certificate) for the SuperLink's TLS.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import hmac as _hmac
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "SIGNATURE_LEN",
    "PUBLIC_KEY_LEN",
    "sha256",
    "Sha256",
    "hmac_sha256",
    "hmac_verify",
    "hkdf",
    "random_bytes",
    "ed25519_generate",
    "ed25519_from_seed",
    "ed25519_sign",
    "ed25519_verify",
    "ed25519_public_raw",
    "ed25519_public_from_raw",
    "ed25519_private_pem",
    "ed25519_private_from_pem",
    "ecdsa_p384_openssh_pair",
    "make_ca",
    "make_server_cert",
    "cert_pem",
    "ec_private_pem",
]

SIGNATURE_LEN = 64
PUBLIC_KEY_LEN = 32


# --- hashing, MACs, KDF ------------------------------------------------------------------


class Sha256:
    """Incremental SHA-256 (``update`` then ``digest``), for streaming serialisations."""

    def __init__(self) -> None:
        self._h = hashes.Hash(hashes.SHA256())

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(bytes(data))

    def digest(self) -> bytes:
        return self._h.finalize()


def sha256(data: bytes) -> bytes:
    """SHA-256 digest (32 bytes)."""
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256(key, data) (32 bytes)."""
    h = _hmac.HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


def hmac_verify(key: bytes, data: bytes, tag: bytes) -> bool:
    """Constant-time check of an HMAC-SHA256 tag; never raises on a bad tag."""
    if not isinstance(tag, (bytes, bytearray)) or len(tag) != 32:
        return False
    h = _hmac.HMAC(key, hashes.SHA256())
    h.update(data)
    try:
        h.verify(bytes(tag))
    except InvalidSignature:
        return False
    return True


def hkdf(secret: bytes, info: bytes, length: int = 32, salt: bytes | None = None) -> bytes:
    """HKDF-SHA256(secret, salt, info) -> ``length`` bytes (key derivation, not PA)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the OS CSPRNG."""
    return os.urandom(n)


# --- Ed25519 -----------------------------------------------------------------------------


def ed25519_generate() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key from the OS CSPRNG."""
    return Ed25519PrivateKey.generate()


def ed25519_from_seed(seed32: bytes) -> Ed25519PrivateKey:
    """The Ed25519 private key whose RFC 8032 seed is ``seed32`` (32 bytes)."""
    return Ed25519PrivateKey.from_private_bytes(seed32)


def ed25519_sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    """Ed25519 signature (64 bytes) over ``message``."""
    return key.sign(message)


def ed25519_verify(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """True iff ``signature`` is a valid Ed25519 signature; never raises on bad input."""
    if not isinstance(signature, (bytes, bytearray)) or len(signature) != SIGNATURE_LEN:
        return False
    try:
        public.verify(bytes(signature), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def ed25519_public_raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The 32-byte raw public key."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ed25519_public_from_raw(raw: bytes) -> Ed25519PublicKey:
    """Parse a 32-byte raw Ed25519 public key (raises ``ValueError`` if malformed)."""
    if len(raw) != PUBLIC_KEY_LEN:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def ed25519_private_pem(key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ed25519_private_from_pem(data: bytes) -> Ed25519PrivateKey:
    """Load a PKCS#8 PEM Ed25519 private key (raises ``ValueError`` otherwise)."""
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


# --- SuperNode authentication keys (ECDSA P-384, OpenSSH) --------------------------------


def ecdsa_p384_openssh_pair(comment: str = "") -> tuple[bytes, bytes]:
    """A fresh ECDSA P-384 key as (OpenSSH private key, OpenSSH public key line).

    The public line is what ``flwr supernode register KEY.pub`` accepts; the private file
    is what ``flower-supernode --auth-supernode-private-key`` loads.
    """
    key = ec.generate_private_key(ec.SECP384R1())
    priv = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    if comment:
        pub += b" " + comment.encode()
    return priv, pub + b"\n"


# --- X.509 for the SuperLink's TLS -------------------------------------------------------


def _san_entries(sans: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for s in sans:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(s)))
        except ValueError:
            out.append(x509.DNSName(s))
    return out


def ec_private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (what ``--ssl-keyfile`` loads)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(common_name: str = "fedqnn CA", days: int = 365) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA (P-384, CA:TRUE, keyCertSign)."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    return key, cert


def make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    sans: list[str],
    days: int = 365,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A server certificate signed by the CA, with ``sans`` as subject alternative names
    (IP addresses become iPAddress entries, anything else dNSName); serverAuth EKU."""
    if not sans:
        raise ValueError("a server certificate needs at least one subject alternative name")
    key = ec.generate_private_key(ec.SECP384R1())
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sans[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(_san_entries(sans)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA384())
    )
    return key, cert
