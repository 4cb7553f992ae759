"""Print held-out accuracy of the digits models, float32 against ONNX Runtime's int8.

Run from the repository root:

    .venv/bin/python testdata/digits/ort_quant_accuracy.py

A sanity check, and the reference table for Corvid's own quantizer: it
quantizes each model with onnxruntime.quantization, statically (QDQ, int8
activations and per-channel int8 weights, MinMax over the model's
calibration.npz) and dynamically (int8 weights, activation ranges computed
per call), and scores all three on testdata/digits/heldout.json in ONNX
Runtime. The quantized models go to a temporary folder and are deleted: ORT's
output depends on its version, so it is not something to commit.
"""

import json
import pathlib
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_dynamic,
    quantize_static,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
HELDOUT_PATH = ROOT / "testdata" / "digits" / "heldout.json"
# name: (model, calibration set, the model's input shape for one sample)
MODELS = {
    "digits": (
        ROOT / "models" / "digits" / "1" / "model.onnx",
        ROOT / "testdata" / "digits" / "calibration.npz",
        (64,),
    ),
    "digits_cnn": (
        ROOT / "testdata" / "digits_cnn" / "1" / "model.onnx",
        ROOT / "testdata" / "digits_cnn" / "calibration.npz",
        (1, 8, 8),
    ),
}
CALIBRATION_BATCH = 32


class NpzReader(CalibrationDataReader):
    """Feeds a calibration .npz: arrays keyed by input name, samples on axis 0."""

    def __init__(self, path: pathlib.Path):
        with np.load(path) as z:
            arrays = {name: z[name] for name in z.files}
        n = len(next(iter(arrays.values())))
        self._batches = iter(
            [
                {name: a[i : i + CALIBRATION_BATCH] for name, a in arrays.items()}
                for i in range(0, n, CALIBRATION_BATCH)
            ]
        )

    def get_next(self):
        return next(self._batches, None)


def run(path: pathlib.Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(["label", "probabilities"], {"input": x})
    return labels, probabilities


def quantized_ops(path: pathlib.Path) -> str:
    """The quantization ops ORT put in the graph, e.g. "QuantizeLinear x4"."""
    ops: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        if "quant" in node.op_type.lower() or node.op_type.endswith("Integer") or node.op_type.startswith("QLinear"):
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return ", ".join(f"{op} x{n}" for op, n in sorted(ops.items())) or "none"


def main() -> None:
    heldout = json.loads(HELDOUT_PATH.read_text(encoding="utf-8"))
    x = np.asarray(heldout["inputs"], dtype=np.float32)
    y = np.asarray(heldout["labels"], dtype=np.int64)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (model, calibration, shape) in MODELS.items():
            xs = x.reshape((len(x), *shape))
            prepared = pathlib.Path(tmp) / f"{name}_prepared.onnx"
            static = pathlib.Path(tmp) / f"{name}_static.onnx"
            dynamic = pathlib.Path(tmp) / f"{name}_dynamic.onnx"
            # ORT's recommended first step (it warns without it), reduced to
            # ONNX shape inference: ORT's symbolic inference needs sympy, not
            # in tools/requirements.txt, and its optimizer would fuse the
            # MLP's MatMul+Add into a Gemm with a [1, 64] bias, on which
            # per-channel QDQ raises (microsoft/onnxruntime#24815). Without
            # it ORT quantizes the graph as served, as Corvid's quantizer will.
            quant_pre_process(model, prepared, skip_optimization=True, skip_symbolic_shape=True)
            quantize_static(
                prepared,
                static,
                NpzReader(calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
            )
            quantize_dynamic(prepared, dynamic, weight_type=QuantType.QInt8)

            ref_labels, ref_probabilities = run(model, xs)
            for kind, path in (("fp32", model), ("int8 static QDQ", static), ("int8 dynamic", dynamic)):
                labels, probabilities = run(path, xs)
                rows.append(
                    (
                        name,
                        kind,
                        f"{(labels == y).mean() * 100:.2f}%",
                        str(int((labels != ref_labels).sum())),
                        f"{np.abs(probabilities - ref_probabilities).max():.4f}",
                        "-" if path == model else quantized_ops(path),
                    )
                )

    header = ("model", "variant", "held-out acc", "labels != fp32", "max abs dp", "quantization ops")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    print(f"ONNX Runtime {ort.__version__}, {len(y)} held-out samples")
    for r in [header, tuple("-" * w for w in widths)] + rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")


if __name__ == "__main__":
    main()
