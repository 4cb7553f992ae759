//go:build amd64 && !purego

#include "textflag.h"

// Go's assembler has no AMX mnemonics, so the few instructions used here are
// emitted as bytes, with the registers fixed. Encodings from the Intel 64 and
// IA-32 Architectures Software Developer's Manual, Vol. 2 (instruction set
// reference: LDTILECFG, TILERELEASE, TILELOADD, TILESTORED, TDPBUSD), all
// VEX.128.0F38.W0 (C4, then RXB/map byte E2, or A2 when the index register is
// R8-R15), and checked against GNU as/objdump. In the comments, ti is tile
// register tmmi.
//
//	LDTILECFG m512    VEX.128.NP.0F38.W0 49 /0        C4 E2 78 49 modrm
//	TILERELEASE       VEX.128.NP.0F38.W0 49 C0        C4 E2 78 49 C0
//	TILELOADD t, sib  VEX.128.F2.0F38.W0 4B /r (sib)  C4 E2 7B 4B modrm sib [disp8]
//	TILESTORED sib, t VEX.128.F3.0F38.W0 4B /r (sib)  C4 E2 7A 4B modrm sib [disp8]
//	TDPBUSD t1,t2,t3  VEX.128.66.0F38.W0 5E 11:t1:t2, vvvv = ~t3
//
// TILELOADD and TILESTORED take base + index: the index register is the row
// stride in bytes (0 repeats one row in every tile row).

// ldtilecfg (AX)
#define LDTILECFG_AX BYTE $0xC4; BYTE $0xE2; BYTE $0x78; BYTE $0x49; BYTE $0x00
// tilerelease
#define TILERELEASE BYTE $0xC4; BYTE $0xE2; BYTE $0x78; BYTE $0x49; BYTE $0xC0

// A tiles: t4 = 16 rows of 64 bytes at SI, t5 at DI, row stride DX (64).
#define LOAD_A0 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x24; BYTE $0x16
#define LOAD_A1 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x2C; BYTE $0x17
// B tiles: t6 = 16 k-quads x 16 columns at BX, t7 at BX+64, row stride CX (256).
#define LOAD_B0 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x34; BYTE $0x0B
#define LOAD_B1 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x7C; BYTE $0x0B; BYTE $0x40
// Accumulators from the bias row: t0, t2 = 16 copies of the 16 int32 at AX,
// t1, t3 of those at AX+64 (index R13 = 0).
#define LOAD_C0 BYTE $0xC4; BYTE $0xA2; BYTE $0x7B; BYTE $0x4B; BYTE $0x04; BYTE $0x28
#define LOAD_C1 BYTE $0xC4; BYTE $0xA2; BYTE $0x7B; BYTE $0x4B; BYTE $0x4C; BYTE $0x28; BYTE $0x40
#define LOAD_C2 BYTE $0xC4; BYTE $0xA2; BYTE $0x7B; BYTE $0x4B; BYTE $0x14; BYTE $0x28
#define LOAD_C3 BYTE $0xC4; BYTE $0xA2; BYTE $0x7B; BYTE $0x4B; BYTE $0x5C; BYTE $0x28; BYTE $0x40
// Stores: t0 (or t2) to AX, t1 (or t3) to AX+64, row stride R12.
#define STORE_C0 BYTE $0xC4; BYTE $0xA2; BYTE $0x7A; BYTE $0x4B; BYTE $0x04; BYTE $0x20
#define STORE_C1 BYTE $0xC4; BYTE $0xA2; BYTE $0x7A; BYTE $0x4B; BYTE $0x4C; BYTE $0x20; BYTE $0x40
#define STORE_C2 BYTE $0xC4; BYTE $0xA2; BYTE $0x7A; BYTE $0x4B; BYTE $0x14; BYTE $0x20
#define STORE_C3 BYTE $0xC4; BYTE $0xA2; BYTE $0x7A; BYTE $0x4B; BYTE $0x5C; BYTE $0x20; BYTE $0x40
// t0 += t4·t6, t1 += t4·t7, t2 += t5·t6, t3 += t5·t7 (u8 x s8 -> s32).
#define TDPBUSD_C0 BYTE $0xC4; BYTE $0xE2; BYTE $0x49; BYTE $0x5E; BYTE $0xC4
#define TDPBUSD_C1 BYTE $0xC4; BYTE $0xE2; BYTE $0x41; BYTE $0x5E; BYTE $0xCC
#define TDPBUSD_C2 BYTE $0xC4; BYTE $0xE2; BYTE $0x49; BYTE $0x5E; BYTE $0xD5
#define TDPBUSD_C3 BYTE $0xC4; BYTE $0xE2; BYTE $0x41; BYTE $0x5E; BYTE $0xDD

