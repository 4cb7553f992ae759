//go:build !amd64 || purego

package kernels

// sgemmArchFor returns nil: without assembly every tier runs the reference.
func sgemmArchFor(Tier) *sgemmArch { return nil }
