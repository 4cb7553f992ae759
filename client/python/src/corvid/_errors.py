"""Typed errors: one class per gRPC status code a caller may want to handle."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2


class CorvidError(Exception):
    """An error from a Corvid server, or a malformed answer from one.

    Attributes:
        message: the server's message, which says what was expected and what
            was received.
        code: the gRPC status code, or None for an error found by the client.
        reason: the google.rpc.ErrorInfo reason the server attached (for
            example "MODEL_NOT_FOUND" or "INVALID_INPUT"), or None.
        metadata: the ErrorInfo metadata, empty when there is none.
    """

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})

    def __str__(self) -> str:
        head = self.code.name if self.code is not None else "CorvidError"
        tail = f" [{self.reason}]" if self.reason else ""
        return f"{head}: {self.message}{tail}"


class NotFound(CorvidError):
    """The model (or version, or label) does not exist (NOT_FOUND)."""


class InvalidArgument(CorvidError):
    """The request is malformed: a missing input, a wrong shape or dtype
    (INVALID_ARGUMENT)."""


class Unavailable(CorvidError):
    """The server or the model cannot serve now: unreachable, shutting down,
    loading, or its queue is full (UNAVAILABLE). Retried by the client."""


class PermissionDenied(CorvidError):
    """The caller is known but not allowed to do this (PERMISSION_DENIED)."""


class Unauthenticated(CorvidError):
    """No valid credentials came with the call (UNAUTHENTICATED)."""


class DeadlineExceeded(CorvidError):
    """The call's deadline passed before it finished (DEADLINE_EXCEEDED)."""


class ResourceExhausted(CorvidError):
    """A limit was hit, such as the largest message the server (or this
    client) accepts (RESOURCE_EXHAUSTED)."""


_CLASSES: dict[grpc.StatusCode, type[CorvidError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
}
_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
_DETAILS_KEY = "grpc-status-details-bin"


def error_for(
    code: grpc.StatusCode | None,
    message: str,
    details: Iterable[Any] = (),
) -> CorvidError:
    """The CorvidError subclass for `code`, with the ErrorInfo in `details`
    (google.protobuf.Any messages) if there is one."""
    reason, metadata = None, {}
    for any_msg in details:
        if any_msg.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_msg.Unpack(info)
            reason, metadata = info.reason or None, dict(info.metadata)
            break
    cls = _CLASSES.get(code, CorvidError) if code is not None else CorvidError
    return cls(message, code=code, reason=reason, metadata=metadata)


def from_status(status: status_pb2.Status) -> CorvidError:
    """The error for a google.rpc.Status (a failed item of a Stream)."""
    code = _CODES_BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)
    return error_for(code, status.message, status.details)


def from_rpc_error(error: grpc.RpcError) -> CorvidError:
    """The error for a failed call, sync (grpc.RpcError) or asyncio
    (grpc.aio.AioRpcError)."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    details: list[Any] = []
    trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            message = status.message or message
            details = list(status.details)
    return error_for(code, message or "", details)