#define STEP \
	LOAD_A0; \
	LOAD_B0; \
	LOAD_B1; \
	TDPBUSD_C0; \
	LOAD_A1; \
	TDPBUSD_C1; \
	TDPBUSD_C2; \
	TDPBUSD_C3

// CROW(t, x) turns tile index t into the address of its first C element in
// panel R9, half R11: c + min(16t, mlast)*ldc + R9*256 + R11 (x scratch).
#define CROW(t, x) \
	SHLQ $4, t; \
	MOVQ mlast+32(FP), x; \
	CMPQ t, x; \
	CMOVQGT x, t; \
	IMULQ R12, t; \
	ADDQ c+88(FP), t; \
	MOVQ R9, x; \
	SHLQ $8, x; \
	ADDQ x, t; \
	ADDQ R11, t

// PREFETCH_B: 8 lines (512 bytes) of the next panel into L2, R14
// advancing, until it has covered pfl bytes of it (lim-8(SP)).
#define PREFETCH_B \
	CMPQ R14, lim-8(SP); \
	JAE  10(PC); \
	PREFETCH8; \
	ADDQ $512, R14

#define PREFETCH8 \
	PREFETCHT1 0(R14); \
	PREFETCHT1 64(R14); \
	PREFETCHT1 128(R14); \
	PREFETCHT1 192(R14); \
	PREFETCHT1 256(R14); \
	PREFETCHT1 320(R14); \
	PREFETCHT1 384(R14); \
	PREFETCHT1 448(R14)

// func amxPanels(ap *uint8, tstride int, tlast2 int, tlast int, mlast int, b *int8, pstride int, nk int, tail int, btail int, panels int, c *int32, ldc int, bias *int32, cfg *byte, pfl int)
//
// See the Go declaration for the contract. Registers: SI, DI the pair's A
// tiles; DX A row stride (64); BX B; CX B row stride (256); R8 k steps left;
// R9 panel; R10 first tile of the pair (even); R11 byte offset of the
// 32-column half (0, 128); R12 ldc in bytes; R13 = 0; AX bias, then C;
// R14 the next panel's prefetch (R14 is scratch in ABI0).
TEXT ·amxPanels(SB), NOSPLIT, $8-128
	MOVQ cfg+112(FP), AX
	LDTILECFG_AX
	MOVQ $256, CX
	XORQ R13, R13
	MOVQ ldc+96(FP), R12
	SHLQ $2, R12
	XORQ R9, R9
	XORQ R10, R10
	XORQ R11, R11
	// R14 walks panel p+1, prefetching it into L2 while panel p computes,
	// 8 lines a k step: the panel's first pair of tiles would otherwise
	// stream it from L3 (the rest find it in L2). Measured alternating
	// with and without, one core: 1.06-1.12x on 128 x 3072², 1.0-1.08x on
	// 32 x 3072², even on 1024³ and 768².
	MOVQ pstride+48(FP), R14
	ADDQ b+40(FP), R14
	MOVQ R14, AX
	ADDQ pfl+120(FP), AX
	MOVQ AX, lim-8(SP)

block:
	// Accumulators start at bias[p*64 + h : +32], in every row.
	MOVQ R9, AX
	SHLQ $8, AX
	ADDQ R11, AX
	ADDQ bias+104(FP), AX
	LOAD_C0
	LOAD_C1
	LOAD_C2
	LOAD_C3

	// B = b + p*pstride + h.
	MOVQ pstride+48(FP), BX
	IMULQ R9, BX
	ADDQ b+40(FP), BX
	ADDQ R11, BX

	// The pair's tiles: t0 = min(R10, tlast2) in SI, t1 = min(t0+1, tlast)
	// in DI; the C row of t0 in AX; then the tiles' addresses,
	// ap + t*tstride.
	MOVQ R10, SI
	MOVQ tlast2+16(FP), DX
	CMPQ SI, DX
	CMOVQGT DX, SI
	LEAQ 1(SI), DI
	MOVQ tlast+24(FP), DX
	CMPQ DI, DX
	CMOVQGT DX, DI
	MOVQ SI, AX
	CROW(AX, DX)
	MOVQ tstride+8(FP), DX
	IMULQ DX, SI
	IMULQ DX, DI
	ADDQ ap+0(FP), SI
	ADDQ ap+0(FP), DI
	MOVQ $64, DX

	MOVQ nk+56(FP), R8

