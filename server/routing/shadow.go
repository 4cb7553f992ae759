package routing

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corvidml/corvid/server/tensor"
)

// RunFunc runs a model version: repository.Servable's Run method fits it.
type RunFunc func(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error)

// Defaults for the zero fields of a ShadowConfig.
const (
	DefaultShadowQueueSize = 64
	DefaultShadowTimeout   = time.Second
	DefaultShadowWorkers   = 1
)

// ShadowConfig is how a shadow version takes its copy of the traffic.
type ShadowConfig struct {
	// Sample is the share of offered requests copied to the shadow, 0 to 1,
	// drawn at random per request. 0 copies none; there is no default, so
	// map an unset model.yaml value explicitly.
	Sample float64
	// QueueSize bounds the copies waiting for a worker; a copy offered to a
	// full queue is dropped and counted. Default DefaultShadowQueueSize.
	QueueSize int
	// Timeout bounds each shadow run, counted from when a worker starts it.
	// Default DefaultShadowTimeout.
	Timeout time.Duration
	// Workers is how many shadow runs may be in flight at once. Default
	// DefaultShadowWorkers; keep it small, as shadow runs take CPU from the
	// primary.
	Workers int
}

// Validate reports the first invalid field, named as model.yaml spells it.
// Zero QueueSize, Timeout and Workers are valid: they take the defaults.
func (c ShadowConfig) Validate() error {
	switch {
	case math.IsNaN(c.Sample) || c.Sample < 0 || c.Sample > 1:
		return fmt.Errorf("routing.shadow.sample: got %v, want 0 to 1", c.Sample)
	case c.QueueSize < 0:
		return fmt.Errorf("routing.shadow.queue_size: got %d, want >= 0 (0 for %d)", c.QueueSize, DefaultShadowQueueSize)
	case c.Timeout < 0:
		return fmt.Errorf("routing.shadow.timeout: got %v, want >= 0 (0 for %v)", c.Timeout, DefaultShadowTimeout)
	case c.Workers < 0:
		return fmt.Errorf("routing.shadow.workers: got %d, want >= 0 (0 for %d)", c.Workers, DefaultShadowWorkers)
	}
	return nil
}

func (c ShadowConfig) withDefaults() ShadowConfig {
	if c.QueueSize == 0 {
		c.QueueSize = DefaultShadowQueueSize
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultShadowTimeout
	}
	if c.Workers == 0 {
		c.Workers = DefaultShadowWorkers
	}
	return c
}

// ShadowStats are a shadow's running figures since it was created, for
// ModelStatus. Once Close has returned,
// Sampled == Dropped + Failed + TimedOut + Compared.
type ShadowStats struct {
	// Offered counts calls to Offer; Sampled those drawn by Sample.
	Offered, Sampled uint64
	// Dropped counts sampled copies the shadow never finished: the queue was
	// full, or they were queued or in flight when Close was called.
	Dropped uint64
	// Failed counts shadow runs that returned an error or panicked (or whose
	// Comparator panicked); TimedOut those that ran past Timeout.
	Failed, TimedOut uint64
	// Compared counts shadow runs whose outputs were compared.
	Compared uint64
	// Queued is how many copies wait for a worker now.
	Queued int

	// LabelRows counts the batch rows of label (integer and bool) outputs
	// compared; AgreedRows those the shadow got the same; Agreement is
	// AgreedRows / LabelRows, and 0 while LabelRows is 0.
	LabelRows, AgreedRows uint64
	Agreement             float64
	// FloatCompared counts the compared requests with at least one float
	// output; MeanAbsDiff is the mean over them of each request's largest
	// absolute difference, and MaxAbsDiff the largest of all.
	FloatCompared           uint64
	MeanAbsDiff, MaxAbsDiff float64
	// Mismatched counts primary outputs that the shadow left out, returned
	// with another shape or kind of dtype, or returned non-finite where the
	// primary was not (see Comparison); their label rows count as
	// disagreeing.
	Mismatched uint64

	// Shadow run latency over runs that returned (compared, failed or timed
	// out): mean and max since creation; P50 and P99 over the last 1024
	// runs.
	LatencyMean, LatencyMax, LatencyP50, LatencyP99 time.Duration
}

