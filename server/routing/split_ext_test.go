package routing_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/corvidml/corvid/server/routing"
)

func mustSplit(t testing.TB, w map[int64]int) *routing.Split {
	t.Helper()
	s, err := routing.NewSplit(w)
	if err != nil {
		t.Fatalf("NewSplit(%v): %v", w, err)
	}
	return s
}

func TestNewSplitErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights map[int64]int
		want    string
	}{
		{"nil", nil, "routing.traffic: no versions"},
		{"empty", map[int64]int{}, "routing.traffic: no versions"},
		{"all zero", map[int64]int{1: 0, 2: 0}, "routing.traffic: every weight is 0"},
		{"negative weight", map[int64]int{1: 10, 2: -1}, "routing.traffic.2: weight -1, want >= 0"},
		{"version zero", map[int64]int{0: 10}, "routing.traffic: version 0, want a positive version number"},
		{"negative version", map[int64]int{-3: 10, 2: 1}, "routing.traffic: version -3"},
		{"overflow", map[int64]int{1: math.MaxInt64, 2: 1}, "routing.traffic: weights sum past"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := routing.NewSplit(tc.weights)
			if err == nil {
				t.Fatalf("NewSplit(%v) = %v, want an error", tc.weights, s)
			}
			if !errors.Is(err, routing.ErrInvalidSplit) {
				t.Errorf("NewSplit(%v) error %v, want it to wrap ErrInvalidSplit", tc.weights, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewSplit(%v) error %q, want it to contain %q", tc.weights, err, tc.want)
			}
		})
	}
}

func TestPickRandomFollowsWeights(t *testing.T) {
	for _, weights := range []map[int64]int{
		{3: 90, 4: 10},
		{1: 50, 2: 30, 7: 20},
		{1: 1, 2: 1},
	} {
		t.Run(fmt.Sprint(weights), func(t *testing.T) {
			checkShares(t, mustSplit(t, weights), weights, func(int) string { return "" })
		})
	}
}

func TestPickKeyedFollowsWeights(t *testing.T) {
	weights := map[int64]int{3: 90, 4: 10}
	checkShares(t, mustSplit(t, weights), weights, func(i int) string { return fmt.Sprintf("user-%d", i) })
}

// checkShares picks 10,000 times and wants each version's share within 2
// points of its weight's.
func checkShares(t *testing.T, s *routing.Split, weights map[int64]int, key func(int) string) {
	t.Helper()
	const n = 10000
	got := map[int64]int{}
	for i := range n {
		got[s.Pick(key(i))]++
	}
	total := 0
	for _, w := range weights {
		total += w
	}
	for v, w := range weights {
		share, want := 100*float64(got[v])/n, 100*float64(w)/float64(total)
		if math.Abs(share-want) > 2 {
			t.Errorf("version %d: got %.2f%% of %d picks, want %.2f%% ± 2", v, share, n, want)
		}
	}
	for v := range got {
		if _, ok := weights[v]; !ok {
			t.Errorf("picked version %d, not in %v", v, weights)
		}
	}
}

func TestPickSameKeySameVersion(t *testing.T) {
	weights := map[int64]int{1: 34, 2: 33, 3: 33}
	a := mustSplit(t, weights)
	b := mustSplit(t, weights) // another Split, as after a reload: no per-instance seed
	for i := range 2000 {
		key := fmt.Sprintf("k%d", i)
		want := a.Pick(key)
		for range 5 {
			if got := a.Pick(key); got != want {
				t.Fatalf("Pick(%q) = %d, then %d", key, want, got)
			}
		}
		if got := b.Pick(key); got != want {
			t.Fatalf("Pick(%q) = %d on one Split, %d on another with the same weights", key, want, got)
		}
	}
}

// TestPickPinned pins where keys land: changing the hash would move every
// sticky key in production.
func TestPickPinned(t *testing.T) {
	s := mustSplit(t, map[int64]int{3: 50, 4: 50})
	got := map[string]int64{}
	for _, k := range []string{"alice", "bob", "carol", "dave", "eve", "user-1", "user-2", "user-3"} {
		got[k] = s.Pick(k)
	}
	want := map[string]int64{
		"alice": 3, "bob": 4, "carol": 3, "dave": 4, "eve": 4,
		"user-1": 3, "user-2": 4, "user-3": 3,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Pick by key (-want +got):\n%s", diff)
	}
}

