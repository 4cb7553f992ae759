//go:build amd64 && !purego

package peakmeter

import (
	"encoding/binary"
	"strings"
	"sync"

	"golang.org/x/sys/cpu"
)

// The loops in peak_amd64.s. Each runs iters iterations of a family's
// register-only loop body (Family.PerIter instructions or sequences), reading
// its sources from src (see MakeSrc) and storing the lane-wise sum of its
// accumulators to dst (64 bytes for zmm, 32 for ymm).

//go:noescape
func vnniZmm(iters int, src, dst *byte)

//go:noescape
func vnniYmm(iters int, src, dst *byte)

//go:noescape
func avx2Int8(iters int, src, dst *byte)

//go:noescape
func fmaZmm(iters int, src, dst *byte)

//go:noescape
func fmaYmm(iters int, src, dst *byte)

// amxInt8 is the AMX loop; it needs the tile state granted (amxGranted).
//
//go:noescape
func amxInt8(iters int, src, dst *byte)

// amxGranted asks the OS, once, for the AMX tile state (see amxRequest).
var amxGranted = sync.OnceValue(func() bool { return amxRequest() == nil })

// addChain runs iters iterations of 16 dependent ADDQ and returns 16*iters.
func addChain(iters int) int

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

// CPUInfo returns the CPUID vendor, display family and model, and brand
// string.
func CPUInfo() (vendor string, family, model uint32, brand string) {
	max, b, c, d := cpuid(0, 0)
	vendor = string(le32(b, d, c))
	if max >= 1 {
		a, _, _, _ := cpuid(1, 0)
		family = a >> 8 & 0xf
		model = a >> 4 & 0xf
		if family == 0xf {
			family += a >> 20 & 0xff
		}
		if family == 0x6 || family >= 0xf {
			model |= a >> 16 & 0xf << 4
		}
	}
	if ext, _, _, _ := cpuid(0x80000000, 0); ext >= 0x80000004 {
		var bs []byte
		for leaf := uint32(0x80000002); leaf <= 0x80000004; leaf++ {
			a, b, c, d := cpuid(leaf, 0)
			bs = append(bs, le32(a, b, c, d)...)
		}
		brand = strings.TrimSpace(strings.TrimRight(string(bs), "\x00"))
	}
	return vendor, family, model, brand
}

func le32(ws ...uint32) []byte {
	var bs []byte
	for _, w := range ws {
		bs = binary.LittleEndian.AppendUint32(bs, w)
	}
	return bs
}

// Loop returns the assembly loop of the named family and whether this CPU
// (and OS) supports it, as reported by golang.org/x/sys/cpu, which honours
// GODEBUG=cpu.avx512vnni=off and the like.
func Loop(name string) (LoopFunc, bool) {
	x := &cpu.X86
	switch name {
	case "vnni_zmm":
		return vnniZmm, x.HasAVX512F && x.HasAVX512VNNI
	case "vnni_ymm":
		return vnniYmm, x.HasAVX512F && x.HasAVX512VNNI && x.HasAVX512VL
	case "avx2_int8":
		return avx2Int8, x.HasAVX2
	case "fma_zmm":
		return fmaZmm, x.HasAVX512F
	case "fma_ymm":
		return fmaYmm, x.HasAVX && x.HasFMA
	case "amx_int8":
		return amxInt8, x.HasAMXTile && x.HasAMXInt8 && amxGranted()
	}
	return nil, false
}

// ClockLoop returns the dependent-add loop used to measure the core clock.
func ClockLoop() (func(iters int) int, bool) { return addChain, true }

// Features lists the CPU features the loops depend on, as detected.
func Features() []string {
	x := &cpu.X86
	var fs []string
	for _, f := range []struct {
		name string
		has  bool
	}{
		{"AVX", x.HasAVX}, {"AVX2", x.HasAVX2}, {"FMA", x.HasFMA},
		{"AVX512F", x.HasAVX512F}, {"AVX512VL", x.HasAVX512VL},
		{"AVX512BW", x.HasAVX512BW}, {"AVX512_VNNI", x.HasAVX512VNNI},
		{"AVX_VNNI", x.HasAVXVNNI}, {"AMX_TILE", x.HasAMXTile}, {"AMX_INT8", x.HasAMXInt8},
	} {
		if f.has {
			fs = append(fs, f.name)
		}
	}
	return fs
}
