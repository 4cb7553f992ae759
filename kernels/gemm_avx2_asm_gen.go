//go:build ignore

// This program generates gemm_avx2_amd64.s and gemm_avx2_kern_amd64.go: the
// AVX2 tier's int8 GEMM micro-kernels (no AVX-512 instruction). Run it with
// `go generate` in kernels/. Both families read the packed int8 B of every
// tier ([kg][64][4] bytes per 64-column panel, 256 bytes per k group): b
// points at the first column of a slice of a panel.
//
// gemmAVX2x{r}x8 (r = 1..6) computes r rows x 8 columns exactly with AVX2
// alone:
//
//	c[i*ldc+j] = bias[j] + Σ_{g<kg} Σ_{t<4} int32(a[i*lda/2+4g+t]) * int32(b[g*256+4j+t])
//
// with a as rows of int16 (A widened by the caller, stride lda bytes). Each
// k group sign-extends 8 columns x 4 k of B to int16 (VPMOVSXBW) and
// multiplies them by 4 broadcast k values of each row (VPBROADCASTQ);
// VPMADDWD sums product pairs into int32 (exact: no int16 saturation, unlike
// VPMADDUBSW), VPADDD accumulates, and VPHADDD+VPERMQ fold the pairs at the
// end. 12 accumulators, 2 B, 1 A and 1 product register: all 16 ymm.
// VPMADDWD (ports 0, 1) and VPADDD (0, 1, 5) fill the vector ports at 16
// multiply-accumulates per pair, so this path tops out near 2/3 of the
// VPMADDUBSW peak bench/peak measures, however it is blocked (measured on an
// Emerald Rapids core: ~100 of ~150 GOPS).
// gemmAVX2Nib1x32, the exact kernel for M = 1, is described at nib1x32.
//
// gemmAVXVNNI{r}x16 (r = 1..6) computes the same sums for 16 columns, with a
// as rows of uint8 (stride lda bytes), on 2r VPDPBUSD ymm chains, and
// gemvAVXVNNI the r = 1 case over consecutive whole 64-column panels on 8
// chains (B read from memory operands). VPDPBUSD adds four u8 x s8 products
// to an int32 with wraparound (the saturating form is VPDPBUSDS), so these
// are exact too. They need AVX-VNNI (CPUID.(EAX=7,ECX=1):EAX[4]), whose VEX
// encoding Go's assembler lacks (it emits the EVEX form, AVX-512 VL only):
// vpdpbusd below encodes it from the Intel SDM entry
//
//	VEX.256.66.0F38.W0 50 /r   VPDPBUSD ymm1, ymm2, ymm3/m256
//
// as C4 [R̄ X̄ B̄ 00010] [0 v̄v̄v̄v̄ 1 01] 50 ModRM [disp32]: ymm1 (the
// accumulator) in ModRM.reg, ymm2 (the unsigned bytes, A) in VEX.vvvv
// inverted, ymm3 or the memory operand (the signed bytes, B) in ModRM.rm.
//
// Every kernel takes kg even (K is padded to a multiple of 8), runs two k
// groups per loop iteration and prefetches B pfDist bytes ahead.
package main

import (
	"bytes"
	"fmt"
	"go/format"
	"log"
	"os"
	"strings"
)

var s bytes.Buffer

func p(format string, args ...any) { fmt.Fprintf(&s, "\t"+format+"\n", args...) }
func label(l string)               { fmt.Fprintf(&s, "%s:\n", l) }

const maxRows = 6

// pfDist is how far ahead in B (bytes, 16 k groups) the kernels prefetch:
// B streams from L3 or DRAM when M is small, and the hardware prefetcher
// alone leaves it short (measured on the AVX-VNNI path: +5-15% at M = 1 and
// 8, 3072 x 3072).
const pfDist = 4096

// Go register numbers as the hardware encodes them.
const (
	regDI = 7
)

// vpdpbusd emits VEX VPDPBUSD with ymm registers: acc += Σ u8(ua) * s8(sb),
// in Go operand order (sb, ua, acc).
func vpdpbusd(sb, ua, acc int) {
	emit(fmt.Sprintf("VPDPBUSD Y%d, Y%d, Y%d", sb, ua, acc), acc, ua, sb, byte(0xc0|(acc&7)<<3|(sb&7)), nil)
}

