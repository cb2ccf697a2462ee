"""Node keys, the server's registry of allowed public keys, TLS material, SuperNode keys.

Node keys are Ed25519. In simulation a node's key is derived per run from the seed:
``seed32 = HKDF-SHA256(secret = "fedqnn-sim-key" || seed, info = node name)``, so the same
(seed, node name) gives the same key on the server (which builds the registry) and on the
client (which signs), without anything secret crossing the wire. In deployment each node
loads its PEM key from a path (``node_config["auth-key"]``), and the server loads a
registry file written by ``fedqnn keys node``.

Registry file format (JSON, UTF-8)::

    {"format": "fedqnn-key-registry/1",
     "keys": {"node-0": "<base64 of the 32-byte raw Ed25519 public key>", ...}}

Node names are ``node-<partition-id>``. Unknown fields are ignored; a malformed entry
makes :meth:`KeyRegistry.load` raise ``ValueError`` (operator error, not client input).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from fedqnn.security import crypto

__all__ = [
    "REGISTRY_FORMAT",
    "KeyRegistry",
    "generate_node_key",
    "simulation_node_key",
    "save_private_key",
    "load_private_key",
    "write_node_keys",
    "write_ca",
    "write_supernode_keys",
    "LOOPBACK_SANS",
    "with_loopback",
    "certificate_sans",
    "missing_sans",
    "certificate_problems",
]

REGISTRY_FORMAT = "fedqnn-key-registry/1"
#: Names every SuperLink certificate carries: the SuperLink's own helpers (its SuperExec and
#: each run's ServerApp process) connect to the Runtime API on 127.0.0.1 and verify the
#: certificate there; without it nodes join but runs stay ``pending`` for ever.
LOOPBACK_SANS = ("127.0.0.1", "localhost")


def generate_node_key() -> crypto.Ed25519PrivateKey:
    """A fresh random Ed25519 node key (deployment)."""
    return crypto.ed25519_generate()


def simulation_node_key(seed: int, node: str) -> crypto.Ed25519PrivateKey:
    """The deterministic per-run simulation key of ``node`` for run seed ``seed``.

    ``seed32 = HKDF-SHA256(b"fedqnn-sim-key" || str(seed), info=node)``. Anyone who knows
    the seed knows every key: this is for simulation only.
    """
    secret = b"fedqnn-sim-key" + str(int(seed)).encode()
    return crypto.ed25519_from_seed(crypto.hkdf(secret, info=node.encode(), length=32))


def save_private_key(key: crypto.Ed25519PrivateKey, path: str | os.PathLike[str]) -> Path:
    """Write a PKCS#8 PEM private key with mode 0600."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(crypto.ed25519_private_pem(key))
    return p


def load_private_key(path: str | os.PathLike[str]) -> crypto.Ed25519PrivateKey:
    """Load a PKCS#8 PEM Ed25519 private key."""
    return crypto.ed25519_private_from_pem(Path(path).read_bytes())


class KeyRegistry:
    """Server-side map node name -> allowed Ed25519 public key."""

    def __init__(self, keys: Mapping[str, crypto.Ed25519PublicKey] | None = None) -> None:
        self._keys: dict[str, crypto.Ed25519PublicKey] = dict(keys or {})

    # construction
    @classmethod
    def for_simulation(cls, seed: int, names: Iterable[str]) -> KeyRegistry:
        """The registry of the simulation keys of ``names`` for run seed ``seed``."""
        return cls({n: simulation_node_key(seed, n).public_key() for n in names})

    @classmethod
    def from_private_keys(cls, keys: Mapping[str, crypto.Ed25519PrivateKey]) -> KeyRegistry:
        return cls({n: k.public_key() for n, k in keys.items()})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KeyRegistry:
        """Read a registry file (format in the module docstring)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != REGISTRY_FORMAT:
            raise ValueError(f"{path}: not a {REGISTRY_FORMAT} file")
        entries = data.get("keys")
        if not isinstance(entries, dict):
            raise ValueError(f"{path}: 'keys' must be an object")
        keys = {}
        for name, b64 in entries.items():
            try:
                keys[str(name)] = crypto.ed25519_public_from_raw(base64.b64decode(b64, validate=True))
            except Exception as exc:  # noqa: BLE001 - report which entry is bad
                raise ValueError(f"{path}: bad key for {name!r}: {exc}") from exc
        return cls(keys)

    def to_json(self) -> dict:
        return {
            "format": REGISTRY_FORMAT,
            "keys": {
                n: base64.b64encode(crypto.ed25519_public_raw(k)).decode()
                for n, k in sorted(self._keys.items())
            },
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        return p

    # lookup
    def get(self, name: object) -> crypto.Ed25519PublicKey | None:
        """The public key of ``name``, or None (never raises, whatever ``name`` is)."""
        if not isinstance(name, str):
            return None
        return self._keys.get(name)

    def add(self, name: str, key: crypto.Ed25519PublicKey) -> None:
        self._keys[name] = key

    def remove(self, name: str) -> None:
        self._keys.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._keys)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._keys

    def __len__(self) -> int:
        return len(self._keys)


# --- file writers used by ``fedqnn keys`` ------------------------------------------------


def write_node_keys(names: Iterable[str], out: str | os.PathLike[str]) -> dict[str, Path]:
    """Fresh Ed25519 keys ``OUT/<name>.key`` (PEM, 0600) and ``OUT/registry.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    reg = KeyRegistry()
    for name in names:
        key = generate_node_key()
        written[name] = save_private_key(key, out / f"{name}.key")
        reg.add(name, key.public_key())
    written["registry"] = reg.save(out / "registry.json")
    return written


