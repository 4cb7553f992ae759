//go:build amd64 && !purego

#include "textflag.h"

// func minMaxAVX2(x *float32, n int, lo, hi *float32)
//
// n is a positive multiple of 16; *lo and *hi hold the starting minimum and
// maximum (numbers or infinities) and receive the result. Each lane keeps
// its own minimum and maximum in two pairs of accumulators (two chains hide
// VMINPS latency). In Intel's operand order VMINPS dst, src1, src2 returns
// src2 when either is NaN; here src1 is the loaded x and src2 the
// accumulator (Go's order is reversed), so a NaN in x leaves the
// accumulator as it was: NaNs are ignored, as MinMax promises (Intel SDM
// Vol. 2, MINPS/MAXPS). The lanes then hold no NaN, and are folded here
// into one number each: read back lane by lane in Go, the 32-byte stores
// cannot be forwarded to the 4-byte loads, which cost more than the loop on
// a row of 64 values.
TEXT ·minMaxAVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ lo+16(FP), DI
	MOVQ hi+24(FP), DX
	VBROADCASTSS (DI), Y0
	VMOVUPS Y0, Y1
	VBROADCASTSS (DX), Y2
	VMOVUPS Y2, Y3
	SHRQ $4, CX

loop:
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMINPS Y0, Y4, Y0
	VMAXPS Y2, Y4, Y2
	VMINPS Y1, Y5, Y1
	VMAXPS Y3, Y5, Y3
	ADDQ $64, SI
	DECQ CX
	JNZ loop

	VMINPS Y1, Y0, Y0
	VMAXPS Y3, Y2, Y2
	VEXTRACTF128 $1, Y0, X1
	VMINPS X1, X0, X0
	VEXTRACTF128 $1, Y2, X3
	VMAXPS X3, X2, X2
	VPERMILPS $0x4E, X0, X1
	VMINPS X1, X0, X0
	VPERMILPS $0x4E, X2, X3
	VMAXPS X3, X2, X2
	VPERMILPS $0xB1, X0, X1
	VMINPS X1, X0, X0
	VPERMILPS $0xB1, X2, X3
	VMAXPS X3, X2, X2
	VMOVSS X0, (DI)
	VMOVSS X2, (DX)
	VZEROUPPER
	RET
