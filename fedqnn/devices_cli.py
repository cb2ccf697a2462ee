"""``fedqnn devices``: real-device calibration snapshots (needs the ``devices`` extra).

``fedqnn devices list`` prints every supported backend's best chain for the model and its
effective uniform (p, r); ``fedqnn devices export --backend NAME ... --nodes K --out FILE`` writes
a ``qpu.calibration_file`` (JSON) giving node k the k-th backend (cycled) on its chain, with the
shots of ``--shots`` (cycled). docs/devices.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_arguments", "main"]


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="devices_command", metavar="{list,export}")
    ls = sub.add_parser("list", help="supported backends, their best chain and effective (p, r)")
    ex = sub.add_parser("export", help="write a qpu.calibration_file from device snapshots")
    for sp in (ls, ex):
        sp.add_argument("--qubits", type=int, default=4, help="model.qubits (the chain length)")
        sp.add_argument("--layers", type=int, default=2, help="model.layers (for the effective p)")
    ex.add_argument("--backend", action="append", required=True,
                    help="fake backend name (repeat for several; node k gets the k-th, cycled)")
    ex.add_argument("--layout", type=_ints, default=None,
                    help="physical qubits of the chain, e.g. 0,1,2,3 (one backend only; default: best chain)")
    ex.add_argument("--nodes", type=int, default=0, help="nodes to write (default: one per backend)")
    ex.add_argument("--shots", type=_ints, default=[256], help="shots per node, cycled (default 256)")
    ex.add_argument("--out", required=True, help="the JSON file to write")


def main(args: argparse.Namespace) -> int:
    from fedqnn.noise import device_calibration
    from fedqnn.quantum.devices import DEVICES, device_spec
    from fedqnn.schema import ConfigError

    if args.devices_command == "list":
        for name in DEVICES:
            cal = device_calibration(device_spec(name, args.qubits), 0, args.layers)
            print(f"{name:14s} chain {list(cal.device.layout)}  p_eff {cal.p:.4f}  r_eff {cal.r:.4f}")
        return 0
    if args.devices_command != "export":
        print("usage: fedqnn devices {list,export} ...")
        return 2
    if args.layout and len(args.backend) != 1:
        raise ConfigError("--layout: give exactly one --backend with an explicit layout")
    if any(s < 0 for s in args.shots):
        raise ConfigError(f"--shots: expected integers >= 0, got {args.shots}")
    specs = [device_spec(b, args.qubits, tuple(args.layout) if args.layout else None) for b in args.backend]
    nodes = args.nodes or len(specs)
    table = {f"node-{k}": {"shots": args.shots[k % len(args.shots)], "device": specs[k % len(specs)].to_dict()}
             for k in range(nodes)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {nodes} node calibration(s) to {out} (use --set qpu.calibration_file={out})")
    return 0
