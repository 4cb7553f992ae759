package kernels

import "unsafe"

// hugePageSize is the size of a transparent huge page on x86-64 (and of
// arm64 with 4 KiB pages).
const hugePageSize = 2 << 20

// hugeWeightsMin is from what size packed weights go on huge pages: a GEMM
// streaming a B of half the 8 MiB that the second-level TLB maps with 4 KiB
// pages (2048 entries on Sapphire Rapids), beside A, C and the rest of a
// model, misses it every 4 KiB; on huge pages, every 2 MiB. The 3072^2
// shapes' B (9 MiB) ran 1.01-1.11x faster on one core in alternating
// windows (M = 1-128, AMX and AVX512VNNI tiers; BenchmarkHugeWeights).
const hugeWeightsMin = 4 << 20

// hugeWeights off packs every B on ordinary pages (BenchmarkHugeWeights).
var hugeWeights = true

// allocWeights returns a zeroed slice of n bytes for packed weights: from
// hugeWeightsMin up, aligned to a huge page (from an allocation one huge
// page larger) and advised onto huge pages; the caller fills it and then
// calls settleWeights.
func allocWeights(n int) []int8 {
	if n < hugeWeightsMin || !hugeWeights {
		return make([]int8, n)
	}
	buf := make([]int8, n+hugePageSize)
	off := int(-uintptr(unsafe.Pointer(&buf[0])) & (hugePageSize - 1))
	w := buf[off : off+n : off+n]
	adviseHuge(w, false) // fresh memory then faults in on huge pages
	return w
}

// settleWeights moves w, once written, onto huge pages where it is still on
// small ones: memory the Go heap reused had been faulted in before
// allocWeights advised it.
func settleWeights(w []int8) {
	if len(w) >= hugeWeightsMin && hugeWeights {
		adviseHuge(w, true)
	}
}
