package corvid_test

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/testing/protocmp"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

const (
	dtFP32  = corvidv1.DataType_DATA_TYPE_FP32
	dtFP64  = corvidv1.DataType_DATA_TYPE_FP64
	dtInt8  = corvidv1.DataType_DATA_TYPE_INT8
	dtUint8 = corvidv1.DataType_DATA_TYPE_UINT8
	dtInt32 = corvidv1.DataType_DATA_TYPE_INT32
	dtInt64 = corvidv1.DataType_DATA_TYPE_INT64
	dtBool  = corvidv1.DataType_DATA_TYPE_BOOL
)

// TestTensorConstructors pins the wire form byte for byte, independently of
// the As* decoders, so that a bug shared by both directions cannot hide.
func TestTensorConstructors(t *testing.T) {
	tests := []struct {
		name string
		got  *corvidv1.Tensor
		want *corvidv1.Tensor
	}{
		{"fp32", corvid.Float32Tensor([]float32{1, -2}, 1, 2),
			&corvidv1.Tensor{Dtype: dtFP32, Shape: []int64{1, 2}, Raw: []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0}}},
		{"fp64", corvid.Float64Tensor([]float64{1}),
			&corvidv1.Tensor{Dtype: dtFP64, Shape: []int64{1}, Raw: []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}}},
		{"int64", corvid.Int64Tensor([]int64{-2, 0x0102}, 2),
			&corvidv1.Tensor{Dtype: dtInt64, Shape: []int64{2}, Raw: []byte{
				0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 1, 0, 0, 0, 0, 0, 0}}},
		{"int32", corvid.Int32Tensor([]int32{-1, 0x01020304}),
			&corvidv1.Tensor{Dtype: dtInt32, Shape: []int64{2}, Raw: []byte{0xff, 0xff, 0xff, 0xff, 4, 3, 2, 1}}},
		{"int8", corvid.Int8Tensor([]int8{-128, 127}),
			&corvidv1.Tensor{Dtype: dtInt8, Shape: []int64{2}, Raw: []byte{0x80, 0x7f}}},
		{"uint8", corvid.Uint8Tensor([]uint8{0, 255}, 2, 1),
			&corvidv1.Tensor{Dtype: dtUint8, Shape: []int64{2, 1}, Raw: []byte{0, 255}}},
		{"bool", corvid.BoolTensor([]bool{true, false, true}),
			&corvidv1.Tensor{Dtype: dtBool, Shape: []int64{3}, Raw: []byte{1, 0, 1}}},
		{"empty", corvid.Float32Tensor(nil, 0, 3),
			&corvidv1.Tensor{Dtype: dtFP32, Shape: []int64{0, 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got, protocmp.Transform()); diff != "" {
				t.Errorf("tensor (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTensorConstructorCopiesShape(t *testing.T) {
	shape := []int64{2, 1}
	tensor := corvid.Uint8Tensor([]uint8{1, 2}, shape...)
	shape[0] = 99
	if got, want := tensor.GetShape(), []int64{2, 1}; !cmp.Equal(got, want) {
		t.Errorf("shape = %v after the caller reused its slice, want %v", got, want)
	}
}

func TestTensorConstructorPanics(t *testing.T) {
	tests := []struct {
		name  string
		build func()
		want  string
	}{
		{"too few elements", func() { corvid.Float32Tensor([]float32{1, 2, 3}, 2, 2) },
			"corvid.Float32Tensor: shape [2 2] holds 4 elements, data has 3"},
		{"negative dimension", func() { corvid.Int64Tensor([]int64{1}, -1) },
			"corvid.Int64Tensor: shape [-1] has a negative dimension"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if got := fmt.Sprint(recover()); got != tt.want {
					t.Errorf("panic = %q, want %q", got, tt.want)
				}
			}()
			tt.build()
		})
	}
}

// decoders adapts each As* function to one signature for table tests.
var decoders = map[corvidv1.DataType]func(*corvidv1.Tensor) (any, error){
	dtFP32:  func(t *corvidv1.Tensor) (any, error) { return corvid.AsFloat32(t) },
	dtFP64:  func(t *corvidv1.Tensor) (any, error) { return corvid.AsFloat64(t) },
	dtInt8:  func(t *corvidv1.Tensor) (any, error) { return corvid.AsInt8(t) },
	dtUint8: func(t *corvidv1.Tensor) (any, error) { return corvid.AsUint8(t) },
	dtInt32: func(t *corvidv1.Tensor) (any, error) { return corvid.AsInt32(t) },
	dtInt64: func(t *corvidv1.Tensor) (any, error) { return corvid.AsInt64(t) },
	dtBool:  func(t *corvidv1.Tensor) (any, error) { return corvid.AsBool(t) },
}

// TestTensorRoundTrip decodes every dtype from the raw form the
// constructors make and from the typed form JSON callers send, extreme
// values included.
func TestTensorRoundTrip(t *testing.T) {
	nan := float32(math.NaN())
	inf := math.Inf(1)
	tests := []struct {
		name   string
		tensor *corvidv1.Tensor
		want   any
	}{
		{"fp32 raw", corvid.Float32Tensor([]float32{1.5, -2, math.MaxFloat32, math.SmallestNonzeroFloat32, nan, float32(inf)}, 2, 3),
			[]float32{1.5, -2, math.MaxFloat32, math.SmallestNonzeroFloat32, nan, float32(inf)}},
		{"fp32 typed", &corvidv1.Tensor{Dtype: dtFP32, Shape: []int64{2}, Fp32Values: []float32{1.5, -3}},
			[]float32{1.5, -3}},
		{"fp64 raw", corvid.Float64Tensor([]float64{math.Pi, -inf, math.MaxFloat64}),
			[]float64{math.Pi, -inf, math.MaxFloat64}},
		{"fp64 typed", &corvidv1.Tensor{Dtype: dtFP64, Shape: []int64{1, 1}, Fp64Values: []float64{math.E}},
			[]float64{math.E}},
		{"int64 raw", corvid.Int64Tensor([]int64{math.MinInt64, -1, 0, math.MaxInt64}, 4),
			[]int64{math.MinInt64, -1, 0, math.MaxInt64}},
		{"int64 typed", &corvidv1.Tensor{Dtype: dtInt64, Shape: []int64{2}, Int64Values: []int64{math.MinInt64, 7}},
			[]int64{math.MinInt64, 7}},
		{"int32 raw", corvid.Int32Tensor([]int32{math.MinInt32, math.MaxInt32}),
			[]int32{math.MinInt32, math.MaxInt32}},
		{"int32 typed", &corvidv1.Tensor{Dtype: dtInt32, Shape: []int64{1}, Int32Values: []int32{-5}},
			[]int32{-5}},
		{"int8 raw", corvid.Int8Tensor([]int8{math.MinInt8, -1, 0, math.MaxInt8}),
			[]int8{math.MinInt8, -1, 0, math.MaxInt8}},
		{"int8 typed", &corvidv1.Tensor{Dtype: dtInt8, Shape: []int64{2}, Int32Values: []int32{-128, 127}},
			[]int8{-128, 127}},
		{"uint8 raw", corvid.Uint8Tensor([]uint8{0, 128, 255}),
			[]uint8{0, 128, 255}},
		{"uint8 typed", &corvidv1.Tensor{Dtype: dtUint8, Shape: []int64{2}, Int32Values: []int32{0, 255}},
			[]uint8{0, 255}},
		{"bool raw", corvid.BoolTensor([]bool{true, false}),
			[]bool{true, false}},
		{"bool typed", &corvidv1.Tensor{Dtype: dtBool, Shape: []int64{3}, BoolValues: []bool{false, true, true}},
			[]bool{false, true, true}},
		{"scalar", &corvidv1.Tensor{Dtype: dtFP32, Raw: []byte{0, 0, 0x80, 0x3f}},
			[]float32{1}},
		{"no elements", &corvidv1.Tensor{Dtype: dtInt64, Shape: []int64{3, 0}},
			[]int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decoders[tt.tensor.GetDtype()](tt.tensor)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateNaNs()); diff != "" {
				t.Errorf("elements (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTensorDecodeDoesNotAlias: the result is the caller's to change.
func TestTensorDecodeDoesNotAlias(t *testing.T) {
	tensor := &corvidv1.Tensor{Dtype: dtFP32, Shape: []int64{1}, Fp32Values: []float32{1}}
	got, err := corvid.AsFloat32(tensor)
	if err != nil {
		t.Fatal(err)
	}
	got[0] = 2
	if tensor.Fp32Values[0] != 1 {
		t.Error("changing AsFloat32's result changed the tensor")
	}
}

func TestTensorDecodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		tensor *corvidv1.Tensor
		as     corvidv1.DataType
		want   error
		msg    string
	}{
		{"nil", nil, dtFP32,
			corvid.ErrEncoding, "corvid: bad tensor encoding: nil tensor (is the input or output name right?)"},
		{"wrong dtype", corvid.Int64Tensor([]int64{1}), dtFP32,
			corvid.ErrDType, "corvid: tensor dtype mismatch: want fp32, got int64"},
		{"unspecified dtype", &corvidv1.Tensor{Shape: []int64{1}, Raw: []byte{1}}, dtUint8,
			corvid.ErrDType, "corvid: tensor dtype mismatch: want uint8, got unspecified"},
		{"typed field of another dtype", &corvidv1.Tensor{Dtype: dtFP32, Shape: []int64{1}, Fp64Values: []float64{1}}, dtFP32,
			corvid.ErrDType, "corvid: tensor dtype mismatch: a fp32 tensor carries fp64_values; its elements belong in fp32_values or raw"},
		{"raw too short", &corvidv1.Tensor{Dtype: dtFP32, Shape: []int64{2, 3}, Raw: make([]byte, 20)}, dtFP32,
			corvid.ErrShape, "corvid: tensor shape mismatch: shape [2 3] holds 6 fp32 elements (24 raw bytes), raw has 20 bytes"},
		{"raw too long", &corvidv1.Tensor{Dtype: dtInt8, Shape: []int64{2}, Raw: make([]byte, 3)}, dtInt8,
			corvid.ErrShape, "corvid: tensor shape mismatch: shape [2] holds 2 int8 elements (2 raw bytes), raw has 3 bytes"},
		{"no elements at all", &corvidv1.Tensor{Dtype: dtInt64, Shape: []int64{2}}, dtInt64,
			corvid.ErrShape, "corvid: tensor shape mismatch: shape [2] holds 2 int64 elements (16 raw bytes), raw has 0 bytes"},
		{"typed count", &corvidv1.Tensor{Dtype: dtInt32, Shape: []int64{2, 2}, Int32Values: []int32{1, 2, 3}}, dtInt32,
			corvid.ErrShape, "corvid: tensor shape mismatch: shape [2 2] holds 4 elements, int32_values has 3"},
		{"negative dimension", &corvidv1.Tensor{Dtype: dtBool, Shape: []int64{-1, 2}}, dtBool,
			corvid.ErrShape, "corvid: tensor shape mismatch: shape [-1 2] has a negative dimension"},
		{"overflowing shape", &corvidv1.Tensor{Dtype: dtFP64, Shape: []int64{1 << 40, 1 << 40}}, dtFP64,
			corvid.ErrShape, "corvid: tensor shape mismatch: shape [1099511627776 1099511627776] has more elements than fit in an int"},
		{"raw size overflow", &corvidv1.Tensor{Dtype: dtFP64, Shape: []int64{1 << 61}}, dtFP64,
			corvid.ErrShape, "corvid: tensor shape mismatch: shape [2305843009213693952] has more elements than fit in memory"},
		{"raw and typed", &corvidv1.Tensor{Dtype: dtFP64, Shape: []int64{1}, Raw: make([]byte, 8), Fp64Values: []float64{1}}, dtFP64,
			corvid.ErrEncoding, "corvid: bad tensor encoding: both raw and fp64_values are set; use one"},
		{"int8 out of range", &corvidv1.Tensor{Dtype: dtInt8, Shape: []int64{2}, Int32Values: []int32{1, 128}}, dtInt8,
			corvid.ErrEncoding, "corvid: bad tensor encoding: int32_values[1] = 128 is out of range for int8"},
		{"uint8 out of range", &corvidv1.Tensor{Dtype: dtUint8, Shape: []int64{1}, Int32Values: []int32{-1}}, dtUint8,
			corvid.ErrEncoding, "corvid: bad tensor encoding: int32_values[0] = -1 is out of range for uint8"},
		{"bool byte", &corvidv1.Tensor{Dtype: dtBool, Shape: []int64{2}, Raw: []byte{1, 2}}, dtBool,
			corvid.ErrEncoding, "corvid: bad tensor encoding: raw byte 1 of a bool tensor is 2, want 0 or 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decoders[tt.as](tt.tensor)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if err.Error() != tt.msg {
				t.Errorf("message = %q, want %q", err, tt.msg)
			}
			if !isNilSlice(got) {
				t.Errorf("elements = %v alongside the error, want nil", got)
			}
		})
	}
}

// isNilSlice reports whether v holds a nil slice, whatever its element type.
func isNilSlice(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Slice && rv.IsNil()
}

func TestDTypeName(t *testing.T) {
	for dt, want := range map[corvidv1.DataType]string{dtFP32: "fp32", dtUint8: "uint8", dtBool: "bool", 42: "42"} {
		if got := corvid.DTypeName(dt); got != want {
			t.Errorf("DTypeName(%d) = %q, want %q", dt, got, want)
		}
	}
}
