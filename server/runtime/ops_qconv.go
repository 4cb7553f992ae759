package runtime

import (
	"fmt"
	"math"
	goruntime "runtime"
	"slices"
	"sync"
	"weak"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/kernels"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// ConvInteger and QLinearConv, the convolutions of models quantized by ONNX
// Runtime's tools. Both share Conv's attributes and geometry (ops_conv.go)
// and compute the same exact int32 accumulators
//
//	acc[n, m, o] = Σ_{c, k} (x[n, c, o*s + k*d - pad] - x_zp) * (w[m, c, k] - w_zp[m])
//
// where padding contributes nothing (it reads as x_zp). ConvInteger returns
// acc; QLinearConv adds its int32 bias, scales by x_scale * w_scale[m] /
// y_scale, rounds half to even, adds y_zp and saturates.
//
// When the weights are a constant, acc runs on the int8 GEMM of package
// kernels (u8 x s8 -> s32): per image and group, im2col of the input (padded
// with x_zp) transposed to [output positions, C/group * kernel], times the
// group's weights packed once at build as [C/group * kernel, M/group]. The
// GEMM wants u8 activations and s8 weights; the other dtypes are shifted by
// 128, which changes no product once the zero points are shifted with them:
// an s8 input becomes u8 x+128 with zero point x_zp+128, and u8 weights
// become s8 w-128 with zero point w_zp-128. A weight zero point that is not
// 0 after the shift is folded out with the sums of the GEMM's rows:
//
//	Σ_k (a - za)(w - zw) = Σ_k (a - za) w - zw Σ_k (a - za)
//
// Weights computed at run time take an exact int32 reference loop.

func init() {
	registerBuilders(onnx.DomainDefault, map[string]buildFunc{
		"ConvInteger": buildConvInteger,
		"QLinearConv": buildQLinearConv,
	})
}

var qconvTypes = []tensor.DType{tensor.Uint8, tensor.Int8}

// qconvKernel is ConvInteger (quant false) and QLinearConv. Its inputs, in
// order, are those whose index field is >= 0.
type qconvKernel struct {
	w                       window
	batch, inC, outC, group int
	xDT, wDT, yDT           tensor.DType
	quant                   bool

	// Indices into run's ins; -1 for an input the node omits.
	ix, ixz, iw, iwz, ixs, iws, iys, iyz, ib int

	// The GEMM path, nil for the reference loop: the weights of each group
	// as B [C/group * kernel][M/group], s8 (shifted by wShift when W is u8).
	packed []*kernels.PackedB
	wShift int32
	direct bool // 1x1 kernel, unit stride, no padding: X is its own im2col

	// Scratch, reused from run to run.
	xu     []uint8   // one image's input shifted to u8 (s8 inputs)
	col    []uint8   // im2col [K][P]
	a      []uint8   // its transpose [P][K], the GEMM's A
	rowSum []int32   // Σ_k (a[p][k] - za), len P
	c      []int32   // GEMM output [P][M/group]
	acc    []int32   // one image's accumulators (QLinearConv)
	wz     []int32   // the weight zero point per output channel
	mult   []float32 // x_scale * w_scale[m] / y_scale
	taps   []int32   // the window's tap table, once built
}

func (k *qconvKernel) String() string {
	op := "ConvInteger"
	if k.quant {
		op = "QLinearConv"
	}
	path := "ref"
	if k.packed != nil {
		path = "gemm"
	}
	return fmt.Sprintf("%s(%v*%v->%v, %d->%d, group %d, %v, %s)", op, k.xDT, k.wDT, k.yDT, k.inC, k.outC, k.group, &k.w, path)
}

// rows is K, the reduction length of one group; positions P.
func (k *qconvKernel) rows() int      { return k.inC / k.group * k.w.kernelSize() }
func (k *qconvKernel) positions() int { return k.w.outSize() }

func buildConvInteger(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	k, out, ins, err := b.newQconv(n, in, false)
	if err != nil {
		return nil, err
	}
	return one(b.apply(k, k.yDT, out, ins...))
}

func buildQLinearConv(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	k, out, ins, err := b.newQconv(n, in, true)
	if err != nil {
		return nil, err
	}
	return one(b.apply(k, k.yDT, out, ins...))
}

// newQconv checks a ConvInteger (quant false) or QLinearConv node and makes
// its kernel, output shape and the kernel's inputs.
func (b *builder) newQconv(n *onnx.Node, in []*value, quant bool) (*qconvKernel, []int, []*value, error) {
	var x, xz, w, wz, xs, ws, ys, yz, bias *value
	if quant {
		x, xs, xz, w, ws, wz, ys, yz, bias = in[0], optional(in, 1), optional(in, 2), in[3], optional(in, 4), optional(in, 5), optional(in, 6), optional(in, 7), optional(in, 8)
	} else {
		x, w, xz, wz = in[0], in[1], optional(in, 2), optional(in, 3)
	}
	if x == nil || w == nil {
		return nil, nil, nil, b.errInvalid("inputs x and w are required")
	}
	if err := b.checkDType(x, "input x", qconvTypes); err != nil {
		return nil, nil, nil, err
	}
	if err := b.checkDType(w, "input w", qconvTypes); err != nil {
		return nil, nil, nil, err
	}
	nsp, kernel, err := b.convShapes(n, x, w)
	if err != nil {
		return nil, nil, nil, err
	}
	inC, outC := x.shape[1], w.shape[0]
	group, err := b.convGroup(n, inC, outC, x.shape, w.shape)
	if err != nil {
		return nil, nil, nil, err
	}
	if w.shape[1]*group != inC {
		return nil, nil, nil, b.errInvalid("x %v has %d channels, but w %v with group %d expects %d", x.shape, inC, w.shape, group, w.shape[1]*group)
	}
	a, err := b.readWindowAttrs(n, nsp, x.shape)
	if err != nil {
		return nil, nil, nil, err
	}
	win, err := b.forwardWindow(a, x.shape[2:], kernel, false)
	if err != nil {
		return nil, nil, nil, err
	}
	k := &qconvKernel{w: *win, batch: x.shape[0], inC: inC, outC: outC, group: group,
		xDT: x.dt, wDT: w.dt, yDT: tensor.Int32, quant: quant,
		ix: -1, ixz: -1, iw: -1, iwz: -1, ixs: -1, iws: -1, iys: -1, iyz: -1, ib: -1}

	// Zero points, scales and bias: dtypes and sizes.
	param := func(v *value, name string, dts []tensor.DType, perChannel bool) error {
		if v == nil {
			return nil
		}
		if err := b.checkDType(v, name, dts); err != nil {
			return err
		}
		size := 1
		for _, d := range v.shape {
			size *= d
		}
		switch {
		case len(v.shape) <= 1 && size == 1:
		case perChannel && len(v.shape) == 1 && size == outC:
		case perChannel:
			return b.errInvalid("%s has shape %v; want a scalar or [%d], one per output channel", name, v.shape, outC)
		default:
			return b.errUnsupported("%s has shape %v; only a scalar (per-tensor) is supported", name, v.shape)
		}
		return nil
	}
	f32 := []tensor.DType{tensor.Float32}
	checks := []struct {
		v          *value
		name       string
		dts        []tensor.DType
		perChannel bool
	}{
		{xz, "x_zero_point", []tensor.DType{x.dt}, false},
		{wz, "w_zero_point", []tensor.DType{w.dt}, true},
		{xs, "x_scale", f32, false},
		{ws, "w_scale", f32, true},
		{ys, "y_scale", f32, false},
		{yz, "y_zero_point", qconvTypes, false},
		{bias, "bias B", []tensor.DType{tensor.Int32}, true},
	}
	for _, c := range checks {
		if err := param(c.v, c.name, c.dts, c.perChannel); err != nil {
			return nil, nil, nil, err
		}
	}
	if bias != nil && !slices.Equal(bias.shape, []int{outC}) {
		return nil, nil, nil, b.errInvalid("bias B %v must be [%d], one per output channel", bias.shape, outC)
	}
	if quant {
		if xs == nil || ws == nil || ys == nil {
			return nil, nil, nil, b.errInvalid("x_scale, w_scale and y_scale are required")
		}
		k.yDT = x.dt
		if yz != nil {
			k.yDT = yz.dt
		}
	}

	ins := []*value{}
	add := func(v *value, idx *int) {
		if v != nil {
			*idx = len(ins)
			ins = append(ins, v)
		}
	}
	add(x, &k.ix)
	add(w, &k.iw)
	add(xz, &k.ixz)
	add(wz, &k.iwz)
	add(xs, &k.ixs)
	add(ws, &k.iws)
	add(ys, &k.iys)
	add(yz, &k.iyz)
	add(bias, &k.ib)

	if w.konst != nil {
		k.packShared(w.konst)
		kk, p := k.rows(), k.positions()
		k.direct = win.kernelSize() == 1 && win.stride == [maxSpatial]int{1, 1, 1} &&
			win.padBegin == [maxSpatial]int{} && win.padEnd == [maxSpatial]int{}
		// im2col, its transpose, and an s8 image shifted to u8.
		if err := b.reserve(tensor.Uint8, []int{2*kk*p + inC*win.inSize()}); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: im2col scratch: %w", n.Describe(), err)
		}
		if err := b.reserve(tensor.Int32, []int{p * (outC/group + 1)}); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: GEMM scratch: %w", n.Describe(), err)
		}
	}
	if quant {
		if err := b.reserve(tensor.Int32, []int{outC * k.positions()}); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: accumulator scratch: %w", n.Describe(), err)
		}
	}
	out := append([]int{x.shape[0], outC}, win.out[maxSpatial-nsp:]...)
	return k, out, ins, nil
}

