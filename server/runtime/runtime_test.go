package runtime

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"
	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// TestBuildersMatchDecoder keeps the decoder's operator list and the
// runtime's builders in step: an op Decode accepts must be buildable.
func TestBuildersMatchDecoder(t *testing.T) {
	var got []string
	for k := range builders {
		if k.domain == fusedDomain {
			continue // made by fuse.go, never decoded
		}
		if k.domain == onnx.DomainDefault {
			got = append(got, k.opType)
		} else {
			got = append(got, k.domain+"."+k.opType)
		}
	}
	slices.Sort(got)
	if want := onnx.SupportedOps(); !slices.Equal(got, want) {
		t.Errorf("builders %v, want the decoder's %v", got, want)
	}
}

func TestBuckets(t *testing.T) {
	tests := []struct {
		maxBatch int
		want     []int
	}{
		{1, []int{1}},
		{4, []int{1, 4}},
		{8, []int{1, 8}},
		{32, []int{1, 8, 32}},
		{64, []int{1, 8, 32, 64}},
		{100, []int{1, 8, 32, 100}},
	}
	for _, tt := range tests {
		if got := (Options{MaxBatch: tt.maxBatch}).buckets(); !slices.Equal(got, tt.want) {
			t.Errorf("MaxBatch %d: got buckets %v, want %v", tt.maxBatch, got, tt.want)
		}
	}
}

// divModel divides two int64 [N 2] inputs: a zero divisor makes the
// kernel panic (Go's integer division), on Gorgonia's goroutine.
func divModel(t *testing.T, opts Options) *Model {
	t.Helper()
	g := &onnx.Graph{
		Opsets: map[string]int64{onnx.DomainDefault: 17},
		Inputs: []onnx.ValueInfo{
			{Name: "a", DType: tensor.Int64, Shape: []int64{-1, 2}},
			{Name: "b", DType: tensor.Int64, Shape: []int64{-1, 2}},
		},
		Outputs: []onnx.ValueInfo{{Name: "q", DType: tensor.Int64, Shape: []int64{-1, 2}}},
		Nodes:   []onnx.Node{{Name: "div", OpType: "Div", Inputs: []string{"a", "b"}, Outputs: []string{"q"}}},
	}
	opts.Logger = slog.New(slog.DiscardHandler) // the panics are on purpose
	m, err := Compile(g, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func divInputs(a, b []int64) map[string]*tensor.Tensor {
	shape := []int64{int64(len(a) / 2), 2}
	return map[string]*tensor.Tensor{
		"a": {DType: tensor.Int64, Shape: shape, Data: a},
		"b": {DType: tensor.Int64, Shape: shape, Data: b},
	}
}

// TestPanicInOpIsRecovered checks that a panic inside an op fails only
// that request, that the worker's graphs are discarded and rebuilt, and
// that the model keeps serving correct results.
func TestPanicInOpIsRecovered(t *testing.T) {
	m := divModel(t, Options{Workers: 1})
	ctx := context.Background()
	good := divInputs([]int64{7, -7, 9, 4}, []int64{2, 2, 3, -4})

	if _, err := m.Run(ctx, good, nil); err != nil {
		t.Fatal(err)
	}
	_, err := m.Run(ctx, divInputs([]int64{1, 2}, []int64{1, 0}), nil)
	if !errors.Is(err, ErrInternal) || !strings.Contains(err.Error(), `node "div" (Div)`) || !strings.Contains(err.Error(), "divide by zero") {
		t.Fatalf("got %v, want ErrInternal naming the node and the panic", err)
	}
	if strings.Contains(err.Error(), "goroutine") {
		t.Errorf("error %q carries a stack trace", err)
	}
	if got := m.rebuilds.Load(); got != 1 {
		t.Errorf("got %d rebuilds, want 1", got)
	}
	for range 3 {
		got, err := m.Run(ctx, good, nil)
		if err != nil {
			t.Fatalf("after the panic: %v", err)
		}
		// Integer division truncates toward zero, as in ONNX Runtime.
		if want := []int64{3, -3, 3, -1}; !slices.Equal(got["q"].Data.([]int64), want) {
			t.Errorf("after the panic: got %v, want %v", got["q"].Data, want)
		}
	}
	if got := m.rebuilds.Load(); got != 1 {
		t.Errorf("got %d rebuilds after good runs, want still 1", got)
	}
}

// TestPanicsUnderLoad mixes panicking and good requests from many
// goroutines: every good request must succeed with the right answer.
func TestPanicsUnderLoad(t *testing.T) {
	m := divModel(t, Options{Workers: 2})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				if (i+j)%3 == 0 {
					if _, err := m.Run(context.Background(), divInputs([]int64{1, 1}, []int64{0, 0}), nil); !errors.Is(err, ErrInternal) {
						t.Errorf("division by zero: got %v, want ErrInternal", err)
					}
					continue
				}
				got, err := m.Run(context.Background(), divInputs([]int64{8, 6, 4, 2}, []int64{2, 2, 2, 2}), nil)
				if err != nil {
					t.Errorf("good request: %v", err)
					continue
				}
				if want := []int64{4, 3, 2, 1}; !slices.Equal(got["q"].Data.([]int64), want) {
					t.Errorf("good request: got %v, want %v", got["q"].Data, want)
				}
			}
		}()
	}
	wg.Wait()
}

