package batching

import (
	"context"
	"fmt"
	goruntime "runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// Model is what a Batcher batches for: repository.Servable and
// runtime.Model have these methods. Run must be safe for concurrent use.
type Model interface {
	Run(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error)
	// Inputs and Outputs describe the model; a -1 first dimension is the
	// batch.
	Inputs() []onnx.ValueInfo
	Outputs() []onnx.ValueInfo
	// MaxBatch is the largest batch Run accepts.
	MaxBatch() int
}

// Batcher merges concurrent requests to one model into batches. It is safe
// for concurrent use. One goroutine collects requests and cuts batches;
// Config.Concurrency runner goroutines run them, so at most that many
// batches run at once. While every slot is busy the queue keeps growing,
// so batches grow with the load.
type Batcher struct {
	m         Model
	cfg       Config
	inputs    []onnx.ValueInfo
	outputs   []onnx.ValueInfo
	outputSet map[string]bool

	mu      sync.Mutex
	groups  map[string]*group // queued requests by mergeKey
	depth   int               // queued requests
	running int               // batches cut or run inline, not finished: the slots taken
	closed  bool
	stats   counters

	wake    chan struct{}   // nudges the collector; capacity 1
	batches chan []*request // cut batches, to the runners; closed by the collector
	done    chan struct{}   // closed when the collector returns
	wg      sync.WaitGroup  // runners, inline runs, requests run alone
}

// group is the queue of requests that can share a batch, oldest first.
type group struct {
	key  string
	reqs []*request
	rows int
}

// request states, guarded by Batcher.mu.
const (
	queued  = iota
	taken   // in a batch: the batch will send the result
	dropped // removed from the queue without running
)

type request struct {
	ctx      context.Context
	inputs   map[string]*tensor.Tensor
	outputs  []string
	rows     int
	key      string
	enqueued time.Time
	state    int
	done     chan result // capacity 1: whoever settles the request never blocks
}

type result struct {
	out map[string]*tensor.Tensor
	err error
}

// New starts a Batcher for m. It fails with ErrNotBatchable when the
// model's requests cannot be merged: every input and every output must
// have a dynamic first dimension (the batch), since an output that does not
// follow the batch cannot be split back into requests, and the model must
// take batches of more than one row. The caller should then serve m
// directly. Close the Batcher before closing m.
func New(m Model, cfg Config) (*Batcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Batcher{
		m:         m,
		inputs:    m.Inputs(),
		outputs:   m.Outputs(),
		outputSet: make(map[string]bool),
		groups:    make(map[string]*group),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	if len(b.inputs) == 0 {
		return nil, fmt.Errorf("%w: the model has no inputs", ErrNotBatchable)
	}
	for _, in := range b.inputs {
		if len(in.Shape) == 0 || in.Shape[0] != -1 {
			return nil, fmt.Errorf("%w: input %s has no batch dimension (a dynamic first dimension)", ErrNotBatchable, in)
		}
	}
	for _, out := range b.outputs {
		if len(out.Shape) == 0 || out.Shape[0] != -1 {
			return nil, fmt.Errorf("%w: output %s does not follow the batch, so a batch's results could not be split back into requests", ErrNotBatchable, out)
		}
		b.outputSet[out.Name] = true
	}
	if max := m.MaxBatch(); max < 2 {
		return nil, fmt.Errorf("%w: the model takes batches of at most %d row", ErrNotBatchable, max)
	}
	var err error
	if b.cfg, err = cfg.resolve(m.MaxBatch()); err != nil {
		return nil, err
	}
	b.stats.batchRows = newHistogram(batchRowBounds(b.cfg.MaxBatchSize))
	b.stats.queueTime = newHistogram(queueTimeBounds)
	// Long-lived runners rather than a goroutine per batch: a model run
	// needs a deep stack, which a new goroutine would grow every time.
	b.batches = make(chan []*request, b.cfg.Concurrency)
	b.wg.Add(b.cfg.Concurrency)
	for range b.cfg.Concurrency {
		go b.runner()
	}
	go b.collect()
	return b, nil
}

// Run queues the request, waits for its batch to run and returns its own
// rows of the outputs: the contract of the model's Run. A request the
// batcher cannot merge (more rows than MaxBatchSize, or one that does not
// fit the model, whose Run then says why) runs alone at once. Errors: the
// model's own (wrapped), ErrQueueFull, ErrClosed, or the context's error
// (wrapped: errors.Is finds context.DeadlineExceeded or context.Canceled).
func (b *Batcher) Run(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error) {
	if b.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.cfg.Timeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("before batching: %w", err)
	}
	rows, key, ok := b.mergeKey(inputs, outputs)
	if !ok || rows > b.cfg.MaxBatchSize {
		return b.runAlone(ctx, inputs, outputs)
	}
	r := &request{ctx: ctx, inputs: inputs, outputs: outputs, rows: rows, key: key}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	if b.depth >= b.cfg.MaxQueueSize {
		b.stats.rejected++
		depth := b.depth
		b.mu.Unlock()
		return nil, fmt.Errorf("%w: %d requests are already waiting, the most batching.max_queue_size (%d) allows; retry later", ErrQueueFull, depth, b.cfg.MaxQueueSize)
	}
	if b.cfg.MaxQueueDelay == 0 && b.depth == 0 && b.running < b.cfg.Concurrency {
		// Nothing to wait for and nobody to merge with: run it here rather
		// than hand it to the collector and a runner.
		return b.runInline(ctx, r)
	}
	r.done = make(chan result, 1)
	g := b.groups[key]
	if g == nil {
		g = &group{key: key}
		b.groups[key] = g
	}
	r.enqueued = time.Now()
	g.reqs = append(g.reqs, r)
	g.rows += rows
	b.depth++
	wake := b.mayCutLocked(g)
	b.mu.Unlock()
	if wake {
		b.nudge()
	}

	select {
	case res := <-r.done:
		return res.out, res.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	if r.state == queued {
		b.removeLocked(r)
		b.countDropLocked(ctx.Err())
		b.mu.Unlock()
		return nil, fmt.Errorf("waiting in the batching queue: %w", ctx.Err())
	}
	b.mu.Unlock()
	select {
	case res := <-r.done: // settled meanwhile: dropped, or its batch finished
		return res.out, res.err
	default:
		return nil, fmt.Errorf("waiting for the batch to run: %w", ctx.Err())
	}
}

// runInline runs r as a batch of its own on the caller's goroutine, taking
// a run slot. b.mu is held on entry and released.
func (b *Batcher) runInline(ctx context.Context, r *request) (map[string]*tensor.Tensor, error) {
	b.running++
	b.wg.Add(1)
	b.stats.recordQueueTime(0)
	b.stats.recordBatch(r.rows)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.running--
		b.mu.Unlock()
		b.nudge()
		b.wg.Done()
		// A caller that runs inline never blocks: yield, or one that
		// calls again at once could keep the slot from the goroutines
		// waiting to queue until the scheduler preempts it (10ms).
		goruntime.Gosched()
	}()
	return b.call(ctx, r.inputs, r.outputs)
}

// runAlone runs a request outside the queue, so that the model, not the
// batcher, reports what is wrong with it, and so that a request larger
// than a batch still runs.
func (b *Batcher) runAlone(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	b.wg.Add(1)
	b.stats.bypassed++
	b.mu.Unlock()
	defer b.wg.Done()
	return b.call(ctx, inputs, outputs)
}

// call runs the model, turning a panic into an error.
func (b *Batcher) call(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (out map[string]*tensor.Tensor, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("batching: model run panicked: %v", p)
		}
	}()
	return b.m.Run(ctx, inputs, outputs)
}

