package runtime

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// leanGraph is a small float model that takes every path of the lean
// runner: Gorgonia's MatMul (UsePreallocDo), Sigmoid and Tanh (UnsafeDo
// into a buffer), and Corvid's kernels (Gemm's bias, Relu, Softmax).
func leanGraph() *onnx.Graph {
	r := rand.New(rand.NewPCG(5, 6))
	return &onnx.Graph{
		Opsets:  map[string]int64{onnx.DomainDefault: 17},
		Inputs:  []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 8}}},
		Outputs: []onnx.ValueInfo{{Name: "p", DType: tensor.Float32, Shape: []int64{-1, 4}}, {Name: "h", DType: tensor.Float32, Shape: []int64{-1, 6}}},
		Initializers: map[string]*tensor.Tensor{
			"w1": leanRand(r, 8, 6), "w2": leanRand(r, 6, 4), "b2": leanRand(r, 4),
		},
		Nodes: []onnx.Node{
			{Name: "mm", OpType: "MatMul", Inputs: []string{"x", "w1"}, Outputs: []string{"m"}},
			{Name: "sig", OpType: "Sigmoid", Inputs: []string{"m"}, Outputs: []string{"s"}},
			{Name: "tanh", OpType: "Tanh", Inputs: []string{"m"}, Outputs: []string{"t"}},
			{Name: "add", OpType: "Add", Inputs: []string{"s", "t"}, Outputs: []string{"h"}},
			{Name: "gemm", OpType: "Gemm", Inputs: []string{"h", "w2", "b2"}, Outputs: []string{"g"}},
			{Name: "relu", OpType: "Relu", Inputs: []string{"g"}, Outputs: []string{"gr"}},
			{Name: "softmax", OpType: "Softmax", Inputs: []string{"gr"}, Outputs: []string{"p"}},
		},
	}
}

// leanMLP is the fp32 MLP of PERF.md's measurements: Gemm + Relu layers
// and a Softmax, random weights.
func leanMLP(sizes ...int64) *onnx.Graph {
	r := rand.New(rand.NewPCG(1, 2))
	g := &onnx.Graph{
		Opsets:       map[string]int64{onnx.DomainDefault: 17},
		Inputs:       []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, sizes[0]}}},
		Outputs:      []onnx.ValueInfo{{Name: "probs", DType: tensor.Float32, Shape: []int64{-1, sizes[len(sizes)-1]}}},
		Initializers: make(map[string]*tensor.Tensor),
	}
	prev := "x"
	for i := 1; i < len(sizes); i++ {
		w, b, out := fmt.Sprintf("w%d", i), fmt.Sprintf("b%d", i), fmt.Sprintf("h%d", i)
		g.Initializers[w] = leanRand(r, sizes[i-1], sizes[i])
		g.Initializers[b] = leanRand(r, sizes[i])
		g.Nodes = append(g.Nodes, onnx.Node{Name: "gemm" + out, OpType: "Gemm", Inputs: []string{prev, w, b}, Outputs: []string{out}})
		prev = out
		if i < len(sizes)-1 {
			g.Nodes = append(g.Nodes, onnx.Node{Name: "relu" + out, OpType: "Relu", Inputs: []string{out}, Outputs: []string{out + "r"}})
			prev = out + "r"
		}
	}
	g.Nodes = append(g.Nodes, onnx.Node{Name: "softmax", OpType: "Softmax", Inputs: []string{prev}, Outputs: []string{"probs"}})
	return g
}

// leanChain is n Relu ops in a row on a [N 4] input.
func leanChain(n int) *onnx.Graph {
	g := &onnx.Graph{
		Opsets:  map[string]int64{onnx.DomainDefault: 17},
		Inputs:  []onnx.ValueInfo{{Name: "v0", DType: tensor.Float32, Shape: []int64{-1, 4}}},
		Outputs: []onnx.ValueInfo{{Name: fmt.Sprintf("v%d", n), DType: tensor.Float32, Shape: []int64{-1, 4}}},
	}
	for i := range n {
		g.Nodes = append(g.Nodes, onnx.Node{Name: fmt.Sprintf("relu%d", i), OpType: "Relu", Inputs: []string{fmt.Sprintf("v%d", i)}, Outputs: []string{fmt.Sprintf("v%d", i+1)}})
	}
	return g
}

