package quantize

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
	"github.com/corvidml/corvid/kernels"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/runtime"
	"github.com/corvidml/corvid/server/tensor"
)

// ErrCalibration reports calibration data that does not fit the model:
// a missing or unknown input, a wrong dtype or shape, no rows.
var ErrCalibration = errors.New("invalid calibration data")

// Range is the smallest and largest value a tensor took over a calibration
// set (NaNs ignored).
type Range struct{ Min, Max float32 }

// CalibrateOptions configures Calibrate. The zero value is ready to use.
type CalibrateOptions struct {
	// Runtime configures the model compiled to compute the values; its
	// MaxBatch bounds the rows run at once.
	Runtime runtime.Options
}

// Calibrate runs the float32 model on every batch and returns the range of
// each named value: graph inputs and initializers are read directly, other
// values are added to the model as graph outputs and computed. Each named
// value must be float32. A batch larger than the compiled model's maximum
// batch is run in slices of at most that many rows.
func Calibrate(ctx context.Context, model []byte, names []string, batches []map[string]*tensor.Tensor, opts CalibrateOptions) (map[string]Range, error) {
	g, err := onnx.Decode(model)
	if err != nil {
		return nil, err
	}
	if len(batches) == 0 {
		return nil, fmt.Errorf("%w: no calibration batches", ErrCalibration)
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(model, &mp); err != nil {
		return nil, fmt.Errorf("%w: %v", onnx.ErrInvalidModel, err)
	}
	known := valueKinds(g)
	outputs := map[string]bool{}
	for _, o := range g.Outputs {
		outputs[o.Name] = true
	}
	var computed []string // values read from Run's outputs
	var fromInput []string
	ranges := map[string]Range{}
	for _, name := range slices.Compact(slices.Sorted(slices.Values(names))) {
		switch known[name] {
		case "":
			return nil, fmt.Errorf("%w: value %q is not in the model", ErrCalibration, name)
		case "input":
			fromInput = append(fromInput, name)
		case "initializer":
			r, err := rangeOf(g.Initializers[name])
			if err != nil {
				return nil, fmt.Errorf("initializer %q: %w", name, err)
			}
			ranges[name] = r
		default:
			computed = append(computed, name)
			if !outputs[name] {
				mp.Graph.Output = append(mp.Graph.Output, &onnxpb.ValueInfoProto{Name: name, Type: floatType()})
			}
		}
	}
	m, err := compileFor(&mp, opts.Runtime)
	if err != nil {
		return nil, fmt.Errorf("compiling the model with the values to calibrate as outputs: %w", err)
	}
	defer m.Close()

	seen := map[string]bool{}
	update := func(name string, t *tensor.Tensor) error {
		r, err := rangeOf(t)
		if err != nil {
			return fmt.Errorf("value %q: %w", name, err)
		}
		if t.Len() == 0 {
			return nil
		}
		if old, ok := ranges[name]; ok && seen[name] {
			r = Range{min(old.Min, r.Min), max(old.Max, r.Max)}
		}
		ranges[name], seen[name] = r, true
		return nil
	}
	for bi, batch := range batches {
		parts, err := splitBatch(m.Inputs(), batch, m.MaxBatch())
		if err != nil {
			return nil, fmt.Errorf("batch %d: %w", bi, err)
		}
		for _, part := range parts {
			for _, name := range fromInput {
				if err := update(name, part[name]); err != nil {
					return nil, fmt.Errorf("batch %d: input %w", bi, err)
				}
			}
			if len(computed) == 0 {
				continue
			}
			res, err := m.Run(ctx, part, computed)
			if err != nil {
				return nil, fmt.Errorf("batch %d: %w", bi, err)
			}
			for _, name := range computed {
				if err := update(name, res[name]); err != nil {
					return nil, fmt.Errorf("batch %d: %w", bi, err)
				}
			}
		}
	}
	for _, name := range append(fromInput, computed...) {
		if !seen[name] {
			return nil, fmt.Errorf("%w: value %q was empty in every batch", ErrCalibration, name)
		}
	}
	return ranges, nil
}

// compileFor decodes and compiles an edited model.
func compileFor(mp *onnxpb.ModelProto, opts runtime.Options) (*runtime.Model, error) {
	b, err := proto.Marshal(mp)
	if err != nil {
		return nil, err
	}
	g, err := onnx.Decode(b)
	if err != nil {
		return nil, err
	}
	return runtime.Compile(g, opts)
}

// valueKinds maps every value name of g to "input", "initializer" or
// "node".
func valueKinds(g *onnx.Graph) map[string]string {
	kinds := map[string]string{}
	for _, in := range g.Inputs {
		kinds[in.Name] = "input"
	}
	for name := range g.Initializers {
		kinds[name] = "initializer"
	}
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o != "" {
				kinds[o] = "node"
			}
		}
	}
	return kinds
}

