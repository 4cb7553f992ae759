//go:build amd64 && !purego

#include "textflag.h"

// Constants of the exponential, as in server/runtime's exp32 (the float64
// bits Go gives its constant expressions): log2(e), ln(2) in two parts
// (fdlibm's ln2_hi and ln2_lo), the Taylor coefficients 1/8! ... 1/2, 1,
// the bound below which e^d is dropped, and the exponent bias.
DATA expsumK<>+0x00(SB)/8, $0x3ff71547652b82fe // log2(e)
DATA expsumK<>+0x08(SB)/8, $0x3fe62e42fee00000 // ln2_hi
DATA expsumK<>+0x10(SB)/8, $0x3dea39ef35793c76 // ln2_lo
DATA expsumK<>+0x18(SB)/8, $0x3efa01a01a01a01a // 1/8!
DATA expsumK<>+0x20(SB)/8, $0x3f2a01a01a01a01a // 1/7!
DATA expsumK<>+0x28(SB)/8, $0x3f56c16c16c16c17 // 1/6!
DATA expsumK<>+0x30(SB)/8, $0x3f81111111111111 // 1/5!
DATA expsumK<>+0x38(SB)/8, $0x3fa5555555555555 // 1/4!
DATA expsumK<>+0x40(SB)/8, $0x3fc5555555555555 // 1/3!
DATA expsumK<>+0x48(SB)/8, $0x3fe0000000000000 // 1/2
DATA expsumK<>+0x50(SB)/8, $0x3ff0000000000000 // 1
DATA expsumK<>+0x58(SB)/8, $0xc085e00000000000 // -700
DATA expsumK<>+0x60(SB)/8, $1023
GLOBL expsumK<>(SB), RODATA|NOPTR, $104

// EXPSUM computes Z1 = e^(Z1 - m) (eight float64 lanes, Z31 = m) with
// exp32's operations, one by one (no fused multiply-add, as Go compiles
// exp32 for GOAMD64=v1), zeroes the lanes below -700 or not in mask K,
// and adds them to the sum Z0.
#define EXPSUM(K) \
	VSUBPD Z31, Z1, Z1 \
	VCMPPD $0x1D, Z19, Z1, K, K3 \
	VMULPD Z20, Z1, Z2 \
	VRNDSCALEPD $8, Z2, Z2 \
	VMULPD Z21, Z2, Z3 \
	VSUBPD Z3, Z1, Z1 \
	VMULPD Z22, Z2, Z3 \
	VSUBPD Z3, Z1, Z1 \
	VMULPD Z23, Z1, Z4 \
	VADDPD Z24, Z4, Z4 \
	VMULPD Z4, Z1, Z4 \
	VADDPD Z25, Z4, Z4 \
	VMULPD Z4, Z1, Z4 \
	VADDPD Z26, Z4, Z4 \
	VMULPD Z4, Z1, Z4 \
	VADDPD Z27, Z4, Z4 \
	VMULPD Z4, Z1, Z4 \
	VADDPD Z28, Z4, Z4 \
	VMULPD Z4, Z1, Z4 \
	VADDPD Z29, Z4, Z4 \
	VMULPD Z4, Z1, Z4 \
	VADDPD Z18, Z4, Z4 \
	VMULPD Z4, Z1, Z4 \
	VADDPD Z18, Z4, Z4 \
	VCVTPD2QQ Z2, Z2 \
	VPADDQ Z17, Z2, Z2 \
	VPSLLQ $52, Z2, Z2 \
	VMULPD.Z Z2, Z4, K3, Z1 \
	VADDPD Z1, Z0, Z0

// func expSumAVX512(out, x *float32, n int, m float64) float64
//
// out[i] = float32(e^(x[i]-m)) for i < n, and returns the sum of the
// float64 values in eight lanes added at the end. m is finite and no x[i]
// is NaN or above m: x[i]-m is in [-Inf, 0]. e^d below -700 is dropped
// (set to 0): in float32 it is 0, and the sum holds e^0 = 1.
TEXT ·expSumAVX512(SB), NOSPLIT, $0-40
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSD m+24(FP), Z31
	VBROADCASTSD expsumK<>+0x00(SB), Z20
	VBROADCASTSD expsumK<>+0x08(SB), Z21
	VBROADCASTSD expsumK<>+0x10(SB), Z22
	VBROADCASTSD expsumK<>+0x18(SB), Z23
	VBROADCASTSD expsumK<>+0x20(SB), Z24
	VBROADCASTSD expsumK<>+0x28(SB), Z25
	VBROADCASTSD expsumK<>+0x30(SB), Z26
	VBROADCASTSD expsumK<>+0x38(SB), Z27
	VBROADCASTSD expsumK<>+0x40(SB), Z28
	VBROADCASTSD expsumK<>+0x48(SB), Z29
	VBROADCASTSD expsumK<>+0x50(SB), Z18
	VBROADCASTSD expsumK<>+0x58(SB), Z19
	VPBROADCASTQ expsumK<>+0x60(SB), Z17
	VXORPD Z0, Z0, Z0
	KXNORW K1, K1, K1

loop:
	CMPQ CX, $8
	JLT  tail
	VCVTPS2PD (SI), Z1
	EXPSUM(K1)
	VCVTPD2PS Z1, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  loop

tail:
	TESTQ CX, CX
	JZ    done
	MOVQ  $1, AX
	SHLQ  CX, AX
	DECQ  AX
	KMOVW AX, K2
	VMOVUPS.Z (SI), K2, Y1
	VCVTPS2PD Y1, Z1
	EXPSUM(K2)
	VCVTPD2PS Z1, Y1
	VMOVUPS Y1, K2, (DI)

done:
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPD        Y1, Y0, Y0
	VEXTRACTF128  $1, Y0, X1
	VADDPD        X1, X0, X0
	VUNPCKHPD     X0, X0, X1
	VADDSD        X1, X0, X0
	VMOVSD        X0, ret+32(FP)
	VZEROUPPER
	RET