// latencyWindow is how many recent shadow runs the latency percentiles cover.
const latencyWindow = 1024

type shadowJob struct {
	inputs  map[string]*tensor.Tensor
	outputs []string
	primary map[string]*tensor.Tensor
}

// Shadow mirrors a sample of a model's traffic to a shadow version and
// compares its outputs with the primary's. The caller never waits for the
// shadow and never sees its results: Offer only enqueues, and a bounded
// queue drops what the workers cannot keep up with, so a slow or failing
// shadow cannot slow the primary down (RELIABILITY row 19).
type Shadow struct {
	run     RunFunc
	compare Comparator
	cfg     ShadowConfig
	queue   chan shadowJob

	// mu orders Offer's enqueue before Close's drain, so that every sampled
	// copy is counted exactly once.
	mu     sync.RWMutex
	closed bool

	ctx       context.Context // cancelled by Close; parent of every run's context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	offered, sampled, dropped atomic.Uint64

	statsMu sync.Mutex
	totals  shadowTotals
}

type shadowTotals struct {
	failed, timedOut, compared        uint64
	labelRows, agreedRows, mismatched uint64
	floatCompared                     uint64
	sumMaxDiff, maxDiff               float64
	latencyRuns                       uint64
	latencySum, latencyMax            time.Duration
	window                            [latencyWindow]time.Duration
	windowNext                        int
}

// NewShadow starts cfg.Workers workers that run copies of the traffic through
// run, each under its own cfg.Timeout, and compare the results with compare
// (Compare when nil). run must honour its context: Close cancels it and waits
// for it to return. NewShadow panics if cfg is invalid; check model.yaml with
// cfg.Validate first.
func NewShadow(run RunFunc, cfg ShadowConfig, compare Comparator) *Shadow {
	if err := cfg.Validate(); err != nil {
		panic("routing.NewShadow: " + err.Error())
	}
	if compare == nil {
		compare = Compare
	}
	cfg = cfg.withDefaults()
	s := &Shadow{
		run:     run,
		compare: compare,
		cfg:     cfg,
		queue:   make(chan shadowJob, cfg.QueueSize),
	}
	// Shadow runs derive from Background, never from a caller's context: the
	// request they copy has usually finished before they start.
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(cfg.Workers)
	for range cfg.Workers {
		go s.work()
	}
	return s
}

// Config returns the configuration in effect, defaults applied.
func (s *Shadow) Config() ShadowConfig { return s.cfg }

// Offer hands the shadow a copy of a request that the primary has served:
// its inputs, the outputs asked for, and the primary's outputs. It returns at
// once, whether the copy was sampled, queued or dropped, and is safe for
// concurrent use, also after Close (the copy is then dropped).
//
// The copy is by reference, not by value: neither inputs nor primary (nor
// their tensors' Shape and Data) may be mutated after Offer, by the caller or
// by anyone it hands them to.
func (s *Shadow) Offer(inputs map[string]*tensor.Tensor, outputs []string, primary map[string]*tensor.Tensor) {
	s.offered.Add(1)
	switch p := s.cfg.Sample; {
	case p <= 0:
		return
	case p < 1 && rand.Float64() >= p:
		return
	}
	s.sampled.Add(1)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.dropped.Add(1)
		return
	}
	select {
	case s.queue <- shadowJob{inputs: inputs, outputs: outputs, primary: primary}:
	default:
		s.dropped.Add(1)
	}
}

// Close stops the workers, cancelling the shadow runs in flight, drops the
// queued copies, and returns once every worker has returned. It is safe to
// call more than once.
func (s *Shadow) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
		for {
			select {
			case <-s.queue:
				s.dropped.Add(1)
			default:
				return
			}
		}
	})
}

func (s *Shadow) work() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case j := <-s.queue:
			s.do(j)
		}
	}
}

