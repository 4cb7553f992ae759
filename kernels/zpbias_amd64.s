//go:build amd64 && !purego

#include "textflag.h"

// func mulInt32AVX2(dst, src *int32, n int, z int32)
//
// dst[i] = z*src[i] (the low 32 bits, as Go's int32 product wraps) for i
// in [0, n), n a positive multiple of 32. VPMULLD keeps the low 32 bits of
// each product (Intel SDM Vol. 2, PMULLD).
TEXT ·mulInt32AVX2(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL z+24(FP), AX
	VMOVD AX, X0
	VPBROADCASTD X0, Y0
	SHRQ $5, CX

loop:
	VPMULLD (SI), Y0, Y1
	VPMULLD 32(SI), Y0, Y2
	VPMULLD 64(SI), Y0, Y3
	VPMULLD 96(SI), Y0, Y4
	VMOVDQU Y1, (DI)
	VMOVDQU Y2, 32(DI)
	VMOVDQU Y3, 64(DI)
	VMOVDQU Y4, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ CX
	JNZ loop

	VZEROUPPER
	RET
