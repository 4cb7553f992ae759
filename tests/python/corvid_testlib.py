"""Helpers shared by the reference tests: tensor codecs and loopback HTTP.

Kept out of conftest.py so tests import them like any module (pytest puts
this directory on sys.path because it has no __init__.py).
"""

import base64
import json
import pathlib
import urllib.error
import urllib.request

import numpy as np
import onnx
from corvid.v1 import tensor_pb2

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL_PATH = REPO_ROOT / "models" / "digits" / "1" / "model.onnx"
HELDOUT_PATH = REPO_ROOT / "testdata" / "digits" / "heldout.json"
REQUEST_PATH = REPO_ROOT / "examples" / "digits" / "request.json"

# dtype -> (little-endian numpy dtype, the typed field that carries it), as
# documented on corvid.v1.DataType.
_ENCODINGS = {
    tensor_pb2.DATA_TYPE_FP32: (np.dtype("<f4"), "fp32_values"),
    tensor_pb2.DATA_TYPE_FP64: (np.dtype("<f8"), "fp64_values"),
    tensor_pb2.DATA_TYPE_INT8: (np.dtype("i1"), "int32_values"),
    tensor_pb2.DATA_TYPE_UINT8: (np.dtype("u1"), "int32_values"),
    tensor_pb2.DATA_TYPE_INT32: (np.dtype("<i4"), "int32_values"),
    tensor_pb2.DATA_TYPE_INT64: (np.dtype("<i8"), "int64_values"),
    tensor_pb2.DATA_TYPE_BOOL: (np.dtype("?"), "bool_values"),
}
_TYPED_FIELDS = sorted({field for _, field in _ENCODINGS.values()})

# ONNX element type -> corvid.v1.DataType, for the types Corvid serves.
ONNX_TO_CORVID = {
    onnx.TensorProto.FLOAT: tensor_pb2.DATA_TYPE_FP32,
    onnx.TensorProto.DOUBLE: tensor_pb2.DATA_TYPE_FP64,
    onnx.TensorProto.INT8: tensor_pb2.DATA_TYPE_INT8,
    onnx.TensorProto.UINT8: tensor_pb2.DATA_TYPE_UINT8,
    onnx.TensorProto.INT32: tensor_pb2.DATA_TYPE_INT32,
    onnx.TensorProto.INT64: tensor_pb2.DATA_TYPE_INT64,
    onnx.TensorProto.BOOL: tensor_pb2.DATA_TYPE_BOOL,
}


def to_tensor(array: np.ndarray, dtype: int, *, raw: bool) -> tensor_pb2.Tensor:
    """Encode `array` as a Tensor, in `raw` bytes or in the typed field."""
    np_dtype, field = _ENCODINGS[dtype]
    array = np.ascontiguousarray(array, dtype=np_dtype)
    tensor = tensor_pb2.Tensor(dtype=dtype, shape=array.shape)
    if raw:
        tensor.raw = array.tobytes()  # C order, little-endian: the wire format
    else:
        getattr(tensor, field).extend(array.ravel().tolist())
    return tensor


def from_tensor(tensor: tensor_pb2.Tensor) -> np.ndarray:
    """Decode a Tensor whichever of its two encodings the server chose."""
    np_dtype, field = _ENCODINGS[tensor.dtype]
    shape = tuple(tensor.shape)
    typed = [name for name in _TYPED_FIELDS if len(getattr(tensor, name))]
    assert not (tensor.raw and typed), f"tensor sets both raw and {typed}"
    assert typed in ([], [field]), f"{field} expected for dtype, got {typed}"
    if tensor.raw:
        values = np.frombuffer(tensor.raw, dtype=np_dtype)
    else:
        values = np.array(getattr(tensor, field), dtype=np_dtype)
    assert values.size == int(np.prod(shape)), (
        f"{values.size} elements for shape {list(shape)}"
    )
    return values.reshape(shape)


def onnx_tensor_infos(values) -> list[tuple[str, int, list[int]]]:
    """(name, corvid dtype, shape with -1 for symbolic dims) per ONNX value."""
    infos = []
    for value in values:
        tensor_type = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
        infos.append((value.name, ONNX_TO_CORVID[tensor_type.elem_type], shape))
    return infos


# urllib honours http_proxy/HTTP_PROXY; a proxy must never see loopback calls
# to the server under test.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout: float = 5.0) -> int:
    """Status code of GET `url`; raises OSError if nothing answers."""
    try:
        with _opener.open(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def http_post_json(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, dict]:
    """POST a JSON body; return the status and the decoded JSON answer."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"{}")


def from_json_tensor(obj: dict) -> np.ndarray:
    """Decode the protojson form of a Tensor (camelCase, int64 as strings)."""
    dtype = tensor_pb2.DataType.Value(obj["dtype"])
    np_dtype, field = _ENCODINGS[dtype]
    shape = [int(d) for d in obj.get("shape", [])]
    json_field = _camel(field)
    if "raw" in obj:
        values = np.frombuffer(base64.b64decode(obj["raw"]), dtype=np_dtype)
    else:
        # float() also parses protojson's "NaN"/"Infinity"; int() its int64
        # strings.
        convert = float if np_dtype.kind == "f" else (bool if np_dtype.kind == "b" else int)
        values = np.array([convert(v) for v in obj.get(json_field, [])], dtype=np_dtype)
    assert values.size == int(np.prod(shape)), f"{values.size} elements for shape {shape}"
    return values.reshape(shape)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word.title() for word in rest)
