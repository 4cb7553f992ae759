"""Train Corvid's default model, `digits`, and write the files derived from it.

Run from the repository root:

    .venv/bin/python models/train_digits.py

It trains a small MLP on scikit-learn's bundled 8x8 digits (no download),
exports it to ONNX and writes:

    models/digits/1/model.onnx     the model the server embeds and serves
    testdata/digits/heldout.json   the held-out split, for reference tests
    examples/digits/request.json   one held-out sample as a REST/CLI request

Every output is byte-for-byte reproducible: the server embeds the model and
reports its SHA-256, so rerunning this script with the pinned packages in
tools/requirements.txt must not change a committed file. (Training runs
through OpenBLAS, which picks its kernels per CPU, so a very different CPU
could still change the weights' last bits; the committed file is the source
of truth and the server and tests read its hash, never a hard-coded one.)
"""

import json
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

SEED = 20240611
TEST_FRACTION = 0.2
# Pixels in load_digits are counts of set bits in 4x4 blocks: 0..16.
PIXEL_MAX = 16.0
# Pinned so that the graph does not change when skl2onnx's default moves.
# 17 is well inside what skl2onnx 1.20 has been tested with (22) and what
# ONNX Runtime 1.31 runs; ai.onnx.ml 3 is the matching ML-domain opset.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
# The graph's name defaults to a fresh uuid4 in skl2onnx; fix it.
GRAPH_NAME = "digits"
MIN_ACCURACY = 0.95

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL_PATH = ROOT / "models" / "digits" / "1" / "model.onnx"
HELDOUT_PATH = ROOT / "testdata" / "digits" / "heldout.json"
REQUEST_PATH = ROOT / "examples" / "digits" / "request.json"


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return x_train, x_test, y_train, y_test: raw 0..16 pixels, int64 labels.

    The one definition of the split: the CNN (train_digits_cnn.py) and the
    calibration sets (testdata/digits/make_calibration.py) import it, so every
    digits model is scored on the same held-out rows in heldout.json and is
    never calibrated on them.
    """
    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    return train_test_split(
        x, y, test_size=TEST_FRACTION, stratify=y, random_state=SEED
    )


def train(x_train: np.ndarray, y_train: np.ndarray) -> MLPClassifier:
    """Train on pixels scaled to [0, 1], then fold the scale into the weights.

    Adam converges faster and more reliably on inputs in [0, 1] than on raw
    0..16 counts, but the served model must take the raw pixels. Because the
    first layer is linear, (x / 16) @ W == x @ (W / 16): dividing the first
    weight matrix by 16 after training gives a classifier on raw pixels with
    no extra node in the ONNX graph (a Scaler would add an ai.onnx.ml op for
    the server to implement).
    """
    clf = MLPClassifier(
        hidden_layer_sizes=(64,),
        activation="relu",
        solver="adam",
        alpha=1e-4,
        max_iter=500,
        random_state=SEED,
    )
    # One BLAS thread, so the weights cannot depend on the core count: a
    # threaded GEMM may split its sums differently, which changes the last
    # bits and so the file's hash. The fit takes seconds; this costs nothing.
    with threadpool_limits(limits=1):
        clf.fit(x_train / PIXEL_MAX, y_train)
    clf.coefs_[0] = clf.coefs_[0] / PIXEL_MAX
    return clf


def export(clf: MLPClassifier) -> onnx.ModelProto:
    model = convert_sklearn(
        clf,
        name=GRAPH_NAME,
        initial_types=[("input", FloatTensorType([None, 64]))],
        # No ZipMap: plain tensors label int64 [N] and probabilities float
        # [N, 10] rather than a sequence of maps, which Corvid's tensor API
        # (and most non-Python clients) cannot represent.
        options={id(clf): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    # The graph name (fixed above) was the only field that varied run to run:
    # doc strings are empty and producer_version is skl2onnx's pinned version.
    # target_opset is an upper bound; skl2onnx stamps the lowest opset that
    # covers the ops it used (ai.onnx 16, ai.onnx.ml 1 with these versions).
    onnx.checker.check_model(model, full_check=True)
    return model


def check_export(
    model: onnx.ModelProto, clf: MLPClassifier, x: np.ndarray, y: np.ndarray
) -> None:
    """Fail if the ONNX graph and scikit-learn disagree on a held-out label.

    The served artifact is the ONNX file, so its accuracy is the one to report.
    """
    session = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    labels, probabilities = session.run(["label", "probabilities"], {"input": x})
    mismatches = int((labels != clf.predict(x)).sum())
    if mismatches:
        raise SystemExit(f"ONNX and scikit-learn disagree on {mismatches} labels")
    gap = float(np.abs(probabilities - clf.predict_proba(x)).max())
    print(
        f"ONNX Runtime accuracy: {(labels == y).mean():.4f}; "
        f"max |p_onnx - p_sklearn| = {gap:.2e}"
    )


def fmt_float(v: float) -> str:
    # repr gives the shortest decimal that round-trips to the same double;
    # these are small integers, so the decimal is exact and also the float32.
    return repr(float(v))


def write_heldout(path: pathlib.Path, x: np.ndarray, y: np.ndarray) -> None:
    # One sample per line: diffs stay readable and the file stays small,
    # which json.dump(indent=...) (one number per line) would not give.
    rows = ",\n    ".join("[" + ", ".join(fmt_float(v) for v in row) + "]" for row in x)
    labels = ", ".join(str(int(v)) for v in y)
    text = (
        "{\n"
        f'  "features": {x.shape[1]},\n'
        f'  "inputs": [\n    {rows}\n  ],\n'
        f'  "labels": [{labels}]\n'
        "}\n"
    )
    write_text(path, text)


def write_request(path: pathlib.Path, sample: np.ndarray) -> None:
    # protojson spelling of corvid.v1.PredictRequest (camelCase field names,
    # enum values by name); the URL path carries the model name.
    values = ", ".join(fmt_float(v) for v in sample)
    text = (
        "{\n"
        '  "inputs": {\n'
        '    "input": {\n'
        '      "dtype": "DATA_TYPE_FP32",\n'
        f'      "shape": [1, {sample.shape[0]}],\n'
        f'      "fp32Values": [{values}]\n'
        "    }\n"
        "  }\n"
        "}\n"
    )
    json.loads(text)  # it must stay valid JSON
    write_text(path, text)


def write_text(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def main() -> None:
    x_train, x_test, y_train, y_test = load_split()
    clf = train(x_train, y_train)
    accuracy = float((clf.predict(x_test) == y_test).mean())
    print(
        f"held-out accuracy: {accuracy:.4f} "
        f"({len(y_test)} samples, {clf.n_iter_} epochs)"
    )
    if accuracy < MIN_ACCURACY:
        raise SystemExit(f"accuracy {accuracy:.4f} is below {MIN_ACCURACY}")

    model = export(clf)
    check_export(model, clf, x_test, y_test)
    MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
    MODEL_PATH.write_bytes(model.SerializeToString(deterministic=True))
    write_heldout(HELDOUT_PATH, x_test, y_test)
    write_request(REQUEST_PATH, x_test[0])
    for path in (MODEL_PATH, HELDOUT_PATH, REQUEST_PATH):
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
