"""Corvid's Python client: numpy in, numpy out, over gRPC.

    import corvid
    import numpy as np

    with corvid.Client("localhost:8500", timeout=5) as client:
        prediction = client.predict("digits", {"input": np.zeros((1, 64), np.float32)})
        print(prediction.outputs["label"], prediction.model_version)

Client is blocking and thread-safe; AsyncClient is the same API on asyncio
(grpc.aio). Errors from the server are CorvidError subclasses named after
their gRPC status code (NotFound, InvalidArgument, Unavailable, ...), carrying
the server's message and its google.rpc.ErrorInfo reason. Calls failing with
UNAVAILABLE are retried with backoff (see Retry).

The generated messages and stubs ship as corvid.v1 (corvid.v1.inference_pb2,
...), for anything this API does not cover.
"""

from corvid._aio import AsyncClient
from corvid._client import Client
from corvid._common import TLS, Prediction, Request, Retry, StreamResult, __version__
from corvid._errors import (
    CorvidError,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from corvid._tensor import SUPPORTED_DTYPES, from_tensor, to_tensor

__all__ = [
    "AsyncClient",
    "Client",
    "CorvidError",
    "DeadlineExceeded",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "Prediction",
    "Request",
    "ResourceExhausted",
    "Retry",
    "SUPPORTED_DTYPES",
    "StreamResult",
    "TLS",
    "Unauthenticated",
    "Unavailable",
    "__version__",
    "from_tensor",
    "to_tensor",
]
