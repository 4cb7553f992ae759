package kernels

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// TestQuantizeRowsDynamicU8 checks QuantizeRowsDynamicU8 against
// QuantizeDynamicU8 row by row, bit for bit, on every tier, on one core and
// split over 2 and 3 (every input split, in chunks of one row and more):
// shapes with every row count up to 13 and widths around the vector
// lengths, rows holding NaNs, infinities, one constant value or only NaNs,
// and guard cells after dst, scales and zeros.
func TestQuantizeRowsDynamicU8(t *testing.T) {
	sgemmForEachTier(t, func(t *testing.T) {
		for _, threads := range []int{1, 2, 3} {
			for _, chunk := range []int{1, 40} {
				withQuantSplit(threads, chunk, func() {
					r := rand.New(rand.NewPCG(31, uint64(Active())*10+uint64(threads)))
					jobs0 := pool.jobs.Load()
					for m := 0; m <= 13; m++ {
						for _, k := range []int{0, 1, 15, 16, 17, 64, 100} {
							quantRowsCase(t, r, m, k)
						}
					}
					if threads > 1 && pool.jobs.Load() == jobs0 {
						t.Fatalf("%d threads: nothing was split", threads)
					}
				})
			}
		}
	})
}

// withQuantSplit runs f with threads cores and every QuantizeRowsDynamicU8
// split (chunks of at least chunk values), without the pool's back-off.
func withQuantSplit(threads, chunk int, f func()) {
	prevT, prevMin, prevChunk := SetParallelism(threads), quantParMinValues, quantChunkValues
	quantParMinValues, quantChunkValues, poolBackoff = 1, chunk, false
	defer func() {
		SetParallelism(prevT)
		quantParMinValues, quantChunkValues, poolBackoff = prevMin, prevChunk, true
	}()
	f()
}

const quantGuard = 7 // cells after each output, which must stay as they were

func quantRowsCase(t *testing.T, r *rand.Rand, m, k int) {
	t.Helper()
	src := make([]float32, m*k)
	for i := range src {
		src[i] = float32(r.NormFloat64() * 5)
	}
	nan := float32(math.NaN())
	for i := 0; i < m; i++ {
		row := src[i*k : (i+1)*k]
		switch {
		case k == 0:
		case i%5 == 1:
			row[r.IntN(k)] = nan
			row[r.IntN(k)] = float32(math.Inf(1 - 2*r.IntN(2)))
		case i%5 == 2:
			for j := range row {
				row[j] = 3.25
			}
		case i%5 == 3:
			for j := range row {
				row[j] = nan
			}
		}
	}
	dst := make([]uint8, m*k+quantGuard)
	scales := make([]float32, m+quantGuard)
	zeros := make([]uint8, m+quantGuard)
	for i := range dst {
		dst[i] = 0xa5
	}
	for i := range scales {
		scales[i], zeros[i] = -7, 0xa5
	}
	if err := QuantizeRowsDynamicU8(dst, src, m, k, scales, zeros); err != nil {
		t.Fatal(err)
	}
	want := make([]uint8, k)
	for i := 0; i < m; i++ {
		s, z, err := QuantizeDynamicU8(want, src[i*k:(i+1)*k])
		if err != nil {
			t.Fatal(err)
		}
		if math.Float32bits(scales[i]) != math.Float32bits(s) || zeros[i] != z {
			t.Fatalf("m=%d k=%d row %d: scale, zero %v, %d; QuantizeDynamicU8 %v, %d", m, k, i, scales[i], zeros[i], s, z)
		}
		for j, q := range dst[i*k : (i+1)*k] {
			if q != want[j] {
				t.Fatalf("m=%d k=%d row %d col %d: %d, QuantizeDynamicU8 %d", m, k, i, j, q, want[j])
			}
		}
	}
	for g := range quantGuard {
		if dst[m*k+g] != 0xa5 || scales[m+g] != -7 || zeros[m+g] != 0xa5 {
			t.Fatalf("m=%d k=%d: guard cell %d after an output was written", m, k, g)
		}
	}
}

func TestQuantizeRowsDynamicU8Shapes(t *testing.T) {
	for _, c := range []struct {
		m, k, src, dst, scales, zeros int
	}{
		{2, 3, 5, 6, 2, 2}, {2, 3, 6, 5, 2, 2}, {2, 3, 6, 6, 1, 2}, {2, 3, 6, 6, 2, 1}, {-1, 3, 6, 6, 2, 2}, {2, -3, 6, 6, 2, 2},
	} {
		dst := make([]uint8, c.dst)
		for i := range dst {
			dst[i] = 9
		}
		err := QuantizeRowsDynamicU8(dst, make([]float32, c.src), c.m, c.k, make([]float32, c.scales), make([]uint8, c.zeros))
		if !errors.Is(err, ErrShape) {
			t.Errorf("%+v: err = %v, want ErrShape", c, err)
		}
		for _, v := range dst {
			if v != 9 {
				t.Errorf("%+v: dst written on error", c)
				break
			}
		}
	}
}
