package runtime

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/corvidml/corvid/kernels"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// fuseCase is a one-layer graph whose chain fuse.go rewrites, with its
// input's shape at batch 2.
type fuseCase struct {
	name string
	g    *onnx.Graph
	x    []int64
	// fused is how many steps remain once fused (1: the whole chain).
	fused int
}

func fuseCases() []fuseCase {
	r := rand.New(rand.NewPCG(11, 12))
	f32 := func(shape ...int64) *tensor.Tensor { return leanRand(r, shape...) }
	graph := func(x []int64, y string, init map[string]*tensor.Tensor, nodes ...onnx.Node) *onnx.Graph {
		xs := append([]int64{-1}, x[1:]...)
		return &onnx.Graph{
			Opsets:       map[string]int64{onnx.DomainDefault: 17},
			Inputs:       []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: xs}},
			Outputs:      []onnx.ValueInfo{{Name: y, DType: tensor.Float32}},
			Initializers: init,
			Nodes:        nodes,
		}
	}
	mm := onnx.Node{Name: "mm", OpType: "MatMul", Inputs: []string{"x", "w"}, Outputs: []string{"m"}}
	add := func(a, b string) onnx.Node {
		return onnx.Node{Name: "add", OpType: "Add", Inputs: []string{a, b}, Outputs: []string{"a"}}
	}
	relu := func(in string) onnx.Node {
		return onnx.Node{Name: "relu", OpType: "Relu", Inputs: []string{in}, Outputs: []string{"y"}}
	}
	gemm := func(trans int64, alpha, beta float32, c ...string) onnx.Node {
		return onnx.Node{Name: "gemm", OpType: "Gemm", Inputs: append([]string{"x", "w"}, c...), Outputs: []string{"g"},
			Attrs: map[string]onnx.Attr{
				"transB": {Type: onnx.AttrInt, Int: trans},
				"alpha":  {Type: onnx.AttrFloat, Float: alpha},
				"beta":   {Type: onnx.AttrFloat, Float: beta},
			}}
	}
	conv := func(attrs map[string]onnx.Attr, in ...string) onnx.Node {
		return onnx.Node{Name: "conv", OpType: "Conv", Inputs: append([]string{"x"}, in...), Outputs: []string{"c"}, Attrs: attrs}
	}
	ints := func(v ...int64) onnx.Attr { return onnx.Attr{Type: onnx.AttrInts, Ints: v} }
	return []fuseCase{
		{"matmul", graph([]int64{2, 70}, "m", map[string]*tensor.Tensor{"w": f32(70, 33)}, mm), []int64{2, 70}, 1},
		{"matmul_3d_bias_relu", graph([]int64{2, 5, 64}, "y", map[string]*tensor.Tensor{"w": f32(64, 130), "b": f32(130)},
			mm, add("m", "b"), relu("a")), []int64{2, 5, 64}, 1},
		{"matmul_bias_first_row", graph([]int64{2, 16}, "a", map[string]*tensor.Tensor{"w": f32(16, 9), "b": f32(1, 9)},
			mm, add("b", "m")), []int64{2, 16}, 1},
		{"matmul_bias_scalar", graph([]int64{2, 16}, "a", map[string]*tensor.Tensor{"w": f32(16, 9), "b": f32()},
			mm, add("m", "b")), []int64{2, 16}, 1},
		// Adding a computed value is no bias: the Add stays.
		{"matmul_add_self", graph([]int64{2, 16}, "a", map[string]*tensor.Tensor{"w": f32(16, 9)},
			mm, add("m", "m")), []int64{2, 16}, 2},
		{"gemm_transb_alpha_beta_relu", graph([]int64{2, 40}, "y", map[string]*tensor.Tensor{"w": f32(24, 40), "c": f32(24)},
			gemm(1, 0.5, 2, "c"), relu("g")), []int64{2, 40}, 1},
		{"gemm_row_c", graph([]int64{2, 40}, "g", map[string]*tensor.Tensor{"w": f32(40, 24), "c": f32(1, 24)},
			gemm(0, 1, 1, "c")), []int64{2, 40}, 1},
		{"gemm_no_c", graph([]int64{2, 300}, "g", map[string]*tensor.Tensor{"w": f32(300, 70)},
			gemm(0, 1.5, 1)), []int64{2, 300}, 1},
		{"conv_bias_relu", graph([]int64{2, 3, 9, 8}, "y", map[string]*tensor.Tensor{"w": f32(8, 3, 3, 3), "b": f32(8)},
			conv(map[string]onnx.Attr{"pads": ints(1, 1, 1, 1)}, "w", "b"), relu("c")), []int64{2, 3, 9, 8}, 1},
		{"conv_group_stride", graph([]int64{2, 4, 7, 7}, "c", map[string]*tensor.Tensor{"w": f32(6, 2, 3, 2)},
			conv(map[string]onnx.Attr{"group": {Type: onnx.AttrInt, Int: 2}, "strides": ints(2, 1)}, "w")), []int64{2, 4, 7, 7}, 1},
		{"conv_1x1", graph([]int64{2, 16, 5, 5}, "c", map[string]*tensor.Tensor{"w": f32(12, 16, 1, 1), "b": f32(12)},
			conv(nil, "w", "b")), []int64{2, 16, 5, 5}, 1},
	}
}