kloop:
	STEP
	PREFETCH_B
	ADDQ $1024, SI
	ADDQ $1024, DI
	ADDQ $4096, BX
	DECQ R8
	JNZ  kloop

	// The K tail: the next A tiles (zero but for A[i][kfull:k]), against the
	// panel's last 16 k-quads, btail bytes in.
	CMPQ tail+64(FP), $0
	JEQ  store
	MOVQ pstride+48(FP), BX
	IMULQ R9, BX
	ADDQ b+40(FP), BX
	ADDQ btail+72(FP), BX
	ADDQ R11, BX
	STEP

store:
	STORE_C0
	STORE_C1
	MOVQ R10, AX
	MOVQ tlast2+16(FP), DX
	CMPQ AX, DX
	CMOVQGT DX, AX
	INCQ AX
	MOVQ tlast+24(FP), DX
	CMPQ AX, DX
	CMOVQGT DX, AX
	CROW(AX, DX)
	STORE_C2
	STORE_C3

next:
	ADDQ $128, R11
	CMPQ R11, $256
	JLT  block
	XORQ R11, R11
	ADDQ $2, R10
	MOVQ tlast+24(FP), DX
	CMPQ R10, DX
	JLE  block
	XORQ R10, R10
	INCQ R9
	MOVQ pstride+48(FP), R14
	IMULQ R9, R14
	ADDQ pstride+48(FP), R14
	ADDQ b+40(FP), R14
	MOVQ R14, AX
	ADDQ pfl+120(FP), AX
	MOVQ AX, lim-8(SP)
	CMPQ R9, panels+80(FP)
	JLT  block

	TILERELEASE
	RET


// The one-row-tile kernel (amxRow): A in t4, B tiles rotate through t5-t7,
// accumulators t0-t3 are the panel's 4 column groups of 16.
// t5, t6, t7 = B tiles at BX, BX+64, BX+128; t5 again at BX+192 (stride CX).
#define ROW_LOAD_B0 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x2C; BYTE $0x0B
#define ROW_LOAD_B1 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x74; BYTE $0x0B; BYTE $0x40
#define ROW_LOAD_B2 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0xBC; BYTE $0x0B; BYTE $0x80; BYTE $0x00; BYTE $0x00; BYTE $0x00
#define ROW_LOAD_B3 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0xAC; BYTE $0x0B; BYTE $0xC0; BYTE $0x00; BYTE $0x00; BYTE $0x00
// t0..t3 = 16 copies of the int32 at AX, AX+64, AX+128, AX+192 (index R13 = 0).
#define ROW_LOAD_C2 BYTE $0xC4; BYTE $0xA2; BYTE $0x7B; BYTE $0x4B; BYTE $0x94; BYTE $0x28; BYTE $0x80; BYTE $0x00; BYTE $0x00; BYTE $0x00
#define ROW_LOAD_C3 BYTE $0xC4; BYTE $0xA2; BYTE $0x7B; BYTE $0x4B; BYTE $0x9C; BYTE $0x28; BYTE $0xC0; BYTE $0x00; BYTE $0x00; BYTE $0x00
// t2, t3 to AX+128, AX+192, row stride R12.
#define ROW_STORE_C2 BYTE $0xC4; BYTE $0xA2; BYTE $0x7A; BYTE $0x4B; BYTE $0x94; BYTE $0x20; BYTE $0x80; BYTE $0x00; BYTE $0x00; BYTE $0x00
#define ROW_STORE_C3 BYTE $0xC4; BYTE $0xA2; BYTE $0x7A; BYTE $0x4B; BYTE $0x9C; BYTE $0x20; BYTE $0xC0; BYTE $0x00; BYTE $0x00; BYTE $0x00
// t0 += t4·t5, t1 += t4·t6, t2 += t4·t7, t3 += t4·t5.
#define ROW_TDP0 BYTE $0xC4; BYTE $0xE2; BYTE $0x51; BYTE $0x5E; BYTE $0xC4
#define ROW_TDP1 BYTE $0xC4; BYTE $0xE2; BYTE $0x49; BYTE $0x5E; BYTE $0xCC
#define ROW_TDP2 BYTE $0xC4; BYTE $0xE2; BYTE $0x41; BYTE $0x5E; BYTE $0xD4
#define ROW_TDP3 BYTE $0xC4; BYTE $0xE2; BYTE $0x51; BYTE $0x5E; BYTE $0xDC

