package api

import (
	"errors"
	"fmt"
	"math"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/server/codec"
	"github.com/corvidml/corvid/server/tensor"
)

// errInvalidTensor marks a wire tensor that cannot be decoded; it maps to
// InvalidArgument.
var errInvalidTensor = errors.New("invalid tensor")

func dtypeFromProto(d corvidv1.DataType) tensor.DType {
	switch d {
	case corvidv1.DataType_DATA_TYPE_FP32:
		return tensor.Float32
	case corvidv1.DataType_DATA_TYPE_FP64:
		return tensor.Float64
	case corvidv1.DataType_DATA_TYPE_INT8:
		return tensor.Int8
	case corvidv1.DataType_DATA_TYPE_UINT8:
		return tensor.Uint8
	case corvidv1.DataType_DATA_TYPE_INT32:
		return tensor.Int32
	case corvidv1.DataType_DATA_TYPE_INT64:
		return tensor.Int64
	case corvidv1.DataType_DATA_TYPE_BOOL:
		return tensor.Bool
	}
	return tensor.Invalid
}

func dtypeToProto(d tensor.DType) corvidv1.DataType {
	switch d {
	case tensor.Float32:
		return corvidv1.DataType_DATA_TYPE_FP32
	case tensor.Float64:
		return corvidv1.DataType_DATA_TYPE_FP64
	case tensor.Int8:
		return corvidv1.DataType_DATA_TYPE_INT8
	case tensor.Uint8:
		return corvidv1.DataType_DATA_TYPE_UINT8
	case tensor.Int32:
		return corvidv1.DataType_DATA_TYPE_INT32
	case tensor.Int64:
		return corvidv1.DataType_DATA_TYPE_INT64
	case tensor.Bool:
		return corvidv1.DataType_DATA_TYPE_BOOL
	}
	return corvidv1.DataType_DATA_TYPE_UNSPECIFIED
}

// typedField names the typed field that carries dtype d, for error messages.
func typedField(d tensor.DType) string {
	switch d {
	case tensor.Float32:
		return "fp32_values"
	case tensor.Float64:
		return "fp64_values"
	case tensor.Int8, tensor.Uint8, tensor.Int32:
		return "int32_values"
	case tensor.Int64:
		return "int64_values"
	case tensor.Bool:
		return "bool_values"
	}
	return ""
}

// decodeTensor turns a wire tensor into a host tensor. Every check runs before
// the allocation, so a shape that claims billions of elements costs nothing.
func decodeTensor(name string, p *corvidv1.Tensor) (*tensor.Tensor, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: input %q: %s", errInvalidTensor, name, fmt.Sprintf(format, args...))
	}
	if p == nil {
		return nil, bad("tensor is missing")
	}
	dt := dtypeFromProto(p.GetDtype())
	if dt == tensor.Invalid {
		return nil, bad("dtype is %v, want one of DATA_TYPE_FP32, FP64, INT8, UINT8, INT32, INT64, BOOL", p.GetDtype())
	}
	n, err := tensor.NumElements(p.GetShape())
	if err != nil {
		return nil, bad("%v", err)
	}
	// Which typed fields are set, so a mismatch can be named.
	typed := map[string]int{}
	for field, l := range map[string]int{
		"fp32_values": len(p.GetFp32Values()), "fp64_values": len(p.GetFp64Values()),
		"int32_values": len(p.GetInt32Values()), "int64_values": len(p.GetInt64Values()),
		"bool_values": len(p.GetBoolValues()),
	} {
		if l > 0 {
			typed[field] = l
		}
	}
	want := typedField(dt)
	for field := range typed {
		if field != want {
			return nil, bad("dtype %v carries its elements in %s or raw, but %s is set", dt, want, field)
		}
	}
	raw := p.GetRaw()
	if len(raw) > 0 && len(typed) > 0 {
		return nil, bad("both raw and %s are set, want one of them", want)
	}
	if len(raw) == 0 && len(typed) == 0 && n > 0 {
		return nil, bad("no elements: want %d in %s or %d bytes in raw for shape %v", n, want, n*dt.Size(), p.GetShape())
	}
	if len(raw) > 0 || n == 0 {
		if wantBytes := n * dt.Size(); len(raw) != wantBytes {
			return nil, bad("raw has %d bytes, want %d (shape %v x %d bytes per %v)", len(raw), wantBytes, p.GetShape(), dt.Size(), dt)
		}
		return decodeRaw(dt, p.GetShape(), n, raw)
	}
	if got := typed[want]; got != n {
		return nil, bad("%s has %d elements, want %d for shape %v", want, got, n, p.GetShape())
	}
	t := &tensor.Tensor{DType: dt, Shape: append([]int64(nil), p.GetShape()...)}
	switch dt {
	case tensor.Float32:
		t.Data = append([]float32(nil), p.GetFp32Values()...)
	case tensor.Float64:
		t.Data = append([]float64(nil), p.GetFp64Values()...)
	case tensor.Int64:
		t.Data = append([]int64(nil), p.GetInt64Values()...)
	case tensor.Bool:
		t.Data = append([]bool(nil), p.GetBoolValues()...)
	case tensor.Int32:
		t.Data = append([]int32(nil), p.GetInt32Values()...)
	case tensor.Int8:
		out := make([]int8, n)
		for i, v := range p.GetInt32Values() {
			if v < math.MinInt8 || v > math.MaxInt8 {
				return nil, bad("int32_values[%d] is %d, out of range for int8 [-128, 127]", i, v)
			}
			out[i] = int8(v)
		}
		t.Data = out
	case tensor.Uint8:
		out := make([]uint8, n)
		for i, v := range p.GetInt32Values() {
			if v < 0 || v > math.MaxUint8 {
				return nil, bad("int32_values[%d] is %d, out of range for uint8 [0, 255]", i, v)
			}
			out[i] = uint8(v)
		}
		t.Data = out
	}
	return t, nil
}

