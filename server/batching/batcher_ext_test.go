package batching_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/corvidml/corvid/server/batching"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeModel is a batched model whose Run is a function.
type fakeModel struct {
	inputs, outputs []onnx.ValueInfo
	maxBatch        int
	run             func(ctx context.Context, in map[string]*tensor.Tensor, outs []string) (map[string]*tensor.Tensor, error)
}

func (f *fakeModel) Run(ctx context.Context, in map[string]*tensor.Tensor, outs []string) (map[string]*tensor.Tensor, error) {
	return f.run(ctx, in, outs)
}
func (f *fakeModel) Inputs() []onnx.ValueInfo  { return f.inputs }
func (f *fakeModel) Outputs() []onnx.ValueInfo { return f.outputs }
func (f *fakeModel) MaxBatch() int             { return f.maxBatch }

// rowModel computes, row by row, y = 2x + id and z = 10 id from x fp32[N 3]
// and id int64[N]. It records each call's ids, checks the batch against
// maxBatch and the ids against distinct rows, and calls hook (if set)
// before computing.
type rowModel struct {
	fakeModel
	mu    sync.Mutex
	calls [][]int64
	hook  func(ids []int64) error
}

var errBadRow = errors.New("bad row")

func newRowModel(maxBatch int) *rowModel {
	m := &rowModel{}
	m.fakeModel = fakeModel{
		inputs: []onnx.ValueInfo{
			{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 3}},
			{Name: "id", DType: tensor.Int64, Shape: []int64{-1}},
		},
		outputs: []onnx.ValueInfo{
			{Name: "y", DType: tensor.Float32, Shape: []int64{-1, 3}},
			{Name: "z", DType: tensor.Int64, Shape: []int64{-1}},
		},
		maxBatch: maxBatch,
		run:      m.compute,
	}
	return m
}

func (m *rowModel) compute(_ context.Context, in map[string]*tensor.Tensor, outs []string) (map[string]*tensor.Tensor, error) {
	x, id := in["x"], in["id"]
	n := int(id.Shape[0])
	if n > m.maxBatch || x.Shape[0] != id.Shape[0] || x.Len() != 3*n {
		return nil, fmt.Errorf("bad batch: x %v, id %v, max %d", x.Shape, id.Shape, m.maxBatch)
	}
	ids := id.Data.([]int64)
	m.mu.Lock()
	m.calls = append(m.calls, slices.Clone(ids))
	m.mu.Unlock()
	if m.hook != nil {
		if err := m.hook(ids); err != nil {
			return nil, err
		}
	}
	y, _ := tensor.New(tensor.Float32, []int64{int64(n), 3})
	z, _ := tensor.New(tensor.Int64, []int64{int64(n)})
	for i := range n {
		for j := range 3 {
			y.Data.([]float32)[3*i+j] = 2*x.Data.([]float32)[3*i+j] + float32(ids[i])
		}
		z.Data.([]int64)[i] = 10 * ids[i]
	}
	res := map[string]*tensor.Tensor{"y": y, "z": z}
	if len(outs) > 0 {
		for k := range res {
			if !slices.Contains(outs, k) {
				delete(res, k)
			}
		}
	}
	return res, nil
}

// ran reports whether any call saw id.
func (m *rowModel) ran(id int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.calls {
		if slices.Contains(c, id) {
			return true
		}
	}
	return false
}

// rowRequest is rows rows with ids first, first+1, ...
func rowRequest(first int64, rows int) map[string]*tensor.Tensor {
	x, _ := tensor.New(tensor.Float32, []int64{int64(rows), 3})
	id, _ := tensor.New(tensor.Int64, []int64{int64(rows)})
	for i := range rows {
		v := first + int64(i)
		id.Data.([]int64)[i] = v
		copy(x.Data.([]float32)[3*i:], []float32{float32(v), float32(v) + 0.5, float32(v) + 0.25})
	}
	return map[string]*tensor.Tensor{"x": x, "id": id}
}