// panicOp stands in for one of Gorgonia's own ops that panics.
type panicOp struct{ G.Op }

func (panicOp) Do(...G.Value) (G.Value, error) { panic("boom") }
func (panicOp) String() string                 { return "panicOp" }

func TestGuardedOpRecovers(t *testing.T) {
	f := &faults{}
	op := &guardedOp{Op: panicOp{}, id: "n#1", desc: `node "n" (Tanh)`, faults: f}
	v, err := op.Do(gt.New(gt.WithShape(1), gt.WithBacking([]float32{1})))
	if err == nil || v != nil {
		t.Fatalf("got %v, %v; want an error", v, err)
	}
	if !f.panicked || f.err == nil || !strings.Contains(f.err.Error(), "boom") || len(f.stack) == 0 {
		t.Errorf("faults %+v: want the panic recorded with its stack", f)
	}
}

// TestRunWaitsForAWorker checks that a request waiting for a busy worker
// gives up with its context.
func TestRunWaitsForAWorker(t *testing.T) {
	m := divModel(t, Options{Workers: 1})
	in := divInputs([]int64{2, 4}, []int64{2, 2})
	w := <-m.workers // the only worker is busy

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := m.Run(ctx, in, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded", err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := m.Run(context.Background(), in, nil)
		done <- err
	}()
	m.workers <- w // the worker comes back: the waiting request runs
	if err := <-done; err != nil {
		t.Errorf("after the worker came back: %v", err)
	}
}

// TestCloseWaitsForRuns checks that Close lets a running request finish
// and that requests waiting for a worker see ErrClosed.
func TestCloseWaitsForRuns(t *testing.T) {
	m := divModel(t, Options{Workers: 1})
	in := divInputs([]int64{2, 4}, []int64{2, 2})
	w := <-m.workers

	waiting := make(chan error, 1)
	go func() {
		_, err := m.Run(context.Background(), in, nil)
		waiting <- err
	}()
	closed := make(chan struct{})
	go func() {
		m.Close()
		close(closed)
	}()
	if err := <-waiting; !errors.Is(err, ErrClosed) {
		t.Errorf("waiting request: got %v, want ErrClosed", err)
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a worker was still out")
	case <-time.After(20 * time.Millisecond):
	}
	m.workers <- w
	<-closed
}

func TestReshapeTarget(t *testing.T) {
	tests := []struct {
		in        []int
		spec      []int64
		allowZero bool
		want      []int
		err       string
	}{
		{[]int{2, 3, 4}, []int64{-1}, false, []int{24}, ""},
		{[]int{2, 3, 4}, []int64{0, -1}, false, []int{2, 12}, ""},
		{[]int{2, 3, 4}, []int64{4, 0, 2}, false, []int{4, 3, 2}, ""},
		{[]int{2, 0}, []int64{0, 5}, true, []int{0, 5}, ""},
		{[]int{2, 3, 4}, []int64{-1, -1}, false, nil, "more than one -1"},
		{[]int{2, 3}, []int64{0, 0, 0}, false, nil, "lacks"},
		{[]int{2, 3}, []int64{5, -1}, false, nil, "cannot reshape"},
		{[]int{2, 3}, []int64{7}, false, nil, "cannot reshape"},
		{[]int{2, 3}, []int64{-2, 3}, false, nil, "dimension -2"},
		{[]int{2, 3}, []int64{1 << 40, 1 << 40}, false, nil, "more than"},
		{[]int{0, 3}, []int64{0, -1}, true, nil, "both 0 and -1"},
	}
	for _, tt := range tests {
		got, err := reshapeTarget(tt.in, tt.spec, tt.allowZero)
		switch {
		case tt.err == "" && (err != nil || !slices.Equal(got, tt.want)):
			t.Errorf("reshape %v to %v: got %v, %v; want %v", tt.in, tt.spec, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("reshape %v to %v: got %v, %v; want an error saying %q", tt.in, tt.spec, got, err, tt.err)
		}
	}
}

func TestBcastPlan(t *testing.T) {
	tests := []struct {
		out, a, b        []int
		dims, aStr, bStr []int
	}{
		{[]int{3, 4}, []int{3, 4}, []int{3, 4}, []int{12}, []int{1}, []int{1}},
		{[]int{3, 4}, []int{3, 4}, []int{4}, []int{3, 4}, []int{4, 1}, []int{0, 1}},
		{[]int{3, 4}, []int{3, 1}, []int{1, 4}, []int{3, 4}, []int{1, 0}, []int{0, 1}},
		{[]int{2, 3, 4}, []int{2, 3, 4}, nil, []int{24}, []int{1}, []int{0}},
		{[]int{1, 1}, []int{1, 1}, []int{1}, []int{1}, []int{0}, []int{0}},
	}
	for _, tt := range tests {
		p := newBcast(tt.out, tt.a, tt.b)
		if !slices.Equal(p.dims, tt.dims) || !slices.Equal(p.aStr, tt.aStr) || !slices.Equal(p.bStr, tt.bStr) {
			t.Errorf("%v = %v op %v: got dims %v strides %v %v, want %v %v %v", tt.out, tt.a, tt.b, p.dims, p.aStr, p.bStr, tt.dims, tt.aStr, tt.bStr)
		}
	}
}
