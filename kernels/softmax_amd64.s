//go:build amd64 && !purego

#include "textflag.h"

// func maxNaNAVX512(x *float32, n int) (max float32, nan bool)
//
// n is a positive multiple of 16. In Intel's operand order VMAXPS dst,
// src1, src2 returns src2 when either is NaN; here src1 is the loaded x
// and src2 the running maximum (Go's order is reversed), so NaNs leave the
// maximum as it was, and a compare for unordered lanes (VCMPPS predicate 3,
// UNORD_Q) notes them in K2 instead (Intel SDM Vol. 2, MAXPS, CMPPS).
TEXT ·maxNaNAVX512(SB), NOSPLIT, $0-21
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVL $0xff800000, AX // -Inf
	VPBROADCASTD AX, Z0
	KXORW K2, K2, K2
	SHRQ $4, CX

loop:
	VMOVUPS (SI), Z1
	VMAXPS Z0, Z1, Z0
	VCMPPS $3, Z1, Z1, K1
	KORW K1, K2, K2
	ADDQ $64, SI
	DECQ CX
	JNZ loop

	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4E, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xB1, X0, X1
	VMAXPS X1, X0, X0
	MOVSS X0, max+16(FP)
	KORTESTW K2, K2
	SETNE nan+20(FP)
	VZEROUPPER
	RET

// func divAVX512(x *float32, n int, d float64)
//
// x[i] = float32(float64(x[i]) / d) for i < n, n a positive multiple of 8:
// each value widened, divided and narrowed, each step rounded to nearest
// as Go rounds the scalar expression (Intel SDM Vol. 2, CVTPS2PD, DIVPD,
// CVTPD2PS).
TEXT ·divAVX512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSD d+16(FP), Z0
	SHRQ $3, CX

loop:
	VCVTPS2PD (SI), Z1
	VDIVPD Z0, Z1, Z1
	VCVTPD2PS Z1, Y1
	VMOVUPS Y1, (SI)
	ADDQ $32, SI
	DECQ CX
	JNZ loop

	VZEROUPPER
	RET
