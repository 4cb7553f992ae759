package runtime

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// randWindow draws a 1-D, 2-D or 3-D window with small sizes, strides,
// dilations and (asymmetric) padding, whose output is not empty.
func randWindow(r *rand.Rand) window {
	for {
		var w window
		dims := 1 + r.IntN(3)
		for d := range maxSpatial {
			w.in[d], w.kernel[d], w.stride[d], w.dilation[d] = 1, 1, 1, 1
			if d < maxSpatial-dims {
				w.out[d] = 1
				continue
			}
			w.in[d] = 1 + r.IntN(9)
			w.kernel[d] = 1 + r.IntN(3)
			w.stride[d] = 1 + r.IntN(2)
			w.dilation[d] = 1 + r.IntN(2)
			w.padBegin[d], w.padEnd[d] = r.IntN(3), r.IntN(3)
			span := (w.kernel[d]-1)*w.dilation[d] + 1
			w.out[d] = (w.in[d]+w.padBegin[d]+w.padEnd[d]-span)/w.stride[d] + 1
		}
		if w.out[0] > 0 && w.out[1] > 0 && w.out[2] > 0 {
			return w
		}
	}
}

// TestIm2colTapTable checks im2col through a tap table, and im2rowPad,
// against im2colLines (the line copies) on random windows, with a pad
// value that is not zero, for float32 and uint8.
func TestIm2colTapTable(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	tables := 0
	for trial := range 400 {
		w := randWindow(r)
		var cache []int32
		taps := w.tapTable(&cache)
		if taps == nil {
			continue
		}
		tables++
		if again := w.tapTable(&cache); &again[0] != &taps[0] {
			t.Fatal("tapTable built the table again")
		}
		channels := 1 + r.IntN(3)
		ks, p := w.kernelSize(), w.outSize()
		xf := make([]float32, channels*w.inSize())
		xu := make([]uint8, len(xf))
		for i := range xf {
			xf[i], xu[i] = float32(r.NormFloat64()), uint8(1+r.IntN(255))
		}
		desc := fmt.Sprintf("trial %d, window %v in %v out %v, %d channels", trial, &w, w.in, w.out, channels)

		want := make([]float32, channels*ks*p)
		im2colLines(&w, channels, xf, want, -7)
		got := make([]float32, len(want))
		im2colPad(&w, taps, channels, xf, got, -7)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: float32 im2col through the tap table differs from the line copies", desc)
		}

		wantU := make([]uint8, channels*ks*p)
		im2colLines(&w, channels, xu, wantU, 0)
		gotU := make([]uint8, len(wantU))
		im2colPad(&w, taps, channels, xu, gotU, 0)
		if !slices.Equal(gotU, wantU) {
			t.Fatalf("%s: uint8 im2col through the tap table differs from the line copies", desc)
		}

		kk := channels * ks
		im2colLines(&w, channels, xu, wantU, 9)
		wantA := make([]uint8, p*kk)
		qconvTranspose(wantU, kk, p, wantA, nil, false, 9)
		for _, tt := range [][]int32{taps, nil} {
			a := make([]uint8, p*kk)
			im2rowPad(&w, tt, channels, xu, make([]uint8, kk*p), a, 9)
			if !slices.Equal(a, wantA) {
				t.Fatalf("%s: im2rowPad (table %t) differs from the transposed line copies", desc, tt != nil)
			}
		}
	}
	if tables < 100 {
		t.Fatalf("only %d of 400 windows had a tap table", tables)
	}
}

// TestTapTableLimits: no table for long lines or too many entries.
func TestTapTableLimits(t *testing.T) {
	long := window{in: [3]int{1, 4, 40}, out: [3]int{1, 4, 40}, kernel: [3]int{1, 1, 1}, stride: [3]int{1, 1, 1}, dilation: [3]int{1, 1, 1}}
	var cache []int32
	if long.tapTable(&cache) != nil {
		t.Error("a table for lines of 40")
	}
	big := window{in: [3]int{1, 200, 16}, out: [3]int{1, 200, 16}, kernel: [3]int{1, 5, 5}, stride: [3]int{1, 1, 1}, dilation: [3]int{1, 1, 1}, padBegin: [3]int{0, 2, 2}}
	if big.tapTable(&cache) != nil {
		t.Error("a table of 80,000 entries")
	}
}
