"""The served `digits` model against ONNX Runtime on the same file.

ONNX Runtime is the reference: nothing here hard-codes an expected output.
Corvid computes with its own executor, so probabilities may differ in the last
bits (summation order, fused kernels), within PROBABILITY_ATOL; labels must
match exactly.
"""

import hashlib
import json
import re
import uuid

import grpc
import numpy as np
import onnx
import pytest
from corvid.v1 import inference_pb2, model_pb2, tensor_pb2

from corvid_testlib import (
    MODEL_PATH,
    REQUEST_PATH,
    from_json_tensor,
    from_tensor,
    http_post_json,
    onnx_tensor_infos,
    to_tensor,
)

MODEL = "digits"
VERSION = 1
PROBABILITY_ATOL = 1e-4
BATCH = 32
RPC_TIMEOUT_S = 10


def predict(inference, inputs: np.ndarray, *, raw: bool) -> tuple[np.ndarray, np.ndarray]:
    """One Predict call over gRPC; checks the response envelope and returns
    (labels, probabilities)."""
    request_id = f"test-{uuid.uuid4()}"
    response = inference.Predict(
        inference_pb2.PredictRequest(
            model=MODEL,
            inputs={"input": to_tensor(inputs, tensor_pb2.DATA_TYPE_FP32, raw=raw)},
            request_id=request_id,
        ),
        timeout=RPC_TIMEOUT_S,
    )
    assert response.model == MODEL
    assert response.version == VERSION
    assert response.request_id == request_id
    return decode_outputs(response.outputs, len(inputs))


def decode_outputs(outputs, batch: int) -> tuple[np.ndarray, np.ndarray]:
    assert set(outputs) == {"label", "probabilities"}
    label, probabilities = outputs["label"], outputs["probabilities"]
    assert label.dtype == tensor_pb2.DATA_TYPE_INT64
    assert probabilities.dtype == tensor_pb2.DATA_TYPE_FP32
    labels, probs = from_tensor(label), from_tensor(probabilities)
    assert labels.shape == (batch,)
    assert probs.shape == (batch, 10)
    return labels, probs