// vpdpbusdMem is vpdpbusd with sb the 32 bytes at disp(base), base a
// general register other than SP, BP, R12, R13 (no SIB byte, no RIP form).
func vpdpbusdMem(disp int, base, ua, acc int) {
	if base&7 == 4 || base&7 == 5 {
		log.Fatalf("vpdpbusdMem: base register %d needs a SIB byte or means RIP", base)
	}
	d := []byte{byte(disp), byte(disp >> 8), byte(disp >> 16), byte(disp >> 24)}
	emit(fmt.Sprintf("VPDPBUSD %d(R%d), Y%d, Y%d", disp, base, ua, acc), acc, ua, base, byte(0x80|(acc&7)<<3|(base&7)), d)
}

func emit(comment string, reg, vvvv, rm int, modrm byte, disp []byte) {
	b1 := byte(0x02) | 0x40 // mmmmm = 0F38, X̄ = 1
	if reg < 8 {
		b1 |= 0x80
	}
	if rm < 8 {
		b1 |= 0x20
	}
	b2 := byte((^vvvv&15)<<3) | 0x04 | 0x01 // W0, L = 256, pp = 66
	bs := append([]byte{0xc4, b1, b2, 0x50, modrm}, disp...)
	var parts []string
	for _, x := range bs {
		parts = append(parts, fmt.Sprintf("BYTE $0x%02x", x))
	}
	p("%s // %s", strings.Join(parts, "; "), comment)
}

// rowAddr returns row i's address at byte offset off, with SI = row 0,
// R10 = lda, R11 = 3*lda, R12 = row 4.
func rowAddr(i, off int) string {
	return fmt.Sprintf("%d", off) + []string{"(SI)", "(SI)(R10*1)", "(SI)(R10*2)", "(SI)(R11*1)", "(R12)", "(R12)(R10*1)"}[i]
}

// prologue loads the kernel arguments; CX counts pairs of k groups when
// pairs is set, else k groups.
func prologue(name, args string, frame int, pairs bool) {
	fmt.Fprintf(&s, "// func %s(%s)\n", name, args)
	fmt.Fprintf(&s, "TEXT ·%s(SB), NOSPLIT, $0-%d\n", name, frame)
	p("MOVQ a+0(FP), SI")
	p("MOVQ lda+8(FP), R10")
	p("MOVQ b+16(FP), DI")
	p("MOVQ kg+24(FP), CX")
	p("MOVQ c+32(FP), DX")
	p("MOVQ ldc+40(FP), R8")
	p("MOVQ bias+48(FP), R9")
	p("SHLQ $2, R8")
	if pairs {
		p("SHRQ $1, CX")
	}
	p("LEAQ (R10)(R10*2), R11")
	p("LEAQ (SI)(R10*4), R12")
}

const kernArgs = "a *%s, lda int, b *int8, kg int, c *int32, ldc int, bias *int32"

func madd(r int) {
	name := fmt.Sprintf("gemmAVX2x%dx8", r)
	prologue(name, fmt.Sprintf(kernArgs, "int16"), 56, true)
	// Y(2i+h): row i, columns 4h..4h+3, two partial sums per column.
	for i := range 2 * r {
		p("VPXOR Y%d, Y%d, Y%d", i, i, i)
	}
	l := name + "loop"
	label(l)
	for u := range 2 {
		p("VPMOVSXBW %d(DI), Y12", 256*u)
		p("VPMOVSXBW %d(DI), Y13", 256*u+16)
		for i := range r {
			p("VPBROADCASTQ %s, Y14", rowAddr(i, 8*u))
			for h := range 2 {
				p("VPMADDWD Y%d, Y14, Y15", 12+h)
				p("VPADDD Y15, Y%d, Y%d", 2*i+h, 2*i+h)
			}
		}
	}
	p("PREFETCHT0 %d(DI)", pfDist)
	p("PREFETCHT0 %d(DI)", pfDist+256)
	p("ADDQ $16, SI")
	p("ADDQ $16, R12")
	p("ADDQ $512, DI")
	p("DECQ CX")
	p("JNZ %s", l)
	p("VMOVDQU (R9), Y15")
	for i := range r {
		x, y := 2*i, 2*i+1
		p("VPHADDD Y%d, Y%d, Y%d", y, x, x)
		p("VPERMQ $0xd8, Y%d, Y%d", x, x)
		p("VPADDD Y15, Y%d, Y%d", x, x)
		p("VMOVDQU Y%d, (DX)", x)
		if i < r-1 {
			p("ADDQ R8, DX")
		}
	}
	p("VZEROUPPER")
	p("RET")
	s.WriteString("\n")
}

