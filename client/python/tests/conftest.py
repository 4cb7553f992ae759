"""Fixtures: real `corvid serve` processes on free loopback ports, built from
this repository, and a small in-process gRPC server that fakes Corvid for what
a real server cannot be made to do (answer PERMISSION_DENIED, record the
metadata it receives, serve TLS before the server's own TLS is wired).

The approach is tests/python/conftest.py's: the binary comes from $CORVID_BIN
(or the repository's bin/corvid, which `make build` writes), readiness is
/readyz on the admin port, and SIGTERM must make the server exit with 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
HELDOUT_PATH = REPO_ROOT / "testdata" / "digits" / "heldout.json"
DIGITS_MODEL = REPO_ROOT / "models" / "digits" / "1" / "model.onnx"
READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10
# The repository server's message limit: small enough to exceed on purpose.
SMALL_MAX_RECV_BYTES = 64 << 10
IDENTITY_DTYPES = ("float32", "float64", "int8", "uint8", "int32", "int64", "bool")

# urllib honours http_proxy; a proxy must never see loopback calls.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclasses.dataclass(frozen=True)
class Server:
    target: str  # host:port for corvid.Client
    admin_url: str


@dataclasses.dataclass(frozen=True)
class Heldout:
    inputs: np.ndarray  # float32 [N, 64]
    labels: np.ndarray  # int64 [N]


def corvid_binary() -> str:
    binary = os.environ.get("CORVID_BIN") or str(REPO_ROOT / "bin" / "corvid")
    if not os.access(binary, os.X_OK):
        # Fail rather than skip: a skipped suite would pass without testing.
        pytest.fail(f"no corvid binary at {binary}: run `make build` or set CORVID_BIN")
    return binary


def free_loopback_ports(count: int) -> list[int]:
    # Hold every socket until all are chosen so no port is handed out twice.
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


class Process:
    """A running `corvid serve`; stop() ends it with SIGTERM and checks it
    exits cleanly."""

    def __init__(self, process: subprocess.Popen, log_path: pathlib.Path, server: Server) -> None:
        self.process, self.log_path, self.server = process, log_path, server

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def freeze(self) -> None:
        """SIGSTOP the server and wait until every thread has stopped (the
        signal is delivered asynchronously), so that it answers nothing."""
        self.process.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while _state(self.process.pid) != "T":
            if time.monotonic() > deadline:
                pytest.fail("corvid did not stop on SIGSTOP")
            time.sleep(0.005)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"corvid did not exit within {STOP_TIMEOUT_S} s of SIGTERM; output:\n{self.log()}")
        assert code == 0, f"corvid exited with {code} after SIGTERM; output:\n{self.log()}"


def _state(pid: int) -> str:
    # /proc/PID/stat: "pid (comm) STATE ..."; comm may hold spaces.
    return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def start_server(log_dir: pathlib.Path, *args: str, grpc_port: int | None = None, wait: bool = True) -> Process:
    """Start `corvid serve` with extra `args` on free loopback ports (or the
    given gRPC port), waiting for /readyz unless wait is False."""
    ports = free_loopback_ports(3)
    if grpc_port is not None:
        ports[0] = grpc_port
    grpc_port, http_port, admin_port = ports
    server = Server(target=f"127.0.0.1:{grpc_port}", admin_url=f"http://127.0.0.1:{admin_port}")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"server-{grpc_port}.log"
    with open(log_path, "wb") as log:  # a file, not a pipe nobody reads
        process = subprocess.Popen(
            [
                corvid_binary(), "serve",
                "--grpc-addr", server.target,
                "--http-addr", f"127.0.0.1:{http_port}",
                "--admin-addr", f"127.0.0.1:{admin_port}",
                *args,
            ],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
    proc = Process(process, log_path, server)
    if wait:
        try:
            wait_until_ready(proc)
        except BaseException:
            process.kill()
            process.wait()
            raise
    return proc


def wait_until_ready(proc: Process) -> None:
    # /readyz is 200 once every model is AVAILABLE: no test races a load.
    readyz = f"{proc.server.admin_url}/readyz"
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    while True:
        code = proc.process.poll()
        if code is not None:
            pytest.fail(f"corvid exited with {code} before it was ready; output:\n{proc.log()}")
        try:
            with _opener.open(readyz, timeout=1) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}"
        except OSError as error:
            last = repr(error)
        if time.monotonic() > deadline:
            pytest.fail(f"{readyz} not 200 within {READY_TIMEOUT_S} s (last: {last}); output:\n{proc.log()}")
        time.sleep(0.05)


@contextlib.contextmanager
def serving(log_dir: pathlib.Path, *args: str) -> Iterator[Server]:
    proc = start_server(log_dir, *args)
    try:
        yield proc.server
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def corvid_server(tmp_path_factory) -> Iterator[Server]:
    """The server as `corvid serve` runs with no flags: the embedded digits
    model (input "input" float32 [N, 64]; outputs "label" int64 [N] and
    "probabilities" float32 [N, 10])."""
    with serving(tmp_path_factory.mktemp("corvid")) as server:
        yield server


def write_identity_repository(root: pathlib.Path) -> None:
    """A model repository with identity-<dtype> (x -> y, [N, 3]) for every
    dtype Corvid serves, plus a copy of digits."""
    import onnx
    from onnx import TensorProto, helper

    elem = {
        "float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE, "int8": TensorProto.INT8,
        "uint8": TensorProto.UINT8, "int32": TensorProto.INT32, "int64": TensorProto.INT64,
        "bool": TensorProto.BOOL,
    }
    for name in IDENTITY_DTYPES:
        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])], f"identity_{name}",
            [helper.make_tensor_value_info("x", elem[name], ["N", 3])],
            [helper.make_tensor_value_info("y", elem[name], ["N", 3])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
        folder = root / f"identity-{name}" / "1"
        folder.mkdir(parents=True)
        onnx.save(model, folder / "model.onnx")
    (root / "digits" / "1").mkdir(parents=True)
    shutil.copy(DIGITS_MODEL, root / "digits" / "1" / "model.onnx")


@pytest.fixture(scope="session")
def repository_server(tmp_path_factory) -> Iterator[Server]:
    """A server on a repository of identity models (one per dtype) and
    digits, with max_recv_msg_bytes lowered to SMALL_MAX_RECV_BYTES."""
    root = tmp_path_factory.mktemp("repository")
    models = root / "models"
    write_identity_repository(models)
    config = root / "corvid.yaml"
    config.write_text(f"max_recv_msg_bytes: {SMALL_MAX_RECV_BYTES}\n")
    with serving(root / "log", "--models", str(models), "--config", str(config)) as server:
        yield server


@pytest.fixture(scope="session")
def heldout() -> Heldout:
    data = json.loads(HELDOUT_PATH.read_text())
    inputs = np.array(data["inputs"], dtype=np.float32)
    labels = np.array(data["labels"], dtype=np.int64)
    assert inputs.shape == (len(labels), data["features"])
    return Heldout(inputs=inputs, labels=labels)


@pytest.fixture
def client(corvid_server):
    import corvid

    with corvid.Client(corvid_server.target, timeout=10) as c:
        yield c
