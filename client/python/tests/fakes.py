"""An in-process gRPC server that stands in for Corvid: it answers with
whatever status a test scripts, and records the metadata of every call.
Imported by the tests (pytest puts this folder on sys.path)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from corvid.v1 import inference_pb2, inference_pb2_grpc, tensor_pb2


class Recorder(grpc.ServerInterceptor):
    """Keeps the invocation metadata of every call, by method."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, dict[str, str]]] = []

    def intercept_service(self, continuation, handler_call_details):
        with self.lock:
            self.calls.append((handler_call_details.method, dict(handler_call_details.invocation_metadata)))
        return continuation(handler_call_details)

    def metadata(self, method_suffix: str) -> list[dict[str, str]]:
        with self.lock:
            return [md for m, md in self.calls if m.endswith(method_suffix)]


class FakeInference(inference_pb2_grpc.InferenceServiceServicer):
    """Predict answers `fail` (code, message, reason) when set, else echoes
    its inputs as outputs; Stream echoes each request."""

    def __init__(self) -> None:
        self.fail: tuple[grpc.StatusCode, str, str | None] | None = None
        self.predict_calls = 0

    def Predict(self, request, context):
        self.predict_calls += 1
        if self.fail is not None:
            abort(context, *self.fail)
        return _echo(request)

    def Stream(self, request_iterator, context) -> Iterator[inference_pb2.StreamResponse]:
        for item in request_iterator:
            yield inference_pb2.StreamResponse(request_id=item.request.request_id, response=_echo(item.request))


def _echo(request: inference_pb2.PredictRequest) -> inference_pb2.PredictResponse:
    outputs = {name: tensor_pb2.Tensor(dtype=t.dtype, shape=t.shape, raw=t.raw) for name, t in request.inputs.items()}
    return inference_pb2.PredictResponse(model=request.model, version=7, outputs=outputs, request_id=request.request_id or "fake-id")


def abort(context, code: grpc.StatusCode, message: str, reason: str | None) -> None:
    """End the call with `code`, and a google.rpc.Status with an ErrorInfo in
    the trailers as grpc-go's status package sends it."""
    status = status_pb2.Status(code=code.value[0], message=message)
    if reason:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="corvid", metadata={"model": "m"}))
        status.details.append(detail)
    context.abort_with_status(_Status(code, message, (("grpc-status-details-bin", status.SerializeToString()),)))


class _Status(grpc.Status):
    def __init__(self, code, details, trailing_metadata):
        self.code, self.details, self.trailing_metadata = code, details, trailing_metadata


class FakeServer:
    """A running fake; `target` is its address."""

    def __init__(self, credentials: grpc.ServerCredentials | None = None) -> None:
        self.recorder = Recorder()
        self.inference = FakeInference()
        self.health = health.HealthServicer()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=[self.recorder])
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(self.inference, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        if credentials is None:
            port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            port = self.server.add_secure_port("127.0.0.1:0", credentials)
        self.port = port
        self.target = f"127.0.0.1:{port}"
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None)