func TestPickCanaryStepMovesKeysOneWay(t *testing.T) {
	before := mustSplit(t, map[int64]int{3: 90, 4: 10})
	after := mustSplit(t, map[int64]int{3: 80, 4: 20})
	const n = 20000
	moved := 0
	for i := range n {
		key := fmt.Sprintf("user-%d", i)
		b, a := before.Pick(key), after.Pick(key)
		switch {
		case b == 4 && a != 4:
			t.Fatalf("key %q moved from 4 to %d; a step toward 4 must move keys only to 4", key, a)
		case b == 3 && a == 4:
			moved++
		case b != a:
			t.Fatalf("key %q moved from %d to %d", key, b, a)
		}
	}
	// Exactly the keys in [80, 90) of 100 move: 10% of them.
	if share := 100 * float64(moved) / n; math.Abs(share-10) > 1 {
		t.Errorf("%.2f%% of keys moved from 3 to 4, want 10%% ± 1", share)
	}
}

func TestPickNoMoveWhenRangesKept(t *testing.T) {
	base := map[int64]int{3: 90, 4: 10}
	for _, tc := range []struct {
		name    string
		weights map[int64]int
	}{
		{"same weights", map[int64]int{3: 90, 4: 10}},
		{"scaled", map[int64]int{3: 900, 4: 100}},
		{"new version of weight 0", map[int64]int{3: 90, 4: 10, 5: 0}},
		{"new version of weight 0 in between", map[int64]int{2: 0, 3: 90, 4: 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := mustSplit(t, base), mustSplit(t, tc.weights)
			for i := range 5000 {
				key := fmt.Sprintf("user-%d", i)
				if va, vb := a.Pick(key), b.Pick(key); va != vb {
					t.Fatalf("key %q: %d with %v, %d with %v", key, va, base, vb, tc.weights)
				}
			}
		})
	}
}

// TestPickMovesBoundedByBoundaryShifts checks the documented property for
// arbitrary weight changes: the share of keys that move is at most the sum,
// over range boundaries, of how far each boundary moved (as a share of the
// total), and a key moves only to a version whose range now covers it.
func TestPickMovesBoundedByBoundaryShifts(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	versions := []int64{1, 2, 3, 4}
	randomWeights := func() map[int64]int {
		w := map[int64]int{}
		for _, v := range versions {
			w[v] = r.IntN(50)
		}
		w[versions[r.IntN(len(versions))]]++
		return w
	}
	const keys = 4000
	for trial := range 20 {
		wa, wb := randomWeights(), randomWeights()
		a, b := mustSplit(t, wa), mustSplit(t, wb)
		bound := 0.0
		ca, cb := 0, 0
		for _, v := range versions {
			ca += wa[v]
			cb += wb[v]
			bound += math.Abs(float64(ca)/float64(a.Total()) - float64(cb)/float64(b.Total()))
		}
		moved := 0
		for i := range keys {
			key := fmt.Sprintf("t%d-%d", trial, i)
			if a.Pick(key) != b.Pick(key) {
				moved++
			}
		}
		// 3 standard errors of slack for sampling keys.
		slack := 3 * math.Sqrt(bound*(1-bound)/keys)
		if share := float64(moved) / keys; share > bound+slack+1e-9 {
			t.Errorf("%v -> %v: %.3f of keys moved, want <= %.3f (boundary shifts)", wa, wb, share, bound)
		}
	}
}

func TestPickNeverWeightZero(t *testing.T) {
	s := mustSplit(t, map[int64]int{1: 0, 2: 5, 3: 0})
	for i := range 1000 {
		for _, key := range []string{"", fmt.Sprint(i)} {
			if got := s.Pick(key); got != 2 {
				t.Fatalf("Pick(%q) = %d, want 2 (the only version with weight)", key, got)
			}
		}
	}
}

func TestSplitWeightsIsACopy(t *testing.T) {
	in := map[int64]int{3: 90, 4: 10}
	s := mustSplit(t, in)
	in[3] = 0 // the Split must not alias its input
	got := s.Weights()
	got[4] = 1000 // nor hand out its own state
	if diff := cmp.Diff(map[int64]int{3: 90, 4: 10}, s.Weights()); diff != "" {
		t.Errorf("Weights (-want +got):\n%s", diff)
	}
	if got, want := s.String(), "3:90 4:10"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := s.Total(), int64(100); got != want {
		t.Errorf("Total() = %d, want %d", got, want)
	}
}

func TestPickConcurrent(t *testing.T) {
	s := mustSplit(t, map[int64]int{3: 90, 4: 10})
	want := s.Pick("sticky")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				s.Pick(fmt.Sprint(g, i))
				s.Pick("")
				if got := s.Pick("sticky"); got != want {
					t.Errorf("Pick(sticky) = %d, want %d", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func ExampleSplit_Pick() {
	s, err := routing.NewSplit(map[int64]int{3: 90, 4: 10})
	if err != nil {
		panic(err)
	}
	// The same routing key reaches the same version while the weights stay
	// the same; an empty key is split at random.
	fmt.Println(s.Pick("user-42") == s.Pick("user-42"))
	fmt.Println(s.Weights())
	// Output:
	// true
	// map[3:90 4:10]
}
