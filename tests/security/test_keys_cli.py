"""``fedqnn keys``: node keys + registry, CA + server certificate, SuperNode keys; envelope bytes."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key

from fedqnn.cli import main as fedqnn_main
from fedqnn.security import envelope, keys


def test_keys_node_writes_loadable_keys_and_registry(tmp_path):
    assert fedqnn_main(["keys", "node", "--names", "node-0,node-1", "--out", str(tmp_path)]) == 0
    reg = keys.KeyRegistry.load(tmp_path / "registry.json")
    assert reg.names() == ["node-0", "node-1"]
    k0 = keys.load_private_key(tmp_path / "node-0.key")
    sig = k0.sign(b"m")
    reg.get("node-0").verify(sig, b"m")  # raises if the registry holds another key
    assert (tmp_path / "node-0.key").stat().st_mode & 0o077 == 0
    assert reg.get(123) is None and reg.get("node-7") is None


def test_keys_ca_has_the_requested_sans_and_chains(tmp_path):
    assert fedqnn_main(["keys", "ca", "--out", str(tmp_path), "--san", "127.0.0.1,localhost,fl.example"]) == 0
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    srv = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    san = srv.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "fl.example"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    srv.verify_directly_issued_by(ca)  # raises if not signed by the CA


def test_keys_supernode_writes_p384_openssh_pairs(tmp_path):
    assert fedqnn_main(["keys", "supernode", "--out", str(tmp_path), "--count", "2"]) == 0
    pub = load_ssh_public_key((tmp_path / "supernode-1.pub").read_bytes())  # what `flwr supernode register` does
    priv = load_ssh_private_key((tmp_path / "supernode-1").read_bytes(), None)  # what flower-supernode does
    assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp384r1"
    assert priv.public_key().public_numbers() == pub.public_numbers()


def test_simulation_keys_are_per_seed_and_node():
    a = keys.simulation_node_key(1, "node-0")
    assert a.sign(b"x") == keys.simulation_node_key(1, "node-0").sign(b"x")
    assert a.sign(b"x") != keys.simulation_node_key(2, "node-0").sign(b"x")
    assert a.sign(b"x") != keys.simulation_node_key(1, "node-1").sign(b"x")


def test_canonical_serialisation_is_order_free_and_type_exact():
    d1 = {"a": np.arange(3, dtype=np.float32), "b": np.eye(2)}
    d2 = {"b": np.eye(2), "a": np.arange(3, dtype=np.float32)}
    assert envelope.serialize_arrays(d1) == envelope.serialize_arrays(d2)
    big_endian = {"a": np.arange(3, dtype=">f4"), "b": np.eye(2)}
    assert envelope.serialize_arrays(big_endian) == envelope.serialize_arrays(d1)
    assert envelope.serialize_arrays({"a": np.arange(3, dtype=np.float64), "b": np.eye(2)}) != envelope.serialize_arrays(d1)
    assert envelope.serialize_arrays({"a": np.zeros((2, 3))}) != envelope.serialize_arrays({"a": np.zeros((3, 2))})
    assert envelope.serialize_arrays({"a": np.eye(3)[:, :2]}) == envelope.serialize_arrays({"a": np.ascontiguousarray(np.eye(3)[:, :2])})
    m = envelope.serialize_metrics
    assert m({"x": 1}) != m({"x": 1.0}) != m({"x": True})
    assert m({"x": 1, "y": "s"}) == m({"y": "s", "x": 1})
    assert m({"x": [1, 2]}) != m({"x": [1.0, 2.0]})
    with pytest.raises(TypeError):
        envelope.serialize_arrays({"o": np.array([object()])})


def test_envelope_sign_verify_and_field_binding():
    key = keys.simulation_node_key(0, "node-0")
    env = envelope.Envelope("r", 3, "node-0", "ab" * 16, b"\x11" * 32)
    sig = envelope.sign_envelope(key, env)
    assert envelope.verify_envelope(key.public_key(), env, sig)
    for changed in (
        envelope.Envelope("r2", 3, "node-0", "ab" * 16, b"\x11" * 32),
        envelope.Envelope("r", 4, "node-0", "ab" * 16, b"\x11" * 32),
        envelope.Envelope("r", 3, "node-1", "ab" * 16, b"\x11" * 32),
        envelope.Envelope("r", 3, "node-0", "cd" * 16, b"\x11" * 32),
        envelope.Envelope("r", 3, "node-0", "ab" * 16, b"\x12" * 32),
    ):
        assert not envelope.verify_envelope(key.public_key(), changed, sig)
    assert not envelope.verify_envelope(key.public_key(), envelope.Envelope("r", -1, "n", "x", b"\x11" * 32), sig)
    tag = envelope.mac_envelope(b"k" * 32, env)
    assert envelope.verify_mac(b"k" * 32, env, tag) and not envelope.verify_mac(b"j" * 32, env, tag)


def test_keys_ca_always_covers_loopback_and_check_accepts_it(tmp_path, capsys):
    """The SuperLink's SuperExec and ServerApps verify its certificate on 127.0.0.1: without that
    SAN nodes join but runs stay pending for ever (issue 18)."""
    assert fedqnn_main(["keys", "ca", "--out", str(tmp_path), "--san", "10.77.0.1,link.example"]) == 0
    sans = keys.certificate_sans((tmp_path / "server.pem").read_bytes())
    assert sorted(sans) == sorted(["127.0.0.1", "10.77.0.1", "localhost", "link.example"])
    assert keys.certificate_problems(tmp_path / "server.pem", tmp_path / "ca.crt", ["10.77.0.1"]) == []
    assert fedqnn_main(["keys", "check", "--cert", str(tmp_path / "server.pem"), "--ca", str(tmp_path / "ca.crt"),
                        "--san", "10.77.0.1,link.example"]) == 0
    assert fedqnn_main(["keys", "ca", "--out", str(tmp_path / "bare")]) == 0  # no --san: loopback only
    assert sorted(keys.certificate_sans((tmp_path / "bare" / "server.pem").read_bytes())) == ["127.0.0.1", "localhost"]


def test_keys_check_refuses_a_certificate_without_loopback(tmp_path, capsys):
    """Negative control: a certificate for the public address only (what `--san HOST` made before)."""
    from fedqnn.security import crypto

    ca_key, ca_cert = crypto.make_ca(days=1)
    _, srv = crypto.make_server_cert(ca_key, ca_cert, ["10.77.0.1"], days=1)
    (tmp_path / "ca.crt").write_bytes(crypto.cert_pem(ca_cert))
    (tmp_path / "server.pem").write_bytes(crypto.cert_pem(srv))
    problems = keys.certificate_problems(tmp_path / "server.pem", tmp_path / "ca.crt", ["10.77.0.1"])
    assert len(problems) == 1 and "does not cover 127.0.0.1" in problems[0] and "pending" in problems[0]
    assert fedqnn_main(["keys", "check", "--cert", str(tmp_path / "server.pem"), "--ca", str(tmp_path / "ca.crt")]) == 1
    assert "127.0.0.1" in capsys.readouterr().err
    # a name it lacks, and a CA that did not issue it
    other = tmp_path / "other"
    assert fedqnn_main(["keys", "ca", "--out", str(other)]) == 0
    problems = keys.certificate_problems(other / "server.pem", tmp_path / "ca.crt", ["10.77.0.9"])
    assert any("does not cover 10.77.0.9" in p for p in problems)
    assert any("was not issued by the CA" in p for p in problems)