func compileQ(t testing.TB, g *onnx.Graph, mode Quantization, ranges map[string]Range) *Model {
	t.Helper()
	m, err := Compile(g, Options{Workers: 1, MaxBatch: 4, Quantization: mode, Ranges: ranges})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func runOne(t testing.TB, m *Model, x *tensor.Tensor) []float32 {
	t.Helper()
	out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": x}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range out {
		return v.Data.([]float32)
	}
	t.Fatal("no output")
	return nil
}

// TestFusedMatchesUnfused: in float32, the fused ops compute what the nodes
// they replace compute, up to the order of float additions.
func TestFusedMatchesUnfused(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range fuseCases() {
		t.Run(c.name, func(t *testing.T) {
			fused := compileQ(t, c.g, QuantFP32, nil)
			if n := len(fused.plan.steps); n != c.fused {
				t.Errorf("%d steps after fusion, want %d: %v", n, c.fused, fused.plan.steps)
			}
			unfused = true
			plain := compileQ(t, c.g, QuantFP32, nil)
			unfused = false
			x := leanRand(r, c.x...)
			got, want := runOne(t, fused, x), runOne(t, plain, x)
			if len(got) != len(want) {
				t.Fatalf("%d outputs, want %d", len(got), len(want))
			}
			for i := range got {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("output %d: fused %v, unfused %v", i, got[i], want[i])
				}
			}
		})
	}
}

