"""corvid.Client against a real `corvid serve`."""

import threading
import time

import grpc
import numpy as np
import pytest

import corvid
from conftest import SMALL_MAX_RECV_BYTES, free_loopback_ports, start_server
from corvid.v1 import inference_pb2, inference_pb2_grpc, model_pb2


def test_predict_classifies_heldout_digits(client, heldout):
    got = client.predict("digits", {"input": heldout.inputs[:64]})
    label, probs = got.outputs["label"], got.outputs["probabilities"]
    assert set(got.outputs) == {"label", "probabilities"}
    assert label.dtype == np.int64 and label.shape == (64,)
    assert probs.dtype == np.float32 and probs.shape == (64, 10)
    np.testing.assert_array_equal(label, probs.argmax(axis=1))
    assert (label == heldout.labels[:64]).mean() > 0.9
    assert got.model_version == 1 and got.model == "digits" and got.request_id
    assert got["label"] is label


def test_predict_decodes_what_the_stub_returns(client, corvid_server, heldout):
    # The same request through the generated stub: the SDK's arrays must be
    # exactly the raw bytes the server sent.
    rows = heldout.inputs[:5]
    want = client.predict("digits", {"input": rows}, request_id="same")
    with grpc.insecure_channel(corvid_server.target) as channel:
        raw = inference_pb2_grpc.InferenceServiceStub(channel).Predict(
            inference_pb2.PredictRequest(
                model="digits", request_id="same", inputs={"input": corvid.to_tensor(rows)}
            )
        )
    for name, tensor in raw.outputs.items():
        assert want.outputs[name].tobytes() == tensor.raw, name


def test_predict_options(client, heldout):
    row = heldout.inputs[:1]
    got = client.predict("digits", {"input": row}, version=1, outputs=["label"], request_id="req-42", routing_key="user-1")
    assert set(got.outputs) == {"label"} and got.request_id == "req-42" and got.model_version == 1
    with pytest.raises(corvid.NotFound) as e:
        client.predict("digits", {"input": row}, version=99)
    assert "99" in e.value.message
    with pytest.raises(corvid.NotFound):
        client.predict("digits", {"input": row}, label="no-such-label")
    with pytest.raises(ValueError, match="not both"):
        client.predict("digits", {"input": row}, version=1, label="stable")


def test_model_status_list_models_health(client):
    info = client.model_status("digits")
    assert isinstance(info, model_pb2.ModelInfo) and info.name == "digits"
    (v,) = info.versions
    assert v.version == 1 and v.state == model_pb2.MODEL_STATE_AVAILABLE
    assert [(i.name, list(i.shape)) for i in v.inputs] == [("input", [-1, 64])]
    assert [m.name for m in client.list_models()] == ["digits"]
    assert client.health() is True
    assert client.health("corvid.v1.InferenceService") is True
    with pytest.raises(corvid.NotFound):
        client.health("no.such.Service")
    with pytest.raises(corvid.NotFound) as e:
        client.model_status("nope")
    assert e.value.reason == "MODEL_NOT_FOUND"


@pytest.mark.parametrize(
    "inputs,cls,reason,fragment",
    [
        ({"input": np.zeros((1, 10), np.float32)}, corvid.InvalidArgument, "INVALID_INPUT", "want [N 64]"),
        ({"input": np.zeros((1, 64), np.float64)}, corvid.InvalidArgument, "INVALID_INPUT", "dtype fp64, want fp32"),
        ({"pixels": np.zeros((1, 64), np.float32)}, corvid.InvalidArgument, "INVALID_INPUT", "input"),
    ],
    ids=["shape", "dtype", "name"],
)
def test_invalid_argument(client, inputs, cls, reason, fragment):
    with pytest.raises(cls) as e:
        client.predict("digits", inputs)
    err = e.value
    assert isinstance(err, corvid.CorvidError)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.reason == reason
    assert fragment in err.message, err.message


