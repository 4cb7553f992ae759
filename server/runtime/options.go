package runtime

import (
	"fmt"
	"log/slog"
	goruntime "runtime"
	"slices"
)

// Options configures Compile. The zero value is ready to use.
type Options struct {
	// MaxBatch is the largest batch (first dimension of the inputs that
	// have a dynamic one) a single Run accepts. Default 64.
	MaxBatch int
	// Workers is how many requests run at once, each on its own compiled
	// graphs. Default GOMAXPROCS.
	Workers int
	// MaxDim bounds every dynamic dimension other than the batch (a
	// sequence length, an image side). Default 4096.
	MaxDim int
	// MaxVariants bounds the graphs each worker keeps compiled: one per
	// batch bucket and set of sizes of the other dynamic dimensions, the
	// least recently used dropped first. Default 16.
	MaxVariants int
	// Quantization is how float MatMul, Gemm and Conv with constant
	// weights compute (fuse.go). Default QuantFP32.
	Quantization Quantization
	// Ranges are the calibrated ranges of the values QuantInt8Static
	// quantizes, by value name (see QuantizableInputs).
	Ranges map[string]Range
	// Logger receives what callers must not see, such as the stack of a
	// panic in an op. Default slog.Default().
	Logger *slog.Logger
}

// MaxBatchLimit bounds Options.MaxBatch: graphs are compiled, and their
// buffers sized, for the largest batch.
const MaxBatchLimit = 1 << 16

// bucketSizes are the batch sizes graphs are compiled for, below MaxBatch
// (which is always one): a request runs on the smallest that fits it.
var bucketSizes = []int{1, 8, 32}

func (o Options) withDefaults() (Options, error) {
	if o.MaxBatch == 0 {
		o.MaxBatch = 64
	}
	if o.Workers == 0 {
		o.Workers = goruntime.GOMAXPROCS(0)
	}
	if o.MaxDim == 0 {
		o.MaxDim = 4096
	}
	if o.MaxVariants == 0 {
		o.MaxVariants = 16
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBatch < 1 || o.MaxBatch > MaxBatchLimit {
		return o, fmt.Errorf("options: MaxBatch is %d, want 1 to %d", o.MaxBatch, MaxBatchLimit)
	}
	if o.Quantization < QuantFP32 || o.Quantization > QuantInt8Static {
		return o, fmt.Errorf("options: Quantization is %v, want QuantFP32, QuantInt8Dynamic or QuantInt8Static", o.Quantization)
	}
	if o.MaxDim < 1 {
		return o, fmt.Errorf("options: MaxDim is %d, want >= 1", o.MaxDim)
	}
	if o.MaxVariants < 1 {
		return o, fmt.Errorf("options: MaxVariants is %d, want >= 1", o.MaxVariants)
	}
	if o.Workers < 1 {
		return o, fmt.Errorf("options: Workers is %d, want >= 1", o.Workers)
	}
	return o, nil
}

// buckets returns the sorted batch sizes to compile for.
func (o Options) buckets() []int {
	var bs []int
	for _, b := range bucketSizes {
		if b < o.MaxBatch {
			bs = append(bs, b)
		}
	}
	return slices.Compact(append(bs, o.MaxBatch))
}