// TestInt8WithinQuantizationError checks the int8 modes against float32
// with a bound derived from the quantization steps, per output element:
// with x ≈ sx*(qx-zx) to within sx/2 and w ≈ sw*qw to within sw/2,
//
//	|Σ x w - Σ x' w'| <= Σ_k (|x_k| sw/2 + |w_k| sx/2 + sx sw/4)
//
// which the test bounds further by using each layer's largest |x| and
// |w| (ReLU only shrinks differences). The dense cases check every element
// against it.
func TestInt8WithinQuantizationError(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range fuseCases() {
		for _, mode := range []Quantization{QuantInt8Dynamic, QuantInt8Static} {
			t.Run(c.name+"/"+mode.String(), func(t *testing.T) {
				x := leanRand(r, c.x...)
				xd := x.Data.([]float32)
				lo, hi := kernels.MinMax(xd)
				var ranges map[string]Range
				if mode == QuantInt8Static {
					ranges = map[string]Range{"x": {lo, hi}}
				}
				q := compileQ(t, c.g, mode, ranges)
				fp := compileQ(t, c.g, QuantFP32, nil)
				got, want := runOne(t, q, x), runOne(t, fp, x)
				w := c.g.Initializers["w"]
				wd := w.Data.([]float32)
				var wmax, xmax float64
				for _, v := range wd {
					wmax = max(wmax, math.Abs(float64(v)))
				}
				for _, v := range xd {
					xmax = max(xmax, math.Abs(float64(v)))
				}
				alpha := 1.0
				if g := c.g.Nodes[0]; g.OpType == "Gemm" {
					alpha = math.Abs(float64(g.Float("alpha", 1)))
				}
				kk := len(wd) / int(w.Shape[0]) // Conv: C/group * kernel
				if c.g.Nodes[0].OpType != "Conv" {
					kk = int(w.Shape[0])
					if c.g.Nodes[0].Int("transB", 0) != 0 {
						kk = int(w.Shape[1])
					}
				}
				sx := float64(hi-min(lo, 0)) / 255
				sw := wmax / 127
				bound := alpha*float64(kk)*(xmax*sw/2+wmax*sx/2+sx*sw/4) + 1e-4*(1+xmax*wmax*float64(kk))
				worst := 0.0
				for i := range got {
					worst = max(worst, math.Abs(float64(got[i]-want[i])))
				}
				if worst > bound {
					t.Fatalf("max |int8 - fp32| = %g, bound %g", worst, bound)
				}
				if worst == 0 {
					t.Fatalf("int8 equals fp32 exactly: is the int8 path running?")
				}
				t.Logf("max |int8 - fp32| = %.3g (bound %.3g)", worst, bound)
			})
		}
	}
}

// TestInt8DynamicRowsIndependent: per-row quantization makes each row's
// result the same bits whatever else is in the batch.
func TestInt8DynamicRowsIndependent(t *testing.T) {
	for _, c := range fuseCases()[:2] {
		r := rand.New(rand.NewPCG(7, 8))
		m := compileQ(t, c.g, QuantInt8Dynamic, nil)
		x := leanRand(r, c.x...)
		both := runOne(t, m, x)
		row := len(x.Data.([]float32)) / 2
		one := &tensor.Tensor{DType: tensor.Float32, Shape: append([]int64{1}, c.x[1:]...), Data: x.Data.([]float32)[row:]}
		second := runOne(t, m, one)
		// Scale the first row by 100: the second's result must not move.
		x.Data.([]float32)[0] *= 100
		again := runOne(t, m, x)
		n := len(second)
		for i := range n {
			if both[n+i] != second[i] || again[n+i] != second[i] {
				t.Fatalf("%s: row 2 element %d: %v in a batch, %v alone, %v beside a changed row", c.name, i, both[n+i], second[i], again[n+i])
			}
		}
	}
}

func TestInt8StaticNeedsRanges(t *testing.T) {
	c := fuseCases()[0]
	_, err := Compile(c.g, Options{Quantization: QuantInt8Static})
	if err == nil || !strings.Contains(err.Error(), `no range for its input "x"`) {
		t.Fatalf("got %v, want an error naming the input without a range", err)
	}
	_, err = Compile(c.g, Options{Quantization: QuantInt8Static, Ranges: map[string]Range{"x": {float32(math.Inf(-1)), 1}}})
	if err == nil || !strings.Contains(err.Error(), "want finite bounds") {
		t.Fatalf("got %v, want an error about the infinite range", err)
	}
	for _, s := range []string{"int8", "INT8-DYNAMIC", "fp16"} {
		if _, err := ParseQuantization(s); err == nil {
			t.Errorf("ParseQuantization(%q) accepted", s)
		}
	}
}