def with_loopback(sans: Iterable[str]) -> list[str]:
    """``sans`` (order kept, duplicates dropped) with :data:`LOOPBACK_SANS` first."""
    out: list[str] = []
    for s in (*LOOPBACK_SANS, *sans):
        if s and s not in out:
            out.append(s)
    return out


def certificate_sans(pem: bytes) -> list[str]:
    """The subject alternative names (IPs and DNS names, as text) of a PEM certificate."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in san.get_values_for_type(x509.IPAddress)] + list(san.get_values_for_type(x509.DNSName))


def _canonical_name(name: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower()


def missing_sans(cert_path: str | os.PathLike[str], names: Iterable[str] = LOOPBACK_SANS[:1]) -> list[str]:
    """The ``names`` (default: 127.0.0.1) that the certificate in ``cert_path`` does not cover."""
    have = {_canonical_name(s) for s in certificate_sans(Path(cert_path).read_bytes())}
    return [n for n in names if _canonical_name(n) not in have]


def certificate_problems(cert_path: str | os.PathLike[str], ca_path: str | os.PathLike[str] | None = None,
                         names: Iterable[str] = ()) -> list[str]:
    """What would keep a SuperLink with this server certificate from serving runs (empty: fine).

    The certificate must cover 127.0.0.1 (the SuperLink's SuperExec and ServerApps verify it
    there), every name in ``names``, be issued by the CA in ``ca_path`` (if given) and be valid
    now.
    """
    import datetime as _dt

    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    except (OSError, ValueError) as exc:
        return [f"{cert_path}: not a readable PEM certificate ({exc})"]
    problems = []
    missing = missing_sans(cert_path, [LOOPBACK_SANS[0], *names])
    if LOOPBACK_SANS[0] in missing:
        problems.append(f"{cert_path} does not cover 127.0.0.1: the SuperLink's own SuperExec and ServerApp "
                        "processes connect there, so runs would stay 'pending' for ever; make it with "
                        "`fedqnn keys ca` (which always adds 127.0.0.1 and localhost)")
    problems += [f"{cert_path} does not cover {n}: a SuperNode dialling {n} fails the TLS handshake"
                 for n in missing if n != LOOPBACK_SANS[0]]
    now = _dt.datetime.now(_dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        problems.append(f"{cert_path} is not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                        f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)")
    if ca_path is not None:
        try:
            cert.verify_directly_issued_by(x509.load_pem_x509_certificate(Path(ca_path).read_bytes()))
        except (OSError, ValueError, TypeError, InvalidSignature) as exc:
            problems.append(f"{cert_path} was not issued by the CA in {ca_path} ({type(exc).__name__})")
    return problems


def write_ca(out: str | os.PathLike[str], sans: list[str], days: int = 365) -> dict[str, Path]:
    """``OUT/ca.crt``, ``OUT/ca.key``, ``OUT/server.pem``, ``OUT/server.key``.

    SuperLink: ``--ssl-ca-certfile ca.crt --ssl-certfile server.pem --ssl-keyfile server.key``;
    SuperNode: ``--root-certificates ca.crt``. ``sans`` must hold every address the
    SuperNodes dial (IPs become iPAddress SANs, names dNSName SANs); 127.0.0.1 and localhost
    (:data:`LOOPBACK_SANS`) are always added, first.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = crypto.make_ca(days=days)
    srv_key, srv_cert = crypto.make_server_cert(ca_key, ca_cert, with_loopback(sans), days=days)
    paths = {
        "ca_cert": out / "ca.crt",
        "ca_key": out / "ca.key",
        "server_cert": out / "server.pem",
        "server_key": out / "server.key",
    }
    paths["ca_cert"].write_bytes(crypto.cert_pem(ca_cert))
    paths["server_cert"].write_bytes(crypto.cert_pem(srv_cert))
    for k, data in (("ca_key", crypto.ec_private_pem(ca_key)), ("server_key", crypto.ec_private_pem(srv_key))):
        fd = os.open(paths[k], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    return paths


def write_supernode_keys(out: str | os.PathLike[str], count: int, prefix: str = "supernode") -> list[tuple[Path, Path]]:
    """``count`` ECDSA P-384 pairs ``OUT/<prefix>-<i>`` (OpenSSH private, 0600) and
    ``OUT/<prefix>-<i>.pub`` (OpenSSH public: ``flwr supernode register`` takes it)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(int(count)):
        priv, pub = crypto.ecdsa_p384_openssh_pair(comment=f"{prefix}-{i}")
        pk = out / f"{prefix}-{i}"
        fd = os.open(pk, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(priv)
        pp = out / f"{prefix}-{i}.pub"
        pp.write_bytes(pub)
        pairs.append((pk, pp))
    return pairs
