//go:build !amd64 || purego

package kernels

func relu(Tier, []float32, []float32) int { return 0 }
