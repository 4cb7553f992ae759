package batching

import (
	"fmt"
	"slices"

	"github.com/corvidml/corvid/server/tensor"
)

// concat stacks the requests' tensors of one input along axis 0. The
// requests were grouped by their dimensions after the first and checked
// against the input's dtype, so only the first dimension differs.
func concat(parts []*tensor.Tensor, rows int) *tensor.Tensor {
	n := 0
	for _, p := range parts {
		n += p.Len()
	}
	shape := slices.Clone(parts[0].Shape)
	shape[0] = int64(rows)
	var data any
	switch parts[0].DType {
	case tensor.Float32:
		data = concatData[float32](parts, n)
	case tensor.Float64:
		data = concatData[float64](parts, n)
	case tensor.Int8:
		data = concatData[int8](parts, n)
	case tensor.Uint8:
		data = concatData[uint8](parts, n)
	case tensor.Int32:
		data = concatData[int32](parts, n)
	case tensor.Int64:
		data = concatData[int64](parts, n)
	case tensor.Bool:
		data = concatData[bool](parts, n)
	}
	return &tensor.Tensor{DType: parts[0].DType, Shape: shape, Data: data}
}

func concatData[T any](parts []*tensor.Tensor, n int) []T {
	out := make([]T, 0, n)
	for _, p := range parts {
		out = append(out, p.Data.([]T)...)
	}
	return out
}

// split hands each request its rows of every output of a batch of total
// rows: rows[i] rows for request i, in order. An output's first dimension
// may be a multiple k of the batch (k rows per item); each request then
// gets k*rows[i]. The pieces share the output's memory, each capped so
// that appending to one cannot reach the next.
func split(out map[string]*tensor.Tensor, rows []int, total int) ([]map[string]*tensor.Tensor, error) {
	res := make([]map[string]*tensor.Tensor, len(rows))
	for i := range res {
		res[i] = make(map[string]*tensor.Tensor, len(out))
	}
	// One allocation for every piece's tensor and one for their shapes.
	pieces := make([]tensor.Tensor, 0, len(rows)*len(out))
	rank := 0
	for _, t := range out {
		if t != nil {
			rank += len(t.Shape)
		}
	}
	shapes := make([]int64, 0, len(rows)*rank)
	for name, t := range out {
		if t == nil {
			return nil, fmt.Errorf("output %q: missing from the batch's results", name)
		}
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("output %q: %w", name, err)
		}
		if len(t.Shape) == 0 || t.Shape[0] == 0 || t.Shape[0]%int64(total) != 0 {
			return nil, fmt.Errorf("output %q: shape %v for a batch of %d rows: its first dimension does not follow the batch", name, t.Shape, total)
		}
		k := int(t.Shape[0]) / total
		per := t.Len() / int(t.Shape[0]) // elements per row of the output
		off := 0
		for i, r := range rows {
			a, b := off*k*per, (off+r)*k*per
			n := len(shapes)
			shapes = append(shapes, t.Shape...)
			shape := shapes[n:len(shapes):len(shapes)]
			shape[0] = int64(r * k)
			pieces = append(pieces, tensor.Tensor{DType: t.DType, Shape: shape, Data: sliceData(t.Data, a, b)})
			res[i][name] = &pieces[len(pieces)-1]
			off += r
		}
	}
	return res, nil
}

// sliceData returns data[a:b:b] for any of the tensor slice types.
func sliceData(data any, a, b int) any {
	switch d := data.(type) {
	case []float32:
		return d[a:b:b]
	case []float64:
		return d[a:b:b]
	case []int8:
		return d[a:b:b]
	case []uint8:
		return d[a:b:b]
	case []int32:
		return d[a:b:b]
	case []int64:
		return d[a:b:b]
	case []bool:
		return d[a:b:b]
	}
	return nil // unreachable: the tensor was validated
}
