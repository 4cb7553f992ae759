//go:build unix

package repository

import (
	"io/fs"
	"syscall"
)

// hardLinks is a file's link count (1 when the platform does not say).
func hardLinks(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}
