"""Classify the held-out digits on a Corvid server and print the accuracy.

From the repository root, in two terminals:

    make run                                            # serve the embedded digits model
    .venv/bin/python examples/python/classify_digits.py

Any Python with the SDK installed (`pip install ./client/python`) works in
place of .venv/bin/python. The script asks the server which input the model
takes and which outputs it gives, sends the 8x8 images in batches, and prints

    accuracy 0.975 on 360 digits (model digits version 1)

followed by the accuracy of each digit. It exits with 1 and a message on
stderr when the server cannot be reached or the model cannot serve.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Sequence

import numpy as np

import corvid
from corvid.v1 import model_pb2, tensor_pb2

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO_ROOT / "testdata" / "digits" / "heldout.json"
INTEGER_TYPES = (tensor_pb2.DATA_TYPE_INT64, tensor_pb2.DATA_TYPE_INT32)
FLOAT_TYPES = (tensor_pb2.DATA_TYPE_FP32, tensor_pb2.DATA_TYPE_FP64)


def load_digits(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """The images (float32 [N, features]) and labels (int64 [N]) of a JSON
    file with keys "features", "inputs" and "labels"."""
    data = json.loads(path.read_text())
    missing = {"features", "inputs", "labels"} - data.keys()
    if missing:
        raise ValueError(f"{path}: missing keys {sorted(missing)}")
    inputs = np.asarray(data["inputs"], dtype=np.float32)
    labels = np.asarray(data["labels"], dtype=np.int64)
    if inputs.shape != (len(labels), data["features"]):
        raise ValueError(f"{path}: inputs have shape {inputs.shape}, want ({len(labels)}, {data['features']})")
    return inputs, labels


def serving_version(info: model_pb2.ModelInfo) -> model_pb2.ModelVersionStatus:
    """The highest version that can serve (the one a request naming no
    version gets, unless the model splits its traffic)."""
    available = [v for v in info.versions if v.state == model_pb2.MODEL_STATE_AVAILABLE]
    if not available:
        raise ValueError(f"model {info.name!r} has no available version")
    return max(available, key=lambda v: v.version)


def choose_output(status: model_pb2.ModelVersionStatus) -> tuple[str, bool]:
    """The output to read the predicted class from, and whether it holds
    scores (take their argmax) rather than class labels."""
    for out in status.outputs:
        if out.dtype in INTEGER_TYPES and len(out.shape) == 1:
            return out.name, False
    for out in status.outputs:
        if out.dtype in FLOAT_TYPES and len(out.shape) == 2:
            return out.name, True
    names = [out.name for out in status.outputs]
    raise ValueError(f"outputs {names}: want a label [N] or scores [N, classes]")


def classify(client: corvid.Client, model: str, inputs: np.ndarray, batch: int) -> tuple[np.ndarray, int]:
    """The predicted class of every row of inputs, and the version that
    predicted them."""
    status = serving_version(client.model_status(model))
    if len(status.inputs) != 1:
        raise ValueError(f"model {model!r} takes inputs {[i.name for i in status.inputs]}: want exactly one")
    input_name = status.inputs[0].name
    output, scores = choose_output(status)
    if status.max_batch_size > 0:
        batch = min(batch, int(status.max_batch_size))
    predicted = []
    for start in range(0, len(inputs), batch):
        prediction = client.predict(
            model, {input_name: inputs[start:start + batch]}, version=status.version, outputs=[output]
        )
        values = prediction.outputs[output]
        predicted.append(values.argmax(axis=1) if scores else values)
    return np.concatenate(predicted).astype(np.int64), status.version


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify the held-out digits and print the accuracy.")
    parser.add_argument("--target", default="localhost:8500", help="server gRPC address (default %(default)s)")
    parser.add_argument("--model", default="digits", help="model name (default %(default)s)")
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA, help="held-out set (default %(default)s)")
    parser.add_argument("--batch", type=int, default=32, help="rows per request (default %(default)s)")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error(f"--batch is {args.batch}, want >= 1")

    try:
        inputs, labels = load_digits(args.data)
        with corvid.Client(args.target, timeout=30) as client:
            predicted, version = classify(client, args.model, inputs, args.batch)
    except corvid.Unavailable as error:
        print(
            f"classify_digits: no answer from Corvid at {args.target} ({error.message}); "
            "is the server running? Start one from the repository root with `make run`.",
            file=sys.stderr,
        )
        return 1
    except (corvid.CorvidError, OSError, ValueError) as error:
        print(f"classify_digits: {error}", file=sys.stderr)
        return 1

    correct = predicted == labels
    print(f"accuracy {correct.mean():.3f} on {len(labels)} digits (model {args.model} version {version})")
    for digit in np.unique(labels):
        rows = labels == digit
        print(f"  digit {digit}: {correct[rows].sum()}/{rows.sum()} correct")
    return 0


if __name__ == "__main__":
    sys.exit(main())