// mergeKey returns the request's rows and the key of the requests it can
// share a batch with: the sizes of the dynamic dimensions after the first
// (static ones and dtypes are checked against the model) and the set of
// requested outputs. ok is false when the request does not fit the model.
func (b *Batcher) mergeKey(inputs map[string]*tensor.Tensor, outputs []string) (rows int, key string, ok bool) {
	if len(inputs) != len(b.inputs) {
		return 0, "", false
	}
	var kb []byte
	rows = -1
	for _, info := range b.inputs {
		t := inputs[info.Name]
		if t == nil || t.DType != info.DType || len(t.Shape) != len(info.Shape) || t.Validate() != nil {
			return 0, "", false
		}
		n := int(t.Shape[0])
		if n < 1 || (rows >= 0 && n != rows) {
			return 0, "", false
		}
		rows = n
		for ax := 1; ax < len(info.Shape); ax++ {
			switch d := info.Shape[ax]; {
			case d >= 0 && t.Shape[ax] != d:
				return 0, "", false
			case d < 0:
				if t.Shape[ax] < 1 {
					return 0, "", false
				}
				kb = strconv.AppendInt(kb, t.Shape[ax], 10)
				kb = append(kb, ',')
			}
		}
	}
	if len(outputs) > 0 {
		for _, name := range outputs {
			if !b.outputSet[name] {
				return 0, "", false
			}
		}
		names := slices.Compact(slices.Sorted(slices.Values(outputs)))
		if len(names) < len(b.outputs) { // all of them is the same as none named
			kb = append(kb, '|')
			for _, n := range names {
				kb = append(append(kb, n...), 0)
			}
		}
	}
	return rows, string(kb), true
}

