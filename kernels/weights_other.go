//go:build !linux

package kernels

// adviseHuge does nothing here: only Linux is asked for huge pages.
func adviseHuge([]int8, bool) {}
