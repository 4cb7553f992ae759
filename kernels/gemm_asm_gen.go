//go:build ignore

// This program generates gemm_amd64.s and gemm_kern_amd64.go: the int8 GEMM
// micro-kernels, one per row count. Run it with `go generate` in kernels/.
//
// gemmVNNI{r}x64 (r = 1..6) computes r rows x 64 columns of C on 4r zmm
// VPDPBUSD chains:
//
//	c[i*ldc+j] = bias[j] + Σ_{g<kg} Σ_{t<4} int32(a[i*lda+4g+t]) * int32(b[g*256+4j+t])
//
// with a as rows of uint8 (stride lda bytes) and b one packed int8 panel
// ([kg][64][4]). It also prefetches kg*256 bytes from pf into L2 (the next
// panel, so that streaming it overlaps this panel's compute). gemvVNNI is the r = 1 case over several consecutive panels
// with 8 chains (two k-group phases), kg even.
//
// gemmAVX2x{r}x16 (r = 1, 2) computes r rows x 16 columns exactly with AVX2
// only: a as rows of int16 (A widened, stride lda bytes), b a 16-column
// slice of a packed int16 panel ([kg][64][4], 512 bytes per group);
// VPMADDWD sums product pairs into int32 (no int16 saturation), and
// VPHADDD+VPERMQ fold the pairs at the end.
package main

import (
	"bytes"
	"fmt"
	"go/format"
	"log"
	"os"
)

var s bytes.Buffer

func p(format string, args ...any) { fmt.Fprintf(&s, "\t"+format+"\n", args...) }
func label(l string)               { fmt.Fprintf(&s, "%s:\n", l) }

const vnniMaxRows = 6
const vnniWideMaxRows = 12
const avx2MaxRows = 2

func vnni(r int) {
	name := fmt.Sprintf("gemmVNNI%dx64", r)
	fmt.Fprintf(&s, "// func %s(a *uint8, lda int, b *int8, kg int, c *int32, ldc int, bias *int32, pf *int8)\n", name)
	fmt.Fprintf(&s, "TEXT ·%s(SB), NOSPLIT, $0-64\n", name)
	p("MOVQ a+0(FP), SI")
	p("MOVQ lda+8(FP), R10")
	p("MOVQ b+16(FP), DI")
	p("MOVQ kg+24(FP), CX")
	p("MOVQ c+32(FP), DX")
	p("MOVQ ldc+40(FP), R8")
	p("MOVQ bias+48(FP), R9")
	p("MOVQ pf+56(FP), R13")
	p("SHLQ $2, R8")
	p("LEAQ (R10)(R10*2), R11")
	p("LEAQ (SI)(R10*4), R12")
	acc := func(row, q int) int { return 4 + 4*row + q }
	for q := range 4 {
		p("VMOVDQU32 %d(R9), Z%d", q*64, acc(0, q))
	}
	for row := 1; row < r; row++ {
		for q := range 4 {
			p("VMOVDQA32 Z%d, Z%d", acc(0, q), acc(row, q))
		}
	}
	l := fmt.Sprintf("vnni%dloop", r)
	label(l)
	for q := range 4 {
		p("VMOVDQU32 %d(DI), Z%d", q*64, q)
	}
	addr := []string{"(SI)", "(SI)(R10*1)", "(SI)(R10*2)", "(SI)(R11*1)", "(R12)", "(R12)(R10*1)"}
	areg := []int{28, 29, 30, 31, 28, 29}
	for row := range r {
		p("VPBROADCASTD %s, Z%d", addr[row], areg[row])
		for q := range 4 {
			p("VPDPBUSD Z%d, Z%d, Z%d", q, areg[row], acc(row, q))
		}
	}
	for q := range 4 {
		p("PREFETCHT1 %d(R13)", q*64)
	}
	p("ADDQ $4, SI")
	p("ADDQ $4, R12")
	p("ADDQ $256, DI")
	p("ADDQ $256, R13")
	p("DECQ CX")
	p("JNZ %s", l)
	for row := range r {
		for q := range 4 {
			p("VMOVDQU32 Z%d, %d(DX)", acc(row, q), q*64)
		}
		if row < r-1 {
			p("ADDQ R8, DX")
		}
	}
	p("VZEROUPPER")
	p("RET")
	s.WriteString("\n")
}

