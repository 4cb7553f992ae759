package corvid

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/server/codec"
)

// Errors the As* functions wrap, for errors.Is. Their messages say what was
// expected and what was received.
var (
	// ErrDType: the tensor's dtype is not the one asked for, or it carries a
	// typed field that belongs to another dtype.
	ErrDType = errors.New("corvid: tensor dtype mismatch")
	// ErrShape: the shape is invalid, or the number of elements (or raw
	// bytes) does not match it.
	ErrShape = errors.New("corvid: tensor shape mismatch")
	// ErrEncoding: the tensor is nil, sets both raw and a typed field, or
	// holds a value its dtype cannot represent.
	ErrEncoding = errors.New("corvid: bad tensor encoding")
)

// Float32Tensor returns a DATA_TYPE_FP32 tensor holding data, row-major,
// with the given shape. Without a shape the tensor is a vector of len(data)
// elements; for a scalar, build it from one element and set Shape to nil.
//
// It and the other constructors encode the elements in raw, the fast path:
// one copy into bytes that protobuf sends as they are, where a typed repeated
// field costs an encode per element. Each panics if shape does not hold
// exactly len(data) elements, as gonum's mat.NewDense does: that is a bug at
// the call site, best reported there rather than by the server.
func Float32Tensor(data []float32, shape ...int64) *corvidv1.Tensor {
	return newTensor("Float32Tensor", corvidv1.DataType_DATA_TYPE_FP32, len(data), shape, codec.EncodeRaw(data))
}

// Float64Tensor returns a DATA_TYPE_FP64 tensor holding data, row-major; see
// [Float32Tensor] for the shape.
func Float64Tensor(data []float64, shape ...int64) *corvidv1.Tensor {
	return newTensor("Float64Tensor", corvidv1.DataType_DATA_TYPE_FP64, len(data), shape, codec.EncodeRaw(data))
}

// Int64Tensor returns a DATA_TYPE_INT64 tensor holding data, row-major; see
// [Float32Tensor] for the shape.
func Int64Tensor(data []int64, shape ...int64) *corvidv1.Tensor {
	return newTensor("Int64Tensor", corvidv1.DataType_DATA_TYPE_INT64, len(data), shape, codec.EncodeRaw(data))
}

// Int32Tensor returns a DATA_TYPE_INT32 tensor holding data, row-major; see
// [Float32Tensor] for the shape.
func Int32Tensor(data []int32, shape ...int64) *corvidv1.Tensor {
	return newTensor("Int32Tensor", corvidv1.DataType_DATA_TYPE_INT32, len(data), shape, codec.EncodeRaw(data))
}

// Int8Tensor returns a DATA_TYPE_INT8 tensor holding data, row-major; see
// [Float32Tensor] for the shape.
func Int8Tensor(data []int8, shape ...int64) *corvidv1.Tensor {
	return newTensor("Int8Tensor", corvidv1.DataType_DATA_TYPE_INT8, len(data), shape, codec.EncodeRaw(data))
}

// Uint8Tensor returns a DATA_TYPE_UINT8 tensor holding a copy of data,
// row-major; see [Float32Tensor] for the shape.
func Uint8Tensor(data []uint8, shape ...int64) *corvidv1.Tensor {
	return newTensor("Uint8Tensor", corvidv1.DataType_DATA_TYPE_UINT8, len(data), shape, codec.EncodeRaw(data))
}

// BoolTensor returns a DATA_TYPE_BOOL tensor holding data, row-major; see
// [Float32Tensor] for the shape.
func BoolTensor(data []bool, shape ...int64) *corvidv1.Tensor {
	raw := make([]byte, len(data))
	for i, v := range data {
		if v {
			raw[i] = 1
		}
	}
	return newTensor("BoolTensor", corvidv1.DataType_DATA_TYPE_BOOL, len(data), shape, raw)
}

func newTensor(fn string, dt corvidv1.DataType, n int, shape []int64, raw []byte) *corvidv1.Tensor {
	if len(shape) == 0 {
		shape = []int64{int64(n)}
	} else {
		shape = slices.Clone(shape) // the caller's slice may be reused
		if want, err := numElements(shape); err != nil {
			panic(fmt.Sprintf("corvid.%s: %v", fn, err))
		} else if want != n {
			panic(fmt.Sprintf("corvid.%s: shape %v holds %d elements, data has %d", fn, shape, want, n))
		}
	}
	return &corvidv1.Tensor{Dtype: dt, Shape: shape, Raw: raw}
}

