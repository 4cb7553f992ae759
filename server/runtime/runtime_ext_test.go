package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/runtime"
	"github.com/corvidml/corvid/server/tensor"
)

// digitsDir is the scikit-learn MLP classifier exported like Corvid's
// default model: input fp32 [N 64]; outputs label int64 [N] and
// probabilities fp32 [N 10].
var digitsDir = filepath.Join(opsDir, "sklearn_mlp")

func compileDir(t testing.TB, dir string, opts runtime.Options) (*runtime.Model, []dataSet) {
	t.Helper()
	g, sets := loadCase(t, dir)
	m, err := runtime.Compile(g, opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	t.Cleanup(m.Close)
	return m, sets
}

func fp32(shape []int64, vals ...float32) *tensor.Tensor {
	n, _ := tensor.NumElements(shape)
	if vals == nil {
		vals = make([]float32, n)
	}
	return &tensor.Tensor{DType: tensor.Float32, Shape: shape, Data: vals}
}

func int64s(shape []int64, vals ...int64) *tensor.Tensor {
	n, _ := tensor.NumElements(shape)
	if vals == nil {
		vals = make([]int64, n)
	}
	return &tensor.Tensor{DType: tensor.Int64, Shape: shape, Data: vals}
}

func TestModelDescribesItself(t *testing.T) {
	m, _ := compileDir(t, digitsDir, runtime.Options{})
	if got, want := m.MaxBatch(), 64; got != want {
		t.Errorf("MaxBatch: got %d, want %d", got, want)
	}
	if got, want := m.Inputs(), []onnx.ValueInfo{{Name: "input", DType: tensor.Float32, Shape: []int64{-1, 64}}}; !equalInfos(got, want) {
		t.Errorf("Inputs: got %v, want %v", got, want)
	}
	want := []onnx.ValueInfo{
		{Name: "label", DType: tensor.Int64, Shape: []int64{-1}},
		{Name: "probabilities", DType: tensor.Float32, Shape: []int64{-1, 10}},
	}
	if got := m.Outputs(); !equalInfos(got, want) {
		t.Errorf("Outputs: got %v, want %v", got, want)
	}
}

func equalInfos(a, b []onnx.ValueInfo) bool {
	return slices.EqualFunc(a, b, func(x, y onnx.ValueInfo) bool {
		return x.Name == y.Name && x.DType == y.DType && slices.Equal(x.Shape, y.Shape)
	})
}

func TestRunRefusesBadRequests(t *testing.T) {
	m, _ := compileDir(t, digitsDir, runtime.Options{})
	two := twoInputModel(t)
	tests := []struct {
		name    string
		m       *runtime.Model
		inputs  map[string]*tensor.Tensor
		outputs []string
		want    string
	}{
		{"missing input", m, map[string]*tensor.Tensor{}, nil, `missing input "input" (model inputs: input)`},
		{"nil input", m, map[string]*tensor.Tensor{"input": nil}, nil, `missing input "input"`},
		{"unknown input", m, map[string]*tensor.Tensor{"input": fp32([]int64{1, 64}), "foo": fp32([]int64{1})}, nil, `unknown input "foo" (model inputs: input)`},
		{"misspelled input", m, map[string]*tensor.Tensor{"inputs": fp32([]int64{1, 64})}, nil, `unknown input "inputs" (model inputs: input)`},
		{"wrong dtype", m, map[string]*tensor.Tensor{"input": int64s([]int64{1, 64})}, nil, `input "input": dtype int64, want fp32`},
		{"wrong width", m, map[string]*tensor.Tensor{"input": fp32([]int64{1, 63})}, nil, `input "input": shape [1 63], want [N 64] with 1 <= N <= 64`},
		{"wrong rank", m, map[string]*tensor.Tensor{"input": fp32([]int64{64})}, nil, `input "input": shape [64], want [N 64] with 1 <= N <= 64`},
		{"batch too large", m, map[string]*tensor.Tensor{"input": fp32([]int64{65, 64})}, nil, `input "input": shape [65 64], want [N 64] with 1 <= N <= 64`},
		{"empty batch", m, map[string]*tensor.Tensor{"input": fp32([]int64{0, 64})}, nil, `input "input": shape [0 64], want [N 64]`},
		{"data shorter than shape", m, map[string]*tensor.Tensor{"input": fp32([]int64{2, 64}, 1, 2, 3)}, nil, `input "input": tensor of shape [2 64] has 3 elements, want 128`},
		{"data of another type", m, map[string]*tensor.Tensor{"input": {DType: tensor.Float32, Shape: []int64{1, 64}, Data: make([]float64, 64)}}, nil, `input "input": tensor data is fp64, want fp32`},
		{"overflowing shape", m, map[string]*tensor.Tensor{"input": fp32([]int64{1 << 40, 1 << 40})}, nil, `input "input": invalid shape`},
		{"unknown output", m, map[string]*tensor.Tensor{"input": fp32([]int64{1, 64})}, []string{"label", "bar"}, `unknown output "bar" (model outputs: label, probabilities)`},
		{"batch mismatch", two, map[string]*tensor.Tensor{"a": fp32([]int64{2, 3}), "b": fp32([]int64{3, 3})}, nil, `input "b": batch 3, want 2 (the batch of input "a")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.m.Run(context.Background(), tt.inputs, tt.outputs)
			if err == nil {
				t.Fatalf("Run returned %d outputs, want an error", len(got))
			}
			if !errors.Is(err, runtime.ErrInvalidInput) {
				t.Errorf("got %q, want an error wrapping ErrInvalidInput", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to say %q", err, tt.want)
			}
		})
	}
}

// twoInputModel adds two batched inputs: y = a + b, a and b fp32 [N 3].
func twoInputModel(t testing.TB) *runtime.Model {
	t.Helper()
	g := &onnx.Graph{
		Opsets: map[string]int64{onnx.DomainDefault: 17},
		Inputs: []onnx.ValueInfo{
			{Name: "a", DType: tensor.Float32, Shape: []int64{-1, 3}},
			{Name: "b", DType: tensor.Float32, Shape: []int64{-1, 3}},
		},
		Outputs: []onnx.ValueInfo{{Name: "y", DType: tensor.Float32, Shape: []int64{-1, 3}}},
		Nodes:   []onnx.Node{{Name: "add", OpType: "Add", Inputs: []string{"a", "b"}, Outputs: []string{"y"}}},
	}
	m, err := runtime.Compile(g, runtime.Options{MaxBatch: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func TestRunTwoInputs(t *testing.T) {
	m := twoInputModel(t)
	got, err := m.Run(context.Background(), map[string]*tensor.Tensor{
		"a": fp32([]int64{3, 3}, 1, 2, 3, 4, 5, 6, 7, 8, 9),
		"b": fp32([]int64{3, 3}, 9, 8, 7, 6, 5, 4, 3, 2, 1),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := compareTensors(got["y"], fp32([]int64{3, 3}, 10, 10, 10, 10, 10, 10, 10, 10, 10)); err != nil {
		t.Error(err)
	}
}

func TestRunSelectsOutputs(t *testing.T) {
	m, sets := compileDir(t, digitsDir, runtime.Options{})
	got, err := m.Run(context.Background(), sets[1].inputs, []string{"label", "label"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["label"] == nil {
		t.Fatalf("got outputs %v, want only label", slices.Collect(maps.Keys(got)))
	}
	if err := compareTensors(got["label"], sets[1].outputs[0].t); err != nil {
		t.Error(err)
	}
}

// TestRunOwnsNothing checks that Run neither writes its inputs nor hands
// out memory the model keeps: a caller may change what it got back.
func TestRunOwnsNothing(t *testing.T) {
	g := &onnx.Graph{
		Opsets:       map[string]int64{onnx.DomainDefault: 17},
		Inputs:       []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 2}}},
		Initializers: map[string]*tensor.Tensor{"c": fp32([]int64{2}, 5, 6)},
		Outputs: []onnx.ValueInfo{
			{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 2}}, // an input, passed through
			{Name: "c", DType: tensor.Float32, Shape: []int64{2}},     // an initializer
			{Name: "y", DType: tensor.Float32, Shape: []int64{-1, 2}},
		},
		Nodes: []onnx.Node{{Name: "add", OpType: "Add", Inputs: []string{"x", "c"}, Outputs: []string{"y"}}},
	}
	m, err := runtime.Compile(g, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	in := fp32([]int64{1, 2}, 1, 2)
	for range 2 {
		got, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": in}, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]*tensor.Tensor{"x": fp32([]int64{1, 2}, 1, 2), "c": fp32([]int64{2}, 5, 6), "y": fp32([]int64{1, 2}, 6, 8)}
		for name, w := range want {
			if err := compareTensors(got[name], w); err != nil {
				t.Errorf("output %q: %v", name, err)
			}
			clear(got[name].Data.([]float32)) // must not reach the next run
		}
	}
	if err := compareTensors(in, fp32([]int64{1, 2}, 1, 2)); err != nil {
		t.Errorf("input changed: %v", err)
	}
}

// TestRunStaticShapes covers a model without a dynamic batch: inputs must
// match exactly, and there is one graph.
func TestRunStaticShapes(t *testing.T) {
	m, sets := compileDir(t, filepath.Join(opsDir, "matmul_3d_2d"), runtime.Options{})
	if got, want := m.MaxBatch(), 1; got != want {
		t.Errorf("MaxBatch: got %d, want %d", got, want)
	}
	_, err := m.Run(context.Background(), map[string]*tensor.Tensor{"a": fp32([]int64{1, 3, 4}), "b": sets[0].inputs["b"]}, nil)
	if want := `input "a": shape [1 3 4], want [2 3 4]`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want an error saying %q", err, want)
	}
}

// TestRunConcurrently runs many goroutines on few workers, with batch
// sizes that land in different buckets, and checks every result.
func TestRunConcurrently(t *testing.T) {
	m, sets := compileDir(t, digitsDir, runtime.Options{Workers: 3})
	const goroutines, runs = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for gi := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(gi), 1))
			for range runs {
				s := sets[r.IntN(len(sets))]
				got, err := m.Run(context.Background(), s.inputs, nil)
				if err != nil {
					errs <- err
					return
				}
				for _, want := range s.outputs {
					if err := compareTensors(got[want.name], want.t); err != nil {
						errs <- fmt.Errorf("%s: output %q: %w", s.dir, want.name, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRunAfterClose(t *testing.T) {
	m, sets := compileDir(t, digitsDir, runtime.Options{})
	m.Close()
	m.Close() // idempotent
	if _, err := m.Run(context.Background(), sets[0].inputs, nil); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("got %v, want ErrClosed", err)
	}
}

// TestCompileRefuses checks models Decode accepts but the runtime cannot
// run, or that are inconsistent once shapes are known.
func TestCompileRefuses(t *testing.T) {
	x := onnx.ValueInfo{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 4}}
	y := func(shape ...int64) []onnx.ValueInfo {
		return []onnx.ValueInfo{{Name: "y", DType: tensor.Float32, Shape: shape}}
	}
	node := func(op string, inputs []string, attrs map[string]onnx.Attr) onnx.Node {
		return onnx.Node{Name: "n", OpType: op, Inputs: inputs, Outputs: []string{"y"}, Attrs: attrs}
	}
	ints := func(v int64) onnx.Attr { return onnx.Attr{Type: onnx.AttrInt, Int: v} }
	tests := []struct {
		name  string
		g     *onnx.Graph
		opts  runtime.Options
		want  error
		words []string
	}{
		{
			// A shape computed from data, not a graph input: no graph can
			// be specialised on it.
			name: "reshape to a computed shape",
			g: &onnx.Graph{Inputs: []onnx.ValueInfo{x, {Name: "s", DType: tensor.Int64, Shape: []int64{2}}}, Outputs: y(-1, 4),
				Nodes: []onnx.Node{
					{Name: "neg", OpType: "Neg", Inputs: []string{"s"}, Outputs: []string{"ns"}},
					{Name: "n", OpType: "Reshape", Inputs: []string{"x", "ns"}, Outputs: []string{"y"}},
				}},
			want: onnx.ErrUnsupported, words: []string{`node "n" (Reshape)`, `shape (input "ns") must be a constant`},
		},
		{
			name: "matmul shapes",
			g: &onnx.Graph{Inputs: []onnx.ValueInfo{x}, Outputs: y(-1, 4), Initializers: map[string]*tensor.Tensor{"w": fp32([]int64{3, 4})},
				Nodes: []onnx.Node{node("MatMul", []string{"x", "w"}, nil)}},
			want: onnx.ErrInvalidModel, words: []string{`node "n" (MatMul)`, "cannot multiply [1 4] by [3 4]"},
		},
		{
			name: "broadcast shapes",
			g: &onnx.Graph{Inputs: []onnx.ValueInfo{x}, Outputs: y(-1, 4), Initializers: map[string]*tensor.Tensor{"w": fp32([]int64{3})},
				Nodes: []onnx.Node{node("Add", []string{"x", "w"}, nil)}},
			want: onnx.ErrInvalidModel, words: []string{"shapes [1 4] and [3] do not broadcast"},
		},
		{
			name: "mixed dtypes",
			g: &onnx.Graph{Inputs: []onnx.ValueInfo{x}, Outputs: y(-1, 4), Initializers: map[string]*tensor.Tensor{"w": int64s([]int64{4})},
				Nodes: []onnx.Node{node("Add", []string{"x", "w"}, nil)}},
			want: onnx.ErrInvalidModel, words: []string{"dtypes fp32 and int64 differ"},
		},
		{
			name: "softmax across the batch",
			g:    &onnx.Graph{Inputs: []onnx.ValueInfo{x}, Outputs: y(-1, 4), Nodes: []onnx.Node{node("Softmax", []string{"x"}, map[string]onnx.Attr{"axis": ints(0)})}},
			want: onnx.ErrUnsupported, words: []string{`node "n" (Softmax)`, "across the batch"},
		},
		{
			name: "softmax across the batch served unbatched",
			g:    &onnx.Graph{Inputs: []onnx.ValueInfo{x}, Outputs: y(-1, 4), Nodes: []onnx.Node{node("Softmax", []string{"x"}, map[string]onnx.Attr{"axis": ints(0)})}},
			opts: runtime.Options{MaxBatch: 1},
		},
		{
			name: "argmax across the batch",
			g: &onnx.Graph{Inputs: []onnx.ValueInfo{x}, Outputs: []onnx.ValueInfo{{Name: "y", DType: tensor.Int64, Shape: []int64{1, 4}}},
				Nodes: []onnx.Node{node("ArgMax", []string{"x"}, map[string]onnx.Attr{"axis": ints(0)})}},
			want: onnx.ErrUnsupported, words: []string{`node "n" (ArgMax)`, "combines items across the batch"},
		},
		{
			name: "axis out of range",
			g:    &onnx.Graph{Inputs: []onnx.ValueInfo{x}, Outputs: y(-1, 4), Nodes: []onnx.Node{node("Softmax", []string{"x"}, map[string]onnx.Attr{"axis": ints(2)})}},
			want: onnx.ErrInvalidModel, words: []string{"axis 2 is out of range for rank 2"},
		},
		{
			name: "batch moved off axis 0",
			g:    &onnx.Graph{Inputs: []onnx.ValueInfo{x}, Outputs: y(1, -1), Nodes: []onnx.Node{node("Flatten", []string{"x"}, map[string]onnx.Attr{"axis": ints(0)})}},
			want: onnx.ErrUnsupported, words: []string{`output "y" follows the batch along axis 1`},
		},
		{
			name: "reshape that fixes the batch",
			g: &onnx.Graph{Inputs: []onnx.ValueInfo{x}, Outputs: y(1, 4), Initializers: map[string]*tensor.Tensor{"s": int64s([]int64{2}, 1, 4)},
				Nodes: []onnx.Node{node("Reshape", []string{"x", "s"}, nil)}},
			want: onnx.ErrInvalidModel, words: []string{"batch 8", "cannot reshape [8 4]", "MaxBatch = 1"},
		},
		{
			name: "declared output dtype",
			g:    &onnx.Graph{Inputs: []onnx.ValueInfo{x}, Outputs: []onnx.ValueInfo{{Name: "y", DType: tensor.Int64}}, Nodes: []onnx.Node{node("Relu", []string{"x"}, nil)}},
			want: onnx.ErrInvalidModel, words: []string{`output "y" is declared int64 but computes fp32`},
		},
		{
			name: "declared output shape",
			g:    &onnx.Graph{Inputs: []onnx.ValueInfo{x}, Outputs: y(-1, 5), Nodes: []onnx.Node{node("Relu", []string{"x"}, nil)}},
			want: onnx.ErrInvalidModel, words: []string{`output "y" is declared [N 5] but computes [1 4]`},
		},
		{
			name: "dynamic dimension at no probe size",
			g: &onnx.Graph{Inputs: []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{1, -1}}}, Outputs: y(-1, 9),
				Initializers: map[string]*tensor.Tensor{"s": {DType: tensor.Int64, Shape: []int64{2}, Data: []int64{-1, 9}}},
				Nodes:        []onnx.Node{node("Reshape", []string{"x", "s"}, nil)}},
			want: onnx.ErrInvalidModel, words: []string{"dynamic dimensions at 16"},
		},
		{
			name: "unsupported dtype",
			g: &onnx.Graph{Inputs: []onnx.ValueInfo{{Name: "x", DType: tensor.Int64, Shape: []int64{-1, 4}}}, Outputs: []onnx.ValueInfo{{Name: "y", DType: tensor.Int64}},
				Nodes: []onnx.Node{node("Sigmoid", []string{"x"}, nil)}},
			want: onnx.ErrUnsupported, words: []string{`node "n" (Sigmoid)`, "dtype int64 (supported: fp32, fp64)"},
		},
		{
			name: "cast to an unsupported type",
			g: &onnx.Graph{Inputs: []onnx.ValueInfo{x}, Outputs: []onnx.ValueInfo{{Name: "y", DType: tensor.Float32}},
				Nodes: []onnx.Node{node("Cast", []string{"x"}, map[string]onnx.Attr{"to": ints(10)})}},
			want: onnx.ErrUnsupported, words: []string{`node "n" (Cast)`, "FLOAT16"},
		},
		{
			name: "feature index out of range",
			g: &onnx.Graph{Inputs: []onnx.ValueInfo{x}, Outputs: y(-1, 1), Initializers: map[string]*tensor.Tensor{"i": int64s([]int64{1}, 4)},
				Nodes: []onnx.Node{{Name: "n", OpType: "ArrayFeatureExtractor", Domain: onnx.DomainML, Inputs: []string{"x", "i"}, Outputs: []string{"y"}}}},
			want: onnx.ErrInvalidModel, words: []string{"index 4 is out of range [0, 4)"},
		},
		{
			name: "huge broadcast",
			g: &onnx.Graph{Inputs: []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 1 << 14, 1}}}, Outputs: []onnx.ValueInfo{{Name: "y", DType: tensor.Float32}},
				Initializers: map[string]*tensor.Tensor{"w": fp32([]int64{1 << 14})},
				Nodes:        []onnx.Node{node("Add", []string{"x", "w"}, nil)}},
			want: onnx.ErrUnsupported, words: []string{`node "n" (Add)`, "MiB"},
		},
		{
			name:  "bad options",
			g:     &onnx.Graph{Inputs: []onnx.ValueInfo{x}, Outputs: y(-1, 4), Nodes: []onnx.Node{node("Relu", []string{"x"}, nil)}},
			opts:  runtime.Options{MaxBatch: -1},
			words: []string{"MaxBatch is -1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.g.Opsets == nil {
				tt.g.Opsets = map[string]int64{onnx.DomainDefault: 17, onnx.DomainML: 1}
			}
			m, err := runtime.Compile(tt.g, tt.opts)
			if tt.words == nil {
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				m.Close()
				return
			}
			if err == nil {
				m.Close()
				t.Fatal("Compile succeeded, want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %q, want an error wrapping %q", err, tt.want)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