// nib1x32 is the exact one-row kernel (M = 1), where B values have no
// other row to share a widening with. It splits A instead, once per call,
// into nibbles: a points at the row's low nibbles and a+lda at its high
// ones (kg*4 bytes each), so that c[j] = bias[j] + Σ lo*b + 16 Σ hi*b with
// VPMADDUBSW on B's bytes as they are: each of its pair sums is at most
// 2*15*128 = 3840 in magnitude, far from saturating, and 8 k groups of them
// add up in int16 (30720) before VPMADDWD by 1 or 16 widens them into the
// int32 sums. 18 vector instructions per k group and 32 columns, against
// 24 for VPMOVSXBW+VPMADDWD+VPADDD.
func nib1x32() {
	const name = "gemmAVX2Nib1x32"
	prologue(name, fmt.Sprintf(kernArgs, "uint8"), 56, false)
	// Y(q), Y(4+q): int16 sums of low and high nibbles' products, columns
	// 8q..8q+7, two per column; Y(8+q): the int32 sums.
	for q := range 4 {
		p("VPXOR Y%d, Y%d, Y%d", 8+q, 8+q, 8+q)
	}
	label(name + "block")
	p("MOVQ $%d, BX", nibGroups)
	p("CMPQ CX, BX")
	p("CMOVQLT CX, BX")
	p("SUBQ BX, CX")
	p("SHRQ $1, BX")
	for i := range 8 {
		p("VPXOR Y%d, Y%d, Y%d", i, i, i)
	}
	label(name + "loop")
	for u := range 2 {
		p("VPBROADCASTD %d(SI), Y12", 4*u)
		p("VPBROADCASTD %d(SI)(R10*1), Y13", 4*u)
		for q := range 4 {
			for h, a := range []int{12, 13} {
				p("VPMADDUBSW %d(DI), Y%d, Y%d", 256*u+32*q, a, 14+h)
				p("VPADDW Y%d, Y%d, Y%d", 14+h, 4*h+q, 4*h+q)
			}
		}
	}
	p("PREFETCHT0 %d(DI)", pfDist)
	p("PREFETCHT0 %d(DI)", pfDist+256)
	p("ADDQ $8, SI")
	p("ADDQ $512, DI")
	p("DECQ BX")
	p("JNZ %sloop", name)
	for q := range 4 {
		p("VPMADDWD ·avx2Words1<>(SB), Y%d, Y14", q)
		p("VPADDD Y14, Y%d, Y%d", 8+q, 8+q)
		p("VPMADDWD ·avx2Words16<>(SB), Y%d, Y15", 4+q)
		p("VPADDD Y15, Y%d, Y%d", 8+q, 8+q)
	}
	p("TESTQ CX, CX")
	p("JNZ %sblock", name)
	for q := range 4 {
		p("VPADDD %d(R9), Y%d, Y%d", 32*q, 8+q, 8+q)
		p("VMOVDQU Y%d, %d(DX)", 8+q, 32*q)
	}
	p("VZEROUPPER")
	p("RET")
	s.WriteString("\n")
}

// nibGroups is how many k groups nib1x32 sums in int16 (even, <= 8).
const nibGroups = 8

func words(name string, v int) {
	for i := range 4 {
		fmt.Fprintf(&s, "DATA ·%s<>+%d(SB)/8, $0x%04x%04x%04x%04x\n", name, 8*i, v, v, v, v)
	}
	fmt.Fprintf(&s, "GLOBL ·%s<>(SB), RODATA|NOPTR, $32\n\n", name)
}

func vnni(r int) {
	name := fmt.Sprintf("gemmAVXVNNI%dx16", r)
	prologue(name, fmt.Sprintf(kernArgs, "uint8"), 56, true)
	// Y(2i+h): row i, columns 8h..8h+7.
	p("VMOVDQU (R9), Y0")
	p("VMOVDQU 32(R9), Y1")
	for i := 1; i < r; i++ {
		p("VMOVDQA Y0, Y%d", 2*i)
		p("VMOVDQA Y1, Y%d", 2*i+1)
	}
	l := name + "loop"
	label(l)
	for u := range 2 {
		p("VMOVDQU %d(DI), Y12", 256*u)
		p("VMOVDQU %d(DI), Y13", 256*u+32)
		for i := range r {
			a := 14 + i%2
			p("VPBROADCASTD %s, Y%d", rowAddr(i, 4*u), a)
			for h := range 2 {
				vpdpbusd(12+h, a, 2*i+h)
			}
		}
	}
	// Each k group of the slice is its own line.
	p("PREFETCHT0 %d(DI)", pfDist)
	p("PREFETCHT0 %d(DI)", pfDist+256)
	p("ADDQ $8, SI")
	p("ADDQ $8, R12")
	p("ADDQ $512, DI")
	p("DECQ CX")
	p("JNZ %s", l)
	for i := range r {
		p("VMOVDQU Y%d, (DX)", 2*i)
		p("VMOVDQU Y%d, 32(DX)", 2*i+1)
		if i < r-1 {
			p("ADDQ R8, DX")
		}
	}
	p("VZEROUPPER")
	p("RET")
	s.WriteString("\n")
}