def test_not_found(client):
    with pytest.raises(corvid.NotFound) as e:
        client.predict("nope", {"input": np.zeros((1, 64), np.float32)})
    assert e.value.reason == "MODEL_NOT_FOUND" and '"nope"' in e.value.message
    assert str(e.value).startswith("NOT_FOUND: ")


def test_deadline_exceeded(tmp_path):
    # A frozen server (SIGSTOP) holds the connection open and never answers:
    # a deadline is the only way out, whatever the machine's speed.
    proc = start_server(tmp_path)
    row = {"input": np.zeros((1, 64), np.float32)}
    try:
        with corvid.Client(proc.server.target, timeout=0.3) as c:
            assert c.predict("digits", row, timeout=10).outputs["label"].shape == (1,)  # connected
            proc.freeze()
            try:
                start = time.monotonic()
                with pytest.raises(corvid.DeadlineExceeded) as e:
                    c.predict("digits", row)  # the client's default deadline
                assert 0.3 <= time.monotonic() - start < 3
                assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
                with pytest.raises(corvid.DeadlineExceeded):
                    c.model_status("digits", timeout=0.1)  # a per-call deadline
                with pytest.raises(corvid.DeadlineExceeded):
                    list(c.stream("digits", [row], timeout=0.2))
                # timeout=None lifts the default: this call waits for the server.
                threading.Timer(0.5, proc.thaw).start()
                assert c.predict("digits", row, timeout=None).outputs["label"].shape == (1,)
            finally:
                proc.thaw()
    finally:
        proc.stop()


def test_resource_exhausted(repository_server):
    too_big = np.zeros((1, SMALL_MAX_RECV_BYTES), np.uint8)
    with corvid.Client(repository_server.target, timeout=10) as c:
        with pytest.raises(corvid.ResourceExhausted) as e:
            c.predict("identity-uint8", {"x": too_big})
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and e.value.message
        # Below the limit the same server answers.
        assert c.predict("identity-uint8", {"x": np.ones((2, 3), np.uint8)}).outputs["y"].sum() == 6


def test_unavailable_after_retries(tmp_path):
    proc = start_server(tmp_path)
    target = proc.server.target
    with corvid.Client(target, timeout=10, retries=corvid.Retry(max_retries=3, initial_backoff=0.1, jitter=0)) as c:
        assert c.health()
        proc.stop()
        start = time.monotonic()
        with pytest.raises(corvid.Unavailable) as e:
            c.predict("digits", {"input": np.zeros((1, 64), np.float32)})
        elapsed = time.monotonic() - start
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
    # Three retries waited 0.1 + 0.2 + 0.4 s.
    assert 0.7 <= elapsed < 5, elapsed


def test_retries_reach_a_server_that_comes_up(tmp_path):
    (port,) = free_loopback_ports(1)
    target = f"127.0.0.1:{port}"
    with corvid.Client(target, timeout=20, retries=corvid.Retry(max_retries=50, initial_backoff=0.05, max_backoff=0.2)) as c:
        holder = {}
        starter = threading.Timer(0.5, lambda: holder.setdefault("proc", start_server(tmp_path, grpc_port=port, wait=False)))
        starter.start()
        try:
            got = c.predict("digits", {"input": np.zeros((1, 64), np.float32)})
        finally:
            starter.join()
            holder["proc"].stop()
    assert got.outputs["label"].shape == (1,)


def test_without_retries_unavailable_is_immediate():
    (port,) = free_loopback_ports(1)
    with corvid.Client(f"127.0.0.1:{port}", timeout=10, retries=0) as c:
        start = time.monotonic()
        with pytest.raises(corvid.Unavailable):
            c.health()
        assert time.monotonic() - start < 1


