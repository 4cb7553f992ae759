package kernels

import "unsafe"

// How GEMMs are split over the worker pool (pool.go). Every share runs the
// serial code of the active tier on a sub-problem, so the results are
// bit-identical to a serial call, whatever the thread count:
//
//   - int8: for M < parRowSplitM along N, in 64-column panels of the
//     packed B, when there are at least two per core (each core then streams
//     only its share of the weights: what memory-bound small M needs), each
//     panel cut into blocks of rows (6 or so; see cutsPanels) or, for the
//     7-12 rows the VNNI kernels run in one pass, into 32-column halves
//     (halvesPanels), else
//     along M in whole blocks of rows (6, the VNNI micro-tile; 16, a row
//     tile, on AMX); each share calls gemmU8S8 (the tier dispatcher, whatever
//     tier is active) on a view of its columns (PackedB.colView) or on its
//     rows. On AMX a column share packs A once per core and job, not once
//     per chunk (runColsAMX).
//   - fp32: SgemmPacked likewise, in whole micro-panels (nr columns) or
//     micro-tiles (mr rows). Sgemm splits along N only: its path (GEMV, dot
//     products, blocked) depends on M, and with it the rounding.

// parMinMACs is the least work, in multiply-accumulates, worth one more core:
// below it the handoff costs more than it saves (shared/PERF.md). A variable
// so that tests can split small shapes.
var parMinMACs = 1 << 20

// parRowSplitM is from how many rows of A a GEMM is split along M: each
// core then streams all of B (which such a product reuses many times) but
// only its share of A. Below it, splitting along N has each core stream only
// its share of B.
const parRowSplitM = 256

// parChunksPerPart is how many chunks each participant of an fp32 GEMM
// split by rows gets on average: more than one, so that a core the OS
// takes away for a while, or one that runs slower (a shared host's vCPUs
// can differ by 1.5x for seconds), is made up for by the others. An int8
// GEMM has as many chunks as units (blocks of rows of a panel, or of all
// panels), up to maxChunks: each participant runs its own in a few calls
// (takeFront), and the smallest chunks are left for the end. Against 6
// chunks per core, run one at a time, that took pool/both on 8 x 3072^2
// from 0.91-0.94 to 0.98-0.99 (avx2) and from 0.84-0.96 to 0.95-0.97
// (avx512vnni), on 1024^3 (avx2) from 0.95 to 0.99 (BenchmarkParallel-
// Scaling, two runs each, alternating); on 8 x 768^2 (avx512vnni) from
// 0.83-0.84 to 0.84-0.86 (three).
const parChunksPerPart = 6

// tierParWeight is how many times faster than the VNNI kernels tier t's
// GEMM of m rows runs, by which it needs more work for another core to pay:
// the hand-off costs the same time whatever the tier. The tiles run the
// 768^2 shapes 2-4x faster (BenchmarkGemmU8S8); 8 x 768^2 on them (under
// 10 us on one core) measured 0.7-1.05x on two cores, 32 x 768^2 1.0-1.3x.
// Split with a weight of 1, 8 x 768^2 ran at 1.56-1.60x when both vCPUs'
// tiles ran at about 300 GOPS, but at 0.76x when the timed vCPU's ran at
// 1,212 and the other's at 316 (BenchmarkParallelScaling, amx, three
// alternating runs): the tiles' rate differs between the vCPUs by up to
// 4x, and then the slower one's first range alone outlasts the whole GEMM
// on the faster. The adaptive default (adapt.go) runs whichever has
// lately been faster: the tiles (there on one core) or the VNNI kernels
// (on two).
// A GEMV (and any shape below the tiles' minimum) runs the VNNI kernels.
func tierParWeight(t Tier, m int, pb *PackedB) float64 {
	if t == AMX && amxTiles(m, pb) {
		return 4
	}
	return 1
}

// maxParts bounds how many cores one GEMM is split over, so that each
// gets chunks (parChunksPerPart) in a share's 16-bit range (pool.go).
const maxParts = 1 << 12

// maxChunks bounds how many chunks a job has: a share's range is 16-bit.
const maxChunks = 1<<16 - 1

// parParts returns how many cores a GEMM of macs multiply-accumulates should
// use: at most Parallelism (and maxParts), at least parMinMACs each.
func parParts(macs float64) int {
	n := min(Parallelism(), maxParts)
	if n <= 1 {
		return 1
	}
	return max(1, min(n, int(macs/float64(max(parMinMACs, 1)))))
}

