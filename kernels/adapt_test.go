package kernels

import (
	"os"
	"testing"
	"time"
)

// TestMain turns the AMX tier's choice between the tiles and the VNNI
// kernels off: the tier tests and benchmarks time and check the path they
// name. The tests below turn it on.
func TestMain(m *testing.M) {
	SetAdaptive(false)
	os.Exit(m.Run())
}

// TestPathTimesPick checks the choice: each path once, then the faster,
// the slower every explore calls, and the averages moving with new times.
func TestPathTimesPick(t *testing.T) {
	var pt pathTimes
	if p := pt.pick(); p != pathTiles {
		t.Fatalf("first call on path %d, want the tiles", p)
	}
	pt.record(pathTiles, 8, 8*time.Microsecond)
	if p := pt.pick(); p != pathVNNI {
		t.Fatalf("second call on path %d, want VNNI", p)
	}
	pt.record(pathVNNI, 8, 16*time.Microsecond)
	if got := pt.ns[pathTiles].Load(); got != 16*1000 {
		t.Fatalf("tiles: %d/16 ns per row, want 1000 ns", got)
	}
	every := explore(2)
	if every != 80 {
		t.Fatalf("explore(2) = %d, want 80", every)
	}
	tiles, vnni := 0, 0
	for range 10 * every {
		if pt.pick() == pathTiles {
			tiles++
		} else {
			vnni++
		}
	}
	if vnni != 10 {
		t.Errorf("VNNI, twice as slow, ran %d calls of %d, want 10", vnni, 10*every)
	}
	// The tiles slow down to 4x VNNI's time: the average follows within
	// a few dozen calls, and VNNI becomes the path.
	for range 40 {
		pt.record(pathTiles, 8, 64*time.Microsecond)
	}
	if p := pt.pick(); p != pathVNNI {
		t.Errorf("after the tiles slowed down, path %d; want VNNI (times %d, %d)", p, pt.ns[pathTiles].Load(), pt.ns[pathVNNI].Load())
	}
	// One faster call of the tiles (when trying them) makes them the path
	// again at once.
	pt.record(pathTiles, 8, 4*time.Microsecond)
	if p := pt.pick(); p != pathTiles {
		t.Errorf("after a fast call of the tiles, path %d; want the tiles (times %d, %d)", p, pt.ns[pathTiles].Load(), pt.ns[pathVNNI].Load())
	}
	if e := explore(1e9); e != maxExplore {
		t.Errorf("explore(1e9) = %d, want maxExplore %d", e, maxExplore)
	}
}
