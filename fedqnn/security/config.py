"""The security sections: ``auth``, ``security`` and ``qkd`` (light: :mod:`fedqnn.schema` only)."""

from __future__ import annotations

from typing import Any

from fedqnn.schema import ConfigError, Field, Section, field

__all__ = ["FIELDS", "SECTION", "check"]

FIELDS: dict[str, Field] = {
    "auth": field("signed", str, "update authentication: signed (Ed25519 envelopes), qkd, off",
                  choices=("signed", "qkd", "off")),
    "security.registry": field("", str, "deployment: the public-key registry file (fedqnn keys node); "
                               "empty = simulation keys derived from the seed"),
    "security.max_mb": field(64.0, float, "largest accepted reply payload (MB)", low=0.001),
    "qkd.pairs_per_round": field(2000, int, "auth=qkd: end-to-end pairs every node requests per round while "
                                 "its next key is not ready (key demand; sets broker.key_pairs_per_node)", low=1),
    "qkd.refresh_every": field(5, int, "auth=qkd: rounds between key refreshes", low=1),
    "qkd.key_bits": field(256, int, "auth=qkd: bits of each HMAC key after privacy amplification", low=64,
                          high=4096),
    "qkd.eps": field(1e-10, float, "auth=qkd: failure probability of each of parameter estimation, error "
                     "correction and privacy amplification", low=0.0, high=0.01, low_open=True),
    "qkd.f_ec": field(1.15, float, "auth=qkd: error-correction efficiency (leak = f_ec n h(e))", low=1.0, high=2.0),
}


def check(cfg: dict[str, Any]) -> None:
    """QKD draws its keys from the broker and is simulation only."""
    if cfg["auth"] == "qkd":
        if cfg["broker"]["policy"] == "off":
            raise ConfigError("auth: 'qkd' draws its key pairs from the entanglement broker; "
                              "broker.policy must not be 'off'")
        if cfg["security"]["registry"]:
            raise ConfigError("auth: 'qkd' is simulation only (deployments use signatures and TLS); "
                              "unset security.registry or use auth=signed")


SECTION = Section(FIELDS, check)