// AsFloat32 returns the elements of a DATA_TYPE_FP32 tensor.
//
// It and the other As* functions decode a tensor's elements from raw or
// from the typed field of its dtype, whichever it uses. They check that the
// dtype is the one asked for and that the number of elements matches the
// shape, with errors wrapping [ErrDType], [ErrShape] or [ErrEncoding], and
// return a new slice that does not share memory with t.
func AsFloat32(t *corvidv1.Tensor) ([]float32, error) {
	n, typed, err := check(t, corvidv1.DataType_DATA_TYPE_FP32)
	switch {
	case err != nil:
		return nil, err
	case typed:
		return slices.Clone(t.Fp32Values), nil
	}
	out := make([]float32, n)
	codec.DecodeRaw(out, t.Raw)
	return out, nil
}

// AsFloat64 returns the elements of a DATA_TYPE_FP64 tensor; see [AsFloat32].
func AsFloat64(t *corvidv1.Tensor) ([]float64, error) {
	n, typed, err := check(t, corvidv1.DataType_DATA_TYPE_FP64)
	switch {
	case err != nil:
		return nil, err
	case typed:
		return slices.Clone(t.Fp64Values), nil
	}
	out := make([]float64, n)
	codec.DecodeRaw(out, t.Raw)
	return out, nil
}

// AsInt64 returns the elements of a DATA_TYPE_INT64 tensor; see [AsFloat32].
func AsInt64(t *corvidv1.Tensor) ([]int64, error) {
	n, typed, err := check(t, corvidv1.DataType_DATA_TYPE_INT64)
	switch {
	case err != nil:
		return nil, err
	case typed:
		return slices.Clone(t.Int64Values), nil
	}
	out := make([]int64, n)
	codec.DecodeRaw(out, t.Raw)
	return out, nil
}

// AsInt32 returns the elements of a DATA_TYPE_INT32 tensor; see [AsFloat32].
func AsInt32(t *corvidv1.Tensor) ([]int32, error) {
	n, typed, err := check(t, corvidv1.DataType_DATA_TYPE_INT32)
	switch {
	case err != nil:
		return nil, err
	case typed:
		return slices.Clone(t.Int32Values), nil
	}
	out := make([]int32, n)
	codec.DecodeRaw(out, t.Raw)
	return out, nil
}

// AsInt8 returns the elements of a DATA_TYPE_INT8 tensor. In the typed form
// (int32_values) every value must lie in [-128, 127].
func AsInt8(t *corvidv1.Tensor) ([]int8, error) {
	n, typed, err := check(t, corvidv1.DataType_DATA_TYPE_INT8)
	if err != nil {
		return nil, err
	}
	out := make([]int8, n)
	if typed {
		for i, v := range t.Int32Values {
			if v < math.MinInt8 || v > math.MaxInt8 {
				return nil, fmt.Errorf("%w: int32_values[%d] = %d is out of range for int8", ErrEncoding, i, v)
			}
			out[i] = int8(v)
		}
		return out, nil
	}
	codec.DecodeRaw(out, t.Raw)
	return out, nil
}

// AsUint8 returns the elements of a DATA_TYPE_UINT8 tensor. In the typed
// form (int32_values) every value must lie in [0, 255].
func AsUint8(t *corvidv1.Tensor) ([]uint8, error) {
	n, typed, err := check(t, corvidv1.DataType_DATA_TYPE_UINT8)
	if err != nil {
		return nil, err
	}
	out := make([]uint8, n)
	if !typed {
		copy(out, t.Raw)
		return out, nil
	}
	for i, v := range t.Int32Values {
		if v < 0 || v > math.MaxUint8 {
			return nil, fmt.Errorf("%w: int32_values[%d] = %d is out of range for uint8", ErrEncoding, i, v)
		}
		out[i] = uint8(v)
	}
	return out, nil
}

