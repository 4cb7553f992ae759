package peakmeter

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
	"time"
)

// want returns the lanes a family's loop stores after iters iterations: each
// instruction (AVX2: sequence) adds a·b per float lane, or the dot product of
// four u8 x s8 pairs per int32 lane (AMX: of 64 pairs, see Family.Tile), to
// one of its accumulators, and the loop stores the sum of the accumulators.
func want(f Family, src []byte, iters int) []uint32 {
	n := int64(iters) * int64(f.PerIter)
	out := make([]uint32, f.Lanes)
	for j := range out {
		if f.Float {
			a := math.Float32frombits(binary.LittleEndian.Uint32(src[4*j:]))
			b := math.Float32frombits(binary.LittleEndian.Uint32(src[64+4*j:]))
			out[j] = math.Float32bits(float32(n) * a * b) // exact: powers of two
			continue
		}
		var dot int64
		for k := range 4 {
			if f.Tile { // every row of A is a, every k-quad row of B is b
				for q := range 16 {
					dot += int64(src[4*q+k]) * int64(int8(src[64+4*j+k]))
				}
				continue
			}
			dot += int64(src[4*j+k]) * int64(int8(src[64+4*j+k]))
		}
		out[j] = uint32(int32(n * dot))
	}
	return out
}

func TestLoopsComputeWhatTheyCount(t *testing.T) {
	for _, f := range Families {
		t.Run(f.Name, func(t *testing.T) {
			loop, ok := Loop(f.Name)
			if !ok {
				t.Skipf("not available (needs %s)", f.Needs)
			}
			for _, iters := range []int{1, 2, 7, 1000} {
				src := MakeSrc(f)
				dst := bytes.Repeat([]byte{0xA5}, DstLen+16) // guard after the stored lanes
				loop(iters, &src[0], &dst[0])
				for j, w := range want(f, src, iters) {
					if got := binary.LittleEndian.Uint32(dst[4*j:]); got != w {
						t.Fatalf("iters %d lane %d: got %#x, want %#x", iters, j, got, w)
					}
				}
				for i := 4 * f.Lanes; i < len(dst); i++ {
					if dst[i] != 0xA5 {
						t.Fatalf("iters %d: byte %d past the %d lanes was written", iters, i, f.Lanes)
					}
				}
			}
		})
	}
}

func TestMeasurePositiveAndFinite(t *testing.T) {
	for _, f := range Families {
		t.Run(f.Name, func(t *testing.T) {
			loop, ok := Loop(f.Name)
			if !ok {
				t.Skipf("not available (needs %s)", f.Needs)
			}
			for _, cores := range []int{1, 2} {
				m := Measure(f, loop, cores, 20*time.Millisecond, 0)
				for _, v := range []float64{m.Total, m.PerCore} {
					if !(v > 0) || math.IsInf(v, 0) {
						t.Errorf("%d cores: rate %v, want positive and finite", cores, v)
					}
				}
				if m.Iters < 1 || m.Rounds < 3 {
					t.Errorf("%d cores: %d iterations x %d rounds, want >= 1 x >= 3", cores, m.Iters, m.Rounds)
				}
			}
		})
	}
}

func TestClock(t *testing.T) {
	add, ok := ClockLoop()
	if !ok {
		t.Skip("not available")
	}
	if got := add(5); got != 80 {
		t.Fatalf("addChain(5) = %d, want 80", got)
	}
	if hz := MeasureClock(add, 20*time.Millisecond, 0); !(hz > 0) || math.IsInf(hz, 0) {
		t.Fatalf("clock %v Hz, want positive and finite", hz)
	}
}

func TestRoundIssue(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{{0.4, 0.5}, {0.8, 1}, {1.86, 2}, {2.6, 3}, {7, 4}} {
		if got := RoundIssue(c.in); got != c.want {
			t.Errorf("RoundIssue(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestPerCore(t *testing.T) {
	if _, ok := PerCore("sse", time.Millisecond); ok {
		t.Error("PerCore(\"sse\"): ok for an unknown family")
	}
	for _, f := range Families {
		_, avail := Loop(f.Name)
		r, ok := PerCore(f.Name, 10*time.Millisecond)
		if ok != avail {
			t.Errorf("%s: PerCore ok = %v, Loop available = %v", f.Name, ok, avail)
		}
		if ok && (!(r > 0) || math.IsInf(r, 0)) {
			t.Errorf("%s: PerCore = %v, want positive and finite", f.Name, r)
		}
	}
}
