"""Fixtures: a real `corvid serve` process, a gRPC stub to it, and the
reference data (held-out digits and ONNX Runtime on the same model file).

The server binary comes from $CORVID_BIN (`make pytest` sets it). It is started
once per session with no --models, so it serves its embedded `digits` model.
`corvid_models_server` serves a model repository folder instead, given as its
parameter (indirect parametrisation), one server per folder.
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import socket
import subprocess
import time

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from corvid.v1 import inference_pb2_grpc

from corvid_testlib import HELDOUT_PATH, MODEL_PATH, http_get

READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10


@dataclasses.dataclass(frozen=True)
class Server:
    grpc_target: str  # host:port for grpc.insecure_channel
    http_url: str  # REST gateway base URL
    admin_url: str  # health, readiness and metrics base URL


@dataclasses.dataclass(frozen=True)
class Heldout:
    inputs: np.ndarray  # float32 [N, 64], raw pixel values 0..16
    labels: np.ndarray  # int64 [N]


class Reference:
    """ONNX Runtime on the model file the server embeds: the expected outputs."""

    def __init__(self, model_path: pathlib.Path):
        self.session = ort.InferenceSession(
            str(model_path), providers=["CPUExecutionProvider"]
        )

    def predict(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(label int64 [N], probabilities float32 [N, 10]) for `inputs`."""
        labels, probabilities = self.session.run(
            ["label", "probabilities"], {"input": inputs.astype(np.float32)}
        )
        return labels, probabilities


def _free_loopback_ports(count: int) -> list[int]:
    # Hold every socket open until all ports are chosen, so the kernel cannot
    # hand out the same port twice. Another process could still take a port
    # between close() and the server's bind; on a test machine that is rare
    # enough, and it shows up as a clear "address in use" start failure.
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="session")
def corvid_server(tmp_path_factory) -> Server:
    with _serve(tmp_path_factory) as server:
        yield server


@pytest.fixture(scope="session")
def corvid_models_server(request, tmp_path_factory) -> Server:
    """`corvid serve --models <request.param>`, ready once every model in the
    folder has a loaded version. Use with
    @pytest.mark.parametrize("corvid_models_server", [folder], indirect=True)."""
    with _serve(tmp_path_factory, models=request.param) as server:
        yield server


@contextlib.contextmanager
def _serve(tmp_path_factory, models=None):
    """Run `corvid serve` (on the embedded model, or on the repository folder
    `models`) until the block ends, then stop it and check it exits cleanly."""
    binary = os.environ.get("CORVID_BIN")
    if not binary:
        # Fail rather than skip: a silently skipped reference suite would let
        # `make pytest` pass without testing anything.
        pytest.fail("set CORVID_BIN to the corvid binary (make pytest does)")
    grpc_port, http_port, admin_port = _free_loopback_ports(3)
    server = Server(
        grpc_target=f"127.0.0.1:{grpc_port}",
        http_url=f"http://127.0.0.1:{http_port}",
        admin_url=f"http://127.0.0.1:{admin_port}",
    )

    # The server's output goes to a file, not a pipe: nobody reads a pipe
    # while tests run, and a server that logs enough would block on it.
    log_path = tmp_path_factory.mktemp("corvid") / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                binary,
                "serve",
                "--grpc-addr", server.grpc_target,
                "--http-addr", f"127.0.0.1:{http_port}",
                "--admin-addr", f"127.0.0.1:{admin_port}",
                *(["--models", str(models)] if models is not None else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def server_log() -> str:
        return log_path.read_text(errors="replace")

    try:
        _wait_until_ready(process, f"{server.admin_url}/readyz", server_log)
    except BaseException:
        process.kill()
        process.wait()
        raise

    try:
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(
                f"corvid did not exit within {STOP_TIMEOUT_S} s of SIGTERM; "
                f"output:\n{server_log()}"
            )
    assert code == 0, f"corvid exited with {code} after SIGTERM; output:\n{server_log()}"


def _wait_until_ready(process: subprocess.Popen, readyz: str, server_log) -> None:
    # /readyz answers 200 only once the default model is AVAILABLE, so the
    # tests never race the model load.
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    while True:
        code = process.poll()
        if code is not None:
            pytest.fail(f"corvid exited with {code} before it was ready; output:\n{server_log()}")
        try:
            status = http_get(readyz, timeout=1)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as error:  # not listening yet
            last = repr(error)
        if time.monotonic() > deadline:
            pytest.fail(
                f"{readyz} not 200 within {READY_TIMEOUT_S} s (last: {last}); "
                f"output:\n{server_log()}"
            )
        time.sleep(0.1)


@pytest.fixture(scope="session")
def inference(corvid_server):
    # Proxy env vars must not reroute loopback gRPC either. Session-scoped
    # and requested after corvid_server, so the channel closes before the
    # server is stopped.
    options = [("grpc.enable_http_proxy", 0)]
    with grpc.insecure_channel(corvid_server.grpc_target, options=options) as channel:
        yield inference_pb2_grpc.InferenceServiceStub(channel)


@pytest.fixture(scope="session")
def heldout() -> Heldout:
    data = json.loads(HELDOUT_PATH.read_text())
    inputs = np.array(data["inputs"], dtype=np.float32)
    labels = np.array(data["labels"], dtype=np.int64)
    assert inputs.shape == (len(labels), data["features"])
    return Heldout(inputs=inputs, labels=labels)


@pytest.fixture(scope="session")
def reference() -> Reference:
    return Reference(MODEL_PATH)
