//go:build amd64 && !purego && !race

package kernels

// storeRelease stores v at p, ordered after the caller's earlier stores,
// without waiting for p's cache line (post_amd64.s). The readers of p use
// atomic loads. The race detector does not see assembly: under it (and off
// amd64) it is an atomic store.
//
//go:noescape
func storeRelease(p *uint64, v uint64)