// span returns the i-th of n near-equal parts of [0, units).
func span(i, n, units int) (lo, hi int) {
	return i * units / n, (i + 1) * units / n
}

// u8Job is an int8 GEMM split by columns (panels) or rows (6-row blocks).
// Split by columns, each panel may be cut into rb blocks of rows: a unit
// is then one block of one panel, panel-major, so that a range of units
// is whole panels but for a block or more of a panel at either end.
type u8Job struct {
	t      Tier
	m      int
	a      []uint8
	lda    int
	aZero  uint8
	pb     *PackedB
	c      []int32
	ldc    int
	byCols bool
	units  int  // panels (times rb), halves of panels, or row blocks
	rows   int  // rows per block, split by rows
	rb     int  // blocks of rows per panel, split by columns
	halves bool // split by columns, a unit is a 32-column half of a panel
	chunks int
	epi    *epilogue  // applied to each part of C as it is done, or nil
	views  []*PackedB // one per participant
	amx    []amxShare // one per participant
	id     uint64     // counts the jobs, for amxShare
}

func (j *u8Job) run(p, i0, i1 int) {
	lo, _ := span(i0, j.chunks, j.units)
	_, hi := span(i1-1, j.chunks, j.units)
	if lo == hi {
		return
	}
	if !j.byCols {
		r0, r1 := lo*j.rows, min(hi*j.rows, j.m)
		gemmU8S8(j.t, r1-r0, j.a[r0*j.lda:], j.lda, j.aZero, j.pb, j.c[r0*j.ldc:], j.ldc)
		if j.epi != nil {
			j.epi.apply(j.c, j.ldc, r0, r1, 0, j.pb.n)
		}
		return
	}
	if j.halves {
		j.runHalves(p, lo, hi)
		if j.epi != nil {
			j.epi.apply(j.c, j.ldc, 0, j.m, lo*panelN/2, min(hi*panelN/2, j.pb.n))
		}
		return
	}
	rb := j.rb
	for u := lo; u < hi; {
		p0, b0 := u/rb, u%rb
		if b0 == 0 && hi-u >= rb {
			// Whole panels, every row.
			p1 := hi / rb
			j.cols(p, p0, p1, 0, j.m)
			u = p1 * rb
			continue
		}
		b1 := min(rb, b0+hi-u)
		r0, _ := span(b0, rb, j.m)
		_, r1 := span(b1-1, rb, j.m)
		j.cols(p, p0, p0+1, r0, r1)
		u += b1 - b0
	}
}

// cols computes rows [r0, r1) of panels [p0, p1) on participant p.
func (j *u8Job) cols(p, p0, p1, r0, r1 int) {
	v := j.views[p]
	j.pb.colView(v, p0*panelN, min(p1*panelN, j.pb.n))
	if !(r0 == 0 && r1 == j.m && j.runColsAMX(p, p0*panelN, v)) {
		gemmU8S8(j.t, r1-r0, j.a[r0*j.lda:], j.lda, j.aZero, v, j.c[r0*j.ldc+p0*panelN:], j.ldc)
	}
	if j.epi != nil {
		j.epi.apply(j.c, j.ldc, r0, r1, p0*panelN, min(p1*panelN, j.pb.n))
	}
}

// vnniRows is the VNNI micro-tile height, a multiple of the AVX2 one.
const vnniRows = 6

// newColView returns a PackedB for colView to fill, on cache lines of its
// own: each participant writes its view at every chunk.
func newColView() *PackedB { return padded[PackedB]() }

// padded returns a new zero T with 64 bytes of padding on each side, so
// that no other object's fields share its cache lines.
func padded[T any]() *T {
	return &new(struct {
		_ [64]byte
		v T
		_ [64]byte
	}).v
}

// colView sets v (from newColView) to the columns [j0, j1) of p, j0 a
// multiple of panelN: the same packed bytes, sliced.
//
// If PackedB gains a field a tier reads (another packed layout, say), it must
// be sliced here too.
func (p *PackedB) colView(v *PackedB, j0, j1 int) {
	np := (j1 - j0 + panelN - 1) / panelN * panelN
	lo, hi := j0/panelN*p.kp*panelN, (j0+np)/panelN*p.kp*panelN
	v.k, v.n, v.kp, v.np = p.k, j1-j0, p.kp, np
	v.data = p.data[lo:hi]
	v.colSum = p.colSum[j0 : j0+np]
}