func vnniWide(r int) {
	name := fmt.Sprintf("gemmVNNI%dx32", r)
	fmt.Fprintf(&s, "// func %s(a *uint8, lda int, b *int8, kg int, c *int32, ldc int, bias *int32)\n", name)
	fmt.Fprintf(&s, "TEXT ·%s(SB), NOSPLIT, $0-56\n", name)
	p("MOVQ a+0(FP), SI")
	p("MOVQ lda+8(FP), R10")
	p("MOVQ b+16(FP), DI")
	p("MOVQ kg+24(FP), CX")
	p("MOVQ c+32(FP), DX")
	p("MOVQ ldc+40(FP), R8")
	p("MOVQ bias+48(FP), R9")
	p("SHLQ $2, R8")
	p("LEAQ (R10)(R10*2), R11")
	p("LEAQ (SI)(R10*4), R12")
	p("LEAQ (R12)(R10*4), BX")
	acc := func(row, q int) int { return 2 + 2*row + q }
	for q := range 2 {
		p("VMOVDQU32 %d(R9), Z%d", q*64, acc(0, q))
	}
	for row := 1; row < r; row++ {
		for q := range 2 {
			p("VMOVDQA32 Z%d, Z%d", acc(0, q), acc(row, q))
		}
	}
	l := name + "loop"
	label(l)
	for q := range 2 {
		p("VMOVDQU32 %d(DI), Z%d", q*64, q)
	}
	bases := []string{"SI", "R12", "BX"}
	idx := []string{"", "(R10*1)", "(R10*2)", "(R11*1)"}
	for row := range r {
		a := 26 + row%6
		p("VPBROADCASTD (%s)%s, Z%d", bases[row/4], idx[row%4], a)
		for q := range 2 {
			p("VPDPBUSD Z%d, Z%d, Z%d", q, a, acc(row, q))
		}
	}
	// B streams from L3 for small batches; the hardware prefetcher alone
	// leaves it short (measured: +30% at 8 x 3072 x 3072).
	p("PREFETCHT0 4096(DI)")
	p("PREFETCHT0 4160(DI)")
	p("ADDQ $4, SI")
	p("ADDQ $4, R12")
	p("ADDQ $4, BX")
	p("ADDQ $256, DI")
	p("DECQ CX")
	p("JNZ %s", l)
	for row := range r {
		for q := range 2 {
			p("VMOVDQU32 Z%d, %d(DX)", acc(row, q), q*64)
		}
		if row < r-1 {
			p("ADDQ R8, DX")
		}
	}
	p("VZEROUPPER")
	p("RET")
	s.WriteString("\n")
}

func gemv() {
	s.WriteString("// func gemvVNNI(a *uint8, b *int8, kg int, panels int, c *int32, bias *int32)\n")
	s.WriteString("TEXT ·gemvVNNI(SB), NOSPLIT, $0-48\n")
	p("MOVQ a+0(FP), SI")
	p("MOVQ b+8(FP), DI")
	p("MOVQ kg+16(FP), R10")
	p("MOVQ panels+24(FP), R11")
	p("MOVQ c+32(FP), DX")
	p("MOVQ bias+40(FP), R9")
	label("gemvpanel")
	for q := range 4 {
		p("VMOVDQU32 %d(R9), Z%d", q*64, q)
		p("VPXORD Z%d, Z%d, Z%d", 4+q, 4+q, 4+q)
	}
	p("MOVQ SI, AX")
	p("MOVQ R10, CX")
	label("gemvloop")
	p("VPBROADCASTD (AX), Z8")
	p("VPBROADCASTD 4(AX), Z9")
	for q := range 4 {
		p("VPDPBUSD %d(DI), Z8, Z%d", q*64, q)
	}
	for q := range 4 {
		p("VPDPBUSD %d(DI), Z9, Z%d", 256+q*64, 4+q)
	}
	p("ADDQ $8, AX")
	p("ADDQ $512, DI")
	p("SUBQ $2, CX")
	p("JNZ gemvloop")
	for q := range 4 {
		p("VPADDD Z%d, Z%d, Z%d", 4+q, q, q)
		p("VMOVDQU32 Z%d, %d(DX)", q, q*64)
	}
	p("ADDQ $256, DX")
	p("ADDQ $256, R9")
	p("DECQ R11")
	p("JNZ gemvpanel")
	p("VZEROUPPER")
	p("RET")
	s.WriteString("\n")
}