// checkRows checks that out holds exactly the rows of rowRequest(first, rows).
func checkRows(out map[string]*tensor.Tensor, first int64, rows int) error {
	y, z := out["y"], out["z"]
	if y == nil || z == nil {
		return fmt.Errorf("outputs %v, want y and z", out)
	}
	if !slices.Equal(y.Shape, []int64{int64(rows), 3}) || !slices.Equal(z.Shape, []int64{int64(rows)}) {
		return fmt.Errorf("shapes y %v z %v, want [%d 3] [%d]", y.Shape, z.Shape, rows, rows)
	}
	for i := range rows {
		v := first + int64(i)
		want := []float32{3 * float32(v), 3*float32(v) + 1, 3*float32(v) + 0.5}
		if got := y.Data.([]float32)[3*i : 3*i+3]; !slices.Equal(got, want) {
			return fmt.Errorf("row %d of request %d: y = %v, want %v", i, first, got, want)
		}
		if got := z.Data.([]int64)[i]; got != 10*v {
			return fmt.Errorf("row %d of request %d: z = %d, want %d", i, first, got, 10*v)
		}
	}
	return nil
}

func newBatcher(t *testing.T, m batching.Model, cfg batching.Config) *batching.Batcher {
	t.Helper()
	b, err := batching.New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestConcurrentSingleRows(t *testing.T) {
	const callers, maxBatch = 200, 16
	m := newRowModel(maxBatch)
	m.hook = func([]int64) error { time.Sleep(200 * time.Microsecond); return nil }
	b := newBatcher(t, m, batching.Config{MaxBatchSize: maxBatch, MaxQueueDelay: 5 * time.Millisecond, Concurrency: 2})

	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			id := int64(1000 + 7*i)
			out, err := b.Run(context.Background(), rowRequest(id, 1), nil)
			if err == nil {
				err = checkRows(out, id, 1)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := b.Stats()
	if s.Rows != callers || s.Requests != callers {
		t.Errorf("Stats rows %d requests %d, want %d each", s.Rows, s.Requests, callers)
	}
	if s.MaxBatchRows <= 1 || s.Batches >= callers {
		t.Errorf("Stats: %d batches, max %d rows: requests were not batched", s.Batches, s.MaxBatchRows)
	}
	if s.MaxBatchRows > maxBatch {
		t.Errorf("Stats: max batch %d rows, want <= %d", s.MaxBatchRows, maxBatch)
	}
	if s.BatchRows.Count != s.Batches || s.QueueTime.Count != callers || s.QueueTimeP99 < s.QueueTimeP50 || s.QueueTimeMax < s.QueueTimeP99 {
		t.Errorf("inconsistent Stats: %+v", s)
	}
	if s.QueueDepth != 0 || s.Running != 0 {
		t.Errorf("Stats after all returned: depth %d running %d, want 0", s.QueueDepth, s.Running)
	}
	t.Logf("%d batches, mean %.1f rows, max %d; queue p50 %v p99 %v", s.Batches, s.MeanBatchRows, s.MaxBatchRows, s.QueueTimeP50, s.QueueTimeP99)
}

func TestMultiRowRequestsRespectMaxBatch(t *testing.T) {
	const maxBatch = 10
	m := newRowModel(maxBatch)
	m.hook = func([]int64) error { time.Sleep(100 * time.Microsecond); return nil }
	b := newBatcher(t, m, batching.Config{MaxBatchSize: maxBatch, MaxQueueDelay: 2 * time.Millisecond, Concurrency: 2})
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			rows := 1 + i%maxBatch
			id := int64(100 * i)
			out, err := b.Run(context.Background(), rowRequest(id, rows), nil)
			if err == nil {
				err = checkRows(out, id, rows)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.calls {
		if len(c) > maxBatch {
			t.Errorf("a run got %d rows, want <= %d", len(c), maxBatch)
		}
	}
	if s := b.Stats(); s.Requests != 100 || s.MaxBatchRows > maxBatch || s.Batches >= 100 {
		t.Errorf("Stats: %d requests in %d batches, max %d rows; want 100 requests batched, max <= %d", s.Requests, s.Batches, s.MaxBatchRows, maxBatch)
	}
}

// blockingModel is a rowModel whose runs wait for release; started
// receives each run's ids.
func blockingModel(maxBatch int) (m *rowModel, started chan []int64, release chan struct{}) {
	m = newRowModel(maxBatch)
	started, release = make(chan []int64, 100), make(chan struct{})
	m.hook = func(ids []int64) error {
		started <- ids
		<-release
		return nil
	}
	return m, started, release
}

func TestQueueFull(t *testing.T) {
	const queue = 5
	m, started, release := blockingModel(8)
	b := newBatcher(t, m, batching.Config{MaxBatchSize: 8, MaxQueueSize: queue, Concurrency: 1})

	var wg sync.WaitGroup
	run := func(id int64) {
		wg.Go(func() {
			out, err := b.Run(context.Background(), rowRequest(id, 1), nil)
			if err == nil {
				err = checkRows(out, id, 1)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	run(1)
	<-started // the only slot is busy: what follows queues
	for i := range queue {
		run(int64(10 + i))
	}
	waitFor(t, "a full queue", func() bool { return b.Stats().QueueDepth == queue })

	start := time.Now()
	_, err := b.Run(context.Background(), rowRequest(99, 1), nil)
	if !errors.Is(err, batching.ErrQueueFull) {
		t.Fatalf("Run on a full queue: %v, want ErrQueueFull", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("refusal took %v, want immediate", d)
	}
	for _, want := range []string{"queue is full", "5 requests", "max_queue_size (5)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	close(release)
	wg.Wait()
	if m.ran(99) {
		t.Error("the refused request ran")
	}
	if s := b.Stats(); s.Rejected != 1 || s.Requests != queue+1 || s.Batches != 2 {
		t.Errorf("Stats: rejected %d, requests %d in %d batches; want 1, %d in 2", s.Rejected, s.Requests, s.Batches, queue+1)
	}
}

func TestDeadlineWhileQueued(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     batching.Config
		ctx     func() (context.Context, context.CancelFunc)
		wantErr error
	}{
		{"caller deadline", batching.Config{}, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}, context.DeadlineExceeded},
		{"config timeout", batching.Config{Timeout: 20 * time.Millisecond}, func() (context.Context, context.CancelFunc) {
			return context.Background(), func() {}
		}, context.DeadlineExceeded},
		{"caller cancels", batching.Config{}, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, started, release := blockingModel(8)
			cfg := tc.cfg
			cfg.MaxBatchSize, cfg.Concurrency = 8, 1
			b := newBatcher(t, m, cfg)

			first := make(chan error, 1)
			go func() {
				_, err := b.Run(context.Background(), rowRequest(1, 1), nil)
				first <- err
			}()
			<-started
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			_, err := b.Run(ctx, rowRequest(2, 1), nil)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("queued request: %v, want %v", err, tc.wantErr)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("queued request returned after %v", d)
			}
			s := b.Stats()
			if s.QueueDepth != 0 || s.Expired+s.Canceled != 1 {
				t.Errorf("Stats: depth %d, expired %d, canceled %d; want 0 and one dropped", s.QueueDepth, s.Expired, s.Canceled)
			}
			close(release)
			if err := <-first; tc.cfg.Timeout == 0 && err != nil {
				t.Errorf("first request: %v", err)
			}
			b.Close()
			if m.ran(2) {
				t.Error("the expired request ran")
			}
		})
	}
}

func TestCanceledBeforeRun(t *testing.T) {
	b := newBatcher(t, newRowModel(8), batching.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Run(ctx, rowRequest(1, 1), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a canceled context: %v, want context.Canceled", err)
	}
}

func TestLargeRequestRunsAlone(t *testing.T) {
	m := newRowModel(64)
	b := newBatcher(t, m, batching.Config{MaxBatchSize: 4, MaxQueueDelay: 20 * time.Millisecond})
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if out, err := b.Run(context.Background(), rowRequest(int64(i), 1), nil); err != nil || checkRows(out, int64(i), 1) != nil {
				t.Errorf("small request %d: %v", i, err)
			}
		})
	}
	out, err := b.Run(context.Background(), rowRequest(100, 10), nil)
	if err == nil {
		err = checkRows(out, 100, 10)
	}
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	m.mu.Lock()
	for _, c := range m.calls {
		if slices.Contains(c, 100) && len(c) != 10 {
			t.Errorf("the large request ran with others: %v", c)
		}
	}
	m.mu.Unlock()
	if s := b.Stats(); s.Bypassed != 1 || s.MaxBatchRows > 4 {
		t.Errorf("Stats: bypassed %d, max batch %d; want 1 and <= 4", s.Bypassed, s.MaxBatchRows)
	}
}

// TestOnlyMergeableShareABatch sends requests with different trailing
// sizes and output filters at once: each run must see one kind only.
func TestOnlyMergeableShareABatch(t *testing.T) {
	var mu sync.Mutex
	var runs []string
	m := &fakeModel{
		inputs:   []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, -1}}},
		outputs:  []onnx.ValueInfo{{Name: "sum", DType: tensor.Float32, Shape: []int64{-1}}, {Name: "width", DType: tensor.Int64, Shape: []int64{-1}}},
		maxBatch: 64,
	}
	m.run = func(_ context.Context, in map[string]*tensor.Tensor, outs []string) (map[string]*tensor.Tensor, error) {
		x := in["x"]
		n, w := int(x.Shape[0]), int(x.Shape[1])
		if x.Len() != n*w {
			return nil, fmt.Errorf("x %v has %d elements", x.Shape, x.Len())
		}
		mu.Lock()
		runs = append(runs, fmt.Sprint(w, outs))
		mu.Unlock()
		time.Sleep(time.Millisecond)
		sum, _ := tensor.New(tensor.Float32, []int64{int64(n)})
		width, _ := tensor.New(tensor.Int64, []int64{int64(n)})
		for i := range n {
			for _, v := range x.Data.([]float32)[i*w : (i+1)*w] {
				sum.Data.([]float32)[i] += v
			}
			width.Data.([]int64)[i] = int64(w)
		}
		res := map[string]*tensor.Tensor{"sum": sum, "width": width}
		if len(outs) == 1 {
			delete(res, map[string]string{"sum": "width", "width": "sum"}[outs[0]])
		}
		return res, nil
	}
	b := newBatcher(t, m, batching.Config{MaxQueueDelay: 10 * time.Millisecond})
	filters := [][]string{nil, {"sum"}, {"width", "sum"}, {"width"}}
	var wg sync.WaitGroup
	for i := range 80 {
		wg.Go(func() {
			w, f := 2+i%3, filters[i%len(filters)]
			x, _ := tensor.New(tensor.Float32, []int64{1, int64(w)})
			for j := range w {
				x.Data.([]float32)[j] = float32(i)
			}
			out, err := b.Run(context.Background(), map[string]*tensor.Tensor{"x": x}, f)
			if err != nil {
				t.Error(err)
				return
			}
			wantNames := []string{"sum", "width"}
			if len(f) == 1 {
				wantNames = f
			}
			if got := slices.Sorted(func(yield func(string) bool) {
				for k := range out {
					if !yield(k) {
						return
					}
				}
			}); !slices.Equal(got, wantNames) {
				t.Errorf("request %d asked %v, got outputs %v", i, f, got)
			}
			if s := out["sum"]; s != nil && s.Data.([]float32)[0] != float32(i*w) {
				t.Errorf("request %d: sum %v, want %d", i, s.Data, i*w)
			}
			if s := out["width"]; s != nil && s.Data.([]int64)[0] != int64(w) {
				t.Errorf("request %d: width %v, want %d", i, s.Data, w)
			}
		})
	}
	wg.Wait()
	if s := b.Stats(); s.Batches >= 80 {
		t.Errorf("%d batches for 80 requests: nothing was merged", s.Batches)
	}
	t.Logf("runs (width, outputs): %v", runs)
}

