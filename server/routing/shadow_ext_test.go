package routing_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corvidml/corvid/server/routing"
	"github.com/corvidml/corvid/server/tensor"
)

// waitStats polls s until cond holds, failing the test after 10 seconds.
func waitStats(t *testing.T, s *routing.Shadow, cond func(routing.ShadowStats) bool) routing.ShadowStats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting; stats %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkAccounted wants every sampled copy accounted for once the shadow is
// closed.
func checkAccounted(t *testing.T, st routing.ShadowStats) {
	t.Helper()
	if done := st.Dropped + st.Failed + st.TimedOut + st.Compared; done != st.Sampled || st.Queued != 0 {
		t.Errorf("after Close: Dropped+Failed+TimedOut+Compared = %d, Queued = %d, want Sampled = %d and 0; stats %+v", done, st.Queued, st.Sampled, st)
	}
}

// sleepRun is a shadow that takes d, or until its context ends.
func sleepRun(d time.Duration, started chan<- struct{}) routing.RunFunc {
	return func(ctx context.Context, _ map[string]*tensor.Tensor, _ []string) (map[string]*tensor.Tensor, error) {
		if started != nil {
			select {
			case started <- struct{}{}:
			default:
			}
		}
		select {
		case <-time.After(d):
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func TestShadowOfferNeverBlocksOnASlowShadow(t *testing.T) {
	const shadowTime = 500 * time.Millisecond
	s := routing.NewShadow(sleepRun(shadowTime, nil), routing.ShadowConfig{Sample: 1, QueueSize: 4, Workers: 1, Timeout: time.Minute}, nil)
	in := outs{"x": ts(tensor.Float32, []int64{1}, []float32{1})}
	const n = 1000
	start := time.Now()
	for range n {
		s.Offer(in, []string{"y"}, nil)
	}
	elapsed := time.Since(start)
	// One shadow run takes shadowTime; 1000 Offers must not wait for any.
	if elapsed > shadowTime/10 {
		t.Errorf("%d Offers took %v, want well under one shadow run (%v)", n, elapsed, shadowTime)
	}
	st := s.Stats()
	if st.Offered != n || st.Sampled != n {
		t.Errorf("Offered, Sampled = %d, %d, want %d, %d", st.Offered, st.Sampled, n, n)
	}
	// At most QueueSize queued plus one per worker taken off the queue.
	if st.Dropped < n-4-1 {
		t.Errorf("Dropped = %d, want >= %d", st.Dropped, n-4-1)
	}
	t.Logf("%d Offers in %v (%v each); %d dropped", n, elapsed, elapsed/n, st.Dropped)

	closeStart := time.Now()
	s.Close()
	if d := time.Since(closeStart); d > shadowTime/2 {
		t.Errorf("Close took %v, want it to cancel the shadow run in flight", d)
	}
	st = s.Stats()
	checkAccounted(t, st)
	if st.Compared+st.Failed+st.TimedOut != 0 {
		t.Errorf("stats %+v, want only drops: Close cancelled the one run in flight", st)
	}
}

// labelShadow returns the labels of its "x" input, with rows listed in
// wrong set to 99, and its "y" input plus diff[x[0]%len(diff)] as scores.
func labelShadow(wrong map[int]bool, diffs []float32) routing.RunFunc {
	return func(_ context.Context, in map[string]*tensor.Tensor, _ []string) (map[string]*tensor.Tensor, error) {
		x := in["x"].Data.([]int64)
		labels := make([]int64, len(x))
		for i, v := range x {
			labels[i] = v
			if wrong[i] {
				labels[i] = 99
			}
		}
		y := in["y"].Data.([]float32)
		scores := make([]float32, len(y))
		for i, v := range y {
			scores[i] = v + diffs[int(x[0])%len(diffs)]
		}
		return map[string]*tensor.Tensor{
			"label": ts(tensor.Int64, []int64{int64(len(x))}, labels),
			"score": ts(tensor.Float32, []int64{int64(len(y))}, scores),
		}, nil
	}
}

func TestShadowAgreementAndDiffs(t *testing.T) {
	const requests = 20
	run := labelShadow(map[int]bool{1: true, 4: true, 7: true}, []float32{0.5, 0.25})
	s := routing.NewShadow(run, routing.ShadowConfig{Sample: 1, QueueSize: requests, Workers: 2}, nil)
	defer s.Close()
	for r := range requests {
		x := []int64{int64(r), 1, 2, 3, 4, 5, 6, 7, 8, 9} // 10 rows
		y := []float32{1, 2, 3}
		in := outs{"x": ts(tensor.Int64, []int64{10}, x), "y": ts(tensor.Float32, []int64{3}, y)}
		primary := outs{"label": ts(tensor.Int64, []int64{10}, x), "score": ts(tensor.Float32, []int64{3}, y)}
		s.Offer(in, []string{"label", "score"}, primary)
	}
	st := waitStats(t, s, func(st routing.ShadowStats) bool { return st.Compared == requests })
	// 3 of 10 rows wrong in every request.
	if st.LabelRows != 10*requests || st.AgreedRows != 7*requests || st.Agreement != 0.7 {
		t.Errorf("LabelRows, AgreedRows, Agreement = %d, %d, %v, want %d, %d, 0.7", st.LabelRows, st.AgreedRows, st.Agreement, 10*requests, 7*requests)
	}
	// Half the requests differ by 0.5, half by 0.25.
	if st.FloatCompared != requests || st.MeanAbsDiff != 0.375 || st.MaxAbsDiff != 0.5 {
		t.Errorf("FloatCompared, MeanAbsDiff, MaxAbsDiff = %d, %v, %v, want %d, 0.375, 0.5", st.FloatCompared, st.MeanAbsDiff, st.MaxAbsDiff, requests)
	}
	if st.Dropped != 0 || st.Failed != 0 || st.TimedOut != 0 || st.Mismatched != 0 {
		t.Errorf("stats %+v, want no drops, failures, timeouts or mismatches", st)
	}
	if st.LatencyMax <= 0 || st.LatencyP50 > st.LatencyP99 || st.LatencyP99 > st.LatencyMax || st.LatencyMean > st.LatencyMax {
		t.Errorf("latency mean %v, p50 %v, p99 %v, max %v: want p50 <= p99 <= max, mean <= max, max > 0", st.LatencyMean, st.LatencyP50, st.LatencyP99, st.LatencyMax)
	}
}

func TestShadowPerfectAgreement(t *testing.T) {
	run := labelShadow(nil, []float32{0})
	s := routing.NewShadow(run, routing.ShadowConfig{Sample: 1}, nil)
	defer s.Close()
	x := []int64{0, 1, 2}
	y := []float32{0.5}
	s.Offer(outs{"x": ts(tensor.Int64, []int64{3}, x), "y": ts(tensor.Float32, []int64{1}, y)}, nil,
		outs{"label": ts(tensor.Int64, []int64{3}, x), "score": ts(tensor.Float32, []int64{1}, y)})
	st := waitStats(t, s, func(st routing.ShadowStats) bool { return st.Compared == 1 })
	if st.Agreement != 1 || st.MaxAbsDiff != 0 || st.MeanAbsDiff != 0 {
		t.Errorf("Agreement, MaxAbsDiff, MeanAbsDiff = %v, %v, %v, want 1, 0, 0", st.Agreement, st.MaxAbsDiff, st.MeanAbsDiff)
	}
}

func TestShadowShapeMismatchCountsAsDisagreement(t *testing.T) {
	run := func(context.Context, map[string]*tensor.Tensor, []string) (map[string]*tensor.Tensor, error) {
		return outs{"label": ts(tensor.Int64, []int64{2}, []int64{1, 2})}, nil
	}
	s := routing.NewShadow(run, routing.ShadowConfig{Sample: 1}, nil)
	defer s.Close()
	s.Offer(nil, nil, outs{"label": ts(tensor.Int64, []int64{4}, []int64{1, 2, 3, 4})})
	st := waitStats(t, s, func(st routing.ShadowStats) bool { return st.Compared == 1 })
	if st.Mismatched != 1 || st.LabelRows != 4 || st.AgreedRows != 0 || st.Agreement != 0 {
		t.Errorf("Mismatched, LabelRows, AgreedRows, Agreement = %d, %d, %d, %v, want 1, 4, 0, 0", st.Mismatched, st.LabelRows, st.AgreedRows, st.Agreement)
	}
}

func TestShadowFailures(t *testing.T) {
	okRun := func(context.Context, map[string]*tensor.Tensor, []string) (map[string]*tensor.Tensor, error) {
		return outs{}, nil
	}
	for _, tc := range []struct {
		name    string
		run     routing.RunFunc
		compare routing.Comparator
	}{
		{"error", func(context.Context, map[string]*tensor.Tensor, []string) (map[string]*tensor.Tensor, error) {
			return nil, errors.New("shadow broke")
		}, nil},
		{"panic", func(context.Context, map[string]*tensor.Tensor, []string) (map[string]*tensor.Tensor, error) {
			panic("shadow panicked")
		}, nil},
		{"comparator panic", okRun, func(_, _ map[string]*tensor.Tensor) routing.Comparison {
			panic("comparator panicked")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := routing.NewShadow(tc.run, routing.ShadowConfig{Sample: 1, QueueSize: 10}, tc.compare)
			defer s.Close()
			for range 5 {
				s.Offer(nil, nil, nil)
			}
			st := waitStats(t, s, func(st routing.ShadowStats) bool { return st.Failed == 5 })
			if st.Compared != 0 || st.TimedOut != 0 || st.Dropped != 0 {
				t.Errorf("stats %+v, want only 5 failures", st)
			}
		})
	}
}

func TestShadowTimeout(t *testing.T) {
	const timeout = 20 * time.Millisecond
	var deadlineOK atomic.Bool
	honours := func(ctx context.Context, _ map[string]*tensor.Tensor, _ []string) (map[string]*tensor.Tensor, error) {
		d, ok := ctx.Deadline()
		deadlineOK.Store(ok && time.Until(d) <= timeout)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	ignores := func(context.Context, map[string]*tensor.Tensor, []string) (map[string]*tensor.Tensor, error) {
		time.Sleep(2 * timeout)
		return outs{}, nil // late: must not count as compared
	}
	for _, tc := range []struct {
		name string
		run  routing.RunFunc
	}{{"honours its context", honours}, {"returns late", ignores}} {
		t.Run(tc.name, func(t *testing.T) {
			s := routing.NewShadow(tc.run, routing.ShadowConfig{Sample: 1, Timeout: timeout, Workers: 2}, nil)
			defer s.Close()
			for range 3 {
				s.Offer(nil, nil, nil)
			}
			st := waitStats(t, s, func(st routing.ShadowStats) bool { return st.TimedOut == 3 })
			if st.Compared != 0 || st.Failed != 0 {
				t.Errorf("stats %+v, want only timeouts", st)
			}
			if st.LatencyMax < timeout {
				t.Errorf("LatencyMax = %v, want >= the timeout %v", st.LatencyMax, timeout)
			}
		})
	}
	if !deadlineOK.Load() {
		t.Errorf("the shadow's context had no deadline within %v", timeout)
	}
}

func TestShadowSample(t *testing.T) {
	for _, tc := range []struct {
		sample   float64
		min, max uint64
	}{
		{0, 0, 0},
		{0.25, 2300, 2700}, // 10,000 draws: sd ~43
		{1, 10000, 10000},
	} {
		t.Run(fmt.Sprintf("sample=%v", tc.sample), func(t *testing.T) {
			var runs atomic.Int64
			run := func(context.Context, map[string]*tensor.Tensor, []string) (map[string]*tensor.Tensor, error) {
				runs.Add(1)
				return nil, nil
			}
			s := routing.NewShadow(run, routing.ShadowConfig{Sample: tc.sample, QueueSize: 16}, nil)
			for range 10000 {
				s.Offer(nil, nil, nil)
			}
			s.Close()
			st := s.Stats()
			if st.Offered != 10000 || st.Sampled < tc.min || st.Sampled > tc.max {
				t.Errorf("Offered, Sampled = %d, %d, want 10000, %d to %d", st.Offered, st.Sampled, tc.min, tc.max)
			}
			if tc.sample == 0 && runs.Load() != 0 {
				t.Errorf("Sample 0 ran the shadow %d times", runs.Load())
			}
			checkAccounted(t, st)
		})
	}
}

func TestShadowCloseCancelsAndDropsQueued(t *testing.T) {
	started := make(chan struct{}, 1)
	s := routing.NewShadow(sleepRun(time.Hour, started), routing.ShadowConfig{Sample: 1, QueueSize: 8, Workers: 1, Timeout: time.Hour}, nil)
	for range 3 {
		s.Offer(nil, nil, nil)
	}
	<-started
	s.Close()
	s.Close() // idempotent
	s.Offer(nil, nil, nil)
	st := s.Stats()
	if st.Sampled != 4 || st.Dropped != 4 {
		t.Errorf("Sampled, Dropped = %d, %d, want 4, 4 (1 in flight, 2 queued, 1 after Close)", st.Sampled, st.Dropped)
	}
	checkAccounted(t, st)
}

// TestShadowConcurrentOfferAndClose races Offers against Close: no panic, no
// race, every sampled copy accounted for.
func TestShadowConcurrentOfferAndClose(t *testing.T) {
	run := func(context.Context, map[string]*tensor.Tensor, []string) (map[string]*tensor.Tensor, error) {
		return outs{}, nil
	}
	s := routing.NewShadow(run, routing.ShadowConfig{Sample: 0.5, QueueSize: 8, Workers: 2}, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				s.Offer(nil, nil, nil)
			}
		})
	}
	time.Sleep(time.Millisecond)
	s.Close()
	wg.Wait()
	st := s.Stats()
	if st.Offered != 8*2000 {
		t.Errorf("Offered = %d, want %d", st.Offered, 8*2000)
	}
	checkAccounted(t, st)
}

func TestShadowConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg     routing.ShadowConfig
		wantErr string
	}{
		{routing.ShadowConfig{Sample: 0.5}, ""},
		{routing.ShadowConfig{Sample: 0}, ""},
		{routing.ShadowConfig{Sample: 1, QueueSize: 1, Timeout: time.Millisecond, Workers: 4}, ""},
		{routing.ShadowConfig{Sample: 1.5}, "routing.shadow.sample: got 1.5, want 0 to 1"},
		{routing.ShadowConfig{Sample: -0.1}, "routing.shadow.sample"},
		{routing.ShadowConfig{Sample: 1, QueueSize: -1}, "routing.shadow.queue_size: got -1"},
		{routing.ShadowConfig{Sample: 1, Timeout: -time.Second}, "routing.shadow.timeout: got -1s"},
		{routing.ShadowConfig{Sample: 1, Workers: -2}, "routing.shadow.workers: got -2"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%+v.Validate() = %v, want nil", tc.cfg, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%+v.Validate() = %v, want an error containing %q", tc.cfg, err, tc.wantErr)
		}
	}

	s := routing.NewShadow(sleepRun(0, nil), routing.ShadowConfig{Sample: 0.5}, nil)
	defer s.Close()
	want := routing.ShadowConfig{
		Sample:    0.5,
		QueueSize: routing.DefaultShadowQueueSize,
		Timeout:   routing.DefaultShadowTimeout,
		Workers:   routing.DefaultShadowWorkers,
	}
	if got := s.Config(); got != want {
		t.Errorf("Config() = %+v, want defaults %+v", got, want)
	}

	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "routing.shadow.sample") {
			t.Errorf("NewShadow with Sample 2 recovered %v, want a panic naming routing.shadow.sample", r)
		}
	}()
	routing.NewShadow(sleepRun(0, nil), routing.ShadowConfig{Sample: 2}, nil)
}
