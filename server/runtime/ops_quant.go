package runtime

import (
	"fmt"
	"math"
	"slices"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/kernels"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// Quantization operators: QuantizeLinear, DequantizeLinear (the QDQ
// format), DynamicQuantizeLinear, MatMulInteger and QLinearMatMul, as
// ONNX Runtime's quantization tools write them. Rounding is half to even,
// and results saturate to the target range. Integer products are exact in
// int32 (wrapping like ONNX Runtime's beyond it); uint8 x int8-constant
// products run on the kernels package's packed int8 GEMM.

func init() {
	registerBuilders(onnx.DomainDefault, map[string]buildFunc{
		"QuantizeLinear":        buildQuantizeLinear,
		"DequantizeLinear":      buildDequantizeLinear,
		"DynamicQuantizeLinear": buildDynamicQuantizeLinear,
		"MatMulInteger":         buildMatMulInteger,
		"QLinearMatMul":         buildQLinearMatMul,
	})
}

var quantTypes = []tensor.DType{tensor.Uint8, tensor.Int8}

// checkQuantSince refuses an operator the model's opset does not define yet.
func (b *builder) checkQuantSince(op string, since int64) error {
	if b.opset < since {
		return b.errInvalid("%s is defined from opset %d; the model imports opset %d", op, since, b.opset)
	}
	return nil
}

// ---- scale layout -----------------------------------------------------------

// qlayout maps each element of x, viewed as [outer, n, inner] around the
// quantization axis, to the index of its scale and zero point:
//
//	o*so + (i/bs)*si + j*sj
//
// which covers per-tensor (all strides 0), per-axis (si = 1) and blocked
// (scale shaped like x with ceil(n/bs) along the axis) quantization.
type qlayout struct {
	axisLayout
	bs, so, si, sj int
	desc           string
}

// quantLayout checks the scale (and zero point) against x and the axis and
// block_size attributes.
func (b *builder) quantLayout(n *onnx.Node, x, scale, zp *value) (qlayout, error) {
	if err := b.checkAttrOpsets("axis", 13, 0); err != nil {
		return qlayout{}, err
	}
	if err := b.checkAttrOpsets("block_size", 21, 0); err != nil {
		return qlayout{}, err
	}
	if zp != nil && !slices.Equal(zp.shape, scale.shape) {
		return qlayout{}, b.errInvalid("zero point shape %v differs from scale shape %v", zp.shape, scale.shape)
	}
	total := prod(x.shape)
	bs := n.Int("block_size", 0)
	if bs < 0 {
		return qlayout{}, b.errInvalid("block_size %d is negative", bs)
	}
	if bs == 0 && prod(scale.shape) == 1 && len(scale.shape) <= 1 {
		return qlayout{axisLayout: axisLayout{outer: 1, n: 1, inner: total}, bs: 1, desc: "per-tensor"}, nil
	}
	if len(x.shape) == 0 {
		return qlayout{}, b.errInvalid("scale shape %v for a scalar input", scale.shape)
	}
	axis, err := b.normAxis(n.Int("axis", 1), len(x.shape), false)
	if err != nil {
		return qlayout{}, err
	}
	l := layoutAround(x.shape, axis)
	if bs == 0 {
		if len(scale.shape) != 1 || scale.shape[0] != x.shape[axis] {
			return qlayout{}, b.errInvalid("scale shape %v: want a scalar or [%d] (axis %d of %v)", scale.shape, x.shape[axis], axis, x.shape)
		}
		return qlayout{axisLayout: l, bs: 1, si: 1, desc: fmt.Sprintf("axis=%d", axis)}, nil
	}
	if bs > math.MaxInt32 {
		return qlayout{}, b.errInvalid("block_size %d is too large", bs)
	}
	nb := (l.n + int(bs) - 1) / int(bs)
	want := slices.Clone(x.shape)
	want[axis] = nb
	if !slices.Equal(scale.shape, want) {
		return qlayout{}, b.errInvalid("scale shape %v: want %v for block_size %d along axis %d of %v", scale.shape, want, bs, axis, x.shape)
	}
	return qlayout{axisLayout: l, bs: int(bs), so: nb * l.inner, si: l.inner, sj: 1,
		desc: fmt.Sprintf("axis=%d, block_size=%d", axis, bs)}, nil
}

func (l *qlayout) perTensor() bool { return l.so == 0 && l.si == 0 && l.sj == 0 }

// quantZeroPoints reads a uint8 or int8 zero point tensor as int32; nil for none.
func quantZeroPoints(d *gt.Dense, buf []int32) []int32 {
	if d == nil {
		return nil
	}
	switch d.Dtype() {
	case gt.Uint8:
		for i, v := range d.Uint8s()[:len(buf)] {
			buf[i] = int32(v)
		}
	case gt.Int8:
		for i, v := range d.Int8s()[:len(buf)] {
			buf[i] = int32(v)
		}
	case gt.Int32:
		copy(buf, d.Int32s())
	}
	return buf
}

// quantRound is round-half-to-even of v (x/scale) plus zero, saturated
// to [lo, hi]. v is clamped to ±512 first, beyond which every 8-bit target
// saturates whatever the zero point; NaN goes to the low end (as the
// kernels package's QuantizeU8 does).
func quantRound(v float64, zero, lo, hi int32) int32 {
	if !(v >= -512) {
		v = -512
	}
	v = min(v, 512)
	return min(max(int32(math.RoundToEven(v))+zero, lo), hi)
}

// ---- QuantizeLinear ---------------------------------------------------------

// quantizeKernel: ins are x, scale and optionally the zero point.
type quantizeKernel struct {
	l    qlayout
	f64  bool    // divide in float64 (precision = DOUBLE)
	zbuf []int32 // zero points, read at each run
	desc string
}

func (k *quantizeKernel) String() string { return k.desc }

func (k *quantizeKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	scales := ins[1].Float32s()
	var zd *gt.Dense
	if len(ins) > 2 {
		zd = ins[2]
	}
	zps := quantZeroPoints(zd, k.zbuf)
	x := ins[0]
	if out.Dtype() == gt.Uint8 && x.Dtype() == gt.Float32 && k.l.perTensor() && !k.f64 {
		var z uint8
		if zps != nil {
			z = uint8(zps[0])
		}
		if s := scales[0]; s > 0 && !math.IsInf(float64(s), 0) {
			return kernels.QuantizeU8(out.Uint8s(), x.Float32s(), s, z)
		}
	}
	switch {
	case out.Dtype() == gt.Uint8 && x.Dtype() == gt.Float32:
		quantizeTo(&k.l, out.Uint8s(), x.Float32s(), scales, zps, k.f64)
	case out.Dtype() == gt.Uint8 && x.Dtype() == gt.Int32:
		quantizeTo(&k.l, out.Uint8s(), x.Int32s(), scales, zps, k.f64)
	case out.Dtype() == gt.Int8 && x.Dtype() == gt.Float32:
		quantizeTo(&k.l, out.Int8s(), x.Float32s(), scales, zps, k.f64)
	case out.Dtype() == gt.Int8 && x.Dtype() == gt.Int32:
		quantizeTo(&k.l, out.Int8s(), x.Int32s(), scales, zps, k.f64)
	default:
		return fmt.Errorf("quantizing %v to %v not supported", x.Dtype(), out.Dtype())
	}
	return nil
}

// quantizeTo is the reference QuantizeLinear over any layout: x/scale
// (float32 division unless f64, the int32 input converted to float32 first)
// rounded half to even, plus the zero point, saturated.
func quantizeTo[O int8 | uint8, X float32 | int32](l *qlayout, o []O, x []X, scales []float32, zps []int32, f64 bool) {
	lo, hi := int32(0), int32(math.MaxUint8)
	if ^O(0) < 0 { // signed
		lo, hi = math.MinInt8, math.MaxInt8
	}
	e := 0
	for oi := 0; oi < l.outer; oi++ {
		for i := 0; i < l.n; i++ {
			base := oi*l.so + (i/l.bs)*l.si
			for j := 0; j < l.inner; j++ {
				si := base + j*l.sj
				var z int32
				if zps != nil {
					z = zps[si]
				}
				xv := float32(x[e])
				var v float64
				if f64 {
					v = float64(xv) / float64(scales[si])
				} else {
					v = float64(xv / scales[si])
				}
				o[e] = O(quantRound(v, z, lo, hi))
				e++
			}
		}
	}
}

// quantOutDType is the output dtype of QuantizeLinear: the zero point's,
// else output_dtype (opset 21), else uint8.
func (b *builder) quantOutDType(n *onnx.Node, zp *value) (tensor.DType, error) {
	if err := b.checkAttrOpsets("output_dtype", 21, 0); err != nil {
		return tensor.Invalid, err
	}
	out := tensor.Uint8
	if n.Has("output_dtype") && n.Int("output_dtype", 0) != 0 {
		dt, err := onnx.DTypeFromProto(n.Int("output_dtype", 0))
		if err != nil {
			return tensor.Invalid, fmt.Errorf("%s: attribute \"output_dtype\": %w", n.Describe(), err)
		}
		if zp != nil && zp.dt != dt {
			return tensor.Invalid, b.errInvalid("output_dtype %v differs from the zero point's dtype %v", dt, zp.dt)
		}
		out = dt
	}
	if zp != nil {
		out = zp.dt
	}
	if !slices.Contains(quantTypes, out) {
		return tensor.Invalid, b.errUnsupported("quantizing to %v (supported: uint8, int8)", out)
	}
	return out, nil
}

func buildQuantizeLinear(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	if err := b.checkQuantSince("QuantizeLinear", 10); err != nil {
		return nil, err
	}
	x, scale, zp := in[0], in[1], optional(in, 2)
	if err := b.checkAttrOpsets("saturate", 19, 0); err != nil {
		return nil, err
	}
	if err := b.checkAttrOpsets("precision", 23, 0); err != nil {
		return nil, err
	}
	if err := b.checkDType(x, "input x", []tensor.DType{tensor.Float32, tensor.Int32}); err != nil {
		return nil, err
	}
	if err := b.checkDType(scale, "y_scale", []tensor.DType{tensor.Float32}); err != nil {
		return nil, err
	}
	out, err := b.quantOutDType(n, zp)
	if err != nil {
		return nil, err
	}
	f64 := false
	switch p := n.Int("precision", 0); p {
	case 0, 1: // y_scale's type, FLOAT
	case 11: // DOUBLE
		f64 = true
	default:
		return nil, b.errUnsupported("precision %d (supported: FLOAT, DOUBLE)", p)
	}
	l, err := b.quantLayout(n, x, scale, zp)
	if err != nil {
		return nil, err
	}
	k := &quantizeKernel{l: l, f64: f64, zbuf: make([]int32, prod(scale.shape)),
		desc: fmt.Sprintf("QuantizeLinear(%s, to=%v, f64=%t)", l.desc, out, f64)}
	ins := []*value{x, scale}
	if zp != nil {
		ins = append(ins, zp)
	}
	return one(b.apply(k, out, x.shape, ins...))
}

// ---- DequantizeLinear -------------------------------------------------------

type dequantizeKernel struct {
	l    qlayout
	zbuf []int32
	desc string
}

func (k *dequantizeKernel) String() string { return k.desc }

func (k *dequantizeKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	scales := ins[1].Float32s()
	var zd *gt.Dense
	if len(ins) > 2 {
		zd = ins[2]
	}
	zps := quantZeroPoints(zd, k.zbuf)
	x := ins[0]
	if x.Dtype() == gt.Uint8 && out.Dtype() == gt.Float32 && k.l.perTensor() {
		var z uint8
		if zps != nil {
			z = uint8(zps[0])
		}
		return kernels.DequantizeU8(out.Float32s(), x.Uint8s(), scales[0], z)
	}
	switch {
	case out.Dtype() == gt.Float32 && x.Dtype() == gt.Uint8:
		dequantizeFrom(&k.l, out.Float32s(), x.Uint8s(), scales, zps)
	case out.Dtype() == gt.Float32 && x.Dtype() == gt.Int8:
		dequantizeFrom(&k.l, out.Float32s(), x.Int8s(), scales, zps)
	case out.Dtype() == gt.Float32 && x.Dtype() == gt.Int32:
		dequantizeFrom(&k.l, out.Float32s(), x.Int32s(), scales, zps)
	case out.Dtype() == gt.Float64 && x.Dtype() == gt.Uint8:
		dequantizeFrom(&k.l, out.Float64s(), x.Uint8s(), scales, zps)
	case out.Dtype() == gt.Float64 && x.Dtype() == gt.Int8:
		dequantizeFrom(&k.l, out.Float64s(), x.Int8s(), scales, zps)
	case out.Dtype() == gt.Float64 && x.Dtype() == gt.Int32:
		dequantizeFrom(&k.l, out.Float64s(), x.Int32s(), scales, zps)
	default:
		return fmt.Errorf("dequantizing %v to %v not supported", x.Dtype(), out.Dtype())
	}
	return nil
}

// dequantizeFrom is the reference DequantizeLinear over any layout:
// (float32(x) - float32(zero)) * scale in float32, as ONNX's reference
// computes it (exact before the product for 8-bit inputs), then widened to
// O.
func dequantizeFrom[O float32 | float64, X int8 | uint8 | int32](l *qlayout, o []O, x []X, scales []float32, zps []int32) {
	e := 0
	for oi := 0; oi < l.outer; oi++ {
		for i := 0; i < l.n; i++ {
			base := oi*l.so + (i/l.bs)*l.si
			for j := 0; j < l.inner; j++ {
				si := base + j*l.sj
				v := float32(x[e])
				if zps != nil {
					v -= float32(zps[si])
				}
				o[e] = O(v * scales[si])
				e++
			}
		}
	}
}

func buildDequantizeLinear(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	if err := b.checkQuantSince("DequantizeLinear", 10); err != nil {
		return nil, err
	}
	x, scale, zp := in[0], in[1], optional(in, 2)
	if err := b.checkDType(x, "input x", []tensor.DType{tensor.Uint8, tensor.Int8, tensor.Int32}); err != nil {
		return nil, err
	}
	if err := b.checkDType(scale, "x_scale", []tensor.DType{tensor.Float32}); err != nil {
		return nil, err
	}
	if zp != nil && zp.dt != x.dt {
		return nil, b.errInvalid("zero point dtype %v differs from the input's %v", zp.dt, x.dt)
	}
	if err := b.checkAttrOpsets("output_dtype", 23, 0); err != nil {
		return nil, err
	}
	out := tensor.Float32
	if od := n.Int("output_dtype", 0); od != 0 {
		dt, err := onnx.DTypeFromProto(od)
		if err != nil {
			return nil, fmt.Errorf("%s: attribute \"output_dtype\": %w", n.Describe(), err)
		}
		if dt != tensor.Float32 && dt != tensor.Float64 {
			return nil, b.errUnsupported("output_dtype %v (supported: float32, float64)", dt)
		}
		out = dt
	}
	l, err := b.quantLayout(n, x, scale, zp)
	if err != nil {
		return nil, err
	}
	k := &dequantizeKernel{l: l, zbuf: make([]int32, prod(scale.shape)),
		desc: fmt.Sprintf("DequantizeLinear(%s, to=%v)", l.desc, out)}
	ins := []*value{x, scale}
	if zp != nil {
		ins = append(ins, zp)
	}
	return one(b.apply(k, out, x.shape, ins...))
}

// ---- DynamicQuantizeLinear --------------------------------------------------

// dynParamKernel computes DynamicQuantizeLinear's scale (a float32
// scalar) or zero point (a uint8 scalar) from x's range.
type dynParamKernel struct{ zero bool }

func (k dynParamKernel) String() string {
	if k.zero {
		return "DynamicQuantizeLinear(zero point)"
	}
	return "DynamicQuantizeLinear(scale)"
}

func (k dynParamKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	s, z := kernels.QuantParamsU8(kernels.MinMax(ins[0].Float32s()))
	if k.zero {
		out.Uint8s()[0] = z
	} else {
		out.Float32s()[0] = s
	}
	return nil
}

func buildDynamicQuantizeLinear(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	if err := b.checkQuantSince("DynamicQuantizeLinear", 11); err != nil {
		return nil, err
	}
	x := in[0]
	if err := b.checkDType(x, "input x", []tensor.DType{tensor.Float32}); err != nil {
		return nil, err
	}
	scale, err := b.apply(dynParamKernel{}, tensor.Float32, []int{}, x)
	if err != nil {
		return nil, err
	}
	zp, err := b.apply(dynParamKernel{zero: true}, tensor.Uint8, []int{}, x)
	if err != nil {
		return nil, err
	}
	l := qlayout{axisLayout: axisLayout{outer: 1, n: 1, inner: prod(x.shape)}, bs: 1, desc: "per-tensor"}
	k := &quantizeKernel{l: l, zbuf: make([]int32, 1), desc: "QuantizeLinear(per-tensor, to=uint8, f64=false)"}
	y, err := b.apply(k, tensor.Uint8, x.shape, x, scale, zp)
	if err != nil {
		return nil, err
	}
	return []*value{y, scale, zp}, nil
}

// ---- MatMulInteger and QLinearMatMul ----------------------------------------

// Zero point layouts of an integer matmul operand.
const (
	qmmZpNone    = iota
	qmmZpScalar  // one for the whole tensor
	qmmZpVector  // per row of A ([M]) or per column of B ([N]), shared by every matrix
	qmmZpBatched // per row/column of each matrix: A's shape with K -> 1, B's with K -> 1
)

// qmm computes numpy-matmul products of uint8/int8 matrices, with
// their zero points subtracted, exactly into int32 accumulators.
type qmm struct {
	*matmulKernel
	zaMode, zbMode int
	// packed is the constant int8 B packed for the kernels' GEMM, when A
	// is uint8 and B is a 2-D int8 constant; nil otherwise.
	packed *kernels.PackedB
	mRows  int     // rows of A in all (the GEMM's M on the packed path)
	za, zb []int32 // zero points of the matrix being computed
	// On the packed path an int8 A is shifted to uint8 (A+128, into aBuf)
	// and a uint8 B to int8 (B-128), their zero points likewise: the
	// differences A-za and B-zb, so the products, are unchanged.
	aShift bool
	aBuf   []uint8
	bShift int32
}

func qmmZpMode(zp *value, rowsOrCols int, opShape []int, kAxis int) (int, bool) {
	if zp == nil {
		return qmmZpNone, true
	}
	c := prod(zp.shape)
	if c == 1 && len(zp.shape) <= 1 {
		return qmmZpScalar, true
	}
	if len(zp.shape) == 1 && zp.shape[0] == rowsOrCols {
		return qmmZpVector, true
	}
	if r := len(zp.shape); len(opShape) >= 2 && r >= 2 && prod(zp.shape[:r-2]) == 1 {
		// [..., M, 1] for A, [..., 1, N] for B, with no batch dimensions.
		want := slices.Clone(opShape[len(opShape)-2:])
		want[2+kAxis] = 1
		if slices.Equal(zp.shape[r-2:], want) {
			return qmmZpVector, true
		}
	}
	if len(opShape) >= 2 && len(zp.shape) == len(opShape) {
		want := slices.Clone(opShape)
		want[len(want)+kAxis] = 1
		if slices.Equal(want, zp.shape) {
			if len(opShape) == 2 {
				return qmmZpVector, true
			}
			return qmmZpBatched, true
		}
	}
	if c == 1 {
		return qmmZpScalar, true
	}
	return 0, false
}

// newQmm plans A x B with optional zero points. When A is uint8 and B a
// 2-D int8 constant, B is packed here, once, for the kernels' GEMM.
func (b *builder) newQmm(a, bv, za, zb *value) (*qmm, []int, error) {
	if len(a.shape) == 0 || len(bv.shape) == 0 {
		return nil, nil, b.errInvalid("operands %v and %v: need rank >= 1", a.shape, bv.shape)
	}
	mk, out, err := matmulPlan(a.shape, bv.shape)
	if err != nil {
		return nil, nil, b.errInvalid("%v", err)
	}
	if za != nil && za.dt != a.dt {
		return nil, nil, b.errInvalid("A's zero point dtype %v differs from A's %v", za.dt, a.dt)
	}
	if zb != nil && zb.dt != bv.dt {
		return nil, nil, b.errInvalid("B's zero point dtype %v differs from B's %v", zb.dt, bv.dt)
	}
	k := &qmm{matmulKernel: mk, za: make([]int32, mk.m), zb: make([]int32, mk.n)}
	var ok bool
	if k.zaMode, ok = qmmZpMode(za, mk.m, a.shape, -1); !ok {
		return nil, nil, b.errInvalid("A's zero point shape %v: want a scalar, [%d] or A's shape %v with K as 1", za.shape, mk.m, a.shape)
	}
	if k.zbMode, ok = qmmZpMode(zb, mk.n, bv.shape, -2); !ok {
		return nil, nil, b.errInvalid("B's zero point shape %v: want a scalar, [%d] or B's shape %v with K as 1", zb.shape, mk.n, bv.shape)
	}
	if bv.konst != nil && len(bv.shape) == 2 && k.zbMode != qmmZpBatched {
		w, ok := bv.konst.Data.([]int8)
		if !ok { // uint8
			u := bv.konst.Data.([]uint8)
			w = make([]int8, len(u))
			for i, v := range u {
				w[i] = int8(int32(v) - 128)
			}
			k.bShift = 128
		}
		pb, err := kernels.PackBChecked(w, mk.k, mk.n)
		if err != nil {
			return nil, nil, b.errInvalid("%v", err)
		}
		k.packed = pb
		k.mRows = prod(a.shape[:len(a.shape)-1])
		k.za = make([]int32, max(k.mRows, mk.m))
		if a.dt == tensor.Int8 {
			k.aShift = true
			k.aBuf = make([]uint8, k.mRows*mk.k)
		}
	}
	return k, out, nil
}

func (k *qmm) desc() string {
	return fmt.Sprintf("%dx%dx%d, zp=%d/%d, packed=%t, shift=%t/%d", k.m, k.k, k.n, k.zaMode, k.zbMode, k.packed != nil, k.aShift, k.bShift)
}

// qmmLoadZP fills dst with the zero points of matrix bi (mode qmmZpBatched reads
// at off, the others from the start).
func qmmLoadZP(dst []int32, d *gt.Dense, mode, off int) {
	switch mode {
	case qmmZpNone:
		clear(dst)
	case qmmZpScalar:
		v := quantZeroPoints(d, dst[:1])[0]
		for i := range dst {
			dst[i] = v
		}
	case qmmZpVector:
		quantZeroPoints(d, dst)
	case qmmZpBatched:
		switch d.Dtype() {
		case gt.Uint8:
			for i, v := range d.Uint8s()[off : off+len(dst)] {
				dst[i] = int32(v)
			}
		case gt.Int8:
			for i, v := range d.Int8s()[off : off+len(dst)] {
				dst[i] = int32(v)
			}
		}
	}
}

// compute writes A x B into acc (the output's shape, int32).
func (k *qmm) compute(acc []int32, a, bd, za, zb *gt.Dense) error {
	if k.packed != nil {
		au := k.aBuf
		if k.aShift {
			for i, v := range a.Int8s()[:len(au)] {
				au[i] = uint8(int32(v) + 128)
			}
		} else {
			au = a.Uint8s()
		}
		return k.computePacked(acc, au, za, zb)
	}
	mn := k.m * k.n
	for bi := range k.aOff {
		o := acc[bi*mn : (bi+1)*mn]
		ab, bb := 0, 0
		if k.m*k.k > 0 {
			ab = k.aOff[bi] / (k.m * k.k)
		}
		if k.k*k.n > 0 {
			bb = k.bOff[bi] / (k.k * k.n)
		}
		qmmLoadZP(k.za, za, k.zaMode, ab*k.m)
		qmmLoadZP(k.zb, zb, k.zbMode, bb*k.n)
		switch {
		case a.Dtype() == gt.Uint8 && bd.Dtype() == gt.Uint8:
			qmmRef(k, o, a.Uint8s()[k.aOff[bi]:], bd.Uint8s()[k.bOff[bi]:])
		case a.Dtype() == gt.Uint8 && bd.Dtype() == gt.Int8:
			qmmRef(k, o, a.Uint8s()[k.aOff[bi]:], bd.Int8s()[k.bOff[bi]:])
		case a.Dtype() == gt.Int8 && bd.Dtype() == gt.Uint8:
			qmmRef(k, o, a.Int8s()[k.aOff[bi]:], bd.Uint8s()[k.bOff[bi]:])
		case a.Dtype() == gt.Int8 && bd.Dtype() == gt.Int8:
			qmmRef(k, o, a.Int8s()[k.aOff[bi]:], bd.Int8s()[k.bOff[bi]:])
		default:
			return fmt.Errorf("dtypes %v x %v not supported", a.Dtype(), bd.Dtype())
		}
	}
	return nil
}

// qmmRef is the exact reference: o[i][j] = Σ_p (a[i][p]-za[i]) * (b[p][j]-zb[j]).
func qmmRef[A, B int8 | uint8](k *qmm, o []int32, a []A, b []B) {
	clear(o)
	for i := 0; i < k.m; i++ {
		row := o[i*k.n : (i+1)*k.n]
		zi := k.za[i]
		for p := 0; p < k.k; p++ {
			v := int32(a[i*k.k+p]) - zi
			if v == 0 {
				continue
			}
			brow := b[p*k.n : (p+1)*k.n]
			for j := range row {
				row[j] += v * (int32(brow[j]) - k.zb[j])
			}
		}
	}
}

// computePacked runs every row of A through one GEMM against the packed
// constant B. A (shifted to uint8 when it is int8) has a zero point per row
// (za[r], shifted likewise); a uniform one is folded by the GEMM, others by
// subtracting za[r]*colSum[j]. B's zero points (shifted when B was uint8)
// are folded by subtracting zb[j]*Σ_p(a[r][p]-za[r]).
func (k *qmm) computePacked(acc []int32, a []uint8, za, zb *gt.Dense) error {
	m, n, kk := k.mRows, k.n, k.k
	zr := k.za[:m]
	uniform := true
	switch k.zaMode {
	case qmmZpScalar:
		v := quantZeroPoints(za, k.za[:1])[0]
		for r := range zr {
			zr[r] = v
		}
	case qmmZpVector:
		quantZeroPoints(za, k.za[:k.m])
		for r := k.m; r < m; r++ {
			zr[r] = zr[r%k.m]
		}
		uniform = false
	case qmmZpBatched:
		quantZeroPoints(za, zr)
		uniform = false
	default:
		clear(zr)
	}
	if k.aShift {
		for r := range zr {
			zr[r] += 128
		}
	}
	var aZero uint8
	if uniform && m > 0 {
		aZero = uint8(zr[0])
	}
	if err := kernels.GemmU8S8Checked(m, a, kk, aZero, k.packed, acc, n); err != nil {
		return err
	}
	if !uniform {
		cs := k.packed.ColSums()
		for r, z := range zr {
			if z == 0 {
				continue
			}
			row := acc[r*n : (r+1)*n]
			for j := range row {
				row[j] -= z * cs[j]
			}
		}
	}
	qmmLoadZP(k.zb, zb, k.zbMode, 0)
	if k.bShift != 0 {
		for j := range k.zb {
			k.zb[j] -= k.bShift
		}
	}
	if !slices.ContainsFunc(k.zb, func(v int32) bool { return v != 0 }) {
		return nil
	}
	for r := 0; r < m; r++ {
		var s int32
		for _, v := range a[r*kk : (r+1)*kk] {
			s += int32(v)
		}
		s -= int32(kk) * zr[r]
		row := acc[r*n : (r+1)*n]
		for j := range row {
			row[j] -= k.zb[j] * s
		}
	}
	return nil
}

// matmulIntegerKernel: ins are A, B and, when present, A's then B's zero
// points (ia and ib give their positions, -1 when absent).
type matmulIntegerKernel struct {
	mm     *qmm
	ia, ib int
}

func (k *matmulIntegerKernel) String() string { return "MatMulInteger(" + k.mm.desc() + ")" }

func (k *matmulIntegerKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	return k.mm.compute(out.Int32s(), ins[0], ins[1], qmmInput(ins, k.ia), qmmInput(ins, k.ib))
}

func qmmInput(ins []*gt.Dense, i int) *gt.Dense {
	if i < 0 {
		return nil
	}
	return ins[i]
}

func buildMatMulInteger(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	if err := b.checkQuantSince("MatMulInteger", 10); err != nil {
		return nil, err
	}
	a, bv, za, zb := in[0], in[1], optional(in, 2), optional(in, 3)
	if err := b.checkDType(a, "A", quantTypes); err != nil {
		return nil, err
	}
	if err := b.checkDType(bv, "B", quantTypes); err != nil {
		return nil, err
	}
	mm, out, err := b.newQmm(a, bv, za, zb)
	if err != nil {
		return nil, err
	}
	k := &matmulIntegerKernel{mm: mm, ia: -1, ib: -1}
	ins := []*value{a, bv}
	if za != nil {
		k.ia = len(ins)
		ins = append(ins, za)
	}
	if zb != nil {
		k.ib = len(ins)
		ins = append(ins, zb)
	}
	return one(b.apply(k, tensor.Int32, out, ins...))
}

// qlinearMatMulKernel: ins are QLinearMatMul's eight inputs in order.
// y = saturate(RoundToEven(acc * (a_scale*b_scale/y_scale)) + y_zero),
// the multiplier computed in float32 and the product in float64, as
// ONNX's reference does.
type qlinearMatMulKernel struct {
	mm                 *qmm
	saPerRow, sbPerCol bool
	syPerRow, yzPerRow bool
	acc                []int32
	yz                 []int32
}

func (k *qlinearMatMulKernel) String() string {
	return fmt.Sprintf("QLinearMatMul(%s, scales=%t/%t/%t)", k.mm.desc(), k.saPerRow, k.sbPerCol, k.syPerRow)
}

func (k *qlinearMatMulKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	if err := k.mm.compute(k.acc, ins[0], ins[3], ins[2], ins[5]); err != nil {
		return err
	}
	sa, sb, sy := ins[1].Float32s(), ins[4].Float32s(), ins[6].Float32s()
	m := k.mm.m
	yz := ins[7]
	if k.yzPerRow {
		quantZeroPoints(yz, k.yz[:m])
	} else {
		v := quantZeroPoints(yz, k.yz[:1])[0]
		for i := range k.yz {
			k.yz[i] = v
		}
	}
	switch out.Dtype() {
	case gt.Uint8:
		qmmRequant(k, out.Uint8s(), sa, sb, sy, 0, math.MaxUint8)
	case gt.Int8:
		qmmRequant(k, out.Int8s(), sa, sb, sy, math.MinInt8, math.MaxInt8)
	default:
		return fmt.Errorf("output dtype %v not supported", out.Dtype())
	}
	return nil
}

func qmmScale(s []float32, per bool, i int) float32 {
	if per {
		return s[i]
	}
	return s[0]
}

func qmmRequant[O int8 | uint8](k *qlinearMatMulKernel, o []O, sa, sb, sy []float32, lo, hi int32) {
	m, n := k.mm.m, k.mm.n
	e := 0
	for e < len(k.acc) {
		for i := 0; i < m; i++ {
			ai, yi := qmmScale(sa, k.saPerRow, i), qmmScale(sy, k.syPerRow, i)
			z := k.yz[i]
			for j := 0; j < n; j++ {
				mult := ai * qmmScale(sb, k.sbPerCol, j) / yi
				o[e] = O(quantRound(float64(k.acc[e])*float64(mult), z, lo, hi))
				e++
			}
		}
	}
}

func buildQLinearMatMul(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	if err := b.checkQuantSince("QLinearMatMul", 10); err != nil {
		return nil, err
	}
	a, sa, za, bv, sb, zb, sy, zy := in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7]
	for _, c := range []struct {
		v    *value
		name string
		dts  []tensor.DType
	}{
		{a, "a", quantTypes}, {bv, "b", quantTypes}, {zy, "y_zero_point", quantTypes},
		{sa, "a_scale", []tensor.DType{tensor.Float32}}, {sb, "b_scale", []tensor.DType{tensor.Float32}},
		{sy, "y_scale", []tensor.DType{tensor.Float32}},
	} {
		if c.v == nil {
			return nil, b.errInvalid("input %s is required", c.name)
		}
		if err := b.checkDType(c.v, c.name, c.dts); err != nil {
			return nil, err
		}
	}
	if za == nil || zb == nil {
		return nil, b.errInvalid("inputs a_zero_point and b_zero_point are required")
	}
	mm, out, err := b.newQmm(a, bv, za, zb)
	if err != nil {
		return nil, err
	}
	if mm.zaMode == qmmZpBatched || mm.zbMode == qmmZpBatched {
		return nil, b.errUnsupported("zero points per matrix of a stack (supported: scalar, per row of a, per column of b)")
	}
	perVec := func(v *value, name string, size int) (bool, error) {
		switch {
		case prod(v.shape) == 1 && len(v.shape) <= 1:
			return false, nil
		case len(v.shape) == 1 && v.shape[0] == size:
			return true, nil
		}
		return false, b.errInvalid("%s shape %v: want a scalar or [%d]", name, v.shape, size)
	}
	k := &qlinearMatMulKernel{mm: mm, acc: make([]int32, prod(out)), yz: make([]int32, mm.m)}
	if k.saPerRow, err = perVec(sa, "a_scale", mm.m); err != nil {
		return nil, err
	}
	if k.sbPerCol, err = perVec(sb, "b_scale", mm.n); err != nil {
		return nil, err
	}
	if k.syPerRow, err = perVec(sy, "y_scale", mm.m); err != nil {
		return nil, err
	}
	if !slices.Equal(zy.shape, sy.shape) {
		return nil, b.errInvalid("y_zero_point shape %v differs from y_scale shape %v", zy.shape, sy.shape)
	}
	k.yzPerRow = k.syPerRow
	return one(b.apply(k, zy.dt, out, a, sa, za, bv, sb, zb, sy, zy))
}
