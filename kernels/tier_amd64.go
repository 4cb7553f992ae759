//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

func detect() Tier {
	x := cpu.X86
	switch {
	case x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL && x.HasAVX512VNNI:
		// The CPUID bits only say the CPU has tiles; the OS must also agree
		// to save them (asked once, here).
		if x.HasAMXTile && x.HasAMXInt8 && amxRequest() == nil {
			return AMX
		}
		return AVX512VNNI
	case x.HasAVX2 && x.HasFMA:
		return AVX2
	}
	return Generic
}