// gemmU8S8Par is gemmU8S8 split over the pool when the GEMM is large enough
// and the pool is free; otherwise it runs on the caller alone. On the AMX
// tier it may run on the VNNI kernels (adaptTiles).
// epi, if not nil, is applied to C.
func gemmU8S8Par(t Tier, m int, a []uint8, lda int, aZero uint8, pb *PackedB, c []int32, ldc int, epi *epilogue) {
	if !adaptTiles(t, m, a, lda, aZero, pb, c, ldc, epi) {
		gemmU8S8Split(t, m, a, lda, aZero, pb, c, ldc, epi)
	}
}

// gemmU8S8Epi is gemmU8S8 followed by epi, if not nil, over all of C.
func gemmU8S8Epi(t Tier, m int, a []uint8, lda int, aZero uint8, pb *PackedB, c []int32, ldc int, epi *epilogue) {
	gemmU8S8(t, m, a, lda, aZero, pb, c, ldc)
	if epi != nil {
		epi.apply(c, ldc, 0, m, 0, pb.n)
	}
}

// gemmU8S8Split is gemmU8S8Par on tier t as it is.
func gemmU8S8Split(t Tier, m int, a []uint8, lda int, aZero uint8, pb *PackedB, c []int32, ldc int, epi *epilogue) {
	// A GEMM too small to split (or on one core) goes straight to the
	// tier: planning 8 x 768^2 took 46 ns (timed alone, in a benchmark
	// not kept), about 1% of a GEMV of 768^2.
	parts := parParts(float64(m) * float64(pb.n) * float64(pb.k) / tierParWeight(t, m, pb))
	if parts <= 1 {
		gemmU8S8Epi(t, m, a, lda, aZero, pb, c, ldc, epi)
		return
	}
	job, parts := planU8(t, m, a, lda, aZero, pb, c, ldc, parts)
	if parts <= 1 {
		gemmU8S8Epi(t, m, a, lda, aZero, pb, c, ldc, epi)
		return
	}
	ws, ok := pool.acquire(parts - 1)
	if !ok {
		gemmU8S8Epi(t, m, a, lda, aZero, pb, c, ldc, epi)
		return
	}
	j := &pool.u8
	job.epi = epi
	j.set(&job)
	j.grow(parts)
	sh := pool.shareOf(t, m, pb, parts)
	if ran, joined := pool.runJob(ws, j, j.chunks, sh.mine(j.chunks)); joined {
		sh.record(ran, j.chunks)
	}
	pool.release()
}

// callerShare is the share of an int8 GEMM's chunks the caller takes as
// its own, as the pool keeps it for the GEMMs of a few recent shapes. The
// host's vCPUs can run at rates 1.5x apart for seconds (pool.go): with
// equal ranges the faster core then takes chunks from the other's at the
// end of every job, each a compare-and-swap on the other's line, and waits
// for the last one the slower core runs. After each job that every worker
// joined, frac moves halfway to the share the caller ran. On 8 x 768^2
// (avx512vnni) pool/both went from 0.80-0.85 to 0.84-0.86, the rounds with
// vCPUs of different rates gaining most; the other shapes were unchanged
// within the host's noise (BenchmarkParallelScaling, three alternating
// runs).
type callerShare struct {
	pb    uintptr // the PackedB's address: a key, which keeps nothing alive
	m     int
	t     Tier
	parts int
	frac  float64
}

// shareOf returns the caller's share for a GEMM of m rows over pb on tier
// t split over parts cores: the one kept for that shape, or 1/parts. The
// caller must hold the pool.
func (p *workerPool) shareOf(t Tier, m int, pb *PackedB, parts int) *callerShare {
	key := uintptr(unsafe.Pointer(pb))
	s := &p.shares[(key/64^uintptr(m))%uintptr(len(p.shares))]
	if s.pb != key || s.m != m || s.t != t || s.parts != parts {
		*s = callerShare{pb: key, m: m, t: t, parts: parts, frac: 1 / float64(parts)}
	}
	return s
}

// mine returns how many of chunks the caller takes as its own: at least
// one, and one at least for each worker.
func (s *callerShare) mine(chunks int) int {
	return min(max(int(s.frac*float64(chunks)+0.5), 1), chunks-(s.parts-1))
}

// record moves frac halfway to the caller's share of a job in which it
// ran ran of chunks chunks, within [1/(2 parts), 1 - (parts-1)/(2 parts)]
// (a core a third as fast as the others).
func (s *callerShare) record(ran, chunks int) {
	n := float64(s.parts)
	s.frac = min(max((s.frac+float64(ran)/float64(chunks))/2, 1/(2*n)), 1-(n-1)/(2*n))
}

