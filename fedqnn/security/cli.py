"""``fedqnn keys``: node keys and registry, CA and server certificate, SuperNode keys.

    fedqnn keys node --names node-0,node-1 --out DIR      (or --count N: node-0..node-N-1)
    fedqnn keys ca --out DIR --san HOST,IP [--days D]      (127.0.0.1 and localhost always added)
    fedqnn keys supernode --out DIR --count N
    fedqnn keys check --cert server.pem [--ca ca.crt] [--san HOST,IP]
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="keys_command", metavar="KIND")
    p = sub.add_parser("node", help="Ed25519 node keys (OUT/<name>.key) and OUT/registry.json")
    p.add_argument("--names", help="comma-separated node names (node-<partition-id>)")
    p.add_argument("--count", type=int, help="node-0 .. node-<count-1> (instead of --names)")
    p.add_argument("--out", required=True)
    p = sub.add_parser("ca", help="CA and server certificate for the SuperLink's TLS")
    p.add_argument("--out", required=True)
    p.add_argument("--san", default="",
                   help="comma-separated subject alternative names: every IP and host name SuperNodes "
                   "and the flwr CLI dial; 127.0.0.1 and localhost are always added (the SuperLink's "
                   "own helpers connect there)")
    p.add_argument("--days", type=int, default=365)
    p = sub.add_parser("check", help="check a SuperLink certificate: covers 127.0.0.1 (and --san), "
                       "issued by --ca; exit 1 naming what is wrong")
    p.add_argument("--cert", required=True, help="the SuperLink's server certificate (server.pem)")
    p.add_argument("--ca", help="the CA certificate (ca.crt) that must have issued it")
    p.add_argument("--san", default="", help="comma-separated names/IPs it must cover besides 127.0.0.1")
    p = sub.add_parser("supernode", help="ECDSA P-384 SuperNode auth keys (OpenSSH)")
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--prefix", default="supernode")


def main(args: argparse.Namespace) -> int:
    from fedqnn.security import keys

    kind = getattr(args, "keys_command", None)
    if kind == "node":
        if args.names:
            names = [n.strip() for n in args.names.split(",") if n.strip()]
        elif args.count is not None and args.count > 0:
            names = [f"node-{i}" for i in range(args.count)]
        else:
            print("error: give --names or --count", file=sys.stderr)
            return 2
        written = keys.write_node_keys(names, args.out)
        print(f"wrote {len(names)} node keys and {written['registry']}")
        return 0
    if kind == "ca":
        sans = keys.with_loopback(s.strip() for s in args.san.split(","))
        paths = keys.write_ca(args.out, sans, days=args.days)
        print(f"server certificate for {', '.join(sans)}")
        print("SuperLink: --ssl-ca-certfile {ca_cert} --ssl-certfile {server_cert} "
              "--ssl-keyfile {server_key}".format(**paths))
        print("SuperNode: --root-certificates {ca_cert}".format(**paths))
        return 0
    if kind == "supernode":
        if args.count <= 0:
            print("error: --count must be positive", file=sys.stderr)
            return 2
        pairs = keys.write_supernode_keys(args.out, args.count, args.prefix)
        for priv, pub in pairs:
            print(f"{priv}  (flwr supernode register {pub} <connection>)")
        return 0
    if kind == "check":
        names = [s.strip() for s in args.san.split(",") if s.strip()]
        problems = keys.certificate_problems(args.cert, args.ca, names)
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        if not problems:
            print(f"{args.cert}: covers {', '.join(keys.certificate_sans(open(args.cert, 'rb').read()))}")
        return 1 if problems else 0
    print("usage: fedqnn keys {node,ca,supernode,check} ... (see --help)", file=sys.stderr)
    return 2
