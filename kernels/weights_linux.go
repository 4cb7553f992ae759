//go:build linux

package kernels

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHuge asks the kernel to back the whole huge pages inside b with
// transparent huge pages (it does so where
// /sys/kernel/mm/transparent_hugepage/enabled is "madvise" or "always")
// and, with collapse, to move the ones already backed by small pages onto
// huge ones now (MADV_COLLAPSE, Linux 6.1 and later). Both are hints:
// errors are ignored.
func adviseHuge(b []int8, collapse bool) {
	if len(b) == 0 {
		return
	}
	p := uintptr(unsafe.Pointer(&b[0]))
	lo := (p + hugePageSize - 1) &^ (hugePageSize - 1)
	hi := (p + uintptr(len(b))) &^ (hugePageSize - 1)
	if hi <= lo {
		return
	}
	r := unsafe.Slice((*byte)(unsafe.Pointer(&b[lo-p])), hi-lo)
	_ = unix.Madvise(r, unix.MADV_HUGEPAGE)
	if collapse {
		_ = unix.Madvise(r, unix.MADV_COLLAPSE)
	}
}
