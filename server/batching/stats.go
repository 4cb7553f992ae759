package batching

import (
	"slices"
	"time"
)

// Stats is a snapshot of a Batcher's counters since New.
type Stats struct {
	// QueueDepth is the requests waiting now; Running the batches running.
	QueueDepth int
	Running    int

	// Batches run, the requests they carried and their rows. A request
	// run alone (Bypassed) is not counted here.
	Batches  uint64
	Requests uint64
	Rows     uint64
	// MeanBatchRows is Rows/Batches; MaxBatchRows the largest batch run.
	MeanBatchRows float64
	MaxBatchRows  int
	// BatchRows is the distribution of batch sizes in rows.
	BatchRows Histogram

	// QueueTime is the distribution of the time requests that ran waited
	// in the queue, in seconds. The quantiles are over the last
	// recentQueueTimes such requests; QueueTimeMax over all.
	QueueTime    Histogram
	QueueTimeP50 time.Duration
	QueueTimeP99 time.Duration
	QueueTimeMax time.Duration

	// Rejected counts requests refused with ErrQueueFull; Expired those
	// whose deadline passed while queued and Canceled those whose caller
	// gave up while queued (neither ran).
	Rejected uint64
	Expired  uint64
	Canceled uint64
	// Bypassed counts requests run alone, outside the queue: larger than
	// MaxBatchSize, or not fitting the model (which then says why).
	Bypassed uint64
	// FailedBatches counts batches of several requests whose run failed;
	// their requests were each run again alone (Isolated counts those
	// runs), so that only a request the model fails on gets an error.
	FailedBatches uint64
	Isolated      uint64
}

// Histogram is a distribution in fixed buckets, shaped for a Prometheus
// const histogram.
type Histogram struct {
	// Bounds are the buckets' inclusive upper bounds, ascending.
	Bounds []float64
	// Counts[i] counts observations in (Bounds[i-1], Bounds[i]];
	// Counts[len(Bounds)] those above the last bound.
	Counts []uint64
	Count  uint64
	Sum    float64
}

func newHistogram(bounds []float64) Histogram {
	return Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds)+1)}
}

func (h *Histogram) observe(v float64) {
	i, _ := slices.BinarySearch(h.Bounds, v)
	h.Counts[i]++
	h.Count++
	h.Sum += v
}

// Cumulative returns the count of observations <= each bound, the form
// prometheus.MustNewConstHistogram takes.
func (h Histogram) Cumulative() map[float64]uint64 {
	m := make(map[float64]uint64, len(h.Bounds))
	var n uint64
	for i, b := range h.Bounds {
		n += h.Counts[i]
		m[b] = n
	}
	return m
}

func (h Histogram) clone() Histogram {
	return Histogram{Bounds: slices.Clone(h.Bounds), Counts: slices.Clone(h.Counts), Count: h.Count, Sum: h.Sum}
}

// queueTimeBounds are the QueueTime buckets, in seconds.
var queueTimeBounds = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1}

// batchRowBounds are powers of two up to max, and max.
func batchRowBounds(max int) []float64 {
	var b []float64
	for n := 1; n < max; n *= 2 {
		b = append(b, float64(n))
	}
	return append(b, float64(max))
}

// recentQueueTimes is how many queue times the quantiles are taken over.
const recentQueueTimes = 1024

// counters are a Batcher's statistics, guarded by Batcher.mu.
type counters struct {
	batches, requests, rows   uint64
	maxRows                   int
	batchRows, queueTime      Histogram
	queueMax                  time.Duration
	recent                    [recentQueueTimes]time.Duration
	recentN                   int // observations so far; the ring index is recentN % len
	rejected, expired, cancel uint64
	bypassed, failed, isolate uint64
}

func (c *counters) recordBatch(rows int) {
	c.batches++
	c.rows += uint64(rows)
	c.maxRows = max(c.maxRows, rows)
	c.batchRows.observe(float64(rows))
}

func (c *counters) recordQueueTime(d time.Duration) {
	c.requests++
	c.queueTime.observe(d.Seconds())
	c.queueMax = max(c.queueMax, d)
	c.recent[c.recentN%recentQueueTimes] = d
	c.recentN++
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Batches: c.batches, Requests: c.requests, Rows: c.rows, MaxBatchRows: c.maxRows,
		BatchRows: c.batchRows.clone(), QueueTime: c.queueTime.clone(), QueueTimeMax: c.queueMax,
		Rejected: c.rejected, Expired: c.expired, Canceled: c.cancel,
		Bypassed: c.bypassed, FailedBatches: c.failed, Isolated: c.isolate,
	}
	if c.batches > 0 {
		s.MeanBatchRows = float64(c.rows) / float64(c.batches)
	}
	if n := min(c.recentN, recentQueueTimes); n > 0 {
		recent := slices.Clone(c.recent[:n])
		slices.Sort(recent)
		s.QueueTimeP50 = recent[(n-1)*50/100]
		s.QueueTimeP99 = recent[(n-1)*99/100]
	}
	return s
}