func avx2(r int) {
	name := fmt.Sprintf("gemmAVX2x%dx16", r)
	fmt.Fprintf(&s, "// func %s(a *int16, lda int, b *int16, kg int, c *int32, ldc int, bias *int32)\n", name)
	fmt.Fprintf(&s, "TEXT ·%s(SB), NOSPLIT, $0-56\n", name)
	p("MOVQ a+0(FP), SI")
	p("MOVQ lda+8(FP), R10")
	p("MOVQ b+16(FP), DI")
	p("MOVQ kg+24(FP), CX")
	p("MOVQ c+32(FP), DX")
	p("MOVQ ldc+40(FP), R8")
	p("MOVQ bias+48(FP), R9")
	p("SHLQ $2, R8")
	// Y(4row+q): row, columns 4q..4q+3, two partial sums per column.
	for i := range 4 * r {
		p("VPXOR Y%d, Y%d, Y%d", i, i, i)
	}
	l := fmt.Sprintf("avx2x%dloop", r)
	label(l)
	for q := range 4 {
		p("VMOVDQU %d(DI), Y%d", q*32, 8+q)
	}
	addr := []string{"(SI)", "(SI)(R10*1)", "(SI)(R10*2)"}
	for row := range r {
		p("VPBROADCASTQ %s, Y12", addr[row])
		for q := range 4 {
			p("VPMADDWD Y%d, Y12, Y%d", 8+q, 13+q%3)
			p("VPADDD Y%d, Y%d, Y%d", 13+q%3, 4*row+q, 4*row+q)
		}
	}
	p("ADDQ $8, SI")
	p("ADDQ $512, DI")
	p("DECQ CX")
	p("JNZ %s", l)
	for row := range r {
		for h := range 2 {
			x, y := 4*row+2*h, 4*row+2*h+1
			p("VPHADDD Y%d, Y%d, Y%d", y, x, x)
			p("VPERMQ $0xd8, Y%d, Y%d", x, x)
			p("VPADDD %d(R9), Y%d, Y%d", 32*h, x, x)
			p("VMOVDQU Y%d, %d(DX)", x, 32*h)
		}
		if row < r-1 {
			p("ADDQ R8, DX")
		}
	}
	p("VZEROUPPER")
	p("RET")
	s.WriteString("\n")
}

// dequant writes, for j < n (a multiple of 16), out[j] =
// float32(c[j])*scales[j] + bias[j], then max(0, ·) if relu != 0: VCVTDQ2PS,
// VMULPS and VADDPS each round (no FMA), VMAXPS keeps NaN and -0 as they are.
//
// The AVX2 variant (zmm = false) does the same 8 values at a time, n a
// multiple of 8.
func dequant(zmm bool) {
	name, R, w, shift := "dequantRowAVX512", "Z", 64, 4
	if !zmm {
		name, R, w, shift = "dequantRowAVX2", "Y", 32, 3
	}
	fmt.Fprintf(&s, "// func %s(out *float32, c *int32, scales *float32, bias *float32, n int, relu int)\n", name)
	fmt.Fprintf(&s, "TEXT ·%s(SB), NOSPLIT, $0-48\n", name)
	p("MOVQ out+0(FP), DI")
	p("MOVQ c+8(FP), SI")
	p("MOVQ scales+16(FP), R8")
	p("MOVQ bias+24(FP), R9")
	p("MOVQ n+32(FP), CX")
	p("MOVQ relu+40(FP), AX")
	p("SHRQ $%d, CX", shift)
	p("JZ %sdone", name)
	if zmm {
		p("VPXORD Z15, Z15, Z15")
	} else {
		p("VPXOR Y15, Y15, Y15")
	}
	p("TESTQ AX, AX")
	p("JNZ %srelu", name)
	for _, relu := range []bool{false, true} {
		l := name + "plain"
		if relu {
			l = name + "relu"
		}
		label(l)
		p("VCVTDQ2PS (SI), %s0", R)
		p("VMULPS (R8), %s0, %s0", R, R)
		p("VADDPS (R9), %s0, %s0", R, R)
		if relu {
			p("VMAXPS %s0, %s15, %s0", R, R, R)
		}
		p("VMOVUPS %s0, (DI)", R)
		p("ADDQ $%d, SI", w)
		p("ADDQ $%d, R8", w)
		p("ADDQ $%d, R9", w)
		p("ADDQ $%d, DI", w)
		p("DECQ CX")
		p("JNZ %s", l)
		if !relu {
			p("JMP %sdone", name)
		}
	}
	label(name + "done")
	p("VZEROUPPER")
	p("RET")
	s.WriteString("\n")
}