def test_heldout_matches_onnxruntime(inference, heldout, reference):
    want_labels, want_probs = reference.predict(heldout.inputs)

    # Batches of 32; the last one is partial (360 = 11 * 32 + 8), which
    # exercises padding to a compiled batch bucket. The two tensor encodings
    # alternate so both decode paths see real traffic.
    got_labels, got_probs = [], []
    for i, start in enumerate(range(0, len(heldout.inputs), BATCH)):
        labels, probs = predict(inference, heldout.inputs[start : start + BATCH], raw=i % 2 == 0)
        got_labels.append(labels)
        got_probs.append(probs)
    got_labels = np.concatenate(got_labels)
    got_probs = np.concatenate(got_probs)

    np.testing.assert_array_equal(got_labels, want_labels)
    batched_diff = float(np.abs(got_probs - want_probs).max())
    assert batched_diff <= PROBABILITY_ATOL

    # Batch size 1 is the latency path and its own compiled bucket.
    single_diff = 0.0
    for n, i in enumerate([0, 1, len(heldout.inputs) // 2, len(heldout.inputs) - 1]):
        labels, probs = predict(inference, heldout.inputs[i : i + 1], raw=n % 2 == 1)
        np.testing.assert_array_equal(labels, want_labels[i : i + 1])
        single_diff = max(single_diff, float(np.abs(probs - want_probs[i : i + 1]).max()))
    assert single_diff <= PROBABILITY_ATOL

    accuracy = float((got_labels == heldout.labels).mean())
    print(
        f"\ndigits over gRPC: accuracy {accuracy:.4f} on {len(heldout.labels)} held-out "
        f"samples; max |p_corvid - p_ort| = {batched_diff:.2e} (batches of {BATCH}), "
        f"{single_diff:.2e} (single)"
    )


def test_rest_predict(corvid_server, reference):
    body = REQUEST_PATH.read_bytes()
    request = json.loads(body)["inputs"]["input"]
    inputs = np.array(request["fp32Values"], dtype=np.float32).reshape(request["shape"])
    want_labels, want_probs = reference.predict(inputs)

    status, response = http_post_json(f"{corvid_server.http_url}/v1/models/{MODEL}:predict", body)

    assert status == 200, response
    # protojson: camelCase names, int64 as JSON strings.
    assert response["model"] == MODEL
    assert response["version"] == str(VERSION)
    assert response["requestId"], "the server generates a request id when none is sent"
    label, probabilities = response["outputs"]["label"], response["outputs"]["probabilities"]
    assert label["dtype"] == "DATA_TYPE_INT64"
    assert probabilities["dtype"] == "DATA_TYPE_FP32"
    # JSON callers get the typed fields, not base64 `raw`.
    assert all(isinstance(v, str) for v in label["int64Values"]), label
    assert "fp32Values" in probabilities, probabilities
    labels, probs = from_json_tensor(label), from_json_tensor(probabilities)
    assert labels.shape == want_labels.shape
    assert probs.shape == want_probs.shape
    np.testing.assert_array_equal(labels, want_labels)
    assert float(np.abs(probs - want_probs).max()) <= PROBABILITY_ATOL


def _valid_input(heldout) -> tensor_pb2.Tensor:
    return to_tensor(heldout.inputs[:1], tensor_pb2.DATA_TYPE_FP32, raw=False)


# Each case: request fields, expected code, and patterns the message must
# contain (case-insensitive) so a user can see what was expected and what was
# sent.
ERROR_CASES = {
    "unknown-model": (
        lambda h: dict(model="no-such-model", inputs={"input": _valid_input(h)}),
        grpc.StatusCode.NOT_FOUND,
        [r"no-such-model"],
    ),
    "unknown-version": (
        lambda h: dict(model=MODEL, version=99, inputs={"input": _valid_input(h)}),
        grpc.StatusCode.NOT_FOUND,
        [r"\b99\b"],
    ),
    "wrong-input-name": (
        lambda h: dict(model=MODEL, inputs={"pixels": _valid_input(h)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        # The model's input is literally named "input", a word any message
        # may contain; "pixels" is the discriminating half.
        [r"\binput\b", r"\bpixels\b"],
    ),
    "wrong-shape": (
        lambda h: dict(
            model=MODEL,
            inputs={"input": to_tensor(h.inputs[:1, :63], tensor_pb2.DATA_TYPE_FP32, raw=False)},
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        [r"\b64\b", r"\b63\b"],
    ),
    "wrong-dtype": (
        lambda h: dict(
            model=MODEL,
            inputs={"input": to_tensor(h.inputs[:1], tensor_pb2.DATA_TYPE_FP64, raw=False)},
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        # Whatever the spelling (DATA_TYPE_FP32, fp32, float32, float), both
        # the model's type and the one sent must be named.
        [r"fp32|float32|\bfloat\b", r"fp64|float64|double"],
    ),
}


@pytest.mark.parametrize("case", ERROR_CASES, ids=list(ERROR_CASES))
def test_errors(inference, heldout, case):
    fields, want_code, patterns = ERROR_CASES[case]
    with pytest.raises(grpc.RpcError) as raised:
        inference.Predict(inference_pb2.PredictRequest(**fields(heldout)), timeout=RPC_TIMEOUT_S)
    error = raised.value
    message = error.details() or ""
    assert error.code() == want_code, f"{error.code()}: {message}"
    for pattern in patterns:
        assert re.search(pattern, message, re.IGNORECASE), (
            f"message {message!r} does not match {pattern!r}"
        )


def test_model_status(inference):
    response = inference.ModelStatus(
        inference_pb2.ModelStatusRequest(model=MODEL), timeout=RPC_TIMEOUT_S
    )
    assert response.model.name == MODEL
    assert [v.version for v in response.model.versions] == [VERSION]
    (version,) = response.model.versions
    assert version.state == model_pb2.MODEL_STATE_AVAILABLE, version.error
    assert version.error == ""
    assert version.HasField("loaded_at")

    # The embedded model is the committed file, byte for byte.
    assert re.fullmatch(r"[0-9a-f]{64}", version.sha256), version.sha256
    assert version.sha256 == hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()

    # Signature as the ONNX graph declares it, in graph order; the symbolic
    # batch dimension is reported as -1.
    graph = onnx.load(str(MODEL_PATH)).graph
    initializers = {i.name for i in graph.initializer}
    want_inputs = onnx_tensor_infos(v for v in graph.input if v.name not in initializers)
    want_outputs = onnx_tensor_infos(graph.output)
    got_inputs = [(t.name, t.dtype, list(t.shape)) for t in version.inputs]
    got_outputs = [(t.name, t.dtype, list(t.shape)) for t in version.outputs]
    assert got_inputs == want_inputs
    assert got_outputs == want_outputs
    assert all(shape[0] == -1 for _, _, shape in got_inputs + got_outputs)