func TestCloseDrains(t *testing.T) {
	m := newRowModel(64)
	m.hook = func([]int64) error { time.Sleep(2 * time.Millisecond); return nil }
	b, err := batching.New(m, batching.Config{MaxQueueDelay: time.Minute, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			out, err := b.Run(context.Background(), rowRequest(int64(i), 2), nil)
			if err == nil {
				err = checkRows(out, int64(i), 2)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	waitFor(t, "20 queued requests", func() bool { return b.Stats().QueueDepth == 20 })
	start := time.Now()
	b.Close()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Close took %v: it waited for MaxQueueDelay", d)
	}
	if s := b.Stats(); s.Requests != 20 || s.QueueDepth != 0 || s.Running != 0 {
		t.Errorf("after Close: %d requests ran, depth %d, running %d; want 20, 0, 0", s.Requests, s.QueueDepth, s.Running)
	}
	wg.Wait()
	if _, err := b.Run(context.Background(), rowRequest(1, 1), nil); !errors.Is(err, batching.ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	if _, err := b.Run(context.Background(), rowRequest(1, 100), nil); !errors.Is(err, batching.ErrClosed) {
		t.Errorf("Run of a large request after Close: %v, want ErrClosed", err)
	}
	b.Close() // idempotent
}

func TestFailingBatch(t *testing.T) {
	t.Run("one bad request", func(t *testing.T) {
		m := newRowModel(64)
		m.hook = func(ids []int64) error {
			if slices.Contains(ids, 13) {
				return fmt.Errorf("%w: id 13", errBadRow)
			}
			time.Sleep(time.Millisecond)
			return nil
		}
		b := newBatcher(t, m, batching.Config{MaxQueueDelay: 20 * time.Millisecond, Concurrency: 1})
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Go(func() {
				out, err := b.Run(context.Background(), rowRequest(int64(i), 1), nil)
				switch {
				case i == 13 && !errors.Is(err, errBadRow):
					t.Errorf("bad request: %v, want errBadRow", err)
				case i != 13 && err != nil:
					t.Errorf("request %d failed with the bad one: %v", i, err)
				case i != 13:
					if err := checkRows(out, int64(i), 1); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if s := b.Stats(); s.FailedBatches == 0 || s.Isolated == 0 {
			t.Errorf("Stats: %d failed batches, %d isolated; want > 0", s.FailedBatches, s.Isolated)
		}
		// later batches are unaffected
		if out, err := b.Run(context.Background(), rowRequest(50, 2), nil); err != nil || checkRows(out, 50, 2) != nil {
			t.Errorf("after a failed batch: %v", err)
		}
	})
	t.Run("model fails", func(t *testing.T) {
		m := newRowModel(64)
		m.hook = func([]int64) error { time.Sleep(time.Millisecond); return errBadRow }
		b := newBatcher(t, m, batching.Config{MaxQueueDelay: 5 * time.Millisecond})
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				if _, err := b.Run(context.Background(), rowRequest(int64(i), 1), nil); !errors.Is(err, errBadRow) {
					t.Errorf("request %d: %v, want errBadRow", i, err)
				}
			})
		}
		wg.Wait()
	})
	t.Run("model panics", func(t *testing.T) {
		m := newRowModel(64)
		m.hook = func(ids []int64) error {
			if ids[0] == 7 {
				panic("boom")
			}
			return nil
		}
		b := newBatcher(t, m, batching.Config{})
		if _, err := b.Run(context.Background(), rowRequest(7, 1), nil); err == nil || !strings.Contains(err.Error(), "panic") {
			t.Errorf("panicking run: %v, want an error saying so", err)
		}
		if out, err := b.Run(context.Background(), rowRequest(8, 1), nil); err != nil || checkRows(out, 8, 1) != nil {
			t.Errorf("after a panic: %v", err)
		}
	})
}

func TestPreferredBatchSize(t *testing.T) {
	m := newRowModel(64)
	b := newBatcher(t, m, batching.Config{MaxBatchSize: 16, PreferredBatchSizes: []int{4}, MaxQueueDelay: time.Minute})
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if _, err := b.Run(context.Background(), rowRequest(int64(i), 1), nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("4 rows with preferred size 4 took %v: the batch waited for MaxQueueDelay", d)
	}
	if s := b.Stats(); s.Batches != 1 || s.MaxBatchRows != 4 {
		t.Errorf("Stats: %d batches, max %d rows; want one batch of 4", s.Batches, s.MaxBatchRows)
	}
}

func TestMaxQueueDelay(t *testing.T) {
	const delay = 30 * time.Millisecond
	b := newBatcher(t, newRowModel(64), batching.Config{MaxQueueDelay: delay})
	start := time.Now()
	if _, err := b.Run(context.Background(), rowRequest(1, 1), nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < delay {
		t.Errorf("a lone request returned after %v, want it to wait %v for others", d, delay)
	}
}

// TestBadRequestPassesThrough: what does not fit the model is not queued;
// the model's own error comes back.
func TestBadRequestPassesThrough(t *testing.T) {
	errModel := errors.New("model says no")
	m := newRowModel(8)
	m.run = func(context.Context, map[string]*tensor.Tensor, []string) (map[string]*tensor.Tensor, error) {
		return nil, errModel
	}
	b := newBatcher(t, m, batching.Config{MaxQueueDelay: time.Minute})
	wrongDType := rowRequest(1, 1)
	wrongDType["id"] = &tensor.Tensor{DType: tensor.Int32, Shape: []int64{1}, Data: []int32{1}}
	wrongBatch := rowRequest(1, 2)
	wrongBatch["id"] = rowRequest(1, 1)["id"]
	wrongWidth := rowRequest(1, 1)
	wrongWidth["x"] = &tensor.Tensor{DType: tensor.Float32, Shape: []int64{1, 4}, Data: make([]float32, 4)}
	extra := rowRequest(1, 1)
	extra["w"] = extra["x"]
	missing := rowRequest(1, 1)
	delete(missing, "x")
	for name, in := range map[string]map[string]*tensor.Tensor{
		"dtype": wrongDType, "batch": wrongBatch, "width": wrongWidth, "extra": extra, "missing": missing,
	} {
		if _, err := b.Run(context.Background(), in, nil); !errors.Is(err, errModel) {
			t.Errorf("%s: %v, want the model's error", name, err)
		}
	}
	if _, err := b.Run(context.Background(), rowRequest(1, 1), []string{"nope"}); !errors.Is(err, errModel) {
		t.Errorf("unknown output: %v, want the model's error", err)
	}
	if s := b.Stats(); s.Bypassed != 6 || s.Batches != 0 {
		t.Errorf("Stats: bypassed %d, batches %d; want 6, 0", s.Bypassed, s.Batches)
	}
}

// TestAllDTypes round-trips every dtype through concatenation and split,
// with requests of random row counts, and outputs with k rows per item.
func TestAllDTypes(t *testing.T) {
	dtypes := []tensor.DType{tensor.Float32, tensor.Float64, tensor.Int8, tensor.Uint8, tensor.Int32, tensor.Int64, tensor.Bool}
	m := &fakeModel{maxBatch: 32}
	for _, dt := range dtypes {
		m.inputs = append(m.inputs, onnx.ValueInfo{Name: "in_" + dt.String(), DType: dt, Shape: []int64{-1, 2, 3}})
		m.outputs = append(m.outputs, onnx.ValueInfo{Name: "out_" + dt.String(), DType: dt, Shape: []int64{-1, 3}})
	}
	// out = in reshaped to [2N 3]: two output rows per item.
	m.run = func(_ context.Context, in map[string]*tensor.Tensor, _ []string) (map[string]*tensor.Tensor, error) {
		time.Sleep(time.Millisecond)
		res := map[string]*tensor.Tensor{}
		for _, dt := range dtypes {
			t := in["in_"+dt.String()]
			res["out_"+dt.String()] = &tensor.Tensor{DType: dt, Shape: []int64{2 * t.Shape[0], 3}, Data: t.Data}
		}
		return res, nil
	}
	b := newBatcher(t, m, batching.Config{MaxQueueDelay: 5 * time.Millisecond})
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			rows := 1 + r.IntN(6)
			in := map[string]*tensor.Tensor{}
			for _, dt := range dtypes {
				x, _ := tensor.New(dt, []int64{int64(rows), 2, 3})
				fill(x, r)
				in["in_"+dt.String()] = x
			}
			out, err := b.Run(context.Background(), in, nil)
			if err != nil {
				t.Error(err)
				return
			}
			for _, dt := range dtypes {
				x, y := in["in_"+dt.String()], out["out_"+dt.String()]
				if y == nil || !slices.Equal(y.Shape, []int64{int64(2 * rows), 3}) || y.DType != dt || fmt.Sprint(x.Data) != fmt.Sprint(y.Data) {
					t.Errorf("request %d, %v: got %+v, want %v in shape [%d 3]", i, dt, y, x.Data, 2*rows)
				}
			}
		})
	}
	wg.Wait()
	if s := b.Stats(); s.Batches >= 40 {
		t.Errorf("%d batches for 40 requests: nothing was merged", s.Batches)
	}
}

func fill(t *tensor.Tensor, r *rand.Rand) {
	switch d := t.Data.(type) {
	case []float32:
		for i := range d {
			d[i] = r.Float32()
		}
	case []float64:
		for i := range d {
			d[i] = r.Float64()
		}
	case []int8:
		for i := range d {
			d[i] = int8(r.IntN(256) - 128)
		}
	case []uint8:
		for i := range d {
			d[i] = uint8(r.IntN(256))
		}
	case []int32:
		for i := range d {
			d[i] = r.Int32()
		}
	case []int64:
		for i := range d {
			d[i] = r.Int64()
		}
	case []bool:
		for i := range d {
			d[i] = r.IntN(2) == 1
		}
	}
}

func TestNewRefuses(t *testing.T) {
	batched := []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{-1, 3}}}
	for _, tc := range []struct {
		name     string
		inputs   []onnx.ValueInfo
		outputs  []onnx.ValueInfo
		maxBatch int
		cfg      batching.Config
		want     string
		notBatch bool
	}{
		{"static input", []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{1, 3}}}, batched, 8, batching.Config{}, `input x fp32[1 3] has no batch dimension`, true},
		{"scalar input", []onnx.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: []int64{}}}, batched, 8, batching.Config{}, `input x`, true},
		{"output without batch", batched, []onnx.ValueInfo{{Name: "stats", DType: tensor.Float32, Shape: []int64{3}}}, 8, batching.Config{}, `output stats fp32[3] does not follow the batch`, true},
		{"output without shape", batched, []onnx.ValueInfo{{Name: "y", DType: tensor.Float32}}, 8, batching.Config{}, `output y`, true},
		{"batch of one", batched, batched, 1, batching.Config{}, `at most 1 row`, true},
		{"max above model", batched, batched, 8, batching.Config{MaxBatchSize: 16}, `batching.max_batch_size: 16, want at most 8 (the model's max batch)`, false},
		{"preferred above model", batched, batched, 8, batching.Config{PreferredBatchSizes: []int{4, 16}}, `batching.preferred_batch_sizes: 16, want 1 to max_batch_size (8)`, false},
		{"negative max", batched, batched, 8, batching.Config{MaxBatchSize: -1}, `batching.max_batch_size: -1`, false},
		{"negative delay", batched, batched, 8, batching.Config{MaxQueueDelay: -time.Millisecond}, `batching.max_queue_delay: -1ms, want >= 0`, false},
		{"preferred zero", batched, batched, 8, batching.Config{PreferredBatchSizes: []int{0}}, `batching.preferred_batch_sizes: 0, want 1 to max_batch_size`, false},
		{"preferred twice", batched, batched, 8, batching.Config{PreferredBatchSizes: []int{2, 2}}, `batching.preferred_batch_sizes: 2 appears twice`, false},
		{"preferred above max", batched, batched, 8, batching.Config{MaxBatchSize: 4, PreferredBatchSizes: []int{8}}, `batching.preferred_batch_sizes: 8, want 1 to max_batch_size (4)`, false},
		{"negative queue", batched, batched, 8, batching.Config{MaxQueueSize: -1}, `batching.max_queue_size: -1`, false},
		{"negative timeout", batched, batched, 8, batching.Config{Timeout: -time.Second}, `batching.timeout: -1s`, false},
		{"negative concurrency", batched, batched, 8, batching.Config{Concurrency: -2}, `batching.concurrency: -2`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &fakeModel{inputs: tc.inputs, outputs: tc.outputs, maxBatch: tc.maxBatch}
			b, err := batching.New(m, tc.cfg)
			if err == nil {
				b.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if got := errors.Is(err, batching.ErrNotBatchable); got != tc.notBatch {
				t.Errorf("errors.Is(err, ErrNotBatchable) = %v, want %v", got, tc.notBatch)
			}
		})
	}
}

