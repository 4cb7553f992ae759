"""Train `digits_cnn`, a small CNN on the same digits split as `digits`.

Run from the repository root:

    .venv/bin/python models/train_digits_cnn.py

It trains, in plain numpy, a two-layer CNN on scikit-learn's bundled 8x8
digits, on exactly the training rows of models/train_digits.py (it imports
that script's split and checks it against testdata/digits/heldout.json, so
the one held-out file scores both models), and writes:

    testdata/digits_cnn/1/model.onnx   a model repository entry: name/version

The graph takes raw pixels, input float32 [N, 1, 8, 8] with values 0..16,
and has the MLP's outputs, label int64 [N] and probabilities float32 [N, 10]:

    Conv 3x3 1->16 pad 1, Relu          [N, 16, 8, 8]
    Conv 3x3 16->32 pad 1 stride 2, Relu [N, 32, 4, 4]
    Flatten, Gemm 512->10                [N, 10] logits
    Softmax -> probabilities, ArgMax -> label

Only plain ai.onnx ops: the point of the model is to exercise Conv (float
and, quantized, QLinearConv/ConvInteger) end to end, not to add operators.

The output is byte-for-byte reproducible: seeded numpy (default_rng), one
BLAS thread, a fixed graph name and deterministic serialization. The caveat
of train_digits.py applies: BLAS picks its kernels per CPU, so a very
different CPU could change the weights' last bits; the committed file is the
source of truth.
"""

import json
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from threadpoolctl import threadpool_limits

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
from train_digits import PIXEL_MAX, SEED, load_split  # noqa: E402

MODEL_PATH = ROOT / "testdata" / "digits_cnn" / "1" / "model.onnx"
HELDOUT_PATH = ROOT / "testdata" / "digits" / "heldout.json"

GRAPH_NAME = "digits_cnn"
OPSET = 17
IR_VERSION = 8  # what opset 17 shipped with (onnx 1.12); older readers load it
C1, C2, CLASSES = 16, 32, 10
EPOCHS = 30
BATCH = 32
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4
MIN_ACCURACY = 0.97


def check_split(x_test: np.ndarray, y_test: np.ndarray) -> None:
    """Fail unless the imported split is the one heldout.json was written from.

    A silent drift (a changed seed or scikit-learn's shuffling) would let the
    CNN train on rows the tests score it on.
    """
    heldout = json.loads(HELDOUT_PATH.read_text(encoding="utf-8"))
    x = np.asarray(heldout["inputs"], dtype=np.float32)
    y = np.asarray(heldout["labels"], dtype=np.int64)
    if not (np.array_equal(x, x_test) and np.array_equal(y, y_test)):
        raise SystemExit(f"the split differs from {HELDOUT_PATH.relative_to(ROOT)}")


def im2col(x: np.ndarray, k: int, stride: int, pad: int) -> np.ndarray:
    """[N, C, H, W] -> [N*OH*OW, C*k*k], columns in (c, kh, kw) order.

    That order is ONNX's weight layout [O, C, kh, kw] flattened, so a
    convolution is cols @ w.reshape(O, -1).T.
    """
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((n, c, k, k, oh, ow), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * k * k)


def col2im(dcols: np.ndarray, shape: tuple, k: int, stride: int, pad: int) -> np.ndarray:
    """The adjoint of im2col: sum each column's gradient back onto the input."""
    n, c, h, w = shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    d = dcols.reshape(n, oh, ow, c, k, k).transpose(0, 3, 4, 5, 1, 2)
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=dcols.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride] += d[:, :, i, j]
    return dxp[:, :, pad : pad + h, pad : pad + w]


def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> tuple:
    """3x3 convolution with padding 1; returns the output and its im2col."""
    n, _, h, wd = x.shape
    cols = im2col(x, 3, stride, 1)
    oh, ow = (h - 1) // stride + 1, (wd - 1) // stride + 1
    out = cols @ w.reshape(w.shape[0], -1).T + b
    return out.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2), cols


def init_params(rng: np.random.Generator) -> dict:
    """He-normal weights (they feed Relus), zero biases."""

    def he(*shape):
        return rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))

    return {
        "conv1.w": he(C1, 1, 3, 3), "conv1.b": np.zeros(C1),
        "conv2.w": he(C2, C1, 3, 3), "conv2.b": np.zeros(C2),
        "fc.w": he(CLASSES, C2 * 16) / np.sqrt(2.0), "fc.b": np.zeros(CLASSES),
    }


def forward(p: dict, x: np.ndarray) -> tuple:
    """Logits for x (pixels already in [0, 1]), and what backward needs."""
    z1, cols1 = conv(x, p["conv1.w"], p["conv1.b"], 1)
    a1 = np.maximum(z1, 0)
    z2, cols2 = conv(a1, p["conv2.w"], p["conv2.b"], 2)
    a2 = np.maximum(z2, 0)
    # NCHW flattened in C, H, W order: what ONNX Flatten(axis=1) does.
    f = a2.reshape(len(x), -1)
    logits = f @ p["fc.w"].T + p["fc.b"]
    return logits, (cols1, z1, a1, cols2, z2, f)


