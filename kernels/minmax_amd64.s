//go:build amd64 && !purego

#include "textflag.h"

// func minMaxAVX2(x *float32, n int, lo, hi *[8]float32)
//
// n is a positive multiple of 16. Each lane keeps its own minimum and
// maximum in two pairs of accumulators (two chains hide VMINPS latency).
// In Intel's operand order VMINPS dst, src1, src2 returns src2 when either
// is NaN; here src1 is the loaded x and src2 the accumulator (Go's order is
// reversed), so a NaN in x leaves the accumulator as it was: NaNs are
// ignored, as MinMax promises (Intel SDM Vol. 2, MINPS/MAXPS).
TEXT ·minMaxAVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ lo+16(FP), DI
	MOVQ hi+24(FP), DX
	VMOVUPS (DI), Y0
	VMOVUPS Y0, Y1
	VMOVUPS (DX), Y2
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
	VMOVUPS Y0, (DI)
	VMOVUPS Y2, (DX)
	VZEROUPPER
	RET
