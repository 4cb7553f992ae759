//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

func detect() Tier {
	x := cpu.X86
	switch {
	case x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL && x.HasAVX512VNNI:
		return AVX512VNNI
	case x.HasAVX2 && x.HasFMA:
		return AVX2
	}
	return Generic
}