// quant writes, for i < n (a multiple of 16), dst[i] =
// clamp(RoundToEven(clamp(src[i]/scale, -512, 512)) + zero, 0, 255), NaN
// taken as -512 (VMAXPS returns its second operand for NaN).
//
// The AVX2 variant (zmm = false) does 8 values at a time, n a multiple of 8.
func quant(zmm bool) {
	name, R, w, shift := "quantizeU8AVX512", "Z", 64, 4
	if !zmm {
		name, R, w, shift = "quantizeU8AVX2", "Y", 32, 3
	}
	fmt.Fprintf(&s, "// func %s(dst *uint8, src *float32, n int, scale float32, zero int32)\n", name)
	fmt.Fprintf(&s, "TEXT ·%s(SB), NOSPLIT, $0-32\n", name)
	p("MOVQ dst+0(FP), DI")
	p("MOVQ src+8(FP), SI")
	p("MOVQ n+16(FP), CX")
	p("SHRQ $%d, CX", shift)
	p("JZ %sdone", name)
	bcast := func(reg int) {
		if zmm {
			p("VPBROADCASTD AX, Z%d", reg)
		} else {
			p("MOVQ AX, X%d", reg)
			p("VPBROADCASTD X%d, Y%d", reg, reg)
		}
	}
	p("MOVL scale+24(FP), AX")
	bcast(1)
	p("MOVL zero+28(FP), AX")
	bcast(2)
	p("MOVL $0xc4000000, AX") // -512.0
	bcast(3)
	p("MOVL $0x44000000, AX") // 512.0
	bcast(4)
	p("MOVL $0, AX")
	bcast(5)
	p("MOVL $255, AX")
	bcast(6)
	label(name + "loop")
	p("VMOVUPS (SI), %s0", R)
	p("VDIVPS %s1, %s0, %s0", R, R, R)
	p("VMAXPS %s3, %s0, %s0", R, R, R)
	p("VMINPS %s4, %s0, %s0", R, R, R)
	p("VCVTPS2DQ %s0, %s0", R, R)
	p("VPADDD %s2, %s0, %s0", R, R, R)
	p("VPMAXSD %s5, %s0, %s0", R, R, R)
	p("VPMINSD %s6, %s0, %s0", R, R, R)
	if zmm {
		p("VPMOVDB Z0, X7")
		p("VMOVDQU X7, (DI)")
	} else {
		// Values are in [0, 255]: the saturating packs only narrow them.
		p("VEXTRACTI128 $1, Y0, X7")
		p("VPACKSSDW X7, X0, X0")
		p("VPACKUSWB X0, X0, X0")
		p("MOVQ X0, (DI)")
	}
	p("ADDQ $%d, SI", w)
	p("ADDQ $%d, DI", w/4)
	p("DECQ CX")
	p("JNZ %sloop", name)
	label(name + "done")
	p("VZEROUPPER")
	p("RET")
	s.WriteString("\n")
}