func decodeRaw(dt tensor.DType, shape []int64, n int, raw []byte) (*tensor.Tensor, error) {
	t := &tensor.Tensor{DType: dt, Shape: append([]int64(nil), shape...)}
	switch dt {
	case tensor.Float32:
		t.Data = decoded[float32](raw, n)
	case tensor.Float64:
		t.Data = decoded[float64](raw, n)
	case tensor.Int8:
		t.Data = decoded[int8](raw, n)
	case tensor.Uint8:
		t.Data = decoded[uint8](raw, n)
	case tensor.Int32:
		t.Data = decoded[int32](raw, n)
	case tensor.Int64:
		t.Data = decoded[int64](raw, n)
	case tensor.Bool:
		out := make([]bool, n)
		for i, b := range raw {
			if b > 1 {
				return nil, fmt.Errorf("%w: bool element %d is byte %d, want 0 or 1", errInvalidTensor, i, b)
			}
			out[i] = b == 1
		}
		t.Data = out
	}
	return t, nil
}

// decoded returns the n elements raw holds (n times T's size bytes, as
// decodeTensor has checked): raw's own memory where it is laid out as a
// []T (codec.View), else a copy. The request owns raw, and nothing writes
// an input tensor's elements: the runtime copies them into its graphs'
// buffers, and batching into a batch's.
func decoded[T codec.Number](raw []byte, n int) []T {
	if v, ok := codec.View[T](raw); ok {
		return v
	}
	out := make([]T, n)
	codec.DecodeRaw(out, raw)
	return out
}

// encodeTensor turns a host tensor into a wire tensor, as raw bytes or in its
// typed field.
func encodeTensor(t *tensor.Tensor, raw bool) *corvidv1.Tensor {
	p := &corvidv1.Tensor{Dtype: dtypeToProto(t.DType), Shape: append([]int64(nil), t.Shape...)}
	if raw {
		p.Raw = encodeRaw(t)
		return p
	}
	switch d := t.Data.(type) {
	case []float32:
		p.Fp32Values = d
	case []float64:
		p.Fp64Values = d
	case []int64:
		p.Int64Values = d
	case []bool:
		p.BoolValues = d
	case []int32:
		p.Int32Values = d
	case []int8:
		p.Int32Values = make([]int32, len(d))
		for i, v := range d {
			p.Int32Values[i] = int32(v)
		}
	case []uint8:
		p.Int32Values = make([]int32, len(d))
		for i, v := range d {
			p.Int32Values[i] = int32(v)
		}
	}
	return p
}

func encodeRaw(t *tensor.Tensor) []byte {
	switch d := t.Data.(type) {
	case []float32:
		return rawOf(d)
	case []float64:
		return rawOf(d)
	case []int64:
		return rawOf(d)
	case []int32:
		return rawOf(d)
	case []int8:
		return rawOf(d)
	case []uint8:
		return rawOf(d)
	case []bool:
		b := make([]byte, len(d))
		for i, v := range d {
			if v {
				b[i] = 1
			}
		}
		return b
	}
	return nil
}

// rawOf returns x's elements as raw bytes: x's own memory where the
// machine's byte order is raw's (codec.BytesView), else a copy. An output
// tensor is the request's alone (the runtime copies each out of its
// graph, and nothing changes it after), and it is only read from here on.
func rawOf[T codec.Number](x []T) []byte {
	if b, ok := codec.BytesView(x); ok {
		return b
	}
	return codec.EncodeRaw(x)
}
