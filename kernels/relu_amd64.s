//go:build amd64 && !purego

#include "textflag.h"

// func reluAVX512(dst, x *float32, n int)
//
// dst[i] = x[i] < 0 ? +0 : x[i] for i < n, n a positive multiple of 16.
// In Intel's operand order VMAXPS dst, src1, src2 computes src1 > src2 ?
// src1 : src2, and returns src2 when either is NaN or both are zeros;
// here src1 is zero and src2 x (Go's order is reversed), so NaNs and
// negative zeros pass as they are (Intel SDM Vol. 2, MAXPS).
TEXT ·reluAVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VPXORD Z0, Z0, Z0
	SHRQ $4, CX

loop:
	VMAXPS (SI), Z0, Z1
	VMOVUPS Z1, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ loop

	VZEROUPPER
	RET

// func reluAVX2(dst, x *float32, n int)
//
// reluAVX512 on 8 lanes, n a positive multiple of 8.
TEXT ·reluAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	SHRQ $3, CX

loop:
	VMAXPS (SI), Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ loop

	VZEROUPPER
	RET
