import datetime

from corvid.v1 import tensor_pb2 as _tensor_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STATE_UNSPECIFIED: _ClassVar[ModelState]
    MODEL_STATE_LOADING: _ClassVar[ModelState]
    MODEL_STATE_AVAILABLE: _ClassVar[ModelState]
    MODEL_STATE_UNLOADING: _ClassVar[ModelState]
    MODEL_STATE_UNLOADED: _ClassVar[ModelState]
    MODEL_STATE_FAILED: _ClassVar[ModelState]

class ExecutionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTION_MODE_UNSPECIFIED: _ClassVar[ExecutionMode]
    EXECUTION_MODE_FP32: _ClassVar[ExecutionMode]
    EXECUTION_MODE_INT8_DYNAMIC: _ClassVar[ExecutionMode]
    EXECUTION_MODE_INT8_STATIC: _ClassVar[ExecutionMode]
    EXECUTION_MODE_INT8_PREQUANTIZED: _ClassVar[ExecutionMode]
MODEL_STATE_UNSPECIFIED: ModelState
MODEL_STATE_LOADING: ModelState
MODEL_STATE_AVAILABLE: ModelState
MODEL_STATE_UNLOADING: ModelState
MODEL_STATE_UNLOADED: ModelState
MODEL_STATE_FAILED: ModelState
EXECUTION_MODE_UNSPECIFIED: ExecutionMode
EXECUTION_MODE_FP32: ExecutionMode
EXECUTION_MODE_INT8_DYNAMIC: ExecutionMode
EXECUTION_MODE_INT8_STATIC: ExecutionMode
EXECUTION_MODE_INT8_PREQUANTIZED: ExecutionMode

class ModelVersionStatus(_message.Message):
    __slots__ = ("version", "state", "error", "sha256", "loaded_at", "load_duration", "inputs", "outputs", "execution_mode", "max_batch_size", "kernel_tier", "labels", "reload_error", "metadata", "traffic_weight", "shadow", "batching")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    LOAD_DURATION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    KERNEL_TIER_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RELOAD_ERROR_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    version: int
    state: ModelState
    error: str
    sha256: str
    loaded_at: _timestamp_pb2.Timestamp
    load_duration: _duration_pb2.Duration
    inputs: _containers.RepeatedCompositeFieldContainer[_tensor_pb2.TensorInfo]
    outputs: _containers.RepeatedCompositeFieldContainer[_tensor_pb2.TensorInfo]
    execution_mode: ExecutionMode
    max_batch_size: int
    kernel_tier: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    reload_error: str
    metadata: _containers.ScalarMap[str, str]
    traffic_weight: int
    shadow: ShadowStatus
    batching: BatchingStatus
    def __init__(self, version: _Optional[int] = ..., state: _Optional[_Union[ModelState, str]] = ..., error: _Optional[str] = ..., sha256: _Optional[str] = ..., loaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., load_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., inputs: _Optional[_Iterable[_Union[_tensor_pb2.TensorInfo, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[_tensor_pb2.TensorInfo, _Mapping]]] = ..., execution_mode: _Optional[_Union[ExecutionMode, str]] = ..., max_batch_size: _Optional[int] = ..., kernel_tier: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., reload_error: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., traffic_weight: _Optional[int] = ..., shadow: _Optional[_Union[ShadowStatus, _Mapping]] = ..., batching: _Optional[_Union[BatchingStatus, _Mapping]] = ...) -> None: ...

class BatchingStatus(_message.Message):
    __slots__ = ("max_batch_size", "max_queue_delay", "preferred_batch_sizes", "max_queue_size", "queue_depth", "batches", "requests", "rows", "mean_batch_rows", "max_batch_rows", "queue_time_p50", "queue_time_p99", "rejected", "expired")
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_DELAY_FIELD_NUMBER: _ClassVar[int]
    PREFERRED_BATCH_SIZES_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_SIZE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    MEAN_BATCH_ROWS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_ROWS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_TIME_P50_FIELD_NUMBER: _ClassVar[int]
    QUEUE_TIME_P99_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    max_batch_size: int
    max_queue_delay: _duration_pb2.Duration
    preferred_batch_sizes: _containers.RepeatedScalarFieldContainer[int]
    max_queue_size: int
    queue_depth: int
    batches: int
    requests: int
    rows: int
    mean_batch_rows: float
    max_batch_rows: int
    queue_time_p50: _duration_pb2.Duration
    queue_time_p99: _duration_pb2.Duration
    rejected: int
    expired: int
    def __init__(self, max_batch_size: _Optional[int] = ..., max_queue_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., preferred_batch_sizes: _Optional[_Iterable[int]] = ..., max_queue_size: _Optional[int] = ..., queue_depth: _Optional[int] = ..., batches: _Optional[int] = ..., requests: _Optional[int] = ..., rows: _Optional[int] = ..., mean_batch_rows: _Optional[float] = ..., max_batch_rows: _Optional[int] = ..., queue_time_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., queue_time_p99: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., rejected: _Optional[int] = ..., expired: _Optional[int] = ...) -> None: ...

class ShadowStatus(_message.Message):
    __slots__ = ("sample", "offered", "sampled", "dropped", "failed", "timed_out", "compared", "label_rows", "agreement", "mean_abs_diff", "max_abs_diff", "mismatched", "latency_p50", "latency_p99")
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    OFFERED_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    COMPARED_FIELD_NUMBER: _ClassVar[int]
    LABEL_ROWS_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    MEAN_ABS_DIFF_FIELD_NUMBER: _ClassVar[int]
    MAX_ABS_DIFF_FIELD_NUMBER: _ClassVar[int]
    MISMATCHED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_FIELD_NUMBER: _ClassVar[int]
    sample: float
    offered: int
    sampled: int
    dropped: int
    failed: int
    timed_out: int
    compared: int
    label_rows: int
    agreement: float
    mean_abs_diff: float
    max_abs_diff: float
    mismatched: int
    latency_p50: _duration_pb2.Duration
    latency_p99: _duration_pb2.Duration
    def __init__(self, sample: _Optional[float] = ..., offered: _Optional[int] = ..., sampled: _Optional[int] = ..., dropped: _Optional[int] = ..., failed: _Optional[int] = ..., timed_out: _Optional[int] = ..., compared: _Optional[int] = ..., label_rows: _Optional[int] = ..., agreement: _Optional[float] = ..., mean_abs_diff: _Optional[float] = ..., max_abs_diff: _Optional[float] = ..., mismatched: _Optional[int] = ..., latency_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p99: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "versions", "config_error", "version_policy")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ERROR_FIELD_NUMBER: _ClassVar[int]
    VERSION_POLICY_FIELD_NUMBER: _ClassVar[int]
    name: str
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersionStatus]
    config_error: str
    version_policy: str
    def __init__(self, name: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[ModelVersionStatus, _Mapping]]] = ..., config_error: _Optional[str] = ..., version_policy: _Optional[str] = ...) -> None: ...
