//go:build amd64 && !purego

#include "textflag.h"

// func reluAVX2(dst, x *float32, n int)
//
// dst[i] = x[i] < 0 ? +0 : x[i] for i < n, n a positive multiple of 8.
// In Intel's operand order VMAXPS dst, src1, src2 computes src1 > src2 ?
// src1 : src2, and returns src2 when either is NaN or both are zeros;
// here src1 is zero and src2 x (Go's order is reversed), so NaNs and
// negative zeros pass as they are (Intel SDM Vol. 2, MAXPS). The loop is
// bound by memory: a 16-lane one ran no faster (BenchmarkReLU).
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
