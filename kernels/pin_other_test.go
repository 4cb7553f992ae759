//go:build !linux

package kernels

import "testing"

// pinThread pins nothing here (see pin_linux_test.go): it returns -1.
func pinThread(tb testing.TB) (cpu int, undo func()) { return -1, func() {} }

// pinOther pins nothing here either.
func pinOther(tb testing.TB) (cpu int, undo func()) { return -1, func() {} }
