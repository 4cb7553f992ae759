"""numpy arrays <-> corvid.v1.Tensor, as raw little-endian bytes.

Encoding is one `tobytes()` and decoding one `np.frombuffer`: no Python loop
over elements. Typed fields (what JSON callers send) are decoded too, since
the server answers in them when a request used them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from corvid._errors import CorvidError
from corvid.v1 import tensor_pb2

# corvid.v1.DataType <-> little-endian numpy dtype, and the typed field that
# carries the dtype (tensor.proto documents both).
_BY_DTYPE: dict[tensor_pb2.DataType, tuple[np.dtype, str]] = {
    tensor_pb2.DATA_TYPE_FP32: (np.dtype("<f4"), "fp32_values"),
    tensor_pb2.DATA_TYPE_FP64: (np.dtype("<f8"), "fp64_values"),
    tensor_pb2.DATA_TYPE_INT8: (np.dtype("i1"), "int32_values"),
    tensor_pb2.DATA_TYPE_UINT8: (np.dtype("u1"), "int32_values"),
    tensor_pb2.DATA_TYPE_INT32: (np.dtype("<i4"), "int32_values"),
    tensor_pb2.DATA_TYPE_INT64: (np.dtype("<i8"), "int64_values"),
    tensor_pb2.DATA_TYPE_BOOL: (np.dtype("?"), "bool_values"),
}
# numpy (kind, itemsize) -> corvid.v1.DataType; byte order is normalised on
# encoding, so big-endian arrays are accepted.
_BY_NUMPY: dict[tuple[str, int], tensor_pb2.DataType] = {
    (dt.kind, dt.itemsize): code for code, (dt, _) in _BY_DTYPE.items()
}
# What decoded arrays are: the same dtypes in this machine's byte order.
_NATIVE: dict[tensor_pb2.DataType, np.dtype] = {code: dt.newbyteorder("=") for code, (dt, _) in _BY_DTYPE.items()}
_TYPED_FIELDS = ("fp32_values", "fp64_values", "int32_values", "int64_values", "bool_values")

SUPPORTED_DTYPES = tuple(dt for dt, _ in _BY_DTYPE.values())
"""The numpy dtypes Corvid tensors carry: float32, float64, int8, uint8,
int32, int64 and bool."""


def to_tensor(array: object) -> tensor_pb2.Tensor:
    """Encode an array (anything `np.asarray` accepts) as a raw Tensor.

    The dtype is kept exactly; an unsupported dtype (float16, int16, object,
    ...) raises TypeError rather than being converted silently.
    """
    tensor = tensor_pb2.Tensor()
    fill_tensor(tensor, array)
    return tensor


def _encode(array: object) -> tuple[tensor_pb2.DataType, tuple[int, ...], bytes]:
    """An array's wire dtype, shape and raw little-endian bytes."""
    a = np.asarray(array)
    dt = a.dtype
    code = _BY_NUMPY.get((dt.kind, dt.itemsize))
    if code is None:
        names = ", ".join(str(d) for d in SUPPORTED_DTYPES)
        raise TypeError(f"unsupported dtype {dt}: want one of {names}")
    wire = _BY_DTYPE[code][0]
    if dt != wire:  # big-endian input: swap to the wire's byte order
        a = a.astype(wire)
    # tobytes() writes C (row-major) order whatever the array's layout.
    return code, a.shape, a.tobytes(order="C")


def fill_tensor(tensor: tensor_pb2.Tensor, array: object) -> None:
    """Encode `array` into an empty Tensor, such as a request's map entry
    (filling it in place saves building a Tensor and copying it)."""
    tensor.dtype, shape, tensor.raw = _encode(array)
    tensor.shape.extend(shape)


def encode_inputs(inputs: Mapping[str, object]) -> dict[str, tensor_pb2.Tensor]:
    """Encode every input of a request, for PredictRequest(inputs=...): one
    constructor call per Tensor is cheaper than filling map entries field by
    field."""
    if not isinstance(inputs, Mapping):
        raise TypeError(f"inputs must be a mapping of input name to array, got {type(inputs).__name__}")
    out = {}
    for name, value in inputs.items():
        code, shape, raw = _encode(value)
        out[name] = tensor_pb2.Tensor(dtype=code, shape=shape, raw=raw)
    return out


def from_tensor(tensor: tensor_pb2.Tensor, name: str = "tensor") -> np.ndarray:
    """Decode a Tensor to a writable numpy array of its dtype and shape.

    Raises CorvidError if the tensor is malformed (unknown dtype, both raw and
    typed elements, or an element count that does not match the shape).
    """
    entry = _BY_DTYPE.get(tensor.dtype)
    if entry is None:
        raise CorvidError(f"{name}: unknown dtype {tensor.dtype} from the server")
    dtype, field = entry
    shape = tuple(tensor.shape)
    count = math.prod(shape)
    raw = tensor.raw
    if raw:
        if len(raw) != count * dtype.itemsize:
            raise CorvidError(
                f"{name}: {len(raw)} raw bytes for shape {list(shape)} of {dtype}, "
                f"want {count * dtype.itemsize}"
            )
        # A copy, so callers get an ordinary writable array in native byte
        # order, not a read-only view of the message's bytes. Where the wire
        # order is native (little-endian machines) that is one copy into a
        # bytearray, with no astype pass.
        native = _NATIVE[tensor.dtype]
        if native == dtype:
            return np.frombuffer(bytearray(raw), dtype=native).reshape(shape)
        return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(native)
    typed = [f for f in _TYPED_FIELDS if f != field and len(getattr(tensor, f))]
    if typed:
        raise CorvidError(f"{name}: {typed[0]} set on a {dtype} tensor, want {field}")
    values = getattr(tensor, field)
    if len(values) != count:
        raise CorvidError(f"{name}: {len(values)} elements for shape {list(shape)}, want {count}")
    return np.array(values, dtype=dtype).reshape(shape)


def from_tensors(tensors: Mapping[str, tensor_pb2.Tensor]) -> dict[str, np.ndarray]:
    """Decode every output of a response."""
    return {name: from_tensor(t, name) for name, t in tensors.items()}
