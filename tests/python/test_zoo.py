"""The model zoo, served by Corvid, against ONNX Runtime.

testdata/zoo/make_sklearn.py writes the scikit-learn models
(testdata/zoo/models/sk-*) and 64 input rows for each (testdata/zoo/inputs);
testdata/zoo/make_nets.py writes a LeNet-style CNN and a transformer encoder
block, fed here with seeded random inputs (the encoder at several sequence
lengths, its dynamic dimension). One Corvid server serves the zoo's model
repository; every output of every model is compared over gRPC with ONNX
Runtime running the same file on the same inputs, at batch 1 (each row
alone) and batch 32: labels and other integer outputs exactly, floats within
1e-4 relative. test_zoo_table prints max differences and latencies.
"""

import statistics
import time
import uuid

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from corvid.v1 import inference_pb2, inference_pb2_grpc, tensor_pb2

from corvid_testlib import REPO_ROOT, from_tensor, to_tensor

ZOO = REPO_ROOT / "testdata" / "zoo"
SKLEARN = ["sk-logreg", "sk-mlp-pipeline", "sk-forest", "sk-gbr", "sk-linearsvc"]
NETS = ["lenet", "encoder"]
MODELS = SKLEARN + NETS
# The sequence lengths the encoder is checked at (its graphs are compiled
# per length), and the one the table times it at.
ENCODER_SEQS = [1, 5, 12, 40]
TABLE_SEQ = 12
BATCHES = [1, 32]
RPC_TIMEOUT_S = 10

# Float outputs must agree within RTOL relative, the bound. ATOL is
# for values near zero, where a relative bound asks the impossible: a
# probability of 1e-9 out of a softmax, or a decision score that is a sum
# of O(1) terms cancelling near 0, carries the absolute rounding error of
# those terms (float32: ~1e-7 on values of order 1) whatever its own size.
# 1e-6 is ten times that, and a hundred times below RTOL on any value above
# 0.01, so it cannot hide a real difference.
RTOL = 1e-4
ATOL = 1e-6

# Latency: median of TIMED_RUNS calls after WARMUP_RUNS.
WARMUP_RUNS = 20
TIMED_RUNS = 200

# One Corvid server for the zoo's repository (conftest.corvid_models_server);
# every model must load for it to report ready.
pytestmark = pytest.mark.parametrize(
    "corvid_models_server", [ZOO / "models"], indirect=True, ids=["zoo"]
)


@pytest.fixture(scope="session")
def zoo_inference(corvid_models_server):
    options = [("grpc.enable_http_proxy", 0)]  # proxies must not see loopback calls
    with grpc.insecure_channel(corvid_models_server.grpc_target, options=options) as channel:
        yield inference_pb2_grpc.InferenceServiceStub(channel)


@pytest.fixture(scope="session")
def references():
    """ONNX Runtime sessions on the zoo's files, by model name."""
    return {
        name: ort.InferenceSession(
            str(ZOO / "models" / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        for name in MODELS
    }


def input_name(name: str) -> str:
    return "x" if name in NETS else "input"


def zoo_inputs(name: str, seq: int = TABLE_SEQ) -> np.ndarray:
    """64 rows of inputs: the committed ones for scikit-learn models, seeded
    random ones for the networks (whose weights are random too)."""
    if name == "lenet":
        return np.random.default_rng(1).uniform(0, 16, (64, 1, 8, 8)).astype(np.float32)
    if name == "encoder":
        return np.random.default_rng(seq).standard_normal((64, seq, 32)).astype(np.float32)
    inputs = np.load(ZOO / "inputs" / f"{name}.npy")
    assert inputs.dtype == np.float32 and inputs.ndim == 2 and len(inputs) == 64, inputs.shape
    return inputs


def request(name: str, inputs: np.ndarray) -> inference_pb2.PredictRequest:
    return inference_pb2.PredictRequest(
        model=name,
        inputs={input_name(name): to_tensor(inputs, tensor_pb2.DATA_TYPE_FP32, raw=True)},
        request_id=f"zoo-{uuid.uuid4()}",
    )


def predict(inference, name: str, inputs: np.ndarray) -> dict[str, np.ndarray]:
    req = request(name, inputs)
    response = inference.Predict(req, timeout=RPC_TIMEOUT_S)
    assert response.model == name
    assert response.version == 1
    assert response.request_id == req.request_id
    return {k: from_tensor(v) for k, v in response.outputs.items()}


def run_reference(session: ort.InferenceSession, inputs: np.ndarray) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {session.get_inputs()[0].name: inputs})))


