package routing

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
)

// ErrInvalidSplit reports traffic weights that cannot split traffic.
var ErrInvalidSplit = errors.New("invalid traffic split")

// Split spreads requests across versions in proportion to integer weights.
// It is immutable and safe for concurrent use; to change the weights, build a
// new Split and swap it in.
//
// Each version owns a contiguous range of [0, total weight), laid out in
// ascending version order: with {3: 90, 4: 10}, version 3 owns [0, 90) and
// version 4 owns [90, 100). A request picks a point in [0, total) and is
// served by the version whose range holds it.
//
// Without a routing key the point is random, so the split holds on average.
//
// With a routing key the point is derived from a hash of the key, scaled to
// the total: the key's position is the fraction h/2^64 of a fixed 64-bit
// hash h, and the version is the one whose range [start/total, end/total)
// holds that fraction. Hence:
//
//   - the same key reaches the same version for as long as the weights are
//     unchanged (across processes and restarts too: the hash is fixed, never
//     seeded);
//   - a key changes version only when a range boundary moves across its
//     fraction, so the share of keys that move is at most the sum of the
//     boundary shifts. Moving weight w between two versions adjacent in
//     version order (the usual canary step, {3: 90, 4: 10} -> {3: 80, 4: 20})
//     moves exactly the keys whose position lies in a band of width
//     w/total (a share w/total of keys, as the hash spreads them evenly),
//     all of them from the version that lost weight to the one that gained
//     it, and none the other way;
//   - adding or removing a version of weight 0 moves no key;
//   - multiplying every weight by the same factor moves no key.
//
// Moving weight between versions that are not adjacent in version order
// shifts the boundaries in between as well, so more keys than the minimum may
// move (still only across shifted boundaries).
type Split struct {
	versions []int64  // ascending; weight-0 versions included
	ends     []uint64 // ends[i]: exclusive end of versions[i]'s range
	weights  []int
	total    uint64
}

// NewSplit builds a Split from model.yaml's routing.traffic: version ->
// weight. Versions must be positive, weights non-negative, and at least one
// weight positive.
func NewSplit(weights map[int64]int) (*Split, error) {
	if len(weights) == 0 {
		return nil, fmt.Errorf("%w: routing.traffic: no versions, want at least one version with a weight > 0", ErrInvalidSplit)
	}
	versions := slices.Sorted(maps.Keys(weights))
	s := &Split{
		versions: versions,
		ends:     make([]uint64, len(versions)),
		weights:  make([]int, len(versions)),
	}
	for i, v := range versions {
		w := weights[v]
		if v < 1 {
			return nil, fmt.Errorf("%w: routing.traffic: version %d, want a positive version number", ErrInvalidSplit, v)
		}
		if w < 0 {
			return nil, fmt.Errorf("%w: routing.traffic.%d: weight %d, want >= 0", ErrInvalidSplit, v, w)
		}
		if uint64(w) > math.MaxInt64-s.total {
			return nil, fmt.Errorf("%w: routing.traffic: weights sum past %d", ErrInvalidSplit, int64(math.MaxInt64))
		}
		s.total += uint64(w)
		s.ends[i] = s.total
		s.weights[i] = w
	}
	if s.total == 0 {
		return nil, fmt.Errorf("%w: routing.traffic: every weight is 0, want at least one > 0", ErrInvalidSplit)
	}
	return s, nil
}

// Pick returns the version that serves a request with the given routing key:
// random by weight when key is empty, the same version for the same key
// otherwise. It never returns a version of weight 0.
func (s *Split) Pick(key string) int64 {
	var point uint64
	if key == "" {
		point = rand.Uint64N(s.total)
	} else {
		point = scale(keyHash(key), s.total)
	}
	return s.at(point)
}

// at returns the version whose range holds point, which is < s.total.
func (s *Split) at(point uint64) int64 {
	// The first end past point; weight-0 versions have an empty range
	// (end == previous end) and are never the first end > point.
	i, _ := slices.BinarySearch(s.ends, point+1)
	return s.versions[i]
}

// scale maps h onto [0, total) as floor(h * total / 2^64): monotonic in h, so
// a key's position in the hash space fixes its position in every split.
func scale(h, total uint64) uint64 {
	hi, _ := bits.Mul64(h, total)
	return hi
}

// keyHash is the fixed 64-bit hash that places a routing key: FNV-1a 64 of
// the key's bytes, then the murmur3 fmix64 finalizer so that keys differing
// only in their last bytes (user-1, user-2, ...) spread over the whole range.
// Changing it would move every sticky key, so it is pinned by a test.
func keyHash(key string) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= prime64
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Weights returns a copy of the weights by version, for status.
func (s *Split) Weights() map[int64]int {
	m := make(map[int64]int, len(s.versions))
	for i, v := range s.versions {
		m[v] = s.weights[i]
	}
	return m
}

// Total returns the sum of the weights.
func (s *Split) Total() int64 { return int64(s.total) }

// String formats s as "3:90 4:10", in version order.
func (s *Split) String() string {
	var b strings.Builder
	for i, v := range s.versions {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%d", v, s.weights[i])
	}
	return b.String()
}