// qdqGraph is x -> QuantizeLinear -> DequantizeLinear -> op, with W =
// DequantizeLinear(int8 constant, per-channel scales): what ONNX Runtime's
// quantize_static writes. op is "MatMul" or "Conv"; signed makes the
// activations int8 rather than uint8.
func qdqGraph(r *rand.Rand, op string, signed bool) (*onnx.Graph, []int64) {
	scalar := func(v float32) *tensor.Tensor {
		return &tensor.Tensor{DType: tensor.Float32, Shape: []int64{}, Data: []float32{v}}
	}
	var wShape []int64
	var axis int64
	var x []int64
	switch op {
	case "MatMul":
		wShape, axis, x = []int64{48, 20}, 1, []int64{3, 48}
	default:
		wShape, axis, x = []int64{6, 2, 3, 3}, 0, []int64{3, 2, 6, 6}
	}
	n := 1
	for _, d := range wShape {
		n *= int(d)
	}
	wq := make([]int8, n)
	for i := range wq {
		wq[i] = int8(r.IntN(255) - 127)
	}
	outC := wShape[axis]
	ws := make([]float32, outC)
	for i := range ws {
		ws[i] = 0.001 + r.Float32()*0.01
	}
	init := map[string]*tensor.Tensor{
		"wq": {DType: tensor.Int8, Shape: wShape, Data: wq},
		"ws": {DType: tensor.Float32, Shape: []int64{outC}, Data: ws},
		"wz": {DType: tensor.Int8, Shape: []int64{outC}, Data: make([]int8, outC)},
		"xs": scalar(0.03),
		"xz": {DType: tensor.Uint8, Shape: []int64{}, Data: []uint8{131}},
		"b":  leanRand(r, outC),
	}
	if signed {
		init["xz"] = &tensor.Tensor{DType: tensor.Int8, Shape: []int64{}, Data: []int8{-5}}
	}
	xs := append([]int64{-1}, x[1:]...)
	return &onnx.Graph{
		Opsets:       map[string]int64{onnx.DomainDefault: 17},
		Inputs:       []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: xs}},
		Outputs:      []onnx.ValueInfo{{Name: "y", DType: tensor.Float32}},
		Initializers: init,
		Nodes: []onnx.Node{
			{Name: "wdq", OpType: "DequantizeLinear", Inputs: []string{"wq", "ws", "wz"}, Outputs: []string{"w"},
				Attrs: map[string]onnx.Attr{"axis": {Type: onnx.AttrInt, Int: axis}}},
			{Name: "q", OpType: "QuantizeLinear", Inputs: []string{"x", "xs", "xz"}, Outputs: []string{"xq"}},
			{Name: "dq", OpType: "DequantizeLinear", Inputs: []string{"xq", "xs", "xz"}, Outputs: []string{"xd"}},
			qdqOp(op),
			{Name: "relu", OpType: "Relu", Inputs: []string{"o"}, Outputs: []string{"y"}},
		},
	}, x
}

func qdqOp(op string) onnx.Node {
	if op == "MatMul" {
		return onnx.Node{Name: "op", OpType: "Gemm", Inputs: []string{"xd", "w", "b"}, Outputs: []string{"o"}}
	}
	return onnx.Node{Name: "op", OpType: "Conv", Inputs: []string{"xd", "w", "b"}, Outputs: []string{"o"},
		Attrs: map[string]onnx.Attr{"pads": {Type: onnx.AttrInts, Ints: []int64{1, 0, 1, 0}}}}
}

// TestQDQRunsOnInt8: the QDQ chain becomes one int8 op whose result is the
// QDQ graph's own (computed node by node, unfused) up to float rounding.
func TestQDQRunsOnInt8(t *testing.T) {
	for _, c := range []struct {
		op     string
		signed bool
	}{{"MatMul", false}, {"MatMul", true}, {"Conv", false}, {"Conv", true}} {
		t.Run(fmt.Sprintf("%s/signed=%t", c.op, c.signed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(9, 10))
			g, xs := qdqGraph(r, c.op, c.signed)
			for _, mode := range []Quantization{QuantFP32, QuantInt8Dynamic} {
				m := compileQ(t, g, mode, nil)
				if len(m.plan.steps) != 1 || m.plan.steps[0].Domain != fusedDomain {
					t.Fatalf("%v: steps %v, want one fused op", mode, m.plan.steps)
				}
				desc := fmt.Sprint(instanceOf(t, m, 1).r.(*leanRunner).steps[0].op)
				if !strings.Contains(desc, "int8 qdq") {
					t.Errorf("%v: op %s, want the int8 QDQ path", mode, desc)
				}
			}
			unfused = true
			plain := compileQ(t, g, QuantFP32, nil)
			unfused = false
			fused := compileQ(t, g, QuantFP32, nil)
			x := leanRand(r, xs...)
			for i, v := range x.Data.([]float32) {
				x.Data.([]float32)[i] = v * 2 // some values saturate the u8 range
			}
			got, want := runOne(t, fused, x), runOne(t, plain, x)
			for i := range got {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("output %d: fused int8 %v, QDQ graph %v", i, got[i], want[i])
				}
			}
		})
	}
}

