package routing_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/corvidml/corvid/server/routing"
	"github.com/corvidml/corvid/server/tensor"
)

func ts(dt tensor.DType, shape []int64, data any) *tensor.Tensor {
	return &tensor.Tensor{DType: dt, Shape: shape, Data: data}
}

type outs = map[string]*tensor.Tensor

func TestCompare(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		name            string
		primary, shadow outs
		want            routing.Comparison
	}{
		{
			name:    "labels agree",
			primary: outs{"label": ts(tensor.Int64, []int64{4}, []int64{1, 2, 3, 4})},
			shadow:  outs{"label": ts(tensor.Int64, []int64{4}, []int64{1, 2, 3, 4})},
			want:    routing.Comparison{LabelRows: 4, AgreedRows: 4},
		},
		{
			name:    "labels disagree in 3 of 10 rows",
			primary: outs{"label": ts(tensor.Int64, []int64{10}, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})},
			shadow:  outs{"label": ts(tensor.Int64, []int64{10}, []int64{0, 9, 2, 3, 9, 5, 6, 9, 8, 9})},
			want:    routing.Comparison{LabelRows: 10, AgreedRows: 7},
		},
		{
			name:    "a row disagrees when any of its elements does",
			primary: outs{"topk": ts(tensor.Int32, []int64{2, 3}, []int32{1, 2, 3, 4, 5, 6})},
			shadow:  outs{"topk": ts(tensor.Int32, []int64{2, 3}, []int32{1, 2, 3, 4, 5, 7})},
			want:    routing.Comparison{LabelRows: 2, AgreedRows: 1},
		},
		{
			name:    "int32 and int64 labels compare by value",
			primary: outs{"label": ts(tensor.Int64, []int64{2}, []int64{7, 8})},
			shadow:  outs{"label": ts(tensor.Int32, []int64{2}, []int32{7, 9})},
			want:    routing.Comparison{LabelRows: 2, AgreedRows: 1},
		},
		{
			name:    "bool and uint8 labels",
			primary: outs{"b": ts(tensor.Bool, []int64{3}, []bool{true, false, true}), "u": ts(tensor.Uint8, []int64{1}, []uint8{200})},
			shadow:  outs{"b": ts(tensor.Bool, []int64{3}, []bool{true, true, true}), "u": ts(tensor.Uint8, []int64{1}, []uint8{200})},
			want:    routing.Comparison{LabelRows: 4, AgreedRows: 3},
		},
		{
			name:    "scalar label is one row",
			primary: outs{"label": ts(tensor.Int8, []int64{}, []int8{3})},
			shadow:  outs{"label": ts(tensor.Int8, []int64{}, []int8{3})},
			want:    routing.Comparison{LabelRows: 1, AgreedRows: 1},
		},
		{
			name:    "empty batch",
			primary: outs{"label": ts(tensor.Int64, []int64{0, 5}, []int64{})},
			shadow:  outs{"label": ts(tensor.Int64, []int64{0, 5}, []int64{})},
			want:    routing.Comparison{},
		},
		{
			name:    "float max abs diff",
			primary: outs{"y": ts(tensor.Float32, []int64{2, 2}, []float32{1, 2, 3, 4})},
			shadow:  outs{"y": ts(tensor.Float32, []int64{2, 2}, []float32{1, 2.5, 2.75, 4})},
			want:    routing.Comparison{FloatOutputs: 1, MaxAbsDiff: 0.5},
		},
		{
			name:    "float32 against float64",
			primary: outs{"y": ts(tensor.Float32, []int64{2}, []float32{1, 2})},
			shadow:  outs{"y": ts(tensor.Float64, []int64{2}, []float64{1, 1.75})},
			want:    routing.Comparison{FloatOutputs: 1, MaxAbsDiff: 0.25},
		},
		{
			name: "labels and floats together, largest diff over outputs",
			primary: outs{
				"label": ts(tensor.Int64, []int64{2}, []int64{1, 0}),
				"p":     ts(tensor.Float32, []int64{2, 2}, []float32{0.25, 0.75, 0.5, 0.5}),
				"q":     ts(tensor.Float64, []int64{1}, []float64{10}),
			},
			shadow: outs{
				"label": ts(tensor.Int64, []int64{2}, []int64{1, 1}),
				"p":     ts(tensor.Float32, []int64{2, 2}, []float32{0.25, 0.75, 0.375, 0.625}),
				"q":     ts(tensor.Float64, []int64{1}, []float64{8}),
			},
			want: routing.Comparison{LabelRows: 2, AgreedRows: 1, FloatOutputs: 2, MaxAbsDiff: 2},
		},
		{
			name:    "NaN against NaN and Inf against Inf agree",
			primary: outs{"y": ts(tensor.Float64, []int64{3}, []float64{nan, inf, 1})},
			shadow:  outs{"y": ts(tensor.Float64, []int64{3}, []float64{nan, inf, 1.5})},
			want:    routing.Comparison{FloatOutputs: 1, MaxAbsDiff: 0.5},
		},
		{
			name:    "NaN in the shadow only is a mismatch",
			primary: outs{"y": ts(tensor.Float64, []int64{2}, []float64{1, 2})},
			shadow:  outs{"y": ts(tensor.Float64, []int64{2}, []float64{1, nan})},
			want:    routing.Comparison{Mismatched: 1},
		},
		{
			name:    "Inf against a finite value is a mismatch",
			primary: outs{"y": ts(tensor.Float32, []int64{1}, []float32{float32(inf)})},
			shadow:  outs{"y": ts(tensor.Float32, []int64{1}, []float32{3})},
			want:    routing.Comparison{Mismatched: 1},
		},
		{
			name:    "label shapes differ: every row disagrees",
			primary: outs{"label": ts(tensor.Int64, []int64{3}, []int64{1, 2, 3})},
			shadow:  outs{"label": ts(tensor.Int64, []int64{2}, []int64{1, 2})},
			want:    routing.Comparison{LabelRows: 3, Mismatched: 1},
		},
		{
			name:    "float shapes differ",
			primary: outs{"y": ts(tensor.Float32, []int64{2, 2}, []float32{1, 2, 3, 4})},
			shadow:  outs{"y": ts(tensor.Float32, []int64{4}, []float32{1, 2, 3, 4})},
			want:    routing.Comparison{Mismatched: 1},
		},
		{
			name:    "label against float",
			primary: outs{"label": ts(tensor.Int64, []int64{1}, []int64{1})},
			shadow:  outs{"label": ts(tensor.Float32, []int64{1}, []float32{1})},
			want:    routing.Comparison{LabelRows: 1, Mismatched: 1},
		},
		{
			name:    "missing in the shadow",
			primary: outs{"label": ts(tensor.Int64, []int64{2}, []int64{1, 2}), "y": ts(tensor.Float32, []int64{1}, []float32{1})},
			shadow:  outs{},
			want:    routing.Comparison{LabelRows: 2, Mismatched: 2},
		},
		{
			name:    "extra in the shadow is ignored",
			primary: outs{},
			shadow:  outs{"y": ts(tensor.Float32, []int64{1}, []float32{1})},
			want:    routing.Comparison{},
		},
		{
			name:    "nil maps",
			primary: nil,
			shadow:  nil,
			want:    routing.Comparison{},
		},
		{
			name:    "data shorter than shape",
			primary: outs{"label": ts(tensor.Int64, []int64{3}, []int64{1, 2, 3}), "y": ts(tensor.Float32, []int64{3}, []float32{1, 2, 3})},
			shadow:  outs{"label": ts(tensor.Int64, []int64{3}, []int64{1}), "y": ts(tensor.Float32, []int64{3}, []float32{1})},
			want:    routing.Comparison{LabelRows: 3, Mismatched: 2},
		},
		{
			name:    "malformed primary",
			primary: outs{"label": ts(tensor.Int64, []int64{-1}, []int64{1}), "y": ts(tensor.Float32, []int64{2}, nil), "z": nil},
			shadow:  outs{"label": ts(tensor.Int64, []int64{-1}, []int64{1}), "y": ts(tensor.Float32, []int64{2}, nil), "z": nil},
			want:    routing.Comparison{Mismatched: 2},
		},
		{
			name:    "dtype and data disagree",
			primary: outs{"label": ts(tensor.Int64, []int64{2}, []float32{1, 2})},
			shadow:  outs{"label": ts(tensor.Int64, []int64{2}, []int64{1, 2})},
			want:    routing.Comparison{LabelRows: 2, AgreedRows: 0},
		},
		{
			name:    "unknown dtype",
			primary: outs{"s": ts(tensor.Invalid, []int64{1}, []string{"x"})},
			shadow:  outs{"s": ts(tensor.Invalid, []int64{1}, []string{"x"})},
			want:    routing.Comparison{Mismatched: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := routing.Compare(tc.primary, tc.shadow)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Compare (-want +got):\n%s", diff)
			}
		})
	}
}

func ExampleCompare() {
	primary := map[string]*tensor.Tensor{
		"label": {DType: tensor.Int64, Shape: []int64{4}, Data: []int64{1, 2, 3, 4}},
		"score": {DType: tensor.Float32, Shape: []int64{4}, Data: []float32{0.5, 0.5, 0.5, 0.5}},
	}
	shadow := map[string]*tensor.Tensor{
		"label": {DType: tensor.Int64, Shape: []int64{4}, Data: []int64{1, 2, 3, 0}},
		"score": {DType: tensor.Float32, Shape: []int64{4}, Data: []float32{0.5, 0.25, 0.5, 0.5}},
	}
	c := routing.Compare(primary, shadow)
	fmt.Printf("%d of %d rows agree; max abs diff %g\n", c.AgreedRows, c.LabelRows, c.MaxAbsDiff)
	// Output: 3 of 4 rows agree; max abs diff 0.25
}
