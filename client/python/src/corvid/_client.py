"""Client: the blocking API, over a grpc.Channel."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from corvid import _common
from corvid._common import (
    Prediction,
    Request,
    RetryOption,
    StreamResult,
    TLSOption,
)
from corvid._errors import CorvidError, Unavailable, from_rpc_error, from_status
from corvid.v1 import inference_pb2, inference_pb2_grpc, model_pb2

T = TypeVar("T")

# Passed as timeout= to mean "the client's default timeout".
_DEFAULT: Any = object()


class Client:
    """A blocking client for one Corvid server. Safe to share between threads.

    Args:
        target: the server's gRPC address, such as "localhost:8500" (any
            gRPC target string works: "dns:///corvid.internal:8500", ...).
        tls: None for plaintext; True for TLS with the system's CA roots; a
            corvid.TLS(ca_file=..., cert_file=..., key_file=...) for TLS or
            mTLS from PEM files; or ready-made grpc.ChannelCredentials.
        token: a bearer token sent as "authorization: Bearer <token>" with
            every call. Sent in plaintext only to a loopback target; any
            other target needs tls=, else ValueError.
        timeout: the default deadline of every unary call, in seconds
            (retries included); None sets none. Each method's timeout=
            overrides it. Streams are bounded only by stream()'s own timeout=.
        retries: retries of a unary call that fails with UNAVAILABLE: a
            count (with the default backoff), a corvid.Retry, or 0/None.
        options: extra gRPC channel arguments, such as
            [("grpc.max_send_message_length", 64 << 20)].

    Use it as a context manager, or call close():

        with corvid.Client("localhost:8500", timeout=5) as client:
            prediction = client.predict("digits", {"input": pixels})
    """

    def __init__(
        self,
        target: str,
        *,
        tls: TLSOption = None,
        token: str | None = None,
        timeout: float | None = None,
        retries: RetryOption = 3,
        options: Sequence[tuple[str, Any]] | None = None,
    ) -> None:
        creds = _common.channel_credentials(tls)
        self._metadata = _common.auth_metadata(target, token, secure=creds is not None)
        self._call_metadata = self._metadata or None  # what every call passes
        self._timeout = _common.check_timeout(timeout)
        self._retry = _common.retry_policy(retries)
        self.target = target
        opts = _common.channel_options(target, options, tls)
        if creds is None:
            self._channel = grpc.insecure_channel(target, options=opts)
        else:
            self._channel = grpc.secure_channel(target, creds, options=opts)
        self._inference = inference_pb2_grpc.InferenceServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    # ---- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- unary calls -----------------------------------------------------------

    def predict(
        self,
        model: str,
        inputs: Mapping[str, Any],
        *,
        version: int | None = None,
        label: str | None = None,
        outputs: Sequence[str] | None = None,
        routing_key: str | None = None,
        request_id: str | None = None,
        timeout: float | None = _DEFAULT,
    ) -> Prediction:
        """Run one prediction.

        Args:
            model: the model's name.
            inputs: input arrays by input name. Each array's dtype (float32,
                float64, int8, uint8, int32, int64 or bool) and shape are
                sent as they are; the server checks them against the model.
            version: an explicit version; exclusive with label. Neither:
                the model's routing policy chooses.
            label: a version label such as "stable" or "canary".
            outputs: the outputs to return; None returns all.
            routing_key: key for sticky routing when traffic is split.
            request_id: the id the server echoes and logs; None lets the
                server make one.
            timeout: this call's deadline in seconds (retries included);
                None for none; omitted, the client's default.

        Returns:
            The Prediction: outputs as numpy arrays, the version that served
            the request and the request's id.

        Raises:
            NotFound, InvalidArgument, Unavailable, DeadlineExceeded, ... (all
            CorvidError): what the server answered. TypeError or ValueError:
            arguments the client can reject itself (an unsupported dtype,
            both version and label).
        """
        req = _common.predict_request(
            model, inputs, version=version, label=label, outputs=outputs,
            routing_key=routing_key, request_id=request_id,
        )
        resp = self._call(self._inference.Predict, req, timeout)
        return _common.prediction(resp)

    def model_status(self, model: str, *, timeout: float | None = _DEFAULT) -> model_pb2.ModelInfo:
        """The model and every one of its versions (state, inputs and
        outputs, labels, ...), as a corvid.v1.ModelInfo message."""
        req = inference_pb2.ModelStatusRequest(model=model)
        resp: inference_pb2.ModelStatusResponse = self._call(self._inference.ModelStatus, req, timeout)
        return resp.model

    def list_models(self, *, timeout: float | None = _DEFAULT) -> list[model_pb2.ModelInfo]:
        """Every model the server knows, sorted by name, with its versions."""
        resp = self._call(self._inference.ListModels, inference_pb2.ListModelsRequest(), timeout)
        return list(resp.models)

    def health(self, service: str = "", *, timeout: float | None = _DEFAULT) -> bool:
        """Whether the server (or one of its gRPC services, by full name such
        as "corvid.v1.InferenceService") reports SERVING on the standard
        gRPC health service. An unreachable server raises Unavailable."""
        req = health_pb2.HealthCheckRequest(service=service)
        resp = self._call(self._health.Check, req, timeout)
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)

    # ---- streaming ---------------------------------------------------------------

    def stream(
        self,
        model: str,
        requests: Iterable[Request | Mapping[str, Any]],
        *,
        ordered: bool = True,
        timeout: float | None = None,
    ) -> Iterator[StreamResult]:
        """Run many requests over one bidirectional stream.

        `requests` is consumed lazily as the stream can take more. Each item
        is a mapping of input name to array, or a corvid.Request for per-item
        options. Every item gets one StreamResult, holding its prediction or
        its error: a bad request fails alone and the stream goes on. Results
        are matched to requests by request id: the client makes one for each
        item, or uses the Request's own, which must be unique in the stream.

        Args:
            model: the model's name (for every request).
            requests: the requests, any iterable (a generator works).
            ordered: True yields results in the order of `requests`; False
                yields each as soon as it arrives (the server may answer out
                of order; match them by .index or .request_id).
            timeout: a deadline for the whole stream, in seconds; None (the
                default) sets none. The client's default timeout does not
                apply to streams.

        Raises:
            CorvidError (Unavailable, DeadlineExceeded, ...): the stream as
            a whole failed; results yielded so far stand. ValueError or
            TypeError: an item the client cannot encode, or a request id
            given twice; the stream is cancelled.
        """
        _common.check_timeout(timeout)
        matcher = _Matcher(model)
        call = self._inference.Stream(matcher.send(requests), timeout=timeout, metadata=self._call_metadata)
        try:
            for resp in call:
                if matcher.failed is not None:
                    break
                yield from matcher.receive(resp, ordered)
        except grpc.RpcError as e:
            if matcher.failed is None:
                raise from_rpc_error(e) from None
        finally:
            call.cancel()  # a no-op once the stream ended
        if matcher.failed is not None:
            raise matcher.failed
        matcher.finish()
        yield from matcher.flush()

    # ---- internals ---------------------------------------------------------------

    def _call(self, method: Callable[..., T], request: Any, timeout: float | None) -> T:
        if timeout is _DEFAULT:
            timeout = self._timeout  # checked when the client was made
        else:
            _common.check_timeout(timeout)
        start = time.monotonic()
        # The first attempt goes out with the whole timeout: the common case
        # pays for no deadline arithmetic.
        try:
            return method(request, timeout=timeout, metadata=self._call_metadata)
        except grpc.RpcError as e:
            err = from_rpc_error(e)
        deadline = None if timeout is None else start + timeout
        for attempt in itertools.count(1):
            if not isinstance(err, Unavailable) or attempt > self._retry.max_retries:
                raise err
            wait = self._retry.backoff(attempt)
            if deadline is not None and time.monotonic() + wait >= deadline:
                raise err
            time.sleep(wait)
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                return method(request, timeout=remaining, metadata=self._call_metadata)
            except grpc.RpcError as e:
                err = from_rpc_error(e)
        raise AssertionError("unreachable")


class _Matcher:
    """Pairs a stream's responses with its requests by request id. The
    sending side runs in gRPC's request thread (or task), the receiving side
    in the caller's."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._prefix = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[int, Request | Mapping[str, Any]]] = {}
        self._own_ids: set[str] = set()  # ids the caller chose, for duplicates
        self._sent = 0
        self._next = 0  # next index to yield when ordered
        self._ready: dict[int, StreamResult] = {}
        self.failed: BaseException | None = None

    def _prepare(self, index: int, item: Request | Mapping[str, Any]) -> inference_pb2.StreamRequest:
        own_id = item.request_id if isinstance(item, Request) else None
        if own_id:
            if own_id in self._own_ids:
                raise ValueError(f"request id {own_id!r} given twice in one stream")
            self._own_ids.add(own_id)
        rid = own_id or f"{self._prefix}-{index}"
        msg = _common.stream_request(self._model, item, rid)
        with self._lock:
            self._pending[rid] = (index, item)
            self._sent = index + 1
        return msg

    def send(self, requests: Iterable[Request | Mapping[str, Any]]) -> Iterator[inference_pb2.StreamRequest]:
        """The request messages, for a sync stream."""
        try:
            for index, item in enumerate(requests):
                yield self._prepare(index, item)
        except Exception as e:
            # An exception escaping this generator would only cancel the call
            # with a generic status; keep it for the caller and stop sending.
            self.failed = e

    async def asend(
        self, requests: Iterable[Request | Mapping[str, Any]] | AsyncIterable[Request | Mapping[str, Any]]
    ) -> AsyncIterator[inference_pb2.StreamRequest]:
        """The request messages, for an asyncio stream."""
        try:
            if isinstance(requests, AsyncIterable):
                index = 0
                async for item in requests:
                    yield self._prepare(index, item)
                    index += 1
            else:
                for index, item in enumerate(requests):
                    yield self._prepare(index, item)
        except Exception as e:
            self.failed = e

    def receive(self, resp: inference_pb2.StreamResponse, ordered: bool) -> list[StreamResult]:
        """The results this response makes ready to yield."""
        with self._lock:
            entry = self._pending.pop(resp.request_id, None)
        if entry is None:
            raise CorvidError(f"stream answered request id {resp.request_id!r}, which is not in flight")
        index, item = entry
        if resp.HasField("error"):
            result = StreamResult(index, resp.request_id, item, error=from_status(resp.error))
        else:
            try:
                pred = _common.prediction(resp.response)
            except CorvidError as e:
                result = StreamResult(index, resp.request_id, item, error=e)
            else:
                result = StreamResult(index, resp.request_id, item, prediction=pred)
        if not ordered:
            return [result]
        self._ready[index] = result
        return self.flush()

    def flush(self) -> list[StreamResult]:
        out = []
        while self._next in self._ready:
            out.append(self._ready.pop(self._next))
            self._next += 1
        return out

    def finish(self) -> None:
        """Check, once the server closed the stream, that nothing is missing."""
        with self._lock:
            missing = len(self._pending)
        if missing:
            raise Unavailable(
                f"the stream ended with {missing} of {self._sent} requests unanswered",
                code=grpc.StatusCode.UNAVAILABLE,
            )