#define ROW_STEP \
	LOAD_A0; \
	ROW_LOAD_B0; \
	ROW_LOAD_B1; \
	ROW_LOAD_B2; \
	ROW_TDP0; \
	ROW_TDP1; \
	ROW_TDP2; \
	ROW_LOAD_B3; \
	ROW_TDP3


// func amxRow(ap *uint8, b *int8, pstride int, nk int, tail int, btail int, panels int, c *int32, ldc int, bias *int32, cfg *byte)
//
// amxPanels for one row tile (m <= 16): every k step meets all 64 columns
// of the panel, so B streams through contiguous 4 KiB steps. Registers: SI
// A; DX A row stride (64); BX B; CX B row stride (256); R8 k steps left; R9
// panels left; R10 C of the panel; R11 bias of the panel; DI the panel's
// B; R12 ldc in bytes; R13 = 0; AX bias, then C.
TEXT ·amxRow(SB), NOSPLIT, $0-88
	MOVQ cfg+80(FP), AX
	LDTILECFG_AX
	MOVQ $256, CX
	MOVQ $64, DX
	XORQ R13, R13
	MOVQ ldc+64(FP), R12
	SHLQ $2, R12
	MOVQ b+8(FP), DI
	MOVQ c+56(FP), R10
	MOVQ bias+72(FP), R11
	MOVQ panels+48(FP), R9

rowpanel:
	MOVQ R11, AX
	LOAD_C0
	LOAD_C1
	ROW_LOAD_C2
	ROW_LOAD_C3
	MOVQ DI, BX
	MOVQ ap+0(FP), SI
	MOVQ nk+24(FP), R8

rowk:
	ROW_STEP
	ADDQ $1024, SI
	ADDQ $4096, BX
	DECQ R8
	JNZ  rowk

	CMPQ tail+32(FP), $0
	JEQ  rowstore
	MOVQ DI, BX
	ADDQ btail+40(FP), BX
	ROW_STEP

rowstore:
	MOVQ R10, AX
	STORE_C0
	STORE_C1
	ROW_STORE_C2
	ROW_STORE_C3
	ADDQ pstride+16(FP), DI
	ADDQ $256, R10
	ADDQ $256, R11
	DECQ R9
	JNZ  rowpanel

	TILERELEASE
	RET

// func amxPackTile(dst *uint8, src *uint8, lda int, nk int)
TEXT ·amxPackTile(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lda+16(FP), DX
	MOVQ nk+24(FP), CX

packloop:
	MOVQ SI, AX
	VMOVDQU8 (AX), Z0
	ADDQ DX, AX
	VMOVDQU8 (AX), Z1
	ADDQ DX, AX
	VMOVDQU8 (AX), Z2
	ADDQ DX, AX
	VMOVDQU8 (AX), Z3
	ADDQ DX, AX
	VMOVDQU8 (AX), Z4
	ADDQ DX, AX
	VMOVDQU8 (AX), Z5
	ADDQ DX, AX
	VMOVDQU8 (AX), Z6
	ADDQ DX, AX
	VMOVDQU8 (AX), Z7
	ADDQ DX, AX
	VMOVDQU8 (AX), Z8
	ADDQ DX, AX
	VMOVDQU8 (AX), Z9
	ADDQ DX, AX
	VMOVDQU8 (AX), Z10
	ADDQ DX, AX
	VMOVDQU8 (AX), Z11
	ADDQ DX, AX
	VMOVDQU8 (AX), Z12
	ADDQ DX, AX
	VMOVDQU8 (AX), Z13
	ADDQ DX, AX
	VMOVDQU8 (AX), Z14
	ADDQ DX, AX
	VMOVDQU8 (AX), Z15
	VMOVDQU8 Z0, 0(DI)
	VMOVDQU8 Z1, 64(DI)
	VMOVDQU8 Z2, 128(DI)
	VMOVDQU8 Z3, 192(DI)
	VMOVDQU8 Z4, 256(DI)
	VMOVDQU8 Z5, 320(DI)
	VMOVDQU8 Z6, 384(DI)
	VMOVDQU8 Z7, 448(DI)
	VMOVDQU8 Z8, 512(DI)
	VMOVDQU8 Z9, 576(DI)
	VMOVDQU8 Z10, 640(DI)
	VMOVDQU8 Z11, 704(DI)
	VMOVDQU8 Z12, 768(DI)
	VMOVDQU8 Z13, 832(DI)
	VMOVDQU8 Z14, 896(DI)
	VMOVDQU8 Z15, 960(DI)
	ADDQ $64, SI
	ADDQ $1024, DI
	DECQ CX
	JNZ  packloop
	VZEROUPPER
	RET