// do runs one copy through the shadow and records the outcome.
func (s *Shadow) do(j shadowJob) {
	if s.ctx.Err() != nil {
		s.dropped.Add(1)
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	start := time.Now()
	out, err := s.safeRun(ctx, j)
	latency := time.Since(start)

	switch {
	case s.ctx.Err() != nil:
		// Cancelled by Close: not the shadow's doing.
		s.dropped.Add(1)
		return
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		// A run that ignored its deadline and returned late counts too.
		s.record(latency, func(t *shadowTotals) { t.timedOut++ })
		return
	case err != nil:
		s.record(latency, func(t *shadowTotals) { t.failed++ })
		return
	}
	c, err := s.safeCompare(j.primary, out)
	if err != nil {
		s.record(latency, func(t *shadowTotals) { t.failed++ })
		return
	}
	s.record(latency, func(t *shadowTotals) {
		t.compared++
		t.labelRows += uint64(max(c.LabelRows, 0))
		t.agreedRows += uint64(max(c.AgreedRows, 0))
		t.mismatched += uint64(max(c.Mismatched, 0))
		if c.FloatOutputs > 0 {
			t.floatCompared++
			t.sumMaxDiff += c.MaxAbsDiff
			t.maxDiff = max(t.maxDiff, c.MaxAbsDiff)
		}
	})
}

// errPanic reports a shadow run or comparison that panicked; the shadow must
// never take the server down.
var errPanic = errors.New("shadow panicked")

func (s *Shadow) safeRun(ctx context.Context, j shadowJob) (out map[string]*tensor.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%w: %v", errPanic, r)
		}
	}()
	return s.run(ctx, j.inputs, j.outputs)
}

func (s *Shadow) safeCompare(primary, shadow map[string]*tensor.Tensor) (c Comparison, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: comparing: %v", errPanic, r)
		}
	}()
	return s.compare(primary, shadow), nil
}

func (s *Shadow) record(latency time.Duration, update func(*shadowTotals)) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	t := &s.totals
	update(t)
	t.latencyRuns++
	t.latencySum += latency
	t.latencyMax = max(t.latencyMax, latency)
	t.window[t.windowNext] = latency
	t.windowNext = (t.windowNext + 1) % latencyWindow
}

// Stats returns the running figures. It sorts the recent latencies, so call
// it for status, not per request.
func (s *Shadow) Stats() ShadowStats {
	// Outcomes first, then Sampled, then Offered: each copy is counted in
	// the reverse order, so the figures never show more finished than
	// sampled, or more sampled than offered.
	var st ShadowStats
	st.Dropped = s.dropped.Load()
	s.statsMu.Lock()
	t := s.totals
	s.statsMu.Unlock()
	st.Queued = len(s.queue)
	st.Sampled = s.sampled.Load()
	st.Offered = s.offered.Load()

	st.Failed, st.TimedOut, st.Compared = t.failed, t.timedOut, t.compared
	st.LabelRows, st.AgreedRows, st.Mismatched = t.labelRows, t.agreedRows, t.mismatched
	if t.labelRows > 0 {
		st.Agreement = float64(t.agreedRows) / float64(t.labelRows)
	}
	st.FloatCompared, st.MaxAbsDiff = t.floatCompared, t.maxDiff
	if t.floatCompared > 0 {
		st.MeanAbsDiff = t.sumMaxDiff / float64(t.floatCompared)
	}
	if t.latencyRuns > 0 {
		st.LatencyMean = t.latencySum / time.Duration(t.latencyRuns)
		st.LatencyMax = t.latencyMax
		n := int(min(t.latencyRuns, latencyWindow))
		w := slices.Clone(t.window[:n])
		slices.Sort(w)
		st.LatencyP50 = w[quantileIndex(n, 0.50)]
		st.LatencyP99 = w[quantileIndex(n, 0.99)]
	}
	return st
}

// quantileIndex is the nearest-rank index of quantile q in n sorted values.
func quantileIndex(n int, q float64) int {
	i := int(math.Ceil(q*float64(n))) - 1
	return min(max(i, 0), n-1)
}