// qconvPacks shares packed weights between the graphs built from one
// model, one per worker and batch bucket. The key holds the weight tensor
// weakly (constants are never written), and the entry goes when the
// tensor is collected with its model.
var qconvPacks sync.Map // qconvPackKey -> []*kernels.PackedB

type qconvPackKey struct {
	w     weak.Pointer[tensor.Tensor]
	group int
}

// packShared sets k.packed to w's packed weights, packing them on first
// use.
func (k *qconvKernel) packShared(w *tensor.Tensor) {
	key := qconvPackKey{weak.Make(w), k.group}
	if p, ok := qconvPacks.Load(key); ok {
		k.packed = p.([]*kernels.PackedB)
		k.wShift = qconvShift(w.Data)
		return
	}
	k.pack(w.Data)
	if prev, loaded := qconvPacks.LoadOrStore(key, k.packed); loaded {
		k.packed = prev.([]*kernels.PackedB) // packed concurrently by another worker
		return
	}
	goruntime.AddCleanup(w, func(key qconvPackKey) { qconvPacks.Delete(key) }, key)
}

// qconvShift is what the packed weights were shifted by: 128 for u8.
func qconvShift(w any) int32 {
	if _, ok := w.([]uint8); ok {
		return 128
	}
	return 0
}

// pack packs the constant weights w ([]uint8 or []int8, [M][C/group][kernel])
// for the GEMM path: per group, transposed to B [C/group * kernel][M/group]
// and shifted to s8.
func (k *qconvKernel) pack(w any) {
	kk, mg := k.rows(), k.outC/k.group
	bt := make([]int8, kk*mg)
	k.packed = make([]*kernels.PackedB, k.group)
	k.wShift = qconvShift(w)
	for g := range k.group {
		for j := range mg {
			m := g*mg + j
			switch w := w.(type) {
			case []int8:
				for r, v := range w[m*kk : (m+1)*kk] {
					bt[r*mg+j] = v
				}
			case []uint8:
				for r, v := range w[m*kk : (m+1)*kk] {
					bt[r*mg+j] = int8(v ^ 0x80) // v - 128
				}
			}
		}
		k.packed[g] = kernels.PackB(bt, kk, mg)
	}
}

