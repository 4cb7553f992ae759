package routing

import (
	"hash/fnv"
	"math"
	"testing"
)

// TestKeyHashIsFNV1aThenFmix64 checks keyHash against the standard library's
// FNV-1a and murmur3's published fmix64 finalizer.
func TestKeyHashIsFNV1aThenFmix64(t *testing.T) {
	fmix64 := func(h uint64) uint64 {
		h ^= h >> 33
		h *= 0xff51afd7ed558ccd
		h ^= h >> 33
		h *= 0xc4ceb9fe1a85ec53
		h ^= h >> 33
		return h
	}
	for _, key := range []string{"", "a", "user-1", "user-2", "Ünïcode ✓", string(make([]byte, 300))} {
		f := fnv.New64a()
		f.Write([]byte(key))
		if got, want := keyHash(key), fmix64(f.Sum64()); got != want {
			t.Errorf("keyHash(%q) = %#x, want %#x", key, got, want)
		}
	}
}

func TestScale(t *testing.T) {
	for _, tc := range []struct {
		h, total, want uint64
	}{
		{0, 100, 0},
		{math.MaxUint64, 100, 99},
		{1 << 63, 100, 50},
		{math.MaxUint64, math.MaxInt64, math.MaxInt64 - 1},
		{12345, 1, 0},
	} {
		if got := scale(tc.h, tc.total); got != tc.want {
			t.Errorf("scale(%#x, %d) = %d, want %d", tc.h, tc.total, got, tc.want)
		}
	}
}
