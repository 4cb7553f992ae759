package runtime

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/kernels"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// qconvCase is one random ConvInteger or QLinearConv node with constant
// inputs (nil for an omitted optional one).
type qconvCase struct {
	n  *onnx.Node
	in []*value
}

func qconvRandBytes(r *rand.Rand, dt tensor.DType, n int) *tensor.Tensor {
	if dt == tensor.Uint8 {
		d := make([]uint8, n)
		for i := range d {
			d[i] = uint8(r.IntN(256))
		}
		return &tensor.Tensor{DType: dt, Data: d}
	}
	d := make([]int8, n)
	for i := range d {
		d[i] = int8(r.IntN(256) - 128)
	}
	return &tensor.Tensor{DType: dt, Data: d}
}

func qconvConst(t *tensor.Tensor, shape ...int) *value {
	t.Shape = int64Shape(shape)
	return constValue(t)
}

// big widens the channels past the GEMM's block sizes (64 columns, K
// padded to 8).
func randQconvCase(r *rand.Rand, quant, big bool) qconvCase {
	ints := func(v ...int64) onnx.Attr { return onnx.Attr{Type: onnx.AttrInts, Ints: v} }
	nsp := 1 + r.IntN(2)
	group := 1 + r.IntN(3)
	cg, mg := 1+r.IntN(3), 1+r.IntN(4)
	if big {
		cg, mg = 1+r.IntN(20), 1+r.IntN(140)
	}
	inC, outC := cg*group, mg*group
	batch := 1 + r.IntN(2)
	attrs := map[string]onnx.Attr{"group": {Type: onnx.AttrInt, Int: int64(group)}}
	var in, kern, strides, dil, pads []int64
	for range nsp {
		in = append(in, int64(1+r.IntN(7)))
		kern = append(kern, int64(1+r.IntN(3)))
		strides = append(strides, int64(1+r.IntN(2)))
		dil = append(dil, int64(1+r.IntN(2)))
	}
	direct := r.IntN(5) == 0 // 1x1, unit stride, no padding
	if direct {
		for i := range nsp {
			kern[i], strides[i], dil[i] = 1, 1, 1
		}
	}
	switch pad := r.IntN(5); {
	case direct:
	case pad < 2:
		for range 2 * nsp {
			pads = append(pads, int64(r.IntN(3)))
		}
		attrs["pads"] = ints(pads...)
	case pad == 2:
		attrs["auto_pad"] = onnx.Attr{Type: onnx.AttrString, String: []string{"SAME_UPPER", "SAME_LOWER", "VALID"}[r.IntN(3)]}
	}
	// Make the input big enough for the dilated kernel.
	for i := range nsp {
		in[i] = max(in[i], (kern[i]-1)*dil[i]+1)
	}
	attrs["strides"], attrs["dilations"] = ints(strides...), ints(dil...)
	if r.IntN(2) == 0 {
		attrs["kernel_shape"] = ints(kern...)
	}
	xdt := qconvTypes[r.IntN(2)]
	wdt := qconvTypes[r.IntN(2)]
	xShape := append([]int{batch, inC}, intShape(in)...)
	wShape := append([]int{outC, cg}, intShape(kern)...)
	size := func(s []int) int {
		n := 1
		for _, d := range s {
			n *= d
		}
		return n
	}
	x := qconvConst(qconvRandBytes(r, xdt, size(xShape)), xShape...)
	w := qconvConst(qconvRandBytes(r, wdt, size(wShape)), wShape...)
	var xz, wz *value
	if quant || r.IntN(4) > 0 {
		xz = qconvConst(qconvRandBytes(r, xdt, 1))
	}
	switch r.IntN(4) {
	case 0:
	case 1:
		wz = qconvConst(qconvRandBytes(r, wdt, outC), outC)
	case 2:
		wz = qconvConst(qconvRandBytes(r, wdt, 1), 1)
	default:
		// A zero point that needs no folding for s8 weights, and one
		// that needs it after the shift for u8 weights.
		z := qconvRandBytes(r, wdt, 1)
		if wdt == tensor.Int8 {
			z.Data.([]int8)[0] = 0
		} else {
			z.Data.([]uint8)[0] = 128
		}
		wz = qconvConst(z)
	}
	op := "ConvInteger"
	ins := []*value{x, w, xz, wz}
	if quant {
		op = "QLinearConv"
		f := func(n int) *tensor.Tensor {
			d := make([]float32, n)
			for i := range d {
				d[i] = 0.001 + r.Float32()*0.05
			}
			return &tensor.Tensor{DType: tensor.Float32, Data: d}
		}
		if wz == nil {
			wz = qconvConst(qconvRandBytes(r, wdt, 1))
		}
		ws := qconvConst(f(1))
		if r.IntN(2) == 0 {
			ws = qconvConst(f(outC), outC)
		}
		ydt := qconvTypes[r.IntN(2)]
		ins = []*value{x, qconvConst(f(1)), xz, w, ws, wz, qconvConst(f(1)), qconvConst(qconvRandBytes(r, ydt, 1))}
		if r.IntN(2) == 0 {
			b := make([]int32, outC)
			for i := range b {
				b[i] = r.Int32N(20001) - 10000
			}
			ins = append(ins, qconvConst(&tensor.Tensor{DType: tensor.Int32, Data: b}, outC))
		}
	}
	return qconvCase{n: &onnx.Node{Name: "qc", OpType: op, Attrs: attrs}, in: ins}
}