// mayCutLocked reports whether the collector should look at g, to which a
// request was just added: it may now be ready, or need a timer. Sparing
// the collector a wake-up per request matters under load.
func (b *Batcher) mayCutLocked(g *group) bool {
	if b.running >= b.cfg.Concurrency {
		return false // the runner that finishes will nudge
	}
	pref := b.cfg.PreferredBatchSizes
	return len(g.reqs) == 1 || b.cfg.MaxQueueDelay == 0 || g.rows >= b.cfg.MaxBatchSize ||
		(len(pref) > 0 && g.rows >= pref[0])
}

func (b *Batcher) nudge() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// removeLocked takes a queued request out of its group.
func (b *Batcher) removeLocked(r *request) {
	g := b.groups[r.key]
	if i := slices.Index(g.reqs, r); i >= 0 {
		g.reqs = slices.Delete(g.reqs, i, i+1)
	}
	b.forgetLocked(g, r)
}

// forgetLocked accounts for r leaving g's queue without running.
func (b *Batcher) forgetLocked(g *group, r *request) {
	r.state = dropped
	g.rows -= r.rows
	b.depth--
	if len(g.reqs) == 0 {
		delete(b.groups, g.key)
	}
}

func (b *Batcher) countDropLocked(err error) {
	if err == context.DeadlineExceeded {
		b.stats.expired++
	} else {
		b.stats.cancel++
	}
}

