//go:build amd64 && !purego

package kernels

//go:generate go run sgemm_asm_gen.go

var (
	sgemmArch512 = &sgemmArch{mr: 14, nr: 32, kern: sgemmKerns512, vec: 16, gemv: sgemv512, dot: sgemmDots512}
	sgemmArch256 = &sgemmArch{mr: 6, nr: 16, kern: sgemmKerns256, vec: 8, gemv: sgemv256, dot: sgemmDots256}
)

// sgemmArchFor returns the fp32 micro-kernels for tier t: AVX-512F zmm
// kernels for the AVX512VNNI tier (it implies AVX-512F), AVX2+FMA ymm
// kernels for AVX2, nil (the reference) for Generic.
func sgemmArchFor(t Tier) *sgemmArch {
	switch t {
	case AVX512VNNI, AMX:
		return sgemmArch512
	case AVX2:
		return sgemmArch256
	}
	return nil
}
