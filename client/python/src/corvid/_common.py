"""What Client and AsyncClient share: settings, results, request building."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import random
from collections.abc import Mapping, Sequence
from typing import Any, Union

import grpc
import numpy as np

from corvid._errors import CorvidError
from corvid._tensor import encode_inputs, from_tensors
from corvid.v1 import inference_pb2

__version__ = "0.1.0"

# The client trusts its server's answers; gRPC's 4 MiB default would refuse
# large output tensors long before the server's own request limit (16 MiB).
DEFAULT_MAX_RECEIVE_BYTES = 64 << 20


@dataclasses.dataclass(frozen=True)
class TLS:
    """TLS or mTLS settings, read from PEM files.

    Attributes:
        ca_file: CA bundle that the server's certificate must chain to; None
            uses the system's roots.
        cert_file: client certificate chain, for mTLS (with key_file).
        key_file: client private key, for mTLS (with cert_file).
        server_name: the name to check the server's certificate against, when
            it differs from the target's host.
    """

    ca_file: str | os.PathLike[str] | None = None
    cert_file: str | os.PathLike[str] | None = None
    key_file: str | os.PathLike[str] | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("TLS: cert_file and key_file go together (mTLS needs both)")

    def credentials(self) -> grpc.ChannelCredentials:
        """The channel credentials these files describe."""

        def read(path: str | os.PathLike[str] | None) -> bytes | None:
            if path is None:
                return None
            with open(path, "rb") as f:
                return f.read()

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )


TLSOption = Union[bool, TLS, grpc.ChannelCredentials, None]


@dataclasses.dataclass(frozen=True)
class Retry:
    """How calls are retried when the server answers UNAVAILABLE (or cannot
    be reached). No other code is retried, and streams are never retried.

    The n-th retry waits min(max_backoff, initial_backoff * multiplier**(n-1)),
    scaled by a random factor in [1 - jitter, 1]; retries stop early when
    the call's deadline would pass during the wait.

    Attributes:
        max_retries: retries after the first attempt; 0 disables retrying.
        initial_backoff: seconds before the first retry.
        max_backoff: the longest wait between attempts, in seconds.
        multiplier: growth of the wait from one retry to the next.
        jitter: share of the wait that is randomised (0..1).
    """

    max_retries: int = 3
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"Retry.max_retries is {self.max_retries}, want >= 0")
        if self.initial_backoff < 0 or self.max_backoff < 0:
            raise ValueError("Retry backoffs must be >= 0")
        if self.multiplier < 1:
            raise ValueError(f"Retry.multiplier is {self.multiplier}, want >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Retry.jitter is {self.jitter}, want 0..1")

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        wait = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return wait * (1 - self.jitter * random.random())


RetryOption = Union[int, Retry, None]


def retry_policy(retries: RetryOption) -> Retry:
    """A Retry from the `retries=` argument: a Retry, a number of retries
    with the default backoff, or None/0 for none."""
    if retries is None:
        return Retry(max_retries=0)
    if isinstance(retries, bool) or not isinstance(retries, (int, Retry)):
        raise TypeError(f"retries must be an int or a corvid.Retry, got {retries!r}")
    if isinstance(retries, int):
        return Retry(max_retries=retries)
    return retries


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The result of one prediction.

    Attributes:
        outputs: output tensors by name, with the model's dtypes and shapes.
        model_version: the version that served the request.
        request_id: the request's id (the caller's, or the server's own).
        model: the model's name.
    """

    outputs: dict[str, np.ndarray]
    model_version: int
    request_id: str
    model: str = ""

    def __getitem__(self, name: str) -> np.ndarray:
        """The output `name`: prediction["label"] is prediction.outputs["label"]."""
        return self.outputs[name]


@dataclasses.dataclass(frozen=True)
class Request:
    """One request of a stream. A plain mapping of input name to array may
    be given instead where only the inputs matter.

    Attributes:
        inputs: input arrays by input name.
        version: an explicit model version; exclusive with label.
        label: a version label such as "stable"; exclusive with version.
        outputs: the outputs to return; None returns all of them.
        routing_key: key for sticky routing when traffic is split.
        request_id: the id to match the result by, unique in the stream;
            None makes one.
    """

    inputs: Mapping[str, Any]
    version: int | None = None
    label: str | None = None
    outputs: Sequence[str] | None = None
    routing_key: str | None = None
    request_id: str | None = None


