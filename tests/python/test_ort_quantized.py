"""Models quantized by ONNX Runtime's own tools, served by Corvid as they are.

The digits MLP and the digits CNN are quantized with onnxruntime.quantization
(static QDQ with int8 and uint8 activations, per-channel int8 weights,
calibrated on the committed calibration sets; dynamic with int8 and uint8
weights) into a temporary model repository that one Corvid server serves.
For every variant, Corvid's labels on the held-out set must equal ONNX
Runtime's on the same quantized file, and its probabilities must agree within
the variant's quantization tolerance (see PROBABILITY_ATOL). Corvid runs the
QDQ chains on its int8 GEMM (ModelStatus says INT8_PREQUANTIZED).
"""

import importlib.util
import json

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from corvid.v1 import inference_pb2, inference_pb2_grpc, model_pb2, tensor_pb2
from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_dynamic, quantize_static

from conftest import _serve
from corvid_testlib import HELDOUT_PATH, REPO_ROOT, from_tensor, to_tensor

# testdata/digits/ort_quant_accuracy.py holds the models' paths, shapes and
# the calibration reader; load it rather than repeat them.
_spec = importlib.util.spec_from_file_location("ort_quant_accuracy", REPO_ROOT / "testdata" / "digits" / "ort_quant_accuracy.py")
ortq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ortq)

# Corvid's fused int8 op dequantizes its products to float32 and the next
# QuantizeLinear rounds them, where ONNX Runtime requantizes inside its
# integer kernels: the two may round a value to neighbouring steps. The
# static models quantize the Softmax output with a scale of 1/255, so a
# probability may differ by a step or two; the dynamic ones differ only by
# float rounding. A wrong scale, zero point or weight layout moves
# probabilities by 0.1 and more.
PROBABILITY_ATOL = 2 / 255
BATCH = 60


def variants():
    return [
        ("static-s8", dict(static=True, activation_type=QuantType.QInt8)),
        ("static-u8", dict(static=True, activation_type=QuantType.QUInt8)),
        ("dynamic-s8", dict(static=False, weight_type=QuantType.QInt8)),
        ("dynamic-u8", dict(static=False, weight_type=QuantType.QUInt8)),
    ]


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """Quantize every model and variant into one repository and serve it."""
    root = tmp_path_factory.mktemp("ort-quantized")
    work = tmp_path_factory.mktemp("ort-work")
    served = {}
    for model, (path, calibration, shape) in ortq.MODELS.items():
        prepared = work / f"{model}.onnx"
        quant_pre_process(path, prepared, skip_optimization=True, skip_symbolic_shape=True)
        for variant, opts in variants():
            name = f"{model.replace('_', '-')}-{variant}"
            out = root / name / "1" / "model.onnx"
            out.parent.mkdir(parents=True)
            if opts["static"]:
                quantize_static(
                    prepared, out, ortq.NpzReader(calibration), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=opts["activation_type"], weight_type=QuantType.QInt8,
                )
            else:
                quantize_dynamic(prepared, out, weight_type=opts["weight_type"])
            served[name] = (out, shape)
    with _serve(tmp_path_factory, models=root) as server:
        with grpc.insecure_channel(server.grpc_target, options=[("grpc.enable_http_proxy", 0)]) as channel:
            yield served, inference_pb2_grpc.InferenceServiceStub(channel)


def heldout():
    data = json.loads(HELDOUT_PATH.read_text(encoding="utf-8"))
    return np.asarray(data["inputs"], dtype=np.float32)


def corvid_predict(stub, name, x):
    labels, probabilities = [], []
    for lo in range(0, len(x), BATCH):
        request = inference_pb2.PredictRequest(
            model=name, inputs={"input": to_tensor(x[lo : lo + BATCH], tensor_pb2.DATA_TYPE_FP32, raw=True)}
        )
        response = stub.Predict(request, timeout=30)
        labels.append(from_tensor(response.outputs["label"]))
        probabilities.append(from_tensor(response.outputs["probabilities"]))
    return np.concatenate(labels), np.concatenate(probabilities)


@pytest.mark.parametrize("model", list(ortq.MODELS))
@pytest.mark.parametrize("variant", [v for v, _ in variants()])
def test_ort_quantized_matches(quantized, model, variant):
    served, stub = quantized
    name = f"{model.replace('_', '-')}-{variant}"
    path, shape = served[name]
    x = heldout()
    x = x.reshape((len(x), *shape))
    status = stub.ModelStatus(inference_pb2.ModelStatusRequest(model=name), timeout=10)
    assert status.model.versions[0].execution_mode == model_pb2.EXECUTION_MODE_INT8_PREQUANTIZED
    # Dynamic quantization takes one scale per input tensor: ONNX Runtime
    # must see the same batches as Corvid.
    refs = [ortq.run(path, x[lo : lo + BATCH]) for lo in range(0, len(x), BATCH)]
    ref_labels = np.concatenate([r[0] for r in refs])
    ref_probabilities = np.concatenate([r[1] for r in refs])
    labels, probabilities = corvid_predict(stub, name, x)
    differ = int((labels != ref_labels).sum())
    gap = float(np.abs(probabilities - ref_probabilities).max())
    print(f"{name}: {differ} of {len(x)} labels differ from ONNX Runtime, max |dp| = {gap:.2e}")
    assert differ == 0
    assert gap <= PROBABILITY_ATOL
