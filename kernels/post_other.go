//go:build !amd64 || purego || race

package kernels

import "sync/atomic"

// storeRelease stores v at p, ordered after the caller's earlier stores:
// an atomic store here (see post_amd64.go).
func storeRelease(p *uint64, v uint64) { atomic.StoreUint64(p, v) }