// leanDigits is the digits model the server serves by default (sklearn
// MLP 64-16-10 with ArgMax, Cast, Reshape, ArrayFeatureExtractor).
func leanDigits(t testing.TB) *onnx.Graph {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "ops", "sklearn_mlp", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := onnx.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func leanRand(r *rand.Rand, shape ...int64) *tensor.Tensor {
	t, _ := tensor.New(tensor.Float32, shape)
	for i := range t.Data.([]float32) {
		t.Data.([]float32)[i] = float32(r.NormFloat64())
	}
	return t
}

// compileWith compiles g with the runner kind ("lean" or "tape").
func compileWith(t testing.TB, kind string, g *onnx.Graph) *Model {
	t.Helper()
	t.Setenv(RunnerEnv, kind)
	m, err := Compile(g, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// instanceOf returns the compiled graph of m's only worker for a batch
// bucket. The caller must not Run m while it uses the instance.
func instanceOf(t testing.TB, m *Model, batch int) *instance {
	t.Helper()
	w := <-m.workers
	defer func() { m.workers <- w }()
	inst := w.instances[keyOf(slices.Index(m.buckets, batch), nil)]
	if inst == nil {
		t.Fatalf("no graph for batch %d", batch)
	}
	return inst
}

func TestLeanRunnerIsDefault(t *testing.T) {
	for kind, want := range map[string]string{"": "*runtime.leanRunner", "lean": "*runtime.leanRunner", "tape": "*runtime.tapeRunner"} {
		m := compileWith(t, kind, leanGraph())
		if got := fmt.Sprintf("%T", instanceOf(t, m, 1).r); got != want {
			t.Errorf("%s=%q: runner %s, want %s", RunnerEnv, kind, got, want)
		}
	}
	// Unfused, leanGraph takes every way of calling an op; fused, its
	// MatMul, Gemm and Relu become Corvid's own ops.
	for _, off := range []bool{true, false} {
		unfused = off
		modes := map[leanMode]int{}
		for _, s := range instanceOf(t, compileWith(t, "", leanGraph()), 1).r.(*leanRunner).steps {
			modes[s.mode]++
		}
		unfused = false
		want := map[leanMode]int{leanUnary: 2, leanDo: 4}
		if off {
			want = map[leanMode]int{leanGemm: 2, leanUnary: 2, leanDo: 4}
		}
		if !maps.Equal(modes, want) {
			t.Errorf("unfused=%t: steps per mode %v, want %v", off, modes, want)
		}
	}
	t.Setenv(RunnerEnv, "vm")
	if _, err := Compile(leanGraph(), Options{Workers: 1}); err == nil || !strings.Contains(err.Error(), RunnerEnv) {
		t.Errorf("%s=vm: got %v, want an error naming %s", RunnerEnv, err, RunnerEnv)
	}
}

// TestLeanMatchesTape runs the same requests through both runners: the
// results must be identical (the same ops run on the same values), run
// after run on reused buffers, at every batch bucket.
func TestLeanMatchesTape(t *testing.T) {
	graphs := map[string]*onnx.Graph{"ops": leanGraph(), "mlp": leanMLP(20, 16, 12, 5), "digits": leanDigits(t)}
	for name, g := range graphs {
		t.Run(name, func(t *testing.T) {
			tape, lean := compileWith(t, "tape", g), compileWith(t, "lean", g)
			in := lean.Inputs()[0]
			r := rand.New(rand.NewPCG(7, 8))
			ctx := context.Background()
			for _, n := range []int64{1, 3, 1, 8, 20, 64, 2} {
				x := leanRand(r, n, in.Shape[1])
				inputs := map[string]*tensor.Tensor{in.Name: x}
				want, err := tape.Run(ctx, inputs, nil)
				if err != nil {
					t.Fatal(err)
				}
				got, err := lean.Run(ctx, inputs, nil)
				if err != nil {
					t.Fatal(err)
				}
				for k, w := range want {
					if fmt.Sprint(got[k].Data) != fmt.Sprint(w.Data) {
						t.Errorf("batch %d, output %q: lean %v, tape %v", n, k, got[k].Data, w.Data)
					}
					if !slices.Equal(got[k].Shape, w.Shape) {
						t.Errorf("batch %d, output %q: lean shape %v, tape %v", n, k, got[k].Shape, w.Shape)
					}
				}
			}
		})
	}
}

// TestLeanRunDoesNotAllocate checks the runner's promise: once its buffers
// exist, a run allocates nothing but what Gorgonia's elementwise unary ops
// allocate inside (tensor.Map: 3 per call); Corvid's kernels and the float
// matrix product allocate nothing.
func TestLeanRunDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		// The kernels keep scratch buffers in a sync.Pool, which the race
		// detector empties at random; make test runs this test again
		// without -race (target test-allocs).
		t.Skip("allocation counts are meaningless under -race")
	}
	graphs := map[string]*onnx.Graph{"ops": leanGraph(), "mlp": leanMLP(64, 32, 10), "digits": leanDigits(t)}
	allowed := map[string]float64{"ops": 2 * 3} // Sigmoid and Tanh
	for name, g := range graphs {
		m := compileWith(t, "lean", g)
		for _, batch := range []int{1, 32} {
			inst := instanceOf(t, m, batch)
			if err := inst.r.run(); err != nil {
				t.Fatal(err)
			}
			if n := testing.AllocsPerRun(20, func() {
				if err := inst.r.run(); err != nil {
					t.Fatal(err)
				}
			}); n > allowed[name] {
				t.Errorf("%s, batch %d: %v allocations per run, want at most %v", name, batch, n, allowed[name])
			}
		}
	}
}

// rawPanicOp is an op the runner calls unguarded, to reach the runner's
// own recovery.
type rawPanicOp struct{ G.Op }

func (rawPanicOp) Do(...G.Value) (G.Value, error) { panic("boom") }
func (rawPanicOp) String() string                 { return "rawPanicOp" }

func TestLeanRecoversPanics(t *testing.T) {
	f := &faults{}
	r := &leanRunner{faults: f, steps: []leanStep{{op: rawPanicOp{}, desc: `node "n" (Foo)`}}}
	err := r.run()
	if err == nil || !strings.Contains(err.Error(), `node "n" (Foo): panic: boom`) {
		t.Errorf("got %v, want the panic naming the node", err)
	}
	if !f.panicked || !errors.Is(f.err, err) || len(f.stack) == 0 {
		t.Errorf("faults %+v: want the panic recorded with its stack", f)
	}
}

// BenchmarkRunners compares, for the same models, batch and inputs, in one
// run:
//
//   - kernels: the graph's kernels called directly in order (Corvid's
//     kernel run methods and the BLAS Sgemm for Gorgonia's MatMul), with
//     the lean runner's buffers: the floor any executor pays;
//   - lean/exec, tape/exec: one run of the runner alone (inputs bound);
//   - lean/Run, tape/Run: Model.Run, the whole request path (checks, worker,
//     bind, outputs copied out).
//
// exec minus kernels is the executor's own cost.
func BenchmarkRunners(b *testing.B) {
	models := []struct {
		name    string
		g       *onnx.Graph
		batches []int
	}{
		{"digits-64-16-10", leanDigits(b), []int{1, 32}},
		{"mlp-784-512-256-10", leanMLP(784, 512, 256, 10), []int{1, 32}},
		{"mlp-768-3072-768", leanMLP(768, 3072, 768), []int{1}},
		// 100 Relu on 4 numbers: next to no compute, so the time is the
		// executor's own cost per op.
		{"relu-chain-100", leanChain(100), []int{1}},
	}
	for _, mc := range models {
		for _, batch := range mc.batches {
			in := mc.g.Inputs[0]
			x := leanRand(rand.New(rand.NewPCG(3, 4)), int64(batch), in.Shape[1])
			inputs := map[string]*tensor.Tensor{in.Name: x}
			ctx := context.Background()
			prefix := fmt.Sprintf("%s/batch=%d/", mc.name, batch)
			for _, kind := range []string{"lean", "tape"} {
				m := compileWith(b, kind, mc.g)
				if _, err := m.Run(ctx, inputs, nil); err != nil {
					b.Fatal(err)
				}
				inst := instanceOf(b, m, batch)
				if kind == "lean" {
					bare := bareKernels(b, inst.r.(*leanRunner))
					b.Run(prefix+"kernels", func(b *testing.B) {
						b.ReportAllocs()
						for b.Loop() {
							bare()
						}
					})
				}
				b.Run(prefix+kind+"/exec", func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if err := inst.r.run(); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run(prefix+kind+"/Run", func(b *testing.B) {
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

// bareKernels returns the lean runner's graph as straight-line kernel
// calls on the values it has bound: no executor, no Gorgonia op.
func bareKernels(b *testing.B, r *leanRunner) func() {
	var calls []func()
	for i := range r.steps {
		s := &r.steps[i]
		vals := make([]*gt.Dense, len(s.children))
		for j, c := range s.children {
			d, err := asDense(c.Value())
			if err != nil {
				b.Fatal(err)
			}
			vals[j] = d
		}
		out, err := asDense(s.node.Value())
		if err != nil {
			b.Fatal(err)
		}
		var o G.Op = s.op
		if g, ok := o.(*guardedOp); ok {
			o = g.Op
		}
		switch op := o.(type) {
		case *customOp:
			calls = append(calls, func() {
				if err := op.k.run(out, vals); err != nil {
					b.Fatal(err)
				}
			})
		default:
			if fmt.Sprint(op) != "A × B" || out.Dtype() != gt.Float32 || len(vals) != 2 || vals[0].Dims() != 2 || vals[1].Dims() != 2 {
				b.Fatalf("no bare kernel for %v", op)
			}
			a, w := vals[0], vals[1]
			m, k, n := a.Shape()[0], a.Shape()[1], w.Shape()[1]
			calls = append(calls, func() {
				blasGemm(false, false, m, n, k, a.Float32s(), k, w.Float32s(), n, 0, out.Float32s(), n)
			})
		}
	}
	return func() {
		for _, c := range calls {
			c()
		}
	}
}

// TestLeanPrealloc runs one of Gorgonia's ops that writes into a given
// buffer (UsePreallocDo), a path no ONNX op takes today.
func TestLeanPrealloc(t *testing.T) {
	f := &faults{}
	b := &builder{g: G.NewGraph(), node: &onnx.Node{Name: "add", OpType: "Add"}, faults: f, consts: map[*tensor.Tensor]*G.Node{}}
	in := func(name string, data ...float32) *value {
		d := gt.New(gt.WithShape(2, 2), gt.WithBacking(data))
		return &value{dt: tensor.Float32, shape: []int{2, 2}, node: G.NewTensor(b.g, gt.Float32, 2, G.WithShape(2, 2), G.WithName(name), G.WithValue(d))}
	}
	x, y := in("x", 1, 2, 3, 4), in("y", 10, 20, 30, 40)
	sum, err := b.applyGorgonia(func(ns ...*G.Node) (*G.Node, error) { return G.Add(ns[0], ns[1]) }, x, y)
	if err != nil {
		t.Fatal(err)
	}
	r, err := newLeanRunner(b.g, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.steps) != 1 || r.steps[0].mode != leanPrealloc {
		t.Fatalf("steps %+v, want one leanPrealloc step", r.steps)
	}
	for range 2 {
		if err := r.run(); err != nil {
			t.Fatal(err)
		}
		if got := sum.node.Value().Data(); !slices.Equal(got.([]float32), []float32{11, 22, 33, 44}) {
			t.Errorf("got %v, want [11 22 33 44]", got)
		}
	}
	if got := sum.node.Value(); got != r.steps[0].buf {
		t.Errorf("the node holds %p, want the step's buffer %p", got, r.steps[0].buf)
	}
}

// TestNewOutput checks that newOutput makes what tensor.New makes.
func TestNewOutput(t *testing.T) {
	for _, tc := range []struct {
		shape []int
		rows  int
		want  []int64
	}{
		{nil, -1, nil},
		{[]int{3}, -1, []int64{3}},
		{[]int{8, 2}, 5, []int64{5, 2}},
		{[]int{1, 1, 1, 1, 1, 1, 1, 1, 2}, -1, []int64{1, 1, 1, 1, 1, 1, 1, 1, 2}},
	} {
		for _, dt := range []tensor.DType{tensor.Float32, tensor.Float64, tensor.Int8, tensor.Uint8, tensor.Int32, tensor.Int64, tensor.Bool} {
			got, err := newOutput(dt, tc.shape, tc.rows)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := tensor.New(dt, tc.want)
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) || (got.Shape == nil) != (want.Shape == nil) {
				t.Errorf("newOutput(%v, %v, %d) = %#v, want %#v", dt, tc.shape, tc.rows, got, want)
			}
			if err := got.Validate(); err != nil {
				t.Error(err)
			}
		}
	}
}