func floatType() *onnxpb.TypeProto {
	return &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
		ElemType: int32(onnxpb.TensorProto_FLOAT)}}}
}

func rangeOf(t *tensor.Tensor) (Range, error) {
	if t == nil {
		return Range{}, errors.New("missing")
	}
	d, ok := t.Data.([]float32)
	if !ok {
		return Range{}, fmt.Errorf("is %v, want fp32", t.DType)
	}
	lo, hi := kernels.MinMax(d)
	if math.IsInf(float64(lo), 0) || math.IsInf(float64(hi), 0) {
		return Range{}, fmt.Errorf("holds an infinite value; its range cannot be quantized")
	}
	return Range{lo, hi}, nil
}

// splitBatch slices a batch into parts the model accepts: inputs whose
// declared first dimension is dynamic are cut into slices of at most
// maxBatch rows; a model compiled for batch 1 (a declared first dimension
// of 1) takes the rows one at a time. Other inputs go whole into every
// part.
func splitBatch(inputs []onnx.ValueInfo, batch map[string]*tensor.Tensor, maxBatch int) ([]map[string]*tensor.Tensor, error) {
	rows, step := -1, maxBatch
	var rowed []string
	for _, in := range inputs {
		t := batch[in.Name]
		if t == nil {
			return nil, fmt.Errorf("%w: no array for input %q: got %v", ErrCalibration, in.Name, slices.Sorted(maps.Keys(batch)))
		}
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("%w: input %q: %v", ErrCalibration, in.Name, err)
		}
		if len(in.Shape) == 0 || len(t.Shape) != len(in.Shape) {
			continue // the runtime names the mismatch
		}
		d := in.Shape[0]
		if d != -1 && !(d == 1 && t.Shape[0] != 1) {
			continue
		}
		if d == 1 {
			step = 1
		}
		n := int(t.Shape[0])
		if rows >= 0 && n != rows {
			return nil, fmt.Errorf("%w: input %q has %d rows, input %q has %d", ErrCalibration, in.Name, n, rowed[0], rows)
		}
		rows = n
		rowed = append(rowed, in.Name)
	}
	if rows < 0 || rows <= step {
		return []map[string]*tensor.Tensor{batch}, nil
	}
	var parts []map[string]*tensor.Tensor
	for lo := 0; lo < rows; lo += step {
		hi := min(lo+step, rows)
		part := maps.Clone(batch)
		for _, name := range rowed {
			part[name] = sliceRows(batch[name], lo, hi)
		}
		parts = append(parts, part)
	}
	return parts, nil
}

// sliceRows returns rows [lo, hi) of t's first axis, sharing t's data.
func sliceRows(t *tensor.Tensor, lo, hi int) *tensor.Tensor {
	per := 1
	for _, d := range t.Shape[1:] {
		per *= int(d)
	}
	shape := slices.Clone(t.Shape)
	shape[0] = int64(hi - lo)
	a, b := lo*per, hi*per
	var data any
	switch d := t.Data.(type) {
	case []float32:
		data = d[a:b]
	case []float64:
		data = d[a:b]
	case []int8:
		data = d[a:b]
	case []uint8:
		data = d[a:b]
	case []int32:
		data = d[a:b]
	case []int64:
		data = d[a:b]
	case []bool:
		data = d[a:b]
	}
	return &tensor.Tensor{DType: t.DType, Shape: shape, Data: data}
}
