//go:build amd64 && !purego

package kernels

import "unsafe"

// The AMX tier's int8 GEMM: TDPBUSD on 16x64-byte tiles, computing 32 rows x
// 32 columns (2 x 2 accumulator tiles) at a time, or 16 x 64 (1 x 4) when
// M <= 16, over the packed B panels as they are, their [K/4][64][4] layout
// being exactly the B operand TDPBUSD wants (16 k-quads x 16 columns x 4
// bytes, row stride 256).

const (
	// amxMinM and amxMinK are the smallest M and K the tiles compute; below
	// them the AVX512VNNI kernels do (a tile is 16 rows of 64 k-values).
	// Measured on 768² (one core, best of many): M = 2 ties, M = 3 is 1.2x
	// faster on tiles, M = 4 1.35x, M = 8 2x; M = 1 is the GEMV's.
	amxMinM = 3
	amxMinK = 64
	// amxChunkBytes is how much packed A a row chunk holds: it stays in L2
	// (2 MiB per core on Sapphire/Emerald Rapids) while the chunk sweeps
	// every B panel. Larger chunks stream B from L3 fewer times; measured
	// best between 512 and 1024 KiB on 1024³ and 512 x 3072².
	amxChunkBytes = 768 << 10
	// When K <= 64 amxPairKChunks (32 KiB of A per pair of row tiles) and
	// N <= 64 amxPairPanels (B up to 1 MiB, in L2), each pair of tiles
	// meets every panel before the next pair (A staying in L1); otherwise
	// every panel meets all pairs before the next panel (A from L2, B
	// prefetched into L2 a panel ahead). Measured alternating both orders,
	// one core (BenchmarkAMXOrder), the pair order was 1.2x faster on
	// 40 x 768², 1.05-1.08x on 128 x 768², 1.0-1.2x on 1024³, and
	// 0.9-1.0x with N = 3072 (K 768 or 1024) whatever the N blocking; with
	// K = 3072, blocking K (C reloaded per block) was 0.8x.
	amxPairKChunks = 16
	amxPairPanels  = 16
)

// amxPairOrder off makes every shape take the panel order (BenchmarkAMXOrder).
var amxPairOrder = true

// amxCfgs[r] is LDTILECFG's 64-byte operand for row tiles of r <= 16 rows:
// palette 1; accumulators t0-t3 and A tiles t4, t5 r rows of 64 bytes, B
// tiles t6, t7 16 rows of 64 bytes (colsb at byte 16+2i, rows at byte 48+i).
var amxCfgs = func() (cs [17][64]byte) {
	for r := range cs {
		c := &cs[r]
		c[0] = 1
		for t := range 8 {
			c[16+2*t] = 64
			c[48+t] = byte(r)
			if t >= 6 {
				c[48+t] = 16
			}
		}
	}
	return cs
}()

// amxRowCfgs[r] is amxRow's: accumulators t0-t3 and the A tile t4 r rows,
// B tiles t5-t7 16 rows, all 64 bytes wide.
var amxRowCfgs = func() (cs [17][64]byte) {
	for r := range cs {
		cs[r] = amxCfgs[r]
		cs[r][48+5] = 16
	}
	return cs
}()

// amxPackTile copies 16 rows of A (stride lda) x 64*nk bytes at src into nk
// tiles of 16 rows x 64 bytes at dst, 1 KiB apart.
//
//go:noescape
func amxPackTile(dst *uint8, src *uint8, lda int, nk int)

// amxPanels sets C = bias + A·B for panels 64-column panels of B, over A
// packed as 16-row tiles: tile t, of C rows min(16t, mlast) .. +16 (mlast =
// max(m-16, 0), so the last tile overlaps the one before rather than run
// past row m), is nk+tail chunks of 16 rows x 64 k-values at
// ap + t*tstride, 1 KiB each, row stride 64; cfg is amxCfgs[16]. Tiles go
// two at a time, (t0, t1) = (min(2i, tlast2), min(t0+1, tlast)) with
// tlast = tiles-1 and tlast2 = tiles-2 >= 0: a pair never runs past the last
// tile (with an odd count the last pair overlaps the one before). A lone
// tile is amxRow's.
// Chunk q < nk meets k-quads 16q .. 16q+15 of the panel; the tail chunk
// (tail = 1) the 16 quads btail bytes into it. Panel p starts at
// b + p*pstride; C[i][p*64+j] is at c + i*ldc + p*64 + j (int32 elements),
// bias[p*64+j] likewise. While panel p computes, it prefetches the first
// pfl bytes of panel p+1 into L2 (pfl = 0: none). It loads cfg and releases
// the tiles before it returns, so no tile state lives across Go code.
//
//go:noescape
func amxPanels(ap *uint8, tstride int, tlast2 int, tlast int, mlast int, b *int8, pstride int, nk int, tail int, btail int, panels int, c *int32, ldc int, bias *int32, cfg *byte, pfl int)