func gemv() {
	const name = "gemvAVXVNNI"
	fmt.Fprintf(&s, "// func %s(a *uint8, b *int8, kg int, panels int, c *int32, bias *int32)\n", name)
	fmt.Fprintf(&s, "TEXT ·%s(SB), NOSPLIT, $0-48\n", name)
	p("MOVQ a+0(FP), SI")
	p("MOVQ b+8(FP), DI")
	p("MOVQ kg+16(FP), R10")
	p("MOVQ panels+24(FP), R11")
	p("MOVQ c+32(FP), DX")
	p("MOVQ bias+40(FP), R9")
	p("SHRQ $1, R10")
	label(name + "panel")
	for q := range 8 {
		p("VMOVDQU %d(R9), Y%d", 32*q, q)
	}
	p("MOVQ SI, AX")
	p("MOVQ R10, CX")
	label(name + "loop")
	p("VPBROADCASTD (AX), Y8")
	p("VPBROADCASTD 4(AX), Y9")
	for u := range 2 {
		for q := range 8 {
			vpdpbusdMem(256*u+32*q, regDI, 8+u, q)
		}
	}
	// Every other line of two k groups: the adjacent-line prefetcher
	// fetches the rest.
	for q := 0; q < 8; q += 2 {
		p("PREFETCHT0 %d(DI)", pfDist+64*q)
	}
	p("ADDQ $8, AX")
	p("ADDQ $512, DI")
	p("DECQ CX")
	p("JNZ %sloop", name)
	for q := range 8 {
		p("VMOVDQU Y%d, %d(DX)", q, 32*q)
	}
	p("ADDQ $256, DX")
	p("ADDQ $256, R9")
	p("DECQ R11")
	p("JNZ %spanel", name)
	p("VZEROUPPER")
	p("RET")
	s.WriteString("\n")
}

func main() {
	s.WriteString("// Code generated by gemm_avx2_asm_gen.go. DO NOT EDIT.\n\n//go:build amd64 && !purego\n\n#include \"textflag.h\"\n\n")
	for r := 1; r <= maxRows; r++ {
		madd(r)
	}
	words("avx2Words1", 1)
	words("avx2Words16", 16)
	nib1x32()
	for r := 1; r <= maxRows; r++ {
		vnni(r)
	}
	gemv()
	if err := os.WriteFile("gemm_avx2_amd64.s", s.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}

	var g bytes.Buffer
	g.WriteString("// Code generated by gemm_avx2_asm_gen.go. DO NOT EDIT.\n\n//go:build amd64 && !purego\n\npackage kernels\n\n")
	for r := 1; r <= maxRows; r++ {
		fmt.Fprintf(&g, "//go:noescape\nfunc gemmAVX2x%dx8(%s)\n\n", r, fmt.Sprintf(kernArgs, "int16"))
	}
	fmt.Fprintf(&g, "//go:noescape\nfunc gemmAVX2Nib1x32(%s)\n\n", fmt.Sprintf(kernArgs, "uint8"))
	for r := 1; r <= maxRows; r++ {
		fmt.Fprintf(&g, "//go:noescape\nfunc gemmAVXVNNI%dx16(%s)\n\n", r, fmt.Sprintf(kernArgs, "uint8"))
	}
	g.WriteString("//go:noescape\nfunc gemvAVXVNNI(a *uint8, b *int8, kg int, panels int, c *int32, bias *int32)\n\n")
	fmt.Fprintf(&g, "// avx2MR is the row count of the AVX2 tier's largest micro-kernels.\nconst avx2MR = %d\n\n", maxRows)
	fmt.Fprintf(&g, "// avx2Kernels[r] computes r rows x 8 columns with VPMADDWD.\nvar avx2Kernels = [...]func(%s){nil", fmt.Sprintf(kernArgs, "int16"))
	for r := 1; r <= maxRows; r++ {
		fmt.Fprintf(&g, ", gemmAVX2x%dx8", r)
	}
	fmt.Fprintf(&g, "}\n\n// avxVNNIKernels[r] computes r rows x 16 columns with VEX VPDPBUSD.\nvar avxVNNIKernels = [...]func(%s){nil", fmt.Sprintf(kernArgs, "uint8"))
	for r := 1; r <= maxRows; r++ {
		fmt.Fprintf(&g, ", gemmAVXVNNI%dx16", r)
	}
	g.WriteString("}\n")
	src, err := format.Source(g.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("gemm_avx2_kern_amd64.go", src, 0o644); err != nil {
		log.Fatal(err)
	}
}
