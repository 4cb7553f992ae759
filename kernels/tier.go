package kernels

import (
	"fmt"
	"os"
	"strings"
)

// Tier is a family of kernels, by the instructions they need.
type Tier int

// The tiers, slowest first.
const (
	// Generic is the pure-Go reference: any CPU.
	Generic Tier = iota
	// AVX2 needs AVX2 and FMA (x86-64-v3). Its int8 GEMM uses AVX-VNNI
	// (VEX-encoded VPDPBUSD on ymm) when the CPU has it, exact VPMADDWD
	// otherwise.
	AVX2
	// AVX512VNNI needs AVX-512 F, BW, VL and VNNI (VPDPBUSD).
	AVX512VNNI
	// AMX is AVX512VNNI plus AMX-TILE and AMX-INT8 (TDPBUSD), with the
	// tile state granted by the OS (on Linux, arch_prctl ARCH_REQ_XCOMP_PERM).
	// Only the int8 GEMM uses tiles (for M >= 3, K >= 64); everything else
	// runs the AVX512VNNI kernels.
	AMX
)

func (t Tier) String() string {
	switch t {
	case Generic:
		return "generic"
	case AVX2:
		return "avx2"
	case AVX512VNNI:
		return "avx512vnni"
	case AMX:
		return "amx"
	}
	return fmt.Sprintf("Tier(%d)", int(t))
}

// ParseTier reads a tier name as CORVID_KERNELS spells it.
func ParseTier(s string) (Tier, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "generic":
		return Generic, nil
	case "avx2":
		return AVX2, nil
	case "avx512vnni":
		return AVX512VNNI, nil
	case "amx":
		return AMX, nil
	}
	return Generic, fmt.Errorf("unknown kernel tier %q: want generic, avx2, avx512vnni or amx", s)
}

// Best is the fastest tier this CPU runs (Generic under the purego tag).
var Best = detect()

// active is the tier the exported kernels use: Best, or what CORVID_KERNELS
// asks for when the CPU has it.
var active = chooseTier(os.Getenv("CORVID_KERNELS"))

func chooseTier(env string) Tier {
	if env == "" {
		return Best
	}
	t, err := ParseTier(env)
	if err != nil {
		fmt.Fprintf(os.Stderr, "corvid: CORVID_KERNELS: %v; using %v\n", err, Best)
		return Best
	}
	if t > Best {
		fmt.Fprintf(os.Stderr, "corvid: CORVID_KERNELS=%v: this CPU lacks it; using %v\n", t, Best)
		return Best
	}
	return t
}

// Active returns the tier the kernels use.
func Active() Tier { return active }

// SetTier makes the kernels use t and returns the previous tier; tests and
// benchmarks use it to run every tier in one process. It refuses a tier the
// CPU lacks. It is not safe to call while kernels run.
func SetTier(t Tier) (Tier, error) {
	if t > Best {
		return active, fmt.Errorf("kernel tier %v is not available on this CPU (best: %v)", t, Best)
	}
	prev := active
	active = t
	return prev, nil
}