def batches(inputs: np.ndarray, size: int):
    return [inputs[i : i + size] for i in range(0, len(inputs), size)]


def compare(got: dict, want: dict, where: str) -> float:
    """Assert that Corvid's outputs match ONNX Runtime's; return the largest
    absolute difference of the float outputs."""
    assert set(got) == set(want), f"{where}: outputs {sorted(got)}, want {sorted(want)}"
    worst = 0.0
    for name, w in want.items():
        g = got[name]
        assert g.dtype == w.dtype and g.shape == w.shape, (
            f"{where}: output {name!r} is {g.dtype}{list(g.shape)}, want {w.dtype}{list(w.shape)}"
        )
        if np.issubdtype(w.dtype, np.floating):
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=f"{where}: output {name!r}")
            worst = max(worst, float(np.abs(g.astype(np.float64) - w).max(initial=0.0)))
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"{where}: output {name!r}")
    return worst


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("name", MODELS)
def test_matches_onnxruntime(zoo_inference, references, name, batch):
    for i, x in enumerate(batches(zoo_inputs(name), batch)):
        where = f"{name}, batch {batch}, rows {i * batch}..{i * batch + len(x) - 1}"
        compare(predict(zoo_inference, name, x), run_reference(references[name], x), where)


@pytest.mark.parametrize("seq", ENCODER_SEQS)
def test_encoder_sequence_lengths(zoo_inference, references, seq):
    """The sequence length is dynamic: each length gets its own graph, and
    none is padded (padding would change the attention's softmax)."""
    for batch in [1, 3]:
        x = zoo_inputs("encoder", seq)[:batch]
        got = predict(zoo_inference, "encoder", x)
        assert got["y"].shape == (batch, seq, 32)
        compare(got, run_reference(references["encoder"], x), f"encoder, batch {batch}, sequence {seq}")


def median_ms(call) -> float:
    for _ in range(WARMUP_RUNS):
        call()
    times = []
    for _ in range(TIMED_RUNS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def test_zoo_table(zoo_inference, references):
    """Per model: the largest |Corvid - ONNX Runtime| over every float output
    at both batch sizes, and the median latency at batch 1 and 32 of a
    Corvid Predict (gRPC round trip on loopback, raw tensor encoding) beside
    an in-process InferenceSession.run (default session options), measured
    in this one run."""
    rows = []
    for name in MODELS:
        session, inputs = references[name], zoo_inputs(name)
        diff = 0.0
        for batch in BATCHES:
            for x in batches(inputs, batch):
                diff = max(diff, compare(predict(zoo_inference, name, x), run_reference(session, x), name))
        row = [name, f"{diff:.2e}"]
        for batch in BATCHES:
            x = np.ascontiguousarray(inputs[:batch])
            req = request(name, x)  # built once: the timing is the call alone
            feeds = {input_name(name): x}
            corvid = median_ms(lambda: zoo_inference.Predict(req, timeout=RPC_TIMEOUT_S))
            onnxruntime = median_ms(lambda: session.run(None, feeds))
            row += [f"{corvid:.3f}", f"{onnxruntime:.3f}"]
        rows.append(row)

    # What a round trip costs with no model work, to read the table by.
    status = inference_pb2.ModelStatusRequest(model=MODELS[0])
    floor = median_ms(lambda: zoo_inference.ModelStatus(status, timeout=RPC_TIMEOUT_S))

    header = ["model", "max |diff|", "corvid b1 ms", "ort b1 ms", "corvid b32 ms", "ort b32 ms"]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [header] + rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    print(
        f"\nmodel zoo (encoder at sequence length {TABLE_SEQ}): Corvid over gRPC vs "
        f"ONNX Runtime {ort.__version__} in-process, "
        f"median of {TIMED_RUNS} runs\n" + "\n".join(lines) + "\n"
        f"gRPC round trip without model work (ModelStatus): {floor:.3f} ms"
    )
