"""The SDK against a secured `corvid serve`: mTLS with certificates from
`corvid certs`, and bearer JWTs checked against a JWKS, under a policy.

alice (a client certificate, spiffe://corvid.local/alice) may predict with
and see digits; the token subject "reader" may only see it. The server asks
for client certificates without requiring them, so token callers connect
with TLS alone.
"""

import json
import pathlib
import subprocess
import time

import jwt
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import corvid
from conftest import corvid_binary, start_server

ROWS = np.zeros((2, 64), dtype=np.float32)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    root = tmp_path_factory.mktemp("secured")
    certs = root / "certs"
    subprocess.run([corvid_binary(), "certs", "--out", str(certs), "--client", "alice"], check=True, capture_output=True)
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", alg="ES256", use="sig")
    (root / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    (root / "policy.yaml").write_text(
        "rules:\n"
        '  - {identity: "spiffe://corvid.local/alice", source: mtls, models: [digits], actions: [predict, status]}\n'
        "  - {identity: reader, source: jwt, models: [digits], actions: [status]}\n"
    )
    (root / "corvid.yaml").write_text(
        f"tls: {{cert_file: {certs}/server.pem, key_file: {certs}/server-key.pem, "
        f"client_ca_file: {certs}/ca.pem, client_auth: request}}\n"
        f"auth: {{policy_file: {root}/policy.yaml, jwt: {{keys_file: {root}/jwks.json, issuer: corvid-test, audience: corvid}}}}\n"
    )

    def token(sub: str) -> str:
        now = int(time.time())
        claims = {"sub": sub, "iss": "corvid-test", "aud": "corvid", "iat": now, "exp": now + 600}
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})

    proc = start_server(root / "log", "--config", str(root / "corvid.yaml"), wait=False)
    alice = corvid.TLS(ca_file=certs / "ca.pem", cert_file=certs / "client-alice.pem", key_file=certs / "client-alice-key.pem")
    deadline = time.monotonic() + 30
    with corvid.Client(proc.server.target, tls=alice, retries=0, timeout=2) as client:
        while True:
            try:
                if client.list_models():
                    break
            except corvid.CorvidError:
                pass
            if time.monotonic() > deadline:
                proc.stop()
                pytest.fail(f"secured server not ready; output:\n{proc.log()}")
            time.sleep(0.05)
    try:
        yield proc.server.target, certs, alice, token
    finally:
        proc.stop()


def test_mtls(secured):
    target, _, alice, _ = secured
    with corvid.Client(target, tls=alice) as client:
        prediction = client.predict("digits", {"input": ROWS})
        assert prediction.outputs["label"].shape == (2,)


def test_token(secured):
    target, certs, _, token = secured
    with corvid.Client(target, tls=corvid.TLS(ca_file=certs / "ca.pem"), token=token("reader")) as client:
        assert client.model_status("digits")  # status is allowed
        with pytest.raises(corvid.PermissionDenied) as denied:
            client.predict("digits", {"input": ROWS})
        assert "digits" in denied.value.message


def test_no_credentials(secured):
    target, certs, _, _ = secured
    with corvid.Client(target, tls=corvid.TLS(ca_file=certs / "ca.pem"), retries=0) as client:
        with pytest.raises(corvid.Unauthenticated):
            client.predict("digits", {"input": ROWS})


def test_bad_token(secured):
    target, certs, _, token = secured
    forged = token("alice")[:-4] + "AAAA"
    with corvid.Client(target, tls=corvid.TLS(ca_file=certs / "ca.pem"), token=forged, retries=0) as client:
        with pytest.raises(corvid.Unauthenticated):
            client.predict("digits", {"input": ROWS})


def test_wrong_ca(secured, tmp_path):
    target, _, _, _ = secured
    other = tmp_path / "other"
    subprocess.run([corvid_binary(), "certs", "--out", str(other)], check=True, capture_output=True)
    with corvid.Client(target, tls=corvid.TLS(ca_file=other / "ca.pem"), retries=0, timeout=5) as client:
        with pytest.raises(corvid.Unavailable):
            client.predict("digits", {"input": ROWS})