func main() {
	s.WriteString("// Code generated by gemm_asm_gen.go. DO NOT EDIT.\n\n//go:build amd64 && !purego\n\n#include \"textflag.h\"\n\n")
	for r := 1; r <= vnniMaxRows; r++ {
		vnni(r)
	}
	for r := vnniMaxRows + 1; r <= vnniWideMaxRows; r++ {
		vnniWide(r)
	}
	gemv()
	for r := 1; r <= avx2MaxRows; r++ {
		avx2(r)
	}
	dequant(true)
	dequant(false)
	quant(true)
	quant(false)
	if err := os.WriteFile("gemm_amd64.s", s.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}

	var g bytes.Buffer
	g.WriteString("// Code generated by gemm_asm_gen.go. DO NOT EDIT.\n\n//go:build amd64 && !purego\n\npackage kernels\n\n")
	for r := 1; r <= vnniMaxRows; r++ {
		fmt.Fprintf(&g, "//go:noescape\nfunc gemmVNNI%dx64(a *uint8, lda int, b *int8, kg int, c *int32, ldc int, bias *int32, pf *int8)\n\n", r)
	}
	for r := vnniMaxRows + 1; r <= vnniWideMaxRows; r++ {
		fmt.Fprintf(&g, "//go:noescape\nfunc gemmVNNI%dx32(a *uint8, lda int, b *int8, kg int, c *int32, ldc int, bias *int32)\n\n", r)
	}
	g.WriteString("//go:noescape\nfunc gemvVNNI(a *uint8, b *int8, kg int, panels int, c *int32, bias *int32)\n\n")
	for r := 1; r <= avx2MaxRows; r++ {
		fmt.Fprintf(&g, "//go:noescape\nfunc gemmAVX2x%dx16(a *int16, lda int, b *int16, kg int, c *int32, ldc int, bias *int32)\n\n", r)
	}
	g.WriteString("//go:noescape\nfunc dequantRowAVX512(out *float32, c *int32, scales *float32, bias *float32, n int, relu int)\n\n")
	g.WriteString("//go:noescape\nfunc quantizeU8AVX512(dst *uint8, src *float32, n int, scale float32, zero int32)\n\n")
	g.WriteString("//go:noescape\nfunc dequantRowAVX2(out *float32, c *int32, scales *float32, bias *float32, n int, relu int)\n\n")
	g.WriteString("//go:noescape\nfunc quantizeU8AVX2(dst *uint8, src *float32, n int, scale float32, zero int32)\n\n")
	fmt.Fprintf(&g, "const (\n\tvnniMR = %d\n\tvnniWideMR = %d\n\tavx2MR = %d\n)\n\n", vnniMaxRows, vnniWideMaxRows, avx2MaxRows)
	g.WriteString("// vnniWideKernels[r] computes r rows x 32 columns (r > vnniMR).\nvar vnniWideKernels = [...]func(a *uint8, lda int, b *int8, kg int, c *int32, ldc int, bias *int32){")
	for r := 0; r <= vnniWideMaxRows; r++ {
		if r > vnniMaxRows {
			fmt.Fprintf(&g, "gemmVNNI%dx32, ", r)
		} else {
			g.WriteString("nil, ")
		}
	}
	g.WriteString("}\n\n")
	g.WriteString("// vnniKernels[r] computes r rows.\nvar vnniKernels = [...]func(a *uint8, lda int, b *int8, kg int, c *int32, ldc int, bias *int32, pf *int8){nil")
	for r := 1; r <= vnniMaxRows; r++ {
		fmt.Fprintf(&g, ", gemmVNNI%dx64", r)
	}
	g.WriteString("}\n\n// avx2Kernels[r] computes r rows.\nvar avx2Kernels = [...]func(a *int16, lda int, b *int16, kg int, c *int32, ldc int, bias *int32){nil")
	for r := 1; r <= avx2MaxRows; r++ {
		fmt.Fprintf(&g, ", gemmAVX2x%dx16", r)
	}
	g.WriteString("}\n")
	src, err := format.Source(g.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("gemm_kern_amd64.go", src, 0o644); err != nil {
		log.Fatal(err)
	}
}
