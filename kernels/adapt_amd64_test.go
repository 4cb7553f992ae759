//go:build amd64 && !purego

package kernels

import (
	"slices"
	"sync"
	"testing"
)

// TestAdaptTiles runs GEMMs on the AMX tier with the choice on: whichever
// path a bucket's times pick runs (and is timed), and the result is exact.
func TestAdaptTiles(t *testing.T) {
	withAMX(t, func(t *testing.T) {
		defer SetAdaptive(SetAdaptive(true))
		r := newTestRand(21)
		gc := gemmRandCase(r, 8, 300, 1000) // 2.4M MACs, over adaptMinMACs
		pb := PackB(gc.b, gc.k, gc.n)
		if pb.tiles == nil {
			t.Fatal("PackB on an AMX machine left tiles nil")
		}
		want := make([]int32, (gc.m-1)*gc.ldc+gc.n)
		refGemm(gc.m, gc.n, gc.k, gc.a, gc.lda, gc.aZero, gc.b, want, gc.ldc)
		pt := pb.tiles.bucket(gc.m)
		var ran []Tier
		adaptRan = func(t Tier) { ran = append(ran, t) }
		defer func() { adaptRan = nil }()
		for _, c := range []struct {
			name        string
			tiles, vnni int64
			ran         int
		}{
			{"unmeasured", 0, 0, pathTiles},
			{"tiles unmeasured", 0, 100, pathTiles},
			{"VNNI unmeasured", 100, 0, pathVNNI},
			{"VNNI faster", 1 << 40, 100, pathVNNI},
			{"tiles faster", 100, 1 << 40, pathTiles},
		} {
			pt.ns[pathTiles].Store(c.tiles)
			pt.ns[pathVNNI].Store(c.vnni)
			pt.calls.Store(1) // the next call is not an exploring one
			got := make([]int32, len(want))
			ran = ran[:0]
			GemmU8S8(gc.m, gc.a, gc.lda, gc.aZero, pb, got, gc.ldc)
			if tier := [2]Tier{AMX, AVX512VNNI}[c.ran]; len(ran) != 1 || ran[0] != tier {
				t.Errorf("%s: ran on %v, want %v", c.name, ran, tier)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s: C[%d] = %d, want %d", c.name, i, got[i], want[i])
				}
			}
			before := [2]int64{c.tiles, c.vnni}
			for p := range 2 {
				if moved := pt.ns[p].Load() != before[p]; moved != (p == c.ran) {
					t.Errorf("%s: path %d's time moved %v, want %v (the path that ran: %d)", c.name, p, moved, p == c.ran, c.ran)
				}
			}
		}
		// Callers sharing the weights, on two cores: exact, whichever path
		// each call takes (the race detector watches the shared times).
		adaptRan = nil
		pt.ns[pathTiles].Store(0)
		pt.ns[pathVNNI].Store(0)
		withParallel(2, 1, func() {
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					got := make([]int32, len(want))
					for i := range 40 {
						GemmU8S8(gc.m, gc.a, gc.lda, gc.aZero, pb, got, gc.ldc)
						if !slices.Equal(got, want) {
							t.Errorf("caller %d, call %d: wrong C", g, i)
							return
						}
					}
				})
			}
			wg.Wait()
		})
		if pt.ns[pathTiles].Load() == 0 || pt.ns[pathVNNI].Load() == 0 {
			t.Errorf("after 160 calls, times %d and %d: want both paths measured", pt.ns[pathTiles].Load(), pt.ns[pathVNNI].Load())
		}

		// Small GEMMs and column views are not timed.
		small := gemmRandCase(r, 8, 64, 64)
		spb := PackB(small.b, small.k, small.n)
		GemmU8S8(small.m, small.a, small.lda, small.aZero, spb, make([]int32, (small.m-1)*small.ldc+small.n), small.ldc)
		if n := spb.tiles.bucket(small.m).calls.Load(); n != 0 {
			t.Errorf("a GEMM under adaptMinMACs was timed (%d calls)", n)
		}
		if v := newColView(); func() bool { pb.colView(v, 0, 64); return v.tiles != nil }() {
			t.Error("a column view carries its weights' times")
		}
	})
}

// TestAdaptTilesNoAllocs checks that timing and choosing do not allocate.
func TestAdaptTilesNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	withAMX(t, func(t *testing.T) {
		defer SetAdaptive(SetAdaptive(true))
		gc := gemmRandCase(newTestRand(22), 8, 300, 1000)
		pb := PackB(gc.b, gc.k, gc.n)
		c := make([]int32, (gc.m-1)*gc.ldc+gc.n)
		f := func() { GemmU8S8(gc.m, gc.a, gc.lda, gc.aZero, pb, c, gc.ldc) }
		f()
		f()
		if allocs := testing.AllocsPerRun(50, f); allocs != 0 {
			t.Errorf("%v allocations per call, want 0", allocs)
		}
		if n := pb.tiles.bucket(gc.m).calls.Load(); n < 50 {
			t.Errorf("%d calls timed, want every one", n)
		}
	})
}
