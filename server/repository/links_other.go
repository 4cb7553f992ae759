//go:build !unix

package repository

import "io/fs"

// hardLinks is 1 where the platform gives no link count.
func hardLinks(fs.FileInfo) uint64 { return 1 }