// collect is the Batcher's goroutine: it cuts batches when they are ready
// and a run slot is free, and sleeps until the next can be.
func (b *Batcher) collect() {
	defer close(b.done)
	defer close(b.batches)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		b.mu.Lock()
		batches, next, exit := b.cutLocked(time.Now())
		b.mu.Unlock()
		for _, bt := range batches {
			b.batches <- bt // never blocks: at most Concurrency are cut and not done
		}
		if exit {
			return
		}
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case <-b.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// cutLocked cuts every batch that is ready while run slots are free, the
// group whose oldest request is oldest first. It returns when the next
// batch will be ready by time (zero: no wake-up needed but a nudge), and
// whether the collector is done (closed and nothing queued).
func (b *Batcher) cutLocked(now time.Time) (batches [][]*request, next time.Time, exit bool) {
	for b.running < b.cfg.Concurrency {
		var best *group
		for _, g := range b.groups {
			if b.readyLocked(g, now) && (best == nil || g.reqs[0].enqueued.Before(best.reqs[0].enqueued)) {
				best = g
			}
		}
		if best == nil {
			break
		}
		if bt := b.takeLocked(best, now); len(bt) > 0 {
			b.running++
			batches = append(batches, bt)
		}
	}
	if b.closed && b.depth == 0 {
		return batches, time.Time{}, true
	}
	if b.running < b.cfg.Concurrency {
		for _, g := range b.groups {
			if t := g.reqs[0].enqueued.Add(b.cfg.MaxQueueDelay); next.IsZero() || t.Before(next) {
				next = t
			}
		}
	}
	return batches, next, false
}

// readyLocked reports whether g should be cut now.
func (b *Batcher) readyLocked(g *group, now time.Time) bool {
	return b.closed || g.rows >= b.cfg.MaxBatchSize ||
		now.Sub(g.reqs[0].enqueued) >= b.cfg.MaxQueueDelay ||
		b.preferredCut(g.reqs) > 0
}

// preferredCut returns how many requests from the head of reqs make up the
// largest preferred batch size, 0 when none does.
func (b *Batcher) preferredCut(reqs []*request) int {
	pref := b.cfg.PreferredBatchSizes
	if len(pref) == 0 {
		return 0
	}
	cut, rows := 0, 0
	for i, r := range reqs {
		rows += r.rows
		if rows > b.cfg.MaxBatchSize || rows > pref[len(pref)-1] {
			break
		}
		if _, found := slices.BinarySearch(pref, rows); found {
			cut = i + 1
		}
	}
	return cut
}

// takeLocked removes a batch from the head of g: the largest preferred
// batch if there is one, else as many requests as MaxBatchSize holds.
// Requests whose context ended are dropped on the way, never run.
func (b *Batcher) takeLocked(g *group, now time.Time) []*request {
	n, rows, i := 0, 0, 0
	for ; i < len(g.reqs); i++ {
		r := g.reqs[i]
		if err := r.ctx.Err(); err != nil {
			r.state = dropped
			g.rows -= r.rows
			b.depth--
			b.countDropLocked(err)
			r.done <- result{err: fmt.Errorf("waiting in the batching queue: %w", err)}
			continue
		}
		if rows+r.rows > b.cfg.MaxBatchSize {
			break
		}
		rows += r.rows
		g.reqs[n] = r
		n++
	}
	k := n
	if p := b.preferredCut(g.reqs[:n]); p > 0 {
		k = p
	}
	batch := slices.Clone(g.reqs[:k])
	old := len(g.reqs)
	g.reqs = append(append(g.reqs[:0], g.reqs[k:n]...), g.reqs[i:]...)
	clear(g.reqs[len(g.reqs):old])
	if len(g.reqs) == 0 {
		delete(b.groups, g.key)
	}

	rows = 0
	for _, r := range batch {
		r.state = taken
		rows += r.rows
		b.stats.recordQueueTime(now.Sub(r.enqueued))
	}
	g.rows -= rows
	b.depth -= len(batch)
	if len(batch) > 0 {
		b.stats.recordBatch(rows)
	}
	return batch
}

// runner runs batches until the collector closes b.batches.
func (b *Batcher) runner() {
	defer b.wg.Done()
	for batch := range b.batches {
		b.runBatch(batch)
		b.mu.Lock()
		b.running--
		b.mu.Unlock()
		b.nudge()
	}
}

// runBatch runs one batch and settles its requests.
func (b *Batcher) runBatch(batch []*request) {
	if len(batch) == 1 {
		r := batch[0]
		out, err := b.call(r.ctx, r.inputs, r.outputs)
		r.done <- result{out, err}
		return
	}

	rows := make([]int, len(batch))
	total := 0
	for i, r := range batch {
		rows[i] = r.rows
		total += r.rows
	}
	inputs := make(map[string]*tensor.Tensor, len(b.inputs))
	parts := make([]*tensor.Tensor, len(batch))
	for _, info := range b.inputs {
		for i, r := range batch {
			parts[i] = r.inputs[info.Name]
		}
		inputs[info.Name] = concat(parts, total)
	}
	ctx, stop := mergeContexts(batch)
	out, err := b.call(ctx, inputs, batch[0].outputs)
	abandoned := ctx.Err() != nil
	stop()
	var res []map[string]*tensor.Tensor
	if err == nil {
		if res, err = split(out, rows, total); err != nil {
			err = fmt.Errorf("batching: %w", err)
		}
	}
	if err == nil {
		for i, r := range batch {
			r.done <- result{out: res[i]}
		}
		return
	}
	if abandoned { // every caller has gone: nobody to run it again for
		for _, r := range batch {
			r.done <- result{err: fmt.Errorf("batch of %d requests (%d rows): %w", len(batch), total, err)}
		}
		return
	}
	// One request may be what the model fails on (a value out of range);
	// run each alone so that it alone gets the error.
	b.mu.Lock()
	b.stats.failed++
	b.stats.isolate += uint64(len(batch))
	b.mu.Unlock()
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- result{err: fmt.Errorf("waiting for the batch to run: %w", err)}
			continue
		}
		out, err := b.call(r.ctx, r.inputs, r.outputs)
		r.done <- result{out, err}
	}
}

// mergeContexts returns a context for a batch's run: done when every
// request's context is, carrying the first request's values (trace ids).
func mergeContexts(batch []*request) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(batch[0].ctx))
	var left atomic.Int32
	left.Store(int32(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, r := range batch {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, s := range stops {
			s()
		}
		cancel()
	}
}

// Stats returns a snapshot of the counters.
func (b *Batcher) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats.snapshot()
	s.QueueDepth, s.Running = b.depth, b.running
	return s
}

// Close stops accepting requests (Run returns ErrClosed), runs the queued
// ones without waiting for MaxQueueDelay, and returns when every batch and
// every request run alone has finished. It does not close the model.
func (b *Batcher) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.nudge()
	<-b.done
	b.wg.Wait()
}
