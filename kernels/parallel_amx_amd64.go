//go:build amd64 && !purego

package kernels

// amxShare is one participant's state in parallel AMX GEMMs split along N:
// A packed and the zero-point bias of every column, made once per GEMM by
// each participant rather than once per chunk (packing 128 x 768 bytes of
// A takes about as long as a 64-column panel of that GEMM computes). Its
// scratch is also the one the participant runs halves of panels with
// (runHalves).
type amxShare struct {
	job  uint64 // the u8Job.id the packing is for
	s    scratch
	rows amxRows
	_    [64]byte // the next participant's share on other cache lines
}

// runColsAMX computes participant p's columns [j0, j0+v.n) of j, v their
// view of j.pb, on the tiles with A packed once per participant, and
// reports true; or reports false if j does not take the tiles, or A is too
// large to pack whole (gemmU8S8 then packs per chunk, as serially).
func (j *u8Job) runColsAMX(p, j0 int, v *PackedB) bool {
	if j.t != AMX || !amxTiles(j.m, j.pb) || j.m > amxRowChunk(j.pb) {
		return false
	}
	sh := &j.amx[p]
	if sh.job != j.id {
		sh.s.zeroPointBias(j.aZero, j.pb)
		sh.rows = sh.s.amxPack(j.a, j.lda, j.m, 0, j.m, j.pb)
		sh.job = j.id
	}
	sh.rows.panels(&sh.s, v, sh.s.bias[j0:], j.c[j0:], j.ldc)
	return true
}

// cutsPanels reports whether an int8 GEMM of m rows on tier t split by
// columns cuts its panels into blocks of rows. Not on the tiles, which run
// whole panels (runColsAMX), nor for the rows the VNNI kernels run in one
// pass over B (vnniWide), which are cut into halves of panels instead
// (halvesPanels): cut in two blocks of rows, 8 x 768^2 and 8 x 3072^2 ran
// at pool/both 0.78-0.79 and 0.95-0.98, whole at 0.84-0.86 and 0.97-1.01
// (BenchmarkParallelScaling, three alternating runs).
func cutsPanels(t Tier, m int) bool {
	return t != AMX && !(t == AVX512VNNI && vnniWide(m))
}

// halvesPanels reports whether an int8 GEMM of m rows on tier t over pb,
// split by columns, is cut into 32-column halves of panels: the columns
// the VNNI kernels run 7-12 rows on at a time, in one pass over B.
func halvesPanels(t Tier, m int, pb *PackedB) bool {
	return (t == AVX512VNNI || t == AMX && !amxTiles(m, pb)) && vnniWide(m)
}

// runHalves computes the halves of panels [lo, hi) of j (halvesPanels) on
// participant p, with the scratch of its amxShare: a job runs either
// halves or the tiles' panels (runColsAMX), and the next on the tiles
// packs A again (its id is new). With a scratch from scratchPool at each
// of the participant's few calls per job, 8 x 768^2 ran at pool/both
// 0.84-0.87 (mean 0.861), with this one at 0.84-0.91 (0.877), higher in 7
// of 9 alternating runs (BenchmarkParallelScaling, avx512vnni).
func (j *u8Job) runHalves(p, lo, hi int) {
	gemmVNNICols(&j.amx[p].s, j.m, j.a, j.lda, j.aZero, j.pb, j.c, j.ldc, lo*panelN/2, min(hi*panelN/2, j.pb.n))
}

// rowUnit is the row granularity of a split along M for tier t: a row tile
// on AMX, else the VNNI micro-tile height (a multiple of the AVX2 one).
func rowUnit(t Tier) int {
	if t == AMX {
		return 16
	}
	return vnniRows
}
