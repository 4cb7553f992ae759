"""AsyncClient: the asyncio API, over a grpc.aio.Channel."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from corvid import _common
from corvid._client import _DEFAULT, _Matcher
from corvid._common import Prediction, Request, RetryOption, StreamResult, TLSOption
from corvid._errors import Unavailable, from_rpc_error
from corvid.v1 import inference_pb2, inference_pb2_grpc, model_pb2


class AsyncClient:
    """An asyncio client for one Corvid server, built on grpc.aio.

    The arguments and methods are Client's, as coroutines (and stream() as
    an async iterator). Create it inside the event loop that uses it:

        async with corvid.AsyncClient("localhost:8500", timeout=5) as client:
            prediction = await client.predict("digits", {"input": pixels})
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
            self._channel = grpc.aio.insecure_channel(target, options=opts)
        else:
            self._channel = grpc.aio.secure_channel(target, creds, options=opts)
        self._inference = inference_pb2_grpc.InferenceServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def predict(
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
        """Run one prediction; see Client.predict."""
        req = _common.predict_request(
            model, inputs, version=version, label=label, outputs=outputs,
            routing_key=routing_key, request_id=request_id,
        )
        return _common.prediction(await self._call(self._inference.Predict, req, timeout))

    async def model_status(self, model: str, *, timeout: float | None = _DEFAULT) -> model_pb2.ModelInfo:
        """The model and its versions; see Client.model_status."""
        req = inference_pb2.ModelStatusRequest(model=model)
        resp: inference_pb2.ModelStatusResponse = await self._call(self._inference.ModelStatus, req, timeout)
        return resp.model

    async def list_models(self, *, timeout: float | None = _DEFAULT) -> list[model_pb2.ModelInfo]:
        """Every model the server knows; see Client.list_models."""
        resp = await self._call(self._inference.ListModels, inference_pb2.ListModelsRequest(), timeout)
        return list(resp.models)

    async def health(self, service: str = "", *, timeout: float | None = _DEFAULT) -> bool:
        """Whether the server reports SERVING; see Client.health."""
        req = health_pb2.HealthCheckRequest(service=service)
        resp = await self._call(self._health.Check, req, timeout)
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)

    async def stream(
        self,
        model: str,
        requests: Iterable[Request | Mapping[str, Any]] | AsyncIterable[Request | Mapping[str, Any]],
        *,
        ordered: bool = True,
        timeout: float | None = None,
    ) -> AsyncIterator[StreamResult]:
        """Run many requests over one stream; see Client.stream. `requests`
        may be an iterable or an async iterable.

            async for result in client.stream("digits", rows):
                print(result.index, result.result().outputs["label"])
        """
        _common.check_timeout(timeout)
        matcher = _Matcher(model)
        call = self._inference.Stream(matcher.asend(requests), timeout=timeout, metadata=self._call_metadata)
        try:
            async for resp in call:
                if matcher.failed is not None:
                    break
                for result in matcher.receive(resp, ordered):
                    yield result
        except grpc.aio.AioRpcError as e:
            if matcher.failed is None:
                raise from_rpc_error(e) from None
        finally:
            call.cancel()
        if matcher.failed is not None:
            raise matcher.failed
        matcher.finish()
        for result in matcher.flush():
            yield result

    async def _call(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        if timeout is _DEFAULT:
            timeout = self._timeout  # checked when the client was made
        else:
            _common.check_timeout(timeout)
        start = time.monotonic()
        # The first attempt goes out with the whole timeout: the common case
        # pays for no deadline arithmetic.
        try:
            return await method(request, timeout=timeout, metadata=self._call_metadata)
        except grpc.aio.AioRpcError as e:
            err = from_rpc_error(e)
        deadline = None if timeout is None else start + timeout
        for attempt in itertools.count(1):
            if not isinstance(err, Unavailable) or attempt > self._retry.max_retries:
                raise err
            wait = self._retry.backoff(attempt)
            if deadline is not None and time.monotonic() + wait >= deadline:
                raise err
            await asyncio.sleep(wait)
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                return await method(request, timeout=remaining, metadata=self._call_metadata)
            except grpc.aio.AioRpcError as e:
                err = from_rpc_error(e)
        raise AssertionError("unreachable")
