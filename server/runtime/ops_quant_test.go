package runtime

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

func quantU8s(shape []int64, v ...uint8) *tensor.Tensor {
	return &tensor.Tensor{DType: tensor.Uint8, Shape: scalarIfNil(shape), Data: v}
}

func quantI32s(shape []int64, v ...int32) *tensor.Tensor {
	return &tensor.Tensor{DType: tensor.Int32, Shape: scalarIfNil(shape), Data: v}
}

func quantSame(got, want *tensor.Tensor) error {
	if got == nil {
		return errors.New("missing output")
	}
	if got.DType != want.DType || !reflect.DeepEqual(got.Shape, want.Shape) || !reflect.DeepEqual(got.Data, want.Data) {
		return fmt.Errorf("got %v%v %v, want %v%v %v", got.DType, got.Shape, got.Data, want.DType, want.Shape, want.Data)
	}
	return nil
}

func TestQuantOps(t *testing.T) {
	inf := float32(math.Inf(1))
	ties := []float32{0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, -3.5}
	for _, tc := range []struct {
		name string
		c    opCase
		want *tensor.Tensor
	}{
		{"QuantizeLinear uint8 ties to even (per-tensor fast path)",
			opCase{opset: 13, op: "QuantizeLinear", in: []*tensor.Tensor{f32s([]int64{8}, ties...), f32s(nil, 1), quantU8s(nil, 128)}, outDTs: dts(tensor.Uint8)},
			quantU8s([]int64{8}, 128, 130, 130, 128, 126, 126, 132, 124)},
		{"QuantizeLinear int8 ties to even",
			opCase{opset: 13, op: "QuantizeLinear", in: []*tensor.Tensor{f32s([]int64{8}, ties...), f32s(nil, 1), i8s(nil, 0)}, outDTs: dts(tensor.Int8)},
			i8s([]int64{8}, 0, 2, 2, 0, -2, -2, 4, -4)},
		{"QuantizeLinear ties after division by the scale",
			opCase{opset: 10, op: "QuantizeLinear", in: []*tensor.Tensor{f32s([]int64{4}, 1, 3, 5, -3), f32s(nil, 2), i8s(nil, 1)}, outDTs: dts(tensor.Int8)},
			i8s([]int64{4}, 1, 3, 3, -1)},
		{"QuantizeLinear without zero point is uint8",
			opCase{opset: 10, op: "QuantizeLinear", in: []*tensor.Tensor{f32s([]int64{3}, -1, 0.4, 2.6), f32s(nil, 1)}, outDTs: dts(tensor.Uint8)},
			quantU8s([]int64{3}, 0, 0, 3)},
		{"QuantizeLinear uint8 saturates",
			opCase{opset: 13, op: "QuantizeLinear", in: []*tensor.Tensor{f32s([]int64{6}, 1000, -1000, 250, -20, inf, -inf), f32s(nil, 1), quantU8s(nil, 10)}, outDTs: dts(tensor.Uint8)},
			quantU8s([]int64{6}, 255, 0, 255, 0, 255, 0)},
		{"QuantizeLinear int8 saturates",
			opCase{opset: 13, op: "QuantizeLinear", in: []*tensor.Tensor{f32s([]int64{6}, 1000, -1000, 130, -125, inf, -inf), f32s(nil, 1), i8s(nil, -5)}, outDTs: dts(tensor.Int8)},
			i8s([]int64{6}, 127, -128, 125, -128, 127, -128)},
		{"QuantizeLinear int8 from int32 input",
			opCase{opset: 13, op: "QuantizeLinear", in: []*tensor.Tensor{quantI32s([]int64{3}, 3, -7, 1000), f32s(nil, 2), i8s(nil, 0)}, outDTs: dts(tensor.Int8)},
			i8s([]int64{3}, 2, -4, 127)},
		{"QuantizeLinear per-axis (axis 1, the default)",
			opCase{opset: 13, op: "QuantizeLinear", in: []*tensor.Tensor{
				f32s([]int64{2, 3}, 1, 2, 4, -1, -2, 6), f32s([]int64{3}, 1, 2, 4), quantU8s([]int64{3}, 0, 10, 20)}, outDTs: dts(tensor.Uint8)},
			quantU8s([]int64{2, 3}, 1, 11, 21, 0, 9, 22)},
		{"QuantizeLinear per-axis negative axis 0",
			opCase{opset: 13, op: "QuantizeLinear", attrs: map[string]onnx.Attr{"axis": aInt(-2)}, in: []*tensor.Tensor{
				f32s([]int64{2, 3}, 1, 2, 3, 1, 2, 3), f32s([]int64{2}, 1, 0.5), i8s([]int64{2}, 0, -1)}, outDTs: dts(tensor.Int8)},
			i8s([]int64{2, 3}, 1, 2, 3, 1, 3, 5)},
		{"QuantizeLinear blocked",
			opCase{opset: 21, op: "QuantizeLinear", attrs: map[string]onnx.Attr{"axis": aInt(1), "block_size": aInt(2)}, in: []*tensor.Tensor{
				f32s([]int64{2, 3}, 2, 4, 6, 2, 4, 6), f32s([]int64{2, 2}, 1, 2, 2, 1), i8s([]int64{2, 2}, 0, 0, 0, 1)}, outDTs: dts(tensor.Int8)},
			i8s([]int64{2, 3}, 2, 4, 3, 1, 2, 7)},
		{"QuantizeLinear output_dtype int8",
			opCase{opset: 21, op: "QuantizeLinear", attrs: map[string]onnx.Attr{"output_dtype": aInt(3)}, in: []*tensor.Tensor{f32s([]int64{2}, -3, 3), f32s(nil, 1)}, outDTs: dts(tensor.Int8)},
			i8s([]int64{2}, -3, 3)},
		{"DequantizeLinear uint8",
			opCase{opset: 10, op: "DequantizeLinear", in: []*tensor.Tensor{quantU8s([]int64{3}, 0, 128, 255), f32s(nil, 0.5), quantU8s(nil, 128)}, outDTs: dts(tensor.Float32)},
			f32s([]int64{3}, -64, 0, 63.5)},
		{"DequantizeLinear int8 per-axis",
			opCase{opset: 13, op: "DequantizeLinear", attrs: map[string]onnx.Attr{"axis": aInt(0)}, in: []*tensor.Tensor{
				i8s([]int64{2, 2}, -128, 127, -128, 127), f32s([]int64{2}, 1, 2), i8s([]int64{2}, 0, -1)}, outDTs: dts(tensor.Float32)},
			f32s([]int64{2, 2}, -128, 127, -254, 256)},
		{"DequantizeLinear int32 without zero point",
			opCase{opset: 13, op: "DequantizeLinear", in: []*tensor.Tensor{quantI32s([]int64{2}, -4, 6), f32s(nil, 0.25)}, outDTs: dts(tensor.Float32)},
			f32s([]int64{2}, -1, 1.5)},
		{"MatMulInteger int8 x uint8 with per-row A and per-column B zero points",
			opCase{opset: 10, op: "MatMulInteger", in: []*tensor.Tensor{
				i8s([]int64{2, 2}, -128, 127, 1, 2), quantU8s([]int64{2, 2}, 255, 0, 1, 2), i8s([]int64{2}, 0, 1), quantU8s([]int64{2}, 0, 1)}, outDTs: dts(tensor.Int32)},
			quantI32s([]int64{2, 2}, -128*255+127*1, -128*-1+127*1, 0*255+1*1, 0*-1+1*1)},
		{"MatMulInteger with B's zero points per matrix of a stack",
			opCase{opset: 10, op: "MatMulInteger", in: []*tensor.Tensor{
				i8s([]int64{2, 1, 2}, 1, 2, 3, 4), quantU8s([]int64{2, 2, 1}, 1, 2, 3, 4), nil, quantU8s([]int64{2, 1, 1}, 1, 2)}, outDTs: dts(tensor.Int32)},
			quantI32s([]int64{2, 1, 1}, 2, 11)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.c.run()
			if err != nil {
				t.Fatal(err)
			}
			if err := quantSame(got[0], tc.want); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestQuantOpsRefuse(t *testing.T) {
	x, s := f32s([]int64{2, 2}, 1, 2, 3, 4), f32s(nil, 1)
	for _, tc := range []struct {
		name string
		c    opCase
		want error
	}{
		{"axis before opset 13", opCase{opset: 10, op: "QuantizeLinear", attrs: map[string]onnx.Attr{"axis": aInt(0)}, in: []*tensor.Tensor{x, s}, outDTs: dts(tensor.Uint8)}, onnx.ErrInvalidModel},
		{"saturate before opset 19", opCase{opset: 13, op: "QuantizeLinear", attrs: map[string]onnx.Attr{"saturate": aInt(1)}, in: []*tensor.Tensor{x, s}, outDTs: dts(tensor.Uint8)}, onnx.ErrInvalidModel},
		{"block_size before opset 21", opCase{opset: 19, op: "DequantizeLinear", attrs: map[string]onnx.Attr{"block_size": aInt(2)}, in: []*tensor.Tensor{quantU8s([]int64{2}, 1, 2), s}, outDTs: dts(tensor.Float32)}, onnx.ErrInvalidModel},
		{"output_dtype int16", opCase{opset: 21, op: "QuantizeLinear", attrs: map[string]onnx.Attr{"output_dtype": aInt(5)}, in: []*tensor.Tensor{x, s}, outDTs: dts(tensor.Uint8)}, onnx.ErrUnsupported},
		{"precision float16", opCase{opset: 23, op: "QuantizeLinear", attrs: map[string]onnx.Attr{"precision": aInt(10)}, in: []*tensor.Tensor{x, s}, outDTs: dts(tensor.Uint8)}, onnx.ErrUnsupported},
		{"per-axis scale of the wrong length", opCase{opset: 13, op: "QuantizeLinear", in: []*tensor.Tensor{x, f32s([]int64{3}, 1, 1, 1)}, outDTs: dts(tensor.Uint8)}, onnx.ErrInvalidModel},
		{"zero point dtype differs from output_dtype", opCase{opset: 21, op: "QuantizeLinear", attrs: map[string]onnx.Attr{"output_dtype": aInt(2)}, in: []*tensor.Tensor{x, s, i8s(nil, 0)}, outDTs: dts(tensor.Int8)}, onnx.ErrInvalidModel},
		{"MatMulInteger float", opCase{opset: 10, op: "MatMulInteger", in: []*tensor.Tensor{x, x}, outDTs: dts(tensor.Int32)}, onnx.ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.run()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// naiveIMM is Σ_p (a[i][p]-za[i]) * (b[p][j]-zb[j]) for 2-D b, over every
// row of a.
func naiveIMM(a []uint8, b []int8, rows, k, n int, za, zb func(i int) int32) []int32 {
	out := make([]int32, rows*n)
	for i := 0; i < rows; i++ {
		for j := 0; j < n; j++ {
			var s int32
			for p := 0; p < k; p++ {
				s += (int32(a[i*k+p]) - za(i)) * (int32(b[p*n+j]) - zb(j))
			}
			out[i*n+j] = s
		}
	}
	return out
}

// TestMatMulIntegerPacked checks the packed-GEMM path (uint8 A, constant
// int8 B) against a naive loop and against the reference kernel (B as a
// graph input), for every zero point layout.
func TestMatMulIntegerPacked(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const batch, m, k, n = 2, 3, 37, 70
	a := make([]uint8, batch*m*k)
	for i := range a {
		a[i] = uint8(rng.IntN(256))
	}
	a[0], a[1] = 255, 0
	bw := make([]int8, k*n)
	for i := range bw {
		bw[i] = int8(rng.IntN(256) - 128)
	}
	bw[0], bw[1] = -128, 127
	zaRow := []uint8{3, 255, 0}
	zbCol := make([]int8, n)
	for j := range zbCol {
		zbCol[j] = int8(rng.IntN(256) - 128)
	}
	at := func(v []uint8) func(int) int32 { return func(i int) int32 { return int32(v[i%len(v)]) } }
	bt := func(v []int8) func(int) int32 { return func(j int) int32 { return int32(v[j%len(v)]) } }
	zero := func(int) int32 { return 0 }
	for _, tc := range []struct {
		name   string
		za, zb *tensor.Tensor
		fa, fb func(int) int32
	}{
		{"no zero points", nil, nil, zero, zero},
		{"scalar zero points", quantU8s(nil, 131), i8s([]int64{1}, -7), at([]uint8{131}), bt([]int8{-7})},
		{"per-row A, per-column B", quantU8s([]int64{m}, zaRow...), i8s([]int64{n}, zbCol...), at(zaRow), bt(zbCol)},
		{"per-row A per matrix [B M 1]", quantU8s([]int64{batch, m, 1}, 1, 2, 3, 200, 0, 255), i8s([]int64{n}, zbCol...), at([]uint8{1, 2, 3, 200, 0, 255}), bt(zbCol)},
		{"per-row A as [M 1], B as [1 N]", quantU8s([]int64{m, 1}, zaRow...), i8s([]int64{1, n}, zbCol...), at(zaRow), bt(zbCol)},
	} {
		want := naiveIMM(a, bw, batch*m, k, n, tc.fa, tc.fb)
		for _, konst := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/constB=%t", tc.name, konst), func(t *testing.T) {
				c := opCase{opset: 10, op: "MatMulInteger", in: []*tensor.Tensor{
					quantU8s([]int64{batch, m, k}, a...), i8s([]int64{k, n}, bw...), tc.za, tc.zb}, outDTs: dts(tensor.Int32)}
				if tc.za == nil && tc.zb == nil {
					c.in = c.in[:2]
				} else if tc.zb == nil {
					c.in = c.in[:3]
				}
				if konst {
					c.konst = []int{1}
				}
				got, err := c.run()
				if err != nil {
					t.Fatal(err)
				}
				if err := quantSame(got[0], quantI32s([]int64{batch, m, n}, want...)); err != nil {
					t.Fatal(err)
				}
			})
		}
	}

	// The constant B does take the packed path.
	bld := &builder{node: &onnx.Node{Name: "t", OpType: "MatMulInteger"}}
	av := &value{dt: tensor.Uint8, shape: []int{batch, m, k}}
	bv := constValue(i8s([]int64{k, n}, bw...))
	mm, _, err := bld.newQmm(av, bv, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if mm.packed == nil || mm.mRows != batch*m {
		t.Fatalf("packed = %v, mRows = %d: want the packed path over %d rows", mm.packed != nil, mm.mRows, batch*m)
	}
}

// TestQLinearMatMulPacked checks requantization (ties to even, saturation)
// on the packed path and the reference one.
func TestQLinearMatMulPacked(t *testing.T) {
	// a - za = [1 3; 5 -1], b = identity * 1: acc = a - za; y = acc * 0.5
	// -> 0.5, 1.5, 2.5, -0.5 -> ties to even 0, 2, 2, -0 ; + y_zero 100.
	a := quantU8s([]int64{2, 2}, 11, 13, 15, 9)
	bm := i8s([]int64{2, 2}, 1, 0, 0, 1)
	for _, konst := range []bool{true, false} {
		c := opCase{opset: 21, op: "QLinearMatMul", in: []*tensor.Tensor{
			a, f32s(nil, 1), quantU8s(nil, 10),
			bm, f32s(nil, 1), i8s(nil, 0),
			f32s(nil, 2), quantU8s(nil, 100)}, outDTs: dts(tensor.Uint8)}
		if konst {
			c.konst = []int{3}
		}
		got, err := c.run()
		if err != nil {
			t.Fatal(err)
		}
		if err := quantSame(got[0], quantU8s([]int64{2, 2}, 100, 102, 102, 100)); err != nil {
			t.Errorf("constB=%t: %v", konst, err)
		}
		// Saturation: y_zero 254 and a large y_scale inverse.
		c.in[6], c.in[7] = f32s(nil, 0.01), quantU8s(nil, 254)
		got, err = c.run()
		if err != nil {
			t.Fatal(err)
		}
		if err := quantSame(got[0], quantU8s([]int64{2, 2}, 255, 255, 255, 154)); err != nil {
			t.Errorf("saturation, constB=%t: %v", konst, err)
		}
	}
}

func quantRandTensor(r *rand.Rand, dt tensor.DType, shape ...int64) *tensor.Tensor {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	if dt == tensor.Int8 {
		v := make([]int8, n)
		for i := range v {
			v[i] = int8(r.IntN(256) - 128)
		}
		if n > 1 {
			v[0], v[1] = -128, 127
		}
		return i8s(shape, v...)
	}
	v := make([]uint8, n)
	for i := range v {
		v[i] = uint8(r.IntN(256))
	}
	if n > 1 {
		v[0], v[1] = 255, 0
	}
	return quantU8s(shape, v...)
}

// TestQuantMatMulPackedMatchesReference runs MatMulInteger and
// QLinearMatMul on every operand dtype pair and zero point layout with B a
// constant (the packed GEMM, shifting int8 A and uint8 B) and B computed
// (the reference loop): the results must be identical.
func TestQuantMatMulPackedMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, adt := range quantTypes {
		for _, bdt := range quantTypes {
			for _, shape := range []struct{ a []int64 }{{[]int64{5, 19}}, {[]int64{2, 3, 19}}, {[]int64{19}}} {
				const k, n = 19, 67
				m := int64(1)
				if len(shape.a) > 1 {
					m = shape.a[len(shape.a)-2]
				}
				a := quantRandTensor(r, adt, shape.a...)
				bm := quantRandTensor(r, bdt, k, n)
				for zi, zps := range [][2]*tensor.Tensor{
					{nil, nil},
					{quantRandTensor(r, adt), quantRandTensor(r, bdt, 1)},
					{quantRandTensor(r, adt, m), quantRandTensor(r, bdt, n)},
				} {
					name := fmt.Sprintf("%v x %v/%v/zp%d", adt, bdt, shape.a, zi)
					run := func(c opCase) [2]*tensor.Tensor {
						var got [2]*tensor.Tensor
						for i, konst := range []bool{true, false} {
							c.konst = nil
							if konst {
								c.konst = []int{slices.Index(c.in, bm)}
							}
							out, err := c.run()
							if err != nil {
								t.Fatalf("%s: %v", name, err)
							}
							got[i] = out[0]
						}
						return got
					}
					in := []*tensor.Tensor{a, bm, zps[0], zps[1]}
					if zps[0] == nil {
						in = in[:2]
					}
					got := run(opCase{opset: 10, op: "MatMulInteger", in: in, outDTs: dts(tensor.Int32)})
					if err := quantSame(got[0], got[1]); err != nil {
						t.Errorf("%s: MatMulInteger packed vs reference: %v", name, err)
					}
					if zps[0] == nil {
						continue
					}
					got = run(opCase{opset: 21, op: "QLinearMatMul", in: []*tensor.Tensor{
						a, f32s(nil, 0.02), zps[0], bm, f32s([]int64{n}, slices.Repeat([]float32{0.01, 0.03}, n)[:n]...), zps[1],
						f32s(nil, 0.5), quantU8s(nil, 120)}, outDTs: dts(tensor.Uint8)})
					if err := quantSame(got[0], got[1]); err != nil {
						t.Errorf("%s: QLinearMatMul packed vs reference: %v", name, err)
					}
				}
			}
		}
	}
}

func TestQuantKernelsDoNotAllocate(t *testing.T) {
	if raceEnabled {
		// The int8 GEMM keeps scratch in a sync.Pool, which the race
		// detector empties at random; make test runs this test again
		// without -race (target test-allocs).
		t.Skip("allocation counts are meaningless under -race")
	}
	dense := func(dt gt.Dtype, shape ...int) *gt.Dense { return gt.New(gt.Of(dt), gt.WithShape(shape...)) }
	x := dense(gt.Float32, 4, 3)
	perAxis := qlayout{axisLayout: layoutAround([]int{4, 3}, 1), bs: 1, si: 1}
	scales := gt.New(gt.WithShape(3), gt.WithBacking([]float32{0.5, 1, 2}))
	bld := &builder{node: &onnx.Node{Name: "t", OpType: "MatMulInteger"}}
	av := &value{dt: tensor.Int8, shape: []int{4, 16}}
	bc := constValue(quantU8s([]int64{16, 8}, make([]uint8, 16*8)...))
	bv := &value{dt: tensor.Uint8, shape: []int{16, 8}}
	zs := constValue(i8s(nil, 3))
	zbv := constValue(quantU8s([]int64{8}, make([]uint8, 8)...))
	packed, _, err := bld.newQmm(av, bc, zs, zbv)
	if err != nil {
		t.Fatal(err)
	}
	ref, _, err := bld.newQmm(av, bv, zs, zbv)
	if err != nil {
		t.Fatal(err)
	}
	a, bd := dense(gt.Int8, 4, 16), dense(gt.Uint8, 16, 8)
	za, zb := gt.New(gt.WithShape(), gt.WithBacking([]int8{3})), dense(gt.Uint8, 8)
	one := func(v float32) *gt.Dense { return gt.New(gt.WithShape(), gt.WithBacking([]float32{v})) }
	for _, kk := range []struct {
		name string
		k    kernel
		out  *gt.Dense
		ins  []*gt.Dense
	}{
		{"quantize int8 per-axis", &quantizeKernel{l: perAxis, zbuf: make([]int32, 3)}, dense(gt.Int8, 4, 3), []*gt.Dense{x, scales, dense(gt.Int8, 3)}},
		{"quantize uint8 per-tensor", &quantizeKernel{l: qlayout{axisLayout: axisLayout{1, 1, 12}, bs: 1}, zbuf: make([]int32, 1)}, dense(gt.Uint8, 4, 3), []*gt.Dense{x, one(1), dense(gt.Uint8)}},
		{"dequantize int8 per-axis", &dequantizeKernel{l: perAxis, zbuf: make([]int32, 3)}, dense(gt.Float32, 4, 3), []*gt.Dense{dense(gt.Int8, 4, 3), scales, dense(gt.Int8, 3)}},
		{"dynamic scale", dynParamKernel{}, dense(gt.Float32), []*gt.Dense{x}},
		{"matmulinteger packed", &matmulIntegerKernel{mm: packed, ia: 2, ib: 3}, dense(gt.Int32, 4, 8), []*gt.Dense{a, bd, za, zb}},
		{"matmulinteger reference", &matmulIntegerKernel{mm: ref, ia: 2, ib: 3}, dense(gt.Int32, 4, 8), []*gt.Dense{a, bd, za, zb}},
		{"qlinearmatmul", &qlinearMatMulKernel{mm: packed, acc: make([]int32, 32), yz: make([]int32, 4)}, dense(gt.Uint8, 4, 8),
			[]*gt.Dense{a, one(1), za, bd, one(1), zb, one(1), dense(gt.Uint8)}},
	} {
		allocs := testing.AllocsPerRun(20, func() {
			if err := kk.k.run(kk.out, kk.ins); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per run, want 0", kk.name, allocs)
		}
	}
}
