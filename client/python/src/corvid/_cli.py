"""corvid-py: run a prediction from the command line.

    corvid-py predict digits --input rows.npy
    corvid-py predict mymodel --input a=a.npy --input b=b.npy --target host:8500
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np

from corvid._client import Client
from corvid._common import TLS
from corvid._errors import CorvidError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="corvid-py", description="Corvid's Python client.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="run one prediction and print its outputs as JSON")
    p.add_argument("model")
    p.add_argument(
        "--input", action="append", required=True, metavar="[NAME=]FILE.npy",
        help="an input array; NAME may be left out when the model has one input",
    )
    p.add_argument("--target", default="localhost:8500", help="server gRPC address (default %(default)s)")
    p.add_argument("--version", type=int)
    p.add_argument("--label")
    p.add_argument("--output", action="append", dest="outputs", metavar="NAME", help="an output to return (default: all)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds (default %(default)s)")
    p.add_argument("--token", help="bearer token")
    p.add_argument("--ca-file", help="CA bundle PEM: use TLS")
    p.add_argument("--cert-file", help="client certificate PEM: use mTLS (with --key-file)")
    p.add_argument("--key-file", help="client key PEM")
    args = parser.parse_args(argv)

    tls = None
    if args.ca_file or args.cert_file or args.key_file:
        tls = TLS(ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file)
    try:
        with Client(args.target, tls=tls, token=args.token, timeout=args.timeout) as client:
            inputs = {}
            for spec in args.input:
                name, sep, path = spec.rpartition("=")
                if not sep:
                    name = _only_input(client, args.model)
                inputs[name] = np.load(path, allow_pickle=False)
            pred = client.predict(
                args.model, inputs, version=args.version, label=args.label, outputs=args.outputs
            )
    except (CorvidError, OSError, ValueError, TypeError) as e:
        print(f"corvid-py: {e}", file=sys.stderr)
        return 1
    json.dump(
        {
            "model": pred.model,
            "model_version": pred.model_version,
            "request_id": pred.request_id,
            "outputs": {
                name: {"dtype": str(a.dtype), "shape": list(a.shape), "values": a.tolist()}
                for name, a in pred.outputs.items()
            },
        },
        sys.stdout,
    )
    print()
    return 0


def _only_input(client: Client, model: str) -> str:
    info = client.model_status(model)
    names = {i.name for v in info.versions for i in v.inputs}
    if len(names) != 1:
        raise ValueError(f"{model} has inputs {sorted(names)}: give --input NAME=FILE.npy")
    return names.pop()


if __name__ == "__main__":
    sys.exit(main())