// planU8 cuts an int8 GEMM on tier t for up to parts cores and returns the
// job (without its per-participant state: see grow) and how many cores it
// uses, 1 if it is not worth splitting.
func planU8(t Tier, m int, a []uint8, lda int, aZero uint8, pb *PackedB, c []int32, ldc int, parts int) (u8Job, int) {
	panels := pb.np / panelN
	ru := rowUnit(t)
	blocks := (m + ru - 1) / ru
	// Below parRowSplitM rows, along N on AMX too, though with B in L2
	// (768^2) each core could pack only its own rows of A: 128 x 768^2
	// split along M in row tiles ran at 0.81-0.87 of an ideal split of the
	// columns in halves, along N at 0.95-1.0 and more
	// (BenchmarkParallelScaling, amx, three alternating runs).
	byCols := (m < parRowSplitM && panels >= 2*parts) || panels >= blocks
	units, rb, halves := blocks, 1, false
	if byCols {
		units = panels
	}
	parts = min(parts, units)
	// Split by columns, the chunks the cores take from one another at the
	// end are made small: halves of panels, or blocks of rows of a panel.
	switch {
	case !byCols:
	case halvesPanels(t, m, pb):
		units, halves = (pb.n+panelN/2-1)/(panelN/2), true
	case cutsPanels(t, m) && blocks*panels <= maxChunks:
		rb = blocks
		units *= rb
	}
	return u8Job{t: t, m: m, a: a, lda: lda, aZero: aZero, pb: pb, c: c, ldc: ldc,
		byCols: byCols, units: units, rows: ru, rb: rb, halves: halves, chunks: min(units, maxChunks)}, parts
}

// set makes *j the job next, keeping j's per-participant state, and
// writes j only where next differs: the workers read j once they take a
// chunk, and lines the caller has not written since the last job of the
// same shape are still in their cores' caches (one write moves the line
// over, and back at the worker's first read). The job's id changes with
// every job on the tiles, whose shares pack A once per job (amxShare),
// and is otherwise left as it is. With this and await's single read of
// the worker's box, 8 x 768^2 (avx512vnni) went from pool/both 0.83-0.89
// (mean 0.861) to 0.86-0.91 (0.881), higher in 8 of 9 alternating runs
// (BenchmarkParallelScaling).
func (j *u8Job) set(next *u8Job) {
	same := j.t == next.t && j.m == next.m && sameSlice(j.a, next.a) && j.lda == next.lda &&
		j.aZero == next.aZero && j.pb == next.pb && sameSlice(j.c, next.c) && j.ldc == next.ldc &&
		j.byCols == next.byCols && j.units == next.units && j.rows == next.rows && j.rb == next.rb &&
		j.halves == next.halves && j.chunks == next.chunks && j.epi == next.epi
	if !same {
		next.views, next.amx, next.id = j.views, j.amx, j.id
		*j = *next
	}
	if j.t == AMX {
		j.id++
	}
}

// sameSlice reports whether x and y are the same slice of the same array.
func sameSlice[T any](x, y []T) bool {
	return unsafe.SliceData(x) == unsafe.SliceData(y) && len(x) == len(y)
}

// grow gives j per-participant state for parts participants.
func (j *u8Job) grow(parts int) {
	for len(j.views) < parts {
		j.views = append(j.views, newColView())
	}
	for len(j.amx) < parts {
		j.amx = append(j.amx, amxShare{})
	}
}

// sgJob is an fp32 GEMM split by columns (micro-panels of ar.nr) or, with B
// packed, by rows (micro-tiles of ar.mr).
type sgJob struct {
	ar             *sgemmArch
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
	pb             *SgemmPackedB // nil: B is b, raw
	byCols         bool
	units, chunks  int
	views          []*SgemmPackedB // one per participant
}

