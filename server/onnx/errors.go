package onnx

import "errors"

// ErrInvalidModel reports a model file that is not valid ONNX, or whose
// graph is inconsistent (dangling names, cycles, data that does not match
// its declared shape).
var ErrInvalidModel = errors.New("invalid model")

// ErrUnsupported reports a valid ONNX model that uses an operator, data type
// or feature Corvid does not support.
var ErrUnsupported = errors.New("unsupported model")
