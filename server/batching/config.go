package batching

import (
	"fmt"
	goruntime "runtime"
	"slices"
	"time"
)

// Config configures a Batcher. Field names in errors are model.yaml's
// (batching.max_batch_size, ...). The zero value batches up to the model's
// max batch without waiting for more requests than are already queued.
type Config struct {
	// MaxBatchSize caps the rows of one batch; 0 means the model's
	// MaxBatch. A request with more rows runs alone, unqueued.
	MaxBatchSize int
	// MaxQueueDelay is how long the oldest queued request may wait for
	// others before its batch is cut anyway. 0 cuts as soon as a run slot
	// is free, merging only what queued up while the slots were busy (a
	// request that finds the queue empty and a slot free runs at once, on
	// its caller's goroutine).
	MaxQueueDelay time.Duration
	// PreferredBatchSizes cut a batch as soon as the queued rows reach one
	// of them, without waiting for MaxQueueDelay; when several are reached
	// the largest is cut. Set them to the runtime's batch buckets (8, 32,
	// max) so that batches are not padded.
	PreferredBatchSizes []int
	// MaxQueueSize bounds the requests waiting (not running); more are
	// refused at once with ErrQueueFull. 0 means DefaultMaxQueueSize.
	MaxQueueSize int
	// Timeout bounds a request's time in the queue and in the model; 0
	// means none beyond the caller's deadline.
	Timeout time.Duration
	// Concurrency is how many batches may run at once; set it to the
	// model's worker count. 0 means GOMAXPROCS.
	Concurrency int
}

// DefaultMaxQueueSize is the queue bound when Config.MaxQueueSize is 0.
const DefaultMaxQueueSize = 1024

// maxConcurrency bounds Concurrency: each slot is a goroutine.
const maxConcurrency = 1024

// maxBatchLimit bounds MaxBatchSize as runtime.MaxBatchLimit does.
const maxBatchLimit = 1 << 16

// Validate checks c on its own; New also checks it against the model (a
// MaxBatchSize above the model's MaxBatch, preferred sizes above the
// resolved MaxBatchSize).
func (c Config) Validate() error {
	if c.MaxBatchSize < 0 || c.MaxBatchSize > maxBatchLimit {
		return fmt.Errorf("batching.max_batch_size: %d, want 0 (the model's max batch) to %d", c.MaxBatchSize, maxBatchLimit)
	}
	if c.MaxQueueDelay < 0 {
		return fmt.Errorf("batching.max_queue_delay: %v, want >= 0", c.MaxQueueDelay)
	}
	for i, n := range c.PreferredBatchSizes {
		if n < 1 || (c.MaxBatchSize > 0 && n > c.MaxBatchSize) {
			limit := "max_batch_size"
			if c.MaxBatchSize > 0 {
				limit = fmt.Sprintf("max_batch_size (%d)", c.MaxBatchSize)
			}
			return fmt.Errorf("batching.preferred_batch_sizes: %d, want 1 to %s", n, limit)
		}
		if slices.Contains(c.PreferredBatchSizes[:i], n) {
			return fmt.Errorf("batching.preferred_batch_sizes: %d appears twice", n)
		}
	}
	if c.MaxQueueSize < 0 {
		return fmt.Errorf("batching.max_queue_size: %d, want >= 0 (0: %d)", c.MaxQueueSize, DefaultMaxQueueSize)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("batching.timeout: %v, want >= 0 (0: none)", c.Timeout)
	}
	if c.Concurrency < 0 || c.Concurrency > maxConcurrency {
		return fmt.Errorf("batching.concurrency: %d, want 0 (one per core) to %d", c.Concurrency, maxConcurrency)
	}
	return nil
}

// resolve fills the defaults for a model whose largest batch is modelMax.
func (c Config) resolve(modelMax int) (Config, error) {
	if c.MaxBatchSize == 0 {
		c.MaxBatchSize = modelMax
	}
	if c.MaxBatchSize > modelMax {
		return c, fmt.Errorf("batching.max_batch_size: %d, want at most %d (the model's max batch)", c.MaxBatchSize, modelMax)
	}
	for _, n := range c.PreferredBatchSizes {
		if n > c.MaxBatchSize {
			return c, fmt.Errorf("batching.preferred_batch_sizes: %d, want 1 to max_batch_size (%d)", n, c.MaxBatchSize)
		}
	}
	c.PreferredBatchSizes = slices.Sorted(slices.Values(c.PreferredBatchSizes))
	if c.MaxQueueSize == 0 {
		c.MaxQueueSize = DefaultMaxQueueSize
	}
	if c.Concurrency == 0 {
		c.Concurrency = goruntime.GOMAXPROCS(0)
	}
	return c, nil
}