@dataclasses.dataclass(frozen=True)
class StreamResult:
    """The answer to one request of a stream: a prediction or an error.

    A failed request fails alone; the stream goes on.

    Attributes:
        index: the request's position in the requests given to stream().
        request_id: the request's id, as sent.
        request: the request as given (a Request or a mapping of inputs).
        prediction: the prediction, when the request succeeded.
        error: why it failed, when it did (the error Predict would raise).
    """

    index: int
    request_id: str
    request: Request | Mapping[str, Any]
    prediction: Prediction | None = None
    error: CorvidError | None = None

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.error is None

    def result(self) -> Prediction:
        """The prediction, or raise the error."""
        if self.error is not None:
            raise self.error
        assert self.prediction is not None
        return self.prediction


def predict_request(
    model: str,
    inputs: Mapping[str, Any],
    *,
    version: int | None = None,
    label: str | None = None,
    outputs: Sequence[str] | None = None,
    routing_key: str | None = None,
    request_id: str | None = None,
) -> inference_pb2.PredictRequest:
    """Build a PredictRequest, checking what the client can check."""
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty string, got {model!r}")
    if version is not None and label is not None:
        raise ValueError("pass version or label, not both")
    if isinstance(outputs, str):
        raise TypeError("outputs must be a sequence of output names, not one string")
    # One constructor call; unset optional fields are left out of it, which
    # is cheaper than passing their defaults.
    req = inference_pb2.PredictRequest(model=model, inputs=encode_inputs(inputs))
    if outputs:
        req.output_filter.extend(outputs)
    if request_id:
        req.request_id = request_id
    if routing_key:
        req.routing_key = routing_key
    if version is not None:
        req.version = int(version)
    elif label is not None:
        req.version_label = label
    return req


def stream_request(model: str, item: Request | Mapping[str, Any], request_id: str) -> inference_pb2.StreamRequest:
    """A StreamRequest for one item of stream()'s requests."""
    if isinstance(item, Request):
        req = predict_request(
            model, item.inputs, version=item.version, label=item.label,
            outputs=item.outputs, routing_key=item.routing_key, request_id=request_id,
        )
    else:
        req = predict_request(model, item, request_id=request_id)
    return inference_pb2.StreamRequest(request=req)


def prediction(resp: inference_pb2.PredictResponse) -> Prediction:
    """Decode a PredictResponse."""
    return Prediction(
        outputs=from_tensors(resp.outputs),
        model_version=resp.version,
        request_id=resp.request_id,
        model=resp.model,
    )


def channel_options(target: str, options: Sequence[tuple[str, Any]] | None, tls: TLSOption) -> list[tuple[str, Any]]:
    """Channel arguments: this package's defaults, then the caller's."""
    opts: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", DEFAULT_MAX_RECEIVE_BYTES),
        ("grpc.primary_user_agent", f"corvid-python/{__version__}"),
        # The client retries UNAVAILABLE itself (Retry); gRPC's own retry
        # support would only add work to every call's path.
        ("grpc.enable_retries", 0),
    ]
    if isinstance(tls, TLS) and tls.server_name:
        opts.append(("grpc.ssl_target_name_override", tls.server_name))
    opts.extend(options or ())
    return opts


def channel_credentials(tls: TLSOption) -> grpc.ChannelCredentials | None:
    """None for plaintext, else the credentials `tls` describes."""
    if tls is None or tls is False:
        return None
    if tls is True:
        return grpc.ssl_channel_credentials()
    if isinstance(tls, TLS):
        return tls.credentials()
    if isinstance(tls, grpc.ChannelCredentials):
        return tls
    raise TypeError(f"tls must be None, True, a corvid.TLS or grpc.ChannelCredentials, got {type(tls).__name__}")


def auth_metadata(target: str, token: str | None, secure: bool) -> tuple[tuple[str, str], ...]:
    """The per-call metadata carrying the bearer token, if any.

    A token is sent in plaintext only to a loopback target, where it does
    not leave the machine; anywhere else it needs tls=.
    """
    if token is None:
        return ()
    if not isinstance(token, str) or not token:
        raise ValueError("token must be a non-empty string")
    if not secure and not is_loopback(target):
        raise ValueError(
            f"refusing to send a token in plaintext to {target!r}: pass tls= "
            "(plaintext tokens are sent only to loopback targets)"
        )
    return (("authorization", f"Bearer {token}"),)


def is_loopback(target: str) -> bool:
    """Whether a gRPC target can only reach this machine. Unknown forms count
    as remote."""
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    if "://" in target:
        scheme, rest = target.split("://", 1)
        if scheme not in ("dns", "passthrough") or "/" not in rest:
            return False
        target = rest.split("/", 1)[1]  # after the (possibly empty) authority
    host = target
    if target.startswith("["):
        host = target[1:].split("]", 1)[0]
    elif target.count(":") == 1:
        host = target.split(":", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_timeout(timeout: float | None, what: str = "timeout") -> float | None:
    if timeout is not None and not timeout > 0:
        raise ValueError(f"{what} is {timeout}, want > 0 seconds or None")
    return timeout