// runQconv runs k on the case's inputs.
func runQconv(t *testing.T, k *qconvKernel, shape []int, ins []*value) *gt.Dense {
	t.Helper()
	d := make([]*gt.Dense, len(ins))
	for i, v := range ins {
		d[i] = denseOf(v.konst)
	}
	out := gt.New(gt.Of(gtDType(k.yDT)), gt.WithShape(shape...))
	// Run twice: the second run reuses the scratch of the first.
	for range 2 {
		if err := k.run(out, d); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestQconvGemmMatchesReference compares the int8 GEMM path (constant
// weights) with the exact int32 reference loop on random geometries: 1-D
// and 2-D, groups, padding, auto_pad, strides, dilations, every dtype pair,
// per-tensor and per-channel weight zero points.
func TestQconvGemmMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2))
	for i := range 440 {
		quant := i%2 == 1
		c := randQconvCase(r, quant, i >= 400)
		b := &builder{node: c.n, faults: &faults{}}
		k, shape, ins, err := b.newQconv(c.n, c.in, quant)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if k.packed == nil {
			t.Fatalf("case %d: constant weights did not take the GEMM path", i)
		}
		ref := &qconvKernel{}
		*ref = *k
		ref.packed = nil
		got, want := runQconv(t, k, shape, ins), runQconv(t, ref, shape, ins)
		if !slices.Equal(denseBytes(got), denseBytes(want)) {
			t.Fatalf("case %d %s %v: GEMM path\n%v\nreference\n%v", i, k, c.n.Attrs, got.Data(), want.Data())
		}
	}
}

func denseBytes(d *gt.Dense) []int64 {
	var out []int64
	switch s := d.Data().(type) {
	case []int32:
		for _, v := range s {
			out = append(out, int64(v))
		}
	case []uint8:
		for _, v := range s {
			out = append(out, int64(v))
		}
	case []int8:
		for _, v := range s {
			out = append(out, int64(v))
		}
	}
	return out
}

// TestConvIntegerPadsWithZeroPoint is ONNX's convinteger_with_padding with
// constant weights, so that it runs on the GEMM: the padding must count as
// x_zero_point.
func TestConvIntegerPadsWithZeroPoint(t *testing.T) {
	x := make([]uint8, 9)
	for i := range x {
		x[i] = uint8(2 + i)
	}
	w := []uint8{1, 1, 1, 1}
	n := &onnx.Node{Name: "ci", OpType: "ConvInteger", Attrs: map[string]onnx.Attr{
		"pads": {Type: onnx.AttrInts, Ints: []int64{1, 1, 1, 1}},
	}}
	ins := []*value{
		qconvConst(&tensor.Tensor{DType: tensor.Uint8, Data: x}, 1, 1, 3, 3),
		qconvConst(&tensor.Tensor{DType: tensor.Uint8, Data: w}, 1, 1, 2, 2),
		qconvConst(&tensor.Tensor{DType: tensor.Uint8, Data: []uint8{1}}),
	}
	b := &builder{node: n, faults: &faults{}}
	out, err := buildConvInteger(b, n, ins)
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9}
	if got := out[0].konst.Data.([]int32); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestQconvModel runs ConvInteger and QLinearConv with initializer weights
