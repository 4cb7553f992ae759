package kernels

import "fmt"

// QuantizeRowsDynamicU8 quantizes each of the m rows of src (k values each,
// row stride k) into the same row of dst on its own, as QuantizeDynamicU8
// does, and sets scales[i] and zeros[i] to row i's scale and zero point. A
// large batch of rows is split over the worker pool as a GEMM is (see
// Parallelism): it is the step between two layers of a dynamically
// quantized model, where the pool's workers, fresh from the first layer's
// GEMM, would otherwise poll through it alone and park before the second
// one comes. It returns an error wrapping ErrShape, and writes nothing, if
// a slice is too short.
func QuantizeRowsDynamicU8(dst []uint8, src []float32, m, k int, scales []float32, zeros []uint8) error {
	if m < 0 || k < 0 || len(src) < m*k || len(dst) < m*k || len(scales) < m || len(zeros) < m {
		return fmt.Errorf("%w: QuantizeRowsDynamicU8 m=%d k=%d, len(src)=%d, len(dst)=%d, len(scales)=%d, len(zeros)=%d: want m, k >= 0, m*k values in src and dst, m scales and zeros",
			ErrShape, m, k, len(src), len(dst), len(scales), len(zeros))
	}
	// Chunks of whole rows, of at least quantChunkValues values each.
	rows := max(1, (quantChunkValues+max(k, 1)-1)/max(k, 1))
	chunks := (m + rows - 1) / rows
	j := quantRowsJob{t: active, dst: dst, src: src, m: m, k: k, rows: rows, scales: scales, zeros: zeros}
	parts := min(Parallelism(), maxParts, chunks, m*k/max(quantParMinValues, 1))
	if parts <= 1 {
		j.run(0, 0, chunks)
		return nil
	}
	ws, ok := pool.acquire(parts - 1)
	if !ok {
		j.run(0, 0, chunks)
		return nil
	}
	pool.qr = j
	pool.runJob(ws, &pool.qr, chunks, chunks/parts)
	pool.release()
	return nil
}

// quantParMinValues is the least number of values worth one more core for
// QuantizeRowsDynamicU8 (a pass costs about 0.2 ns a value here, and a
// hand-off to a polling worker about a microsecond); quantChunkValues the
// least a chunk holds. Variables so that tests can split small inputs.
var (
	quantParMinValues = 1 << 15
	quantChunkValues  = 1 << 12
)

// quantRowsJob is QuantizeRowsDynamicU8's job: chunk c is rows
// [c*rows, min((c+1)*rows, m)).
type quantRowsJob struct {
	t      Tier
	dst    []uint8
	src    []float32
	m, k   int
	rows   int
	scales []float32
	zeros  []uint8
}

func (j *quantRowsJob) run(_, lo, hi int) {
	k := j.k
	for i := lo * j.rows; i < min(hi*j.rows, j.m); i++ {
		row := j.src[i*k : (i+1)*k]
		lo, hi, ok := minMax(j.t, row)
		if !ok {
			lo, hi = 0, 0
		}
		scale, zero := QuantParamsU8(lo, hi)
		quantizeU8(j.t, j.dst[i*k:(i+1)*k], row, scale, zero)
		j.scales[i], j.zeros[i] = scale, zero
	}
}