// amxRow is amxPanels for one row tile of m <= 16 rows (cfg amxRowCfgs[m]):
// each k step meets the panel's 64 columns at once (4 accumulator tiles, B
// through t5-t7), so B streams through contiguous 4 KiB steps. Against
// amxPanels' two 32-column halves (one core, M = 4-16): no slower with B
// in L2 (768²), up to 1.1x with B from L3 (3072²). Software prefetch of the
// next step into L1, or 2-4 steps ahead into L2, measured no faster.
//
//go:noescape
func amxRow(ap *uint8, b *int8, pstride int, nk int, tail int, btail int, panels int, c *int32, ldc int, bias *int32, cfg *byte)

// amxTiles reports whether gemmAMX runs a GEMM of m rows over pb on the
// tiles (else on the VNNI kernels).
func amxTiles(m int, pb *PackedB) bool { return m >= amxMinM && pb.k >= amxMinK }

func gemmAMX(m int, a []uint8, lda int, aZero uint8, pb *PackedB, c []int32, ldc int) {
	if !amxTiles(m, pb) {
		gemmVNNI(m, a, lda, aZero, pb, c, ldc)
		return
	}
	gemmTiles(m, a, lda, aZero, pb, c, ldc)
}

// gemmTiles is gemmAMX on the tiles for any m >= 1 and K >= 64.
func gemmTiles(m int, a []uint8, lda int, aZero uint8, pb *PackedB, c []int32, ldc int) {
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	bias := s.zeroPointBias(aZero, pb)
	mc := amxRowChunk(pb)
	for ic := 0; ic < m; ic += mc {
		ch := s.amxPack(a, lda, m, ic, mc, pb)
		ch.panels(s, pb, bias, c, ldc)
	}
}

// amxRowChunk is how many rows of A gemmTiles packs at a time: as many as
// amxChunkBytes holds, a multiple of 32 (a pair of row tiles).
func amxRowChunk(pb *PackedB) int {
	return max(32, amxChunkBytes/(amxKChunks(pb.k)*1024)*16/32*32)
}

// amxKChunks is how many 64-byte chunks of K a packed row tile holds: K/64
// and, when 64 does not divide K, a tail chunk.
func amxKChunks(k int) int { return (k + 63) / 64 }

// amxRows is a chunk of rows of A packed by amxPack: rows [i0, i0+rows) in
// tiles row tiles of 16 (the last overlapping the one before when 16 does
// not divide rows), each nk chunks and a tail one when tail is 1.
type amxRows struct {
	ap                    []uint8
	i0, rows, tiles       int
	nk, tail, ws, tstride int
}

// amxPack packs rows [ic, min(ic+mc, m)) of A, or, when fewer than 16 are
// left, the last min(16, m) rows (overlapping the chunk before).
func (s *scratch) amxPack(a []uint8, lda, m, ic, mc int, pb *PackedB) amxRows {
	k, kp := pb.k, pb.kp
	nk := k / 64
	// The K tail (k % 64 values) is one more chunk, zero but for
	// A[i][64nk:k], placed to meet the panel's last 16 k-quads: those start
	// at ws = kp-64 >= 0, and ws <= 64nk since kp <= 64nk+64. (A tile from
	// quad 16nk would read past the panel.)
	tail, ws := 0, kp-64
	if nk*64 < k {
		tail = 1
	}
	i0 := max(min(ic, m-16), 0)
	rows := min(ic+mc, m) - i0
	tiles := (rows + 15) / 16
	return amxRows{
		ap: s.amxPackA(a[i0*lda:], lda, rows, tiles, k, nk, tail, ws),
		i0: i0, rows: rows, tiles: tiles,
		nk: nk, tail: tail, ws: ws, tstride: (nk + tail) * 1024,
	}
}