def test_stream_of_1000(client, heldout):
    rng = np.random.default_rng(7)
    rows = [heldout.inputs[rng.integers(len(heldout.inputs), size=rng.integers(1, 5))] for _ in range(1000)]
    results = list(client.stream("digits", ({"input": r} for r in rows)))
    assert [r.index for r in results] == list(range(1000))
    assert len({r.request_id for r in results}) == 1000
    for r, x in zip(results, rows):
        assert r.ok, r.error
        pred = r.result()
        assert pred.outputs["label"].shape == (len(x),)
        np.testing.assert_array_equal(pred.outputs["label"], pred.outputs["probabilities"].argmax(axis=1))
        assert r.request["input"] is x
    # Spot-check the matching against unary predictions.
    for i in (0, 499, 999):
        want = client.predict("digits", {"input": rows[i]})
        np.testing.assert_array_equal(results[i].result().outputs["probabilities"], want.outputs["probabilities"])


def test_stream_unordered_and_failures_alone(client, heldout):
    good = {"input": heldout.inputs[:2]}
    bad = {"input": np.zeros((1, 3), np.float32)}
    items = [good, bad, corvid.Request({"input": heldout.inputs[:1]}, request_id="mine", outputs=["label"]), good]
    results = list(client.stream("digits", items, ordered=False))
    assert sorted(r.index for r in results) == [0, 1, 2, 3]
    by_index = {r.index: r for r in results}
    assert by_index[1].ok is False and isinstance(by_index[1].error, corvid.InvalidArgument)
    assert by_index[1].error.reason == "INVALID_INPUT"
    with pytest.raises(corvid.InvalidArgument):
        by_index[1].result()
    assert by_index[2].request_id == "mine" and set(by_index[2].result().outputs) == {"label"}
    assert by_index[0].ok and by_index[3].ok


def test_stream_item_errors_the_client_finds(client, heldout):
    row = {"input": heldout.inputs[:1]}
    with pytest.raises(TypeError, match="unsupported dtype"):
        list(client.stream("digits", [row, {"input": np.zeros((1, 64), np.float16)}]))
    with pytest.raises(ValueError, match="given twice"):
        list(client.stream("digits", [corvid.Request({"input": heldout.inputs[:1]}, request_id="x")] * 2 + [row] * 50))


def test_stream_unknown_model_fails_each_item(client, heldout):
    results = list(client.stream("nope", [{"input": heldout.inputs[:1]}] * 3))
    assert [type(r.error) for r in results] == [corvid.NotFound] * 3


def test_stream_can_be_abandoned(client, heldout):
    def endless():
        while True:
            yield {"input": heldout.inputs[:1]}

    stream = client.stream("digits", endless())
    first = [next(stream) for _ in range(10)]
    stream.close()  # cancels the call; must not hang
    assert [r.index for r in first] == list(range(10))


def test_threads_share_one_client(client, heldout):
    errors, done = [], []

    def work(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(40):
                i = int(rng.integers(len(heldout.inputs) - 4))
                got = client.predict("digits", {"input": heldout.inputs[i:i + 4]}, request_id=f"t{seed}-{i}")
                assert got.request_id == f"t{seed}-{i}"
                np.testing.assert_array_equal(got.outputs["label"], got.outputs["probabilities"].argmax(axis=1))
            done.append(seed)
        except Exception as e:  # reported below, with the thread's seed
            errors.append((seed, e))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(done) == 16


def test_closed_client_refuses_calls(corvid_server):
    c = corvid.Client(corvid_server.target)
    with c:
        assert c.health()
    with pytest.raises(ValueError):
        c.health()


def test_token_is_refused_in_plaintext_to_remote_targets():
    with pytest.raises(ValueError, match="plaintext"):
        corvid.Client("corvid.example.com:8500", token="secret")
    # Loopback targets may carry one in plaintext.
    for target in ("localhost:8500", "127.0.0.1:8500", "[::1]:8500", "dns:///localhost:8500", "unix:/tmp/x.sock"):
        corvid.Client(target, token="secret").close()


@pytest.mark.parametrize("bad", [dict(timeout=0), dict(timeout=-1), dict(retries=-1), dict(retries="3"), dict(tls="yes")])
def test_bad_settings(bad):
    with pytest.raises((ValueError, TypeError)):
        corvid.Client("localhost:8500", **bad)