// TestOverload: far more callers than the queue holds. The excess is
// refused at once; every admitted request gets its own rows.
func TestOverload(t *testing.T) {
	const callers, queue = 400, 16
	m := newRowModel(8)
	m.hook = func([]int64) error { time.Sleep(time.Millisecond); return nil }
	b := newBatcher(t, m, batching.Config{MaxBatchSize: 8, MaxQueueSize: queue, MaxQueueDelay: time.Millisecond, Concurrency: 1})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var rejected, served int
	var slowestRefusal time.Duration
	for i := range callers {
		wg.Go(func() {
			start := time.Now()
			out, err := b.Run(context.Background(), rowRequest(int64(i), 1), nil)
			d := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, batching.ErrQueueFull):
				rejected++
				slowestRefusal = max(slowestRefusal, d)
			case err != nil:
				t.Errorf("request %d: %v", i, err)
			default:
				served++
				if err := checkRows(out, int64(i), 1); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	s := b.Stats()
	if rejected == 0 || served == 0 || uint64(rejected) != s.Rejected || uint64(served) != s.Requests {
		t.Errorf("%d rejected, %d served; Stats say %d and %d", rejected, served, s.Rejected, s.Requests)
	}
	if slowestRefusal > time.Second {
		t.Errorf("a refusal took %v, want immediate", slowestRefusal)
	}
	t.Logf("%d served in %d batches, %d refused (slowest refusal %v)", served, s.Batches, rejected, slowestRefusal)
}