// panels sets rows [r.i0, r.i0+r.rows) of C (row stride ldc) to
// bias + A·B over every column of pb (a PackedB or a view of one), bias
// holding pb's columns; s.tile holds the last panel's when 64 does not
// divide pb.n.
func (r *amxRows) panels(s *scratch, pb *PackedB, bias []int32, c []int32, ldc int) {
	n, nk, tail, ws, tstride, tiles, rows := pb.n, r.nk, r.tail, r.ws, r.tstride, r.tiles, r.rows
	pstride := pb.kp * panelN
	full := n / panelN
	ap := r.ap
	tlast2, tlast, mlast := max(tiles-2, 0), tiles-1, max(rows-16, 0)
	cfg := &amxCfgs[min(rows, 16)][0]
	run := func(b *int8, np int, c *int32, ldc int, bias *int32) {
		if tiles == 1 {
			amxRow(&ap[0], b, pstride, nk, tail, ws*64, np, c, ldc, bias, &amxRowCfgs[min(rows, 16)][0])
			return
		}
		if nk+tail > amxPairKChunks || np > amxPairPanels || !amxPairOrder {
			amxPanels(&ap[0], tstride, tlast2, tlast, mlast, b, pstride, nk, tail, ws*64, np, c, ldc, bias, cfg, pstride)
			return
		}
		// Each pair of tiles meets every panel before the next pair
		// starts. With an odd count, tile tiles-3 goes alone through
		// amxRow, so that the last pair holds the overlap of the last tile
		// with the one before (stored twice, with equal values).
		lone := -1
		if tiles%2 == 1 {
			lone = tiles - 3
		}
		for t := 0; t < tiles; {
			if t == lone {
				amxRow(&ap[t*tstride], b, pstride, nk, tail, ws*64, np, (*int32)(unsafe.Add(unsafe.Pointer(c), 4*16*t*ldc)), ldc, bias, &amxRowCfgs[16][0])
				t++
				continue
			}
			pfl := 0 // the first pair streams B, prefetching; the rest find it in L2
			if t == 0 {
				pfl = pstride
			}
			r0 := min(16*t, mlast)
			amxPanels(&ap[t*tstride], tstride, 0, 1, min(16*t+16, mlast)-r0, b, pstride, nk, tail, ws*64, np, (*int32)(unsafe.Add(unsafe.Pointer(c), 4*r0*ldc)), ldc, bias, cfg, pfl)
			t += 2
		}
	}
	i0 := r.i0
	if full > 0 {
		run(&pb.data[0], full, &c[i0*ldc], ldc, &bias[0])
	}
	if cols := n - full*panelN; cols > 0 {
		j0 := full * panelN
		s.tile = grow(s.tile, rows*panelN)
		run(&pb.data[full*pstride], 1, &s.tile[0], panelN, &bias[j0])
		for r := range rows {
			copy(c[(i0+r)*ldc+j0:][:cols], s.tile[r*panelN:])
		}
	}
}

// amxPackA copies the rows of A into tiles of 16 rows x 64 bytes, as
// amxPanels reads them: tile t holds rows min(16t, rows-16) .. +16 (all the
// rows, in tile 0, when rows < 16), chunk q < nk of it bytes [64q, 64q+64)
// of each row, then, when tail is 1, a chunk zero but for bytes [64nk, k) at
// offset 64nk-ws. Contiguous 1 KiB tiles load without the cache-set
// conflicts of rows a power of two apart.
func (s *scratch) amxPackA(a []uint8, lda, rows, tiles, k, nk, tail, ws int) []uint8 {
	nc := nk + tail
	s.apack = grow(s.apack, tiles*nc*1024)
	ap := s.apack
	for t := range tiles {
		r0 := max(min(16*t, rows-16), 0)
		n := min(rows, 16)
		dst := ap[t*nc*1024:][:nc*1024]
		if n == 16 {
			_ = a[(r0+15)*lda+k-1] // the rows amxPackTile reads
			amxPackTile(&dst[0], &a[r0*lda], lda, nk)
		} else {
			for r := range n {
				src := a[(r0+r)*lda:][:k]
				for q := range nk {
					*(*[64]uint8)(dst[q*1024+r*64:]) = *(*[64]uint8)(src[q*64:])
				}
			}
		}
		if tail == 1 {
			for r := range n {
				d := dst[nk*1024+r*64:][:64]
				clear(d)
				copy(d[nk*64-ws:], a[(r0+r)*lda+nk*64:(r0+r)*lda+k])
			}
		}
	}
	return ap
}