// BenchmarkQuantModes runs the digits MLP and the 768-3072-768 MLP in each
// quantization mode at batch 1 and 32 on one worker: Model.Run (the whole
// request path), the lean runner alone (exec) and the same kernels called
// in a straight line (kernels); exec minus kernels is the executor's own
// cost. Compare the modes' Run times within one run for the int8 speedup.
func BenchmarkQuantModes(b *testing.B) {
	models := []struct {
		name string
		g    *onnx.Graph
	}{
		{"digits-64-16-10", leanDigits(b)},
		{"mlp-768-3072-768", leanMLP(768, 3072, 768)},
	}
	for _, mc := range models {
		names, err := QuantizableInputs(mc.g)
		if err != nil {
			b.Fatal(err)
		}
		ranges := map[string]Range{}
		for _, n := range names {
			ranges[n] = Range{-4, 4} // timing does not depend on the values
		}
		for _, batch := range []int{1, 32} {
			in := mc.g.Inputs[0]
			x := leanRand(rand.New(rand.NewPCG(3, 4)), int64(batch), in.Shape[1])
			inputs := map[string]*tensor.Tensor{in.Name: x}
			ctx := context.Background()
			for _, mode := range []Quantization{QuantFP32, QuantInt8Dynamic, QuantInt8Static} {
				m, err := Compile(mc.g, Options{Workers: 1, Quantization: mode, Ranges: ranges})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := m.Run(ctx, inputs, nil); err != nil {
					b.Fatal(err)
				}
				inst := instanceOf(b, m, batch)
				prefix := fmt.Sprintf("%s/batch=%d/%v/", mc.name, batch, mode)
				bare := bareKernels(b, inst.r.(*leanRunner))
				b.Run(prefix+"kernels", func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						bare()
					}
				})
				b.Run(prefix+"exec", func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if err := inst.r.run(); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run(prefix+"Run", func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if _, err := m.Run(ctx, inputs, nil); err != nil {
							b.Fatal(err)
						}
					}
				})
				m.Close()
			}
		}
	}
}

func TestFlushSubnormals(t *testing.T) {
	w := []float32{1e-40, 1, -1e-39, 0, 0x1p-126, -0x1p-126}
	got, changed := flushSubnormals(w)
	if want := []float32{0, 1, 0, 0, 0x1p-126, -0x1p-126}; !changed || !slices.Equal(got, want) {
		t.Errorf("flushSubnormals = %v, %t; want %v, true", got, changed, want)
	}
	if w[0] != 1e-40 {
		t.Error("flushSubnormals changed its input")
	}
	if got, changed := flushSubnormals([]float32{1, 2}); changed || len(got) != 2 {
		t.Errorf("no subnormals: %v %t", got, changed)
	}
	if _, changed := flushSubnormals(nil); changed {
		t.Error("empty slice changed")
	}
}

// TestWarm: Warm builds every batch bucket's graph on every worker.
func TestWarm(t *testing.T) {
	m, err := Compile(leanMLP(16, 8, 4), Options{Workers: 3, MaxBatch: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range m.nworkers {
		w := <-m.workers
		defer func() { m.workers <- w }()
		if len(w.instances) != len(m.buckets) {
			t.Errorf("a worker has %d graphs after Warm, want one per bucket (%v)", len(w.instances), m.buckets)
		}
	}
}