// qconvScalar reads element 0 of a zero point as an int32.
func qconvScalar(d *gt.Dense) int32 {
	switch d.Dtype() {
	case gt.Uint8:
		return int32(d.Uint8s()[0])
	case gt.Int8:
		return int32(d.Int8s()[0])
	}
	return 0
}

func (k *qconvKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	var zx int32
	if k.ixz >= 0 {
		zx = qconvScalar(ins[k.ixz])
	}
	k.wz = qconvGrow(k.wz, k.outC)
	clear(k.wz)
	if k.iwz >= 0 {
		d := ins[k.iwz]
		switch d.Dtype() {
		case gt.Uint8:
			convert(k.wz[:min(k.outC, d.Len())], d.Uint8s())
		case gt.Int8:
			convert(k.wz[:min(k.outC, d.Len())], d.Int8s())
		}
		if d.Len() == 1 {
			setAll(k.wz, k.wz[0])
		}
	}
	p := k.positions()
	image := k.outC * p
	var bias []int32
	if k.quant {
		k.acc = qconvGrow(k.acc, image)
		k.setMult(ins)
		if k.ib >= 0 {
			bias = ins[k.ib].Int32s()
		}
	}
	var yz int32
	if k.iyz >= 0 {
		yz = qconvScalar(ins[k.iyz])
	}
	inImage := k.inC * k.w.inSize()
	for n := range k.batch {
		dst := k.acc
		if !k.quant {
			dst = out.Int32s()[n*image : (n+1)*image]
		}
		x := ins[k.ix]
		switch {
		case k.packed != nil:
			var xu []uint8
			za := uint8(zx)
			if x.Dtype() == gt.Uint8 {
				xu = x.Uint8s()[n*inImage : (n+1)*inImage]
			} else {
				k.xu = qconvGrow(k.xu, inImage)
				xu = k.xu
				for i, v := range x.Int8s()[n*inImage : (n+1)*inImage] {
					xu[i] = uint8(v) ^ 0x80 // v + 128
				}
				za = uint8(int8(zx)) ^ 0x80
			}
			k.gemmImage(xu, za, dst)
		case x.Dtype() == gt.Uint8:
			qconvRefImage(k, x.Uint8s()[n*inImage:(n+1)*inImage], ins[k.iw].Data(), zx, dst)
		default:
			qconvRefImage(k, x.Int8s()[n*inImage:(n+1)*inImage], ins[k.iw].Data(), zx, dst)
		}
		if k.quant {
			switch out.Dtype() {
			case gt.Uint8:
				qconvRequant(k, out.Uint8s()[n*image:(n+1)*image], dst, bias, yz, 0, 255)
			case gt.Int8:
				qconvRequant(k, out.Int8s()[n*image:(n+1)*image], dst, bias, yz, -128, 127)
			default:
				return fmt.Errorf("dtype %v not supported", out.Dtype())
			}
		}
	}
	return nil
}

