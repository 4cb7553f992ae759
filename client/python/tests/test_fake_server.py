"""What a real server cannot (yet) be made to do, against an in-process fake:
the bearer token on the wire, PERMISSION_DENIED and UNAUTHENTICATED, how many
attempts each code gets, and TLS/mTLS with certificates from `corvid certs`.

Pending: tls=/token= against `corvid serve` secured with mTLS and JWT, once
the server's TLS and JWT wiring lands."""

import asyncio
import subprocess

import grpc
import numpy as np
import pytest

import corvid
from conftest import corvid_binary
from fakes import FakeServer

ROW = {"x": np.arange(6, dtype=np.int64).reshape(2, 3)}


@pytest.fixture
def fake():
    server = FakeServer()
    yield server
    server.stop()


def test_token_goes_as_bearer_metadata_on_every_call(fake):
    with corvid.Client(fake.target, token="tok-123", timeout=5) as c:
        got = c.predict("m", ROW)
        np.testing.assert_array_equal(got.outputs["x"], ROW["x"])
        assert got.model_version == 7
        assert c.health()
        assert [r.ok for r in c.stream("m", [ROW] * 3)] == [True] * 3
    for method in ("/Predict", "/Check", "/Stream"):
        (md,) = fake.recorder.metadata(method)
        assert md.get("authorization") == "Bearer tok-123", (method, md)


def test_token_async(fake):
    async def main():
        async with corvid.AsyncClient(fake.target, token="tok-async") as c:
            await c.predict("m", ROW)
            [r async for r in c.stream("m", [ROW])]

    asyncio.run(main())
    assert [md["authorization"] for md in fake.recorder.metadata("/Predict") + fake.recorder.metadata("/Stream")] == [
        "Bearer tok-async"
    ] * 2


def test_no_token_sends_no_authorization(fake):
    with corvid.Client(fake.target) as c:
        c.predict("m", ROW)
    (md,) = fake.recorder.metadata("/Predict")
    assert "authorization" not in md


@pytest.mark.parametrize(
    "code,cls",
    [
        (grpc.StatusCode.PERMISSION_DENIED, corvid.PermissionDenied),
        (grpc.StatusCode.UNAUTHENTICATED, corvid.Unauthenticated),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, corvid.ResourceExhausted),
        (grpc.StatusCode.NOT_FOUND, corvid.NotFound),
        (grpc.StatusCode.INTERNAL, corvid.CorvidError),
    ],
)
def test_codes_map_to_classes_with_error_info(fake, code, cls):
    fake.inference.fail = (code, f"no: {code.name}", "SOME_REASON")
    for use_async in (False, True):
        with pytest.raises(cls) as e:
            if use_async:
                async def main():
                    async with corvid.AsyncClient(fake.target, retries=0) as c:
                        await c.predict("m", ROW)
                asyncio.run(main())
            else:
                with corvid.Client(fake.target, retries=0) as c:
                    c.predict("m", ROW)
        err = e.value
        assert type(err) is cls
        assert err.code == code and err.message == f"no: {code.name}"
        assert err.reason == "SOME_REASON" and err.metadata == {"model": "m"}


def test_only_unavailable_is_retried(fake):
    retry = corvid.Retry(max_retries=3, initial_backoff=0.01, jitter=0)
    fake.inference.fail = (grpc.StatusCode.UNAVAILABLE, "queue full", "QUEUE_FULL")
    with corvid.Client(fake.target, retries=retry) as c:
        with pytest.raises(corvid.Unavailable) as e:
            c.predict("m", ROW)
        assert e.value.reason == "QUEUE_FULL"
        assert fake.inference.predict_calls == 4
        fake.inference.predict_calls = 0
        fake.inference.fail = (grpc.StatusCode.INVALID_ARGUMENT, "bad", None)
        with pytest.raises(corvid.InvalidArgument) as e:
            c.predict("m", ROW)
        assert e.value.reason is None
        assert fake.inference.predict_calls == 1


def test_retries_stop_at_the_deadline(fake):
    fake.inference.fail = (grpc.StatusCode.UNAVAILABLE, "down", None)
    with corvid.Client(fake.target, timeout=0.3, retries=corvid.Retry(max_retries=100, initial_backoff=0.05, max_backoff=0.05, jitter=0)) as c:
        with pytest.raises(corvid.Unavailable):
            c.predict("m", ROW)
    assert 3 <= fake.inference.predict_calls <= 7


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    out = tmp_path_factory.mktemp("certs")
    subprocess.run([corvid_binary(), "certs", "--out", str(out), "--client", "py"], check=True, capture_output=True)
    return out


def _tls_fake(certs, require_client_auth):
    creds = grpc.ssl_server_credentials(
        [((certs / "server-key.pem").read_bytes(), (certs / "server.pem").read_bytes())],
        root_certificates=(certs / "ca.pem").read_bytes(),
        require_client_auth=require_client_auth,
    )
    return FakeServer(credentials=creds)


def test_tls_with_ca_file_and_token(certs):
    fake = _tls_fake(certs, require_client_auth=False)
    try:
        target = f"localhost:{fake.port}"
        with corvid.Client(target, tls=corvid.TLS(ca_file=certs / "ca.pem"), token="tls-tok", timeout=5) as c:
            assert c.predict("m", ROW).model_version == 7
        assert fake.recorder.metadata("/Predict")[0]["authorization"] == "Bearer tls-tok"
        # Without the CA the server's certificate is not trusted.
        with corvid.Client(target, tls=True, timeout=5, retries=0) as c:
            with pytest.raises(corvid.Unavailable):
                c.predict("m", ROW)
    finally:
        fake.stop()


def test_mtls_with_client_certificate(certs):
    fake = _tls_fake(certs, require_client_auth=True)
    try:
        target = f"localhost:{fake.port}"
        mtls = corvid.TLS(ca_file=certs / "ca.pem", cert_file=certs / "client-py.pem", key_file=certs / "client-py-key.pem")
        with corvid.Client(target, tls=mtls, timeout=5) as c:
            assert c.health()

        async def main():
            async with corvid.AsyncClient(target, tls=mtls.credentials(), timeout=5) as c:
                return await c.predict("m", ROW)

        assert asyncio.run(main()).model_version == 7
        with corvid.Client(target, tls=corvid.TLS(ca_file=certs / "ca.pem"), timeout=5, retries=0) as c:
            with pytest.raises(corvid.CorvidError):  # no client certificate: the handshake fails
                c.health()
    finally:
        fake.stop()


def test_tls_settings_are_checked():
    with pytest.raises(ValueError, match="together"):
        corvid.TLS(cert_file="client.pem")
    # A secure channel may carry a token to any host.
    corvid.Client("corvid.example.com:8500", tls=True, token="t").close()