def backward(p: dict, cache: tuple, dlogits: np.ndarray) -> dict:
    cols1, z1, a1, cols2, z2, f = cache
    g = {"fc.w": dlogits.T @ f, "fc.b": dlogits.sum(0)}
    dz2 = (dlogits @ p["fc.w"]).reshape(z2.shape) * (z2 > 0)
    dz2 = dz2.transpose(0, 2, 3, 1).reshape(-1, C2)
    g["conv2.w"] = (dz2.T @ cols2).reshape(p["conv2.w"].shape)
    g["conv2.b"] = dz2.sum(0)
    da1 = col2im(dz2 @ p["conv2.w"].reshape(C2, -1), a1.shape, 3, 2, 1)
    dz1 = (da1 * (z1 > 0)).transpose(0, 2, 3, 1).reshape(-1, C1)
    g["conv1.w"] = (dz1.T @ cols1).reshape(p["conv1.w"].shape)
    g["conv1.b"] = dz1.sum(0)
    return g


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def train(x_train: np.ndarray, y_train: np.ndarray) -> dict:
    """Adam on softmax cross-entropy, in float64, on pixels scaled to [0, 1].

    Like train_digits.py, train on x / 16 and then fold the scale into the
    first layer: Conv is linear in its input and zero padding stays zero, so
    conv(x / 16, W) == conv(x, W / 16) and the graph takes raw pixels with no
    extra Div node. Float64 keeps the updates' rounding out of the way; the
    weights are cast to float32 once, at export.
    """
    rng = np.random.default_rng(SEED)
    p = init_params(rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    x = x_train.reshape(-1, 1, 8, 8).astype(np.float64) / PIXEL_MAX
    onehot = np.eye(CLASSES)[y_train]
    beta1, beta2, eps, step = 0.9, 0.999, 1e-8, 0
    for epoch in range(EPOCHS):
        # Cosine decay: large steps early, small ones to settle at the end.
        lr = LEARNING_RATE * 0.5 * (1 + np.cos(np.pi * epoch / EPOCHS))
        for batch in np.array_split(rng.permutation(len(x)), len(x) // BATCH):
            logits, cache = forward(p, x[batch])
            grads = backward(p, cache, (softmax(logits) - onehot[batch]) / len(batch))
            step += 1
            for k in p:
                g = grads[k] + WEIGHT_DECAY * p[k]
                m[k] = beta1 * m[k] + (1 - beta1) * g
                v[k] = beta2 * v[k] + (1 - beta2) * g * g
                mhat = m[k] / (1 - beta1**step)
                vhat = v[k] / (1 - beta2**step)
                p[k] -= lr * mhat / (np.sqrt(vhat) + eps)
    p["conv1.w"] = p["conv1.w"] / PIXEL_MAX
    return {k: w.astype(np.float32) for k, w in p.items()}


def predict(p: dict, x: np.ndarray) -> np.ndarray:
    """Probabilities from the exported (float32, raw-pixel) weights."""
    logits, _ = forward(p, x.reshape(-1, 1, 8, 8).astype(np.float32))
    return softmax(logits)


def export(p: dict) -> onnx.ModelProto:
    node = helper.make_node
    nodes = [
        node("Conv", ["input", "conv1.w", "conv1.b"], ["conv1"], name="conv1",
             kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("Relu", ["conv1"], ["relu1"], name="relu1"),
        node("Conv", ["relu1", "conv2.w", "conv2.b"], ["conv2"], name="conv2",
             kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        node("Relu", ["conv2"], ["relu2"], name="relu2"),
        node("Flatten", ["relu2"], ["flat"], name="flatten", axis=1),
        node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
        node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
        # ArgMax of the probabilities, not the logits: the label a client gets
        # is then always the argmax of the probabilities it gets, even where
        # float32 rounding makes two of them equal (first index wins).
        node("ArgMax", ["probabilities"], ["label"], name="argmax", axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        GRAPH_NAME,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", CLASSES]),
        ],
        [numpy_helper.from_array(w, k) for k, w in p.items()],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="corvid/models/train_digits_cnn.py",
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def check_export(model: onnx.ModelProto, p: dict, x: np.ndarray, y: np.ndarray) -> float:
    """Fail if ONNX Runtime and the numpy forward pass disagree on a label.

    The served artifact is the ONNX file, so its accuracy is the one to report.
    """
    session = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    x4 = x.reshape(-1, 1, 8, 8)
    labels, probabilities = session.run(["label", "probabilities"], {"input": x4})
    expected = predict(p, x)
    mismatches = int((labels != expected.argmax(axis=1)).sum())
    if mismatches:
        raise SystemExit(f"ONNX Runtime and numpy disagree on {mismatches} labels")
    accuracy = float((labels == y).mean())
    gap = float(np.abs(probabilities - expected).max())
    print(
        f"ONNX Runtime accuracy: {accuracy:.4f} ({len(y)} samples); "
        f"max |p_onnx - p_numpy| = {gap:.2e}"
    )
    return accuracy


def main() -> None:
    x_train, x_test, y_train, y_test = load_split()
    check_split(x_test, y_test)
    # One BLAS thread, so the weights cannot depend on the core count (see
    # train_digits.py); this net trains in seconds on one core anyway.
    with threadpool_limits(limits=1):
        p = train(x_train, y_train)
        train_accuracy = float((predict(p, x_train).argmax(1) == y_train).mean())
        print(f"training accuracy: {train_accuracy:.4f} ({EPOCHS} epochs)")
    model = export(p)
    accuracy = check_export(model, p, x_test, y_test)
    if accuracy < MIN_ACCURACY:
        raise SystemExit(f"accuracy {accuracy:.4f} is below {MIN_ACCURACY}")
    MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
    MODEL_PATH.write_bytes(model.SerializeToString(deterministic=True))
    print(f"wrote {MODEL_PATH.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