// setMult computes x_scale * w_scale[m] / y_scale in float32, as ONNX's
// reference does.
func (k *qconvKernel) setMult(ins []*gt.Dense) {
	k.mult = qconvGrow(k.mult, k.outC)
	xs, ys := ins[k.ixs].Float32s()[0], ins[k.iys].Float32s()[0]
	ws := ins[k.iws].Float32s()
	for m := range k.mult {
		s := ws[0]
		if len(ws) > 1 {
			s = ws[m]
		}
		k.mult[m] = xs * s / ys
	}
}

// qconvRequant writes y = saturate(RoundToEven((acc + bias) * mult) + yz).
func qconvRequant[Y int8 | uint8](k *qconvKernel, y []Y, acc, bias []int32, yz int32, lo, hi float64) {
	p := k.positions()
	for m := range k.outC {
		var bm int32
		if bias != nil {
			bm = bias[m]
		}
		mul := float64(k.mult[m])
		ym, am := y[m*p:(m+1)*p], acc[m*p:(m+1)*p]
		for i, a := range am {
			r := math.RoundToEven(float64(a+bm)*mul) + float64(yz)
			if !(r >= lo) { // also NaN
				r = lo
			}
			ym[i] = Y(min(r, hi))
		}
	}
}

// gemmImage computes one image's accumulators dst [M][P] on the int8 GEMM
// from x, the image's input as u8 with zero point za.
func (k *qconvKernel) gemmImage(x []uint8, za uint8, dst []int32) {
	cg, mg := k.inC/k.group, k.outC/k.group
	kk, p, inPlane := k.rows(), k.positions(), k.w.inSize()
	k.a = qconvGrow(k.a, p*kk)
	k.rowSum = qconvGrow(k.rowSum, p)
	k.c = qconvGrow(k.c, p*mg)
	if !k.direct {
		k.col = qconvGrow(k.col, kk*p)
	}
	for g := range k.group {
		xg := x[g*cg*inPlane : (g+1)*cg*inPlane]
		col := xg
		if !k.direct {
			col = k.col
			im2colPad(&k.w, k.w.tapTable(&k.taps), cg, xg, col, za)
		}
		fold := false
		for _, z := range k.wz[g*mg : (g+1)*mg] {
			if z != k.wShift {
				fold = true
				break
			}
		}
		qconvTranspose(col, kk, p, k.a, k.rowSum, fold, za)
		kernels.GemmU8S8(p, k.a, kk, za, k.packed[g], k.c, mg)
		for j := range mg {
			m := g*mg + j
			zw := k.wz[m] - k.wShift
			d := dst[m*p : (m+1)*p]
			if zw == 0 {
				for i := range d {
					d[i] = k.c[i*mg+j]
				}
			} else {
				for i := range d {
					d[i] = k.c[i*mg+j] - zw*k.rowSum[i]
				}
			}
		}
	}
}