func (j *sgJob) run(p, i0, i1 int) {
	lo, _ := span(i0, j.chunks, j.units)
	_, hi := span(i1-1, j.chunks, j.units)
	if lo == hi {
		return
	}
	ar := j.ar
	if !j.byCols {
		r0, r1 := lo*ar.mr, min(hi*ar.mr, j.m)
		a := j.a[r0*j.lda:]
		if j.transA {
			a = j.a[r0:]
		}
		sgemmBlocked(ar, j.transA, r1-r0, j.n, j.k, j.alpha, a, j.lda, sgemmB{packed: j.pb}, j.beta, j.c[r0*j.ldc:], j.ldc)
		return
	}
	c0, c1 := lo*ar.nr, min(hi*ar.nr, j.n)
	if j.pb == nil {
		b := j.b[c0:]
		if j.transB {
			b = j.b[c0*j.ldb:]
		}
		sgemmSerial(ar, j.transA, j.transB, j.m, c1-c0, j.k, j.alpha, j.a, j.lda, b, j.ldb, j.beta, j.c[c0:], j.ldc)
		return
	}
	// The packed B holds blocks of kc rows, each [panels][kc][nr]: the
	// panels [lo, hi) of one block are contiguous, so each block is a
	// product of its own, accumulated as sgemmBlocked does (beta, then 1).
	pb, v := j.pb, j.views[p]
	npad := (j.n + pb.nr - 1) / pb.nr * pb.nr
	for pc := 0; pc < j.k; pc += pb.kc {
		kc := min(pb.kc, j.k-pc)
		v.k, v.n, v.nr, v.kc = kc, c1-c0, pb.nr, kc
		v.data = pb.data[pc*npad+lo*kc*pb.nr : pc*npad+hi*kc*pb.nr]
		a := j.a[pc:]
		if j.transA {
			a = j.a[pc*j.lda:]
		}
		beta := j.beta
		if pc > 0 {
			beta = 1
		}
		sgemmBlocked(ar, j.transA, j.m, c1-c0, kc, j.alpha, a, j.lda, sgemmB{packed: v}, beta, j.c[c0:], j.ldc)
	}
}

// sgemmPar runs sgemmSerial split along N over the pool when the product is
// large and wide enough and the pool is free, else on the caller alone.
// Arguments are checked, m, n, k > 0 and alpha != 0.
func sgemmPar(ar *sgemmArch, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	parts := parParts(float64(m) * float64(n) * float64(k))
	panels := (n + ar.nr - 1) / ar.nr
	// Only whole panels: a split along M would change which path
	// sgemmSerial takes (it depends on m), and with it the rounding.
	parts = min(parts, panels)
	if parts <= 1 {
		sgemmSerial(ar, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	ws, ok := pool.acquire(parts - 1)
	if !ok {
		sgemmSerial(ar, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	j := &pool.sg
	// One chunk per core: each chunk packs (or reads) all of A again.
	*j = sgJob{ar: ar, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: a, b: b, c: c, lda: lda, ldb: ldb, ldc: ldc,
		byCols: true, units: panels, chunks: parts, views: j.views}
	pool.runJob(ws, j, j.chunks, j.chunks/parts)
	pool.release()
}

// sgemmPackedPar is SgemmPacked's blocked product (pb packed for ar) split
// over the pool: along N when there are enough panels, else along M.
// Arguments are checked, m, n, k > 0 and alpha != 0.
func sgemmPackedPar(ar *sgemmArch, transA bool, m int, alpha float32, a []float32, lda int, pb *SgemmPackedB, beta float32, c []float32, ldc int) {
	n, k := pb.n, pb.k
	parts := parParts(float64(m) * float64(n) * float64(k))
	panels := (n + ar.nr - 1) / ar.nr
	tiles := (m + ar.mr - 1) / ar.mr
	byCols := (m < parRowSplitM && panels >= 2*parts) || panels >= tiles
	units, chunks := tiles, parts*parChunksPerPart
	if byCols {
		// One chunk per core: each chunk packs all of A again.
		units, chunks = panels, parts
	}
	parts = min(parts, units)
	if parts <= 1 {
		sgemmBlocked(ar, transA, m, n, k, alpha, a, lda, sgemmB{packed: pb}, beta, c, ldc)
		return
	}
	ws, ok := pool.acquire(parts - 1)
	if !ok {
		sgemmBlocked(ar, transA, m, n, k, alpha, a, lda, sgemmB{packed: pb}, beta, c, ldc)
		return
	}
	j := &pool.sg
	*j = sgJob{ar: ar, transA: transA, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: a, c: c, lda: lda, ldc: ldc, pb: pb,
		byCols: byCols, units: units, chunks: min(units, chunks), views: j.views}
	for len(j.views) < parts {
		j.views = append(j.views, padded[SgemmPackedB]()) // written at every chunk
	}
	pool.runJob(ws, j, j.chunks, j.chunks/parts)
	pool.release()
}
