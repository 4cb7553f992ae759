package api

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

// TestRawAndTypedDecodeAlike: every dtype decodes to the same host tensor
// from raw bytes and from its typed field, and encodes back to both forms.
func TestRawAndTypedDecodeAlike(t *testing.T) {
	tests := []struct {
		name  string
		typed *corvidv1.Tensor
		raw   []byte
	}{
		{"fp32", &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{2}, Fp32Values: []float32{1.5, -2}},
			[]byte{0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0}},
		{"fp64", &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_FP64, Shape: []int64{1}, Fp64Values: []float64{1}},
			[]byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}},
		{"int8", &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_INT8, Shape: []int64{3}, Int32Values: []int32{-128, 0, 127}},
			[]byte{0x80, 0, 0x7f}},
		{"uint8", &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_UINT8, Shape: []int64{2}, Int32Values: []int32{0, 255}},
			[]byte{0, 0xff}},
		{"int32", &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_INT32, Shape: []int64{1}, Int32Values: []int32{-2}},
			[]byte{0xfe, 0xff, 0xff, 0xff}},
		{"int64", &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_INT64, Shape: []int64{1, 1}, Int64Values: []int64{math.MaxInt64}},
			[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"bool", &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_BOOL, Shape: []int64{2}, BoolValues: []bool{true, false}},
			[]byte{1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rawProto := &corvidv1.Tensor{Dtype: tt.typed.Dtype, Shape: tt.typed.Shape, Raw: tt.raw}
			fromTyped, err := decodeTensor("x", tt.typed)
			if err != nil {
				t.Fatal(err)
			}
			fromRaw, err := decodeTensor("x", rawProto)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(fromTyped, fromRaw); diff != "" {
				t.Errorf("typed and raw decode differently (-typed +raw):\n%s", diff)
			}
			if diff := cmp.Diff(tt.typed, encodeTensor(fromRaw, false), protocmp.Transform()); diff != "" {
				t.Errorf("typed encoding (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(rawProto, encodeTensor(fromTyped, true), protocmp.Transform()); diff != "" {
				t.Errorf("raw encoding (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeTensorErrors(t *testing.T) {
	fp32 := corvidv1.DataType_DATA_TYPE_FP32
	tests := []struct {
		name string
		in   *corvidv1.Tensor
		want []string
	}{
		{"nil", nil, []string{"missing"}},
		{"no dtype", &corvidv1.Tensor{Shape: []int64{1}, Raw: []byte{0}}, []string{"DATA_TYPE_UNSPECIFIED"}},
		{"negative dim", &corvidv1.Tensor{Dtype: fp32, Shape: []int64{2, -3}}, []string{"-3"}},
		{"overflow", &corvidv1.Tensor{Dtype: fp32, Shape: []int64{math.MaxInt64, 2}}, []string{"elements"}},
		{"no data", &corvidv1.Tensor{Dtype: fp32, Shape: []int64{2}}, []string{"no elements", "fp32_values", "8 bytes"}},
		{"both forms", &corvidv1.Tensor{Dtype: fp32, Shape: []int64{1}, Raw: make([]byte, 4), Fp32Values: []float32{1}}, []string{"both"}},
		{"wrong typed field", &corvidv1.Tensor{Dtype: fp32, Shape: []int64{1}, Int64Values: []int64{1}}, []string{"int64_values", "fp32_values"}},
		{"raw too short", &corvidv1.Tensor{Dtype: fp32, Shape: []int64{2}, Raw: make([]byte, 7)}, []string{"7 bytes", "want 8"}},
		{"typed too long", &corvidv1.Tensor{Dtype: fp32, Shape: []int64{2}, Fp32Values: make([]float32, 3)}, []string{"3 elements", "want 2"}},
		{"int8 range", &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_INT8, Shape: []int64{1}, Int32Values: []int32{200}}, []string{"200", "int8"}},
		{"uint8 range", &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_UINT8, Shape: []int64{1}, Int32Values: []int32{-1}}, []string{"-1", "uint8"}},
		{"bool byte", &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_BOOL, Shape: []int64{1}, Raw: []byte{2}}, []string{"byte 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeTensor("x", tt.in)
			if !errors.Is(err, errInvalidTensor) {
				t.Fatalf("decodeTensor = %v, want errInvalidTensor", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// FuzzDecodeTensor: any wire tensor either fails with errInvalidTensor or
// decodes to a valid host tensor that survives a raw round trip unchanged.
func FuzzDecodeTensor(f *testing.F) {
	for _, seed := range []*corvidv1.Tensor{
		{Dtype: corvidv1.DataType_DATA_TYPE_FP32, Shape: []int64{1, 2}, Fp32Values: []float32{1, 2}},
		{Dtype: corvidv1.DataType_DATA_TYPE_INT64, Shape: []int64{1}, Raw: make([]byte, 8)},
		{Dtype: corvidv1.DataType_DATA_TYPE_BOOL, Shape: []int64{0, 5}},
		{Dtype: corvidv1.DataType_DATA_TYPE_UINT8, Shape: []int64{3}, Int32Values: []int32{1, 2, 300}},
	} {
		b, err := proto.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p corvidv1.Tensor
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		got, err := decodeTensor("x", &p)
		if err != nil {
			if !errors.Is(err, errInvalidTensor) {
				t.Fatalf("error %v does not wrap errInvalidTensor", err)
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("decoded an invalid tensor: %v", err)
		}
		again, err := decodeTensor("x", encodeTensor(got, true))
		if err != nil {
			t.Fatalf("re-decoding the raw encoding: %v", err)
		}
		if !cmp.Equal(got, again, cmp.Comparer(func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }),
			cmp.Comparer(func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) })) {
			t.Fatalf("raw round trip changed the tensor: %v -> %v", got, again)
		}
	})
}