// through a compiled model (the GEMM path inside a Gorgonia graph, batched)
// and checks them against the reference loop.
func TestQconvModel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	w := qconvRandBytes(r, tensor.Int8, 6*2*3*3)
	w.Shape = []int64{6, 2, 3, 3}
	scalar := func(dt tensor.DType, v any) *tensor.Tensor {
		return &tensor.Tensor{DType: dt, Shape: []int64{}, Data: v}
	}
	inits := map[string]*tensor.Tensor{
		"w":   w,
		"xz":  scalar(tensor.Uint8, []uint8{117}),
		"wz":  {DType: tensor.Int8, Shape: []int64{6}, Data: []int8{0, 3, -2, 0, 1, 0}},
		"xs":  scalar(tensor.Float32, []float32{0.02}),
		"ws":  {DType: tensor.Float32, Shape: []int64{6}, Data: []float32{0.01, 0.02, 0.015, 0.01, 0.03, 0.005}},
		"ys":  scalar(tensor.Float32, []float32{0.05}),
		"yz":  scalar(tensor.Uint8, []uint8{128}),
		"b":   {DType: tensor.Int32, Shape: []int64{6}, Data: []int32{100, -200, 0, 5000, -7, 1}},
		"wz0": scalar(tensor.Int8, []int8{0}),
	}
	attrs := map[string]onnx.Attr{
		"group":     {Type: onnx.AttrInt, Int: 2},
		"pads":      {Type: onnx.AttrInts, Ints: []int64{1, 0, 2, 1}},
		"strides":   {Type: onnx.AttrInts, Ints: []int64{1, 2}},
		"dilations": {Type: onnx.AttrInts, Ints: []int64{2, 1}},
	}
	g := &onnx.Graph{
		Opsets: map[string]int64{onnx.DomainDefault: 17},
		Inputs: []onnx.ValueInfo{{Name: "x", DType: tensor.Uint8, Shape: []int64{-1, 4, 7, 6}}},
		Outputs: []onnx.ValueInfo{
			{Name: "acc", DType: tensor.Int32, Shape: []int64{-1, 6, 6, 3}},
			{Name: "y", DType: tensor.Uint8, Shape: []int64{-1, 6, 6, 3}},
		},
		Initializers: inits,
		Nodes: []onnx.Node{
			{Name: "ci", OpType: "ConvInteger", Inputs: []string{"x", "w", "xz", "wz"}, Outputs: []string{"acc"}, Attrs: attrs},
			{Name: "qc", OpType: "QLinearConv", Inputs: []string{"x", "xs", "xz", "w", "ws", "wz0", "ys", "yz", "b"}, Outputs: []string{"y"}, Attrs: attrs},
		},
	}
	m, err := Compile(g, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	for _, batch := range []int{3, 1} {
		x := qconvRandBytes(r, tensor.Uint8, batch*4*7*6)
		x.Shape = []int64{int64(batch), 4, 7, 6}
		got, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": x}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, node := range g.Nodes {
			in := make([]*value, len(node.Inputs))
			for i, name := range node.Inputs {
				if name == "x" {
					in[i] = constValue(x)
				} else {
					in[i] = constValue(inits[name])
				}
			}
			b := &builder{node: &node, faults: &faults{}}
			k, shape, ins, err := b.newQconv(&node, in, node.OpType == "QLinearConv")
			if err != nil {
				t.Fatal(err)
			}
			k.packed = nil
			want := runQconv(t, k, shape, ins)
			out := got[node.Outputs[0]]
			if !slices.Equal(out.Shape, int64Shape(shape)) {
				t.Fatalf("batch %d: %s has shape %v, want %v", batch, node.Name, out.Shape, shape)
			}
			if !slices.Equal(denseBytes(denseOf(out)), denseBytes(want)) {
				t.Errorf("batch %d: %s = %v, want %v", batch, node.Name, out.Data, want.Data())
			}
		}
	}
}

// TestQconvPackShared checks that graphs built from the same weights share
// one packing.
func TestQconvPackShared(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	c := randQconvCase(r, false, true)
	var first []*kernels.PackedB
	for i := range 2 {
		b := &builder{node: c.n, faults: &faults{}}
		k, _, _, err := b.newQconv(c.n, c.in, false)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = k.packed
		} else if &k.packed[0] != &first[0] {
			t.Error("the second build packed the weights again")
		}
	}
}

// BenchmarkQconv times ConvInteger [1 32 28 28] * [64 32 3 3], pads 1, on
// the GEMM path and on the reference loop.
func BenchmarkQconv(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 3))
	n := &onnx.Node{Name: "ci", OpType: "ConvInteger", Attrs: map[string]onnx.Attr{
		"pads": {Type: onnx.AttrInts, Ints: []int64{1, 1, 1, 1}},
	}}
	in := []*value{
		qconvConst(qconvRandBytes(r, tensor.Uint8, 32*28*28), 1, 32, 28, 28),
		qconvConst(qconvRandBytes(r, tensor.Int8, 64*32*9), 64, 32, 3, 3),
		qconvConst(qconvRandBytes(r, tensor.Uint8, 1)),
		qconvConst(qconvRandBytes(r, tensor.Int8, 1)),
	}
	for _, gemm := range []bool{true, false} {
		name := "gemm"
		if !gemm {
			name = "ref"
		}
		b.Run(name, func(b *testing.B) {
			bld := &builder{node: n, faults: &faults{}}
			k, shape, ins, err := bld.newQconv(n, in, false)
			if err != nil {
				b.Fatal(err)
			}
			if !gemm {
				k.packed = nil
			}
			d := make([]*gt.Dense, len(ins))
			for i, v := range ins {
				d[i] = denseOf(v.konst)
			}
			out := gt.New(gt.Of(gt.Int32), gt.WithShape(shape...))
			b.ReportAllocs()
			for b.Loop() {
				if err := k.run(out, d); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(2*float64(64*32*9*28*28)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOPS")
		})
	}
}
