"""Tensor codecs, without a server: exact dtypes and shapes, raw bytes."""

import numpy as np
import pytest

import corvid
from corvid.v1 import tensor_pb2

CASES = [
    (np.float32, tensor_pb2.DATA_TYPE_FP32, [-1.5, 0.0, np.inf, np.nan, 3.25e38, -0.0]),
    (np.float64, tensor_pb2.DATA_TYPE_FP64, [-1.5, 0.0, -np.inf, np.nan, 1e308, 5e-324]),
    (np.int8, tensor_pb2.DATA_TYPE_INT8, [-128, -1, 0, 1, 127, 5]),
    (np.uint8, tensor_pb2.DATA_TYPE_UINT8, [0, 1, 127, 128, 255, 9]),
    (np.int32, tensor_pb2.DATA_TYPE_INT32, [-(2**31), -1, 0, 1, 2**31 - 1, 7]),
    (np.int64, tensor_pb2.DATA_TYPE_INT64, [-(2**63), -1, 0, 1, 2**63 - 1, 7]),
    (np.bool_, tensor_pb2.DATA_TYPE_BOOL, [True, False, True, True, False, False]),
]


@pytest.mark.parametrize("np_dtype,code,values", CASES, ids=[c[0].__name__ for c in CASES])
def test_round_trip_is_exact(np_dtype, code, values):
    array = np.array(values, dtype=np_dtype).reshape(2, 3)
    tensor = corvid.to_tensor(array)
    assert tensor.dtype == code
    assert list(tensor.shape) == [2, 3]
    assert tensor.raw == array.astype(np.dtype(np_dtype).newbyteorder("<")).tobytes()
    assert not any(len(getattr(tensor, f)) for f in ("fp32_values", "fp64_values", "int32_values", "int64_values", "bool_values"))
    got = corvid.from_tensor(tensor)
    assert got.dtype == np.dtype(np_dtype)
    assert got.shape == (2, 3)
    assert got.tobytes() == array.tobytes()  # bitwise: NaN and -0.0 included
    got[0, 0] = got[0, 1]  # an ordinary writable array


def test_layouts_and_byte_orders():
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    for array in (base.T, base[:, ::2], base[::-1], base.astype(">f4"), np.asfortranarray(base)):
        tensor = corvid.to_tensor(array)
        assert list(tensor.shape) == list(array.shape)
        got = corvid.from_tensor(tensor)
        np.testing.assert_array_equal(got, array)
        assert got.dtype == np.float32


def test_scalar_and_empty():
    scalar = corvid.from_tensor(corvid.to_tensor(np.int64(42)))
    assert scalar.shape == () and scalar == 42
    empty = corvid.from_tensor(corvid.to_tensor(np.zeros((0, 3), np.float32)))
    assert empty.shape == (0, 3) and empty.dtype == np.float32


@pytest.mark.parametrize("value", [np.zeros(3, np.float16), np.zeros(3, np.int16), np.zeros(3, np.uint32), np.array(["a"]), np.zeros(2, complex)])
def test_unsupported_dtypes_are_refused(value):
    with pytest.raises(TypeError, match="unsupported dtype"):
        corvid.to_tensor(value)


def test_typed_fields_decode():
    t = tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_INT8, shape=[3], int32_values=[-1, 0, 127])
    got = corvid.from_tensor(t)
    assert got.dtype == np.int8 and got.tolist() == [-1, 0, 127]


@pytest.mark.parametrize(
    "tensor,match",
    [
        (tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_FP32, shape=[2], raw=b"\0" * 4), "raw bytes"),
        (tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_FP32, shape=[2], fp32_values=[1.0]), "elements"),
        (tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_FP32, shape=[1], int64_values=[1]), "int64_values"),
        (tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_UNSPECIFIED, shape=[1]), "unknown dtype"),
    ],
)
def test_malformed_tensors_are_errors(tensor, match):
    with pytest.raises(corvid.CorvidError, match=match):
        corvid.from_tensor(tensor)
