"""Every dtype through a real server and back, bit for bit (identity models)."""

import numpy as np
import pytest

import corvid
from conftest import IDENTITY_DTYPES


def _values(dtype: str) -> np.ndarray:
    if dtype == "bool":
        return np.array([[True, False, True], [False, False, True]])
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        return np.array([[info.min, -1 if info.min < 0 else 1, 0], [1, info.max - 1, info.max]], dtype=dtype)
    info = np.finfo(dtype)
    return np.array([[-0.0, np.nan, np.inf], [-np.inf, info.max, info.smallest_subnormal]], dtype=dtype)


@pytest.fixture(scope="module")
def repo_client(repository_server):
    with corvid.Client(repository_server.target, timeout=10) as c:
        yield c


@pytest.mark.parametrize("dtype", IDENTITY_DTYPES)
def test_round_trip(repo_client, dtype):
    x = _values(dtype)
    got = repo_client.predict(f"identity-{dtype}", {"x": x}).outputs["y"]
    assert got.dtype == np.dtype(dtype) and got.shape == x.shape
    assert got.tobytes() == x.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "int64", "uint8"])
def test_round_trip_of_views_and_big_endian(repo_client, dtype):
    base = (np.arange(60) % 97).astype(dtype).reshape(3, 20)
    for x in (base[:, ::7], base[:, :3][::-1], np.asfortranarray(base[:, :3]), base[:, :3].astype(np.dtype(dtype).newbyteorder(">"))):
        got = repo_client.predict(f"identity-{dtype}", {"x": x}).outputs["y"]
        np.testing.assert_array_equal(got, x)
        assert got.dtype == np.dtype(dtype)


def test_batch_of_64_and_a_dtype_the_model_does_not_take(repo_client):
    x = np.arange(64 * 3, dtype=np.int32).reshape(64, 3)
    np.testing.assert_array_equal(repo_client.predict("identity-int32", {"x": x}).outputs["y"], x)
    with pytest.raises(corvid.InvalidArgument, match="dtype"):
        repo_client.predict("identity-int32", {"x": x.astype(np.int64)})