// AsBool returns the elements of a DATA_TYPE_BOOL tensor. In the raw form
// every byte must be 0 or 1.
func AsBool(t *corvidv1.Tensor) ([]bool, error) {
	n, typed, err := check(t, corvidv1.DataType_DATA_TYPE_BOOL)
	switch {
	case err != nil:
		return nil, err
	case typed:
		return slices.Clone(t.BoolValues), nil
	}
	out := make([]bool, n)
	for i, b := range t.Raw {
		if b > 1 {
			return nil, fmt.Errorf("%w: raw byte %d of a bool tensor is %d, want 0 or 1", ErrEncoding, i, b)
		}
		out[i] = b == 1
	}
	return out, nil
}

// typedField is a typed element field of Tensor and its length in t.
type typedField struct {
	name string
	len  int
}

func typedFields(t *corvidv1.Tensor) [5]typedField {
	return [5]typedField{
		{"fp32_values", len(t.GetFp32Values())},
		{"fp64_values", len(t.GetFp64Values())},
		{"int32_values", len(t.GetInt32Values())},
		{"int64_values", len(t.GetInt64Values())},
		{"bool_values", len(t.GetBoolValues())},
	}
}

// dtypeInfo gives, per dtype, the bytes per element in raw and the typed
// field its elements may travel in instead, as tensor.proto defines them.
var dtypeInfo = map[corvidv1.DataType]struct {
	size  int
	field string
}{
	corvidv1.DataType_DATA_TYPE_FP32:  {4, "fp32_values"},
	corvidv1.DataType_DATA_TYPE_FP64:  {8, "fp64_values"},
	corvidv1.DataType_DATA_TYPE_INT8:  {1, "int32_values"},
	corvidv1.DataType_DATA_TYPE_UINT8: {1, "int32_values"},
	corvidv1.DataType_DATA_TYPE_INT32: {4, "int32_values"},
	corvidv1.DataType_DATA_TYPE_INT64: {8, "int64_values"},
	corvidv1.DataType_DATA_TYPE_BOOL:  {1, "bool_values"},
}

// check validates t as a tensor of dtype want. It returns its number of
// elements, and whether they are in the typed field (else in raw, whose
// length it has checked).
func check(t *corvidv1.Tensor, want corvidv1.DataType) (n int, typed bool, err error) {
	if t == nil {
		return 0, false, fmt.Errorf("%w: nil tensor (is the input or output name right?)", ErrEncoding)
	}
	if t.Dtype != want {
		return 0, false, fmt.Errorf("%w: want %s, got %s", ErrDType, DTypeName(want), DTypeName(t.Dtype))
	}
	n, err = numElements(t.Shape)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %v", ErrShape, err)
	}
	info := dtypeInfo[want]
	if n > math.MaxInt/info.size {
		return 0, false, fmt.Errorf("%w: shape %v has more elements than fit in memory", ErrShape, t.Shape)
	}
	var count int
	for _, f := range typedFields(t) {
		switch {
		case f.len == 0:
		case f.name != info.field:
			return 0, false, fmt.Errorf("%w: a %s tensor carries %s; its elements belong in %s or raw",
				ErrDType, DTypeName(want), f.name, info.field)
		default:
			count = f.len
		}
	}
	if count > 0 {
		if len(t.Raw) > 0 {
			return 0, false, fmt.Errorf("%w: both raw and %s are set; use one", ErrEncoding, info.field)
		}
		if count != n {
			return 0, false, fmt.Errorf("%w: shape %v holds %d elements, %s has %d",
				ErrShape, t.Shape, n, info.field, count)
		}
		return n, true, nil
	}
	if len(t.Raw) != n*info.size {
		return 0, false, fmt.Errorf("%w: shape %v holds %d %s elements (%d raw bytes), raw has %d bytes",
			ErrShape, t.Shape, n, DTypeName(want), n*info.size, len(t.Raw))
	}
	return n, false, nil
}

// numElements returns the number of elements of a tensor of this shape. An
// empty shape is a scalar, one element.
func numElements(shape []int64) (int, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("shape %v has more elements than fit in an int", shape)
		}
		n *= d
	}
	return int(n), nil
}

// DTypeName returns the short name of a dtype, as error messages and the
// corvid command show it: DATA_TYPE_FP32 is "fp32".
func DTypeName(dt corvidv1.DataType) string {
	return strings.ToLower(strings.TrimPrefix(dt.String(), "DATA_TYPE_"))
}