// qconvTranspose writes a [p][kk] = col [kk][p] in cache-sized blocks and,
// when sums is set, rowSum[i] = Σ_r (a[i][r] - za).
func qconvTranspose(col []uint8, kk, p int, a []uint8, rowSum []int32, sums bool, za uint8) {
	const blk = 64
	for r0 := 0; r0 < kk; r0 += blk {
		r1 := min(r0+blk, kk)
		for i0 := 0; i0 < p; i0 += blk {
			i1 := min(i0+blk, p)
			for r := r0; r < r1; r++ {
				src := col[r*p : r*p+p]
				for i := i0; i < i1; i++ {
					a[i*kk+r] = src[i]
				}
			}
		}
	}
	if !sums {
		return
	}
	base := int32(kk) * int32(za)
	for i := range p {
		var s int32
		for _, v := range a[i*kk : (i+1)*kk] {
			s += int32(v)
		}
		rowSum[i] = s - base
	}
}

// qconvRefImage is the exact reference: one image's accumulators dst [M][P]
// by a plain loop over every output position and kernel tap.
func qconvRefImage[X int8 | uint8](k *qconvKernel, x []X, w any, zx int32, dst []int32) {
	switch w := w.(type) {
	case []uint8:
		qconvRef(k, x, w, zx, dst)
	case []int8:
		qconvRef(k, x, w, zx, dst)
	}
}

func qconvRef[X, W int8 | uint8](k *qconvKernel, x []X, w []W, zx int32, dst []int32) {
	cg, mg := k.inC/k.group, k.outC/k.group
	kk, p, inPlane := k.rows(), k.positions(), k.w.inSize()
	win := &k.w
	for m := range k.outC {
		g := m / mg
		wm, zw := w[m*kk:(m+1)*kk], k.wz[m]
		dm := dst[m*p : (m+1)*p]
		for o0 := range win.out[0] {
			for o1 := range win.out[1] {
				for o2 := range win.out[2] {
					var s int32
					for c := range cg {
						xc := x[(g*cg+c)*inPlane : (g*cg+c+1)*inPlane]
						for k0 := range win.kernel[0] {
							i0 := o0*win.stride[0] + k0*win.dilation[0] - win.padBegin[0]
							if i0 < 0 || i0 >= win.in[0] {
								continue
							}
							for k1 := range win.kernel[1] {
								i1 := o1*win.stride[1] + k1*win.dilation[1] - win.padBegin[1]
								if i1 < 0 || i1 >= win.in[1] {
									continue
								}
								for k2 := range win.kernel[2] {
									i2 := o2*win.stride[2] + k2*win.dilation[2] - win.padBegin[2]
									if i2 < 0 || i2 >= win.in[2] {
										continue
									}
									xv := int32(xc[(i0*win.in[1]+i1)*win.in[2]+i2]) - zx
									wv := int32(wm[((c*win.kernel[0]+k0)*win.kernel[1]+k1)*win.kernel[2]+k2]) - zw
									s += xv * wv
								}
							}
						}
					}
					dm[(o0*win.out[1]+o1)*win.out[2]+o2] = s
				}
			}
		}
	}
}

// qconvGrow returns s with length n, reallocated only when too small.
func qconvGrow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
