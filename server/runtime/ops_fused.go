package runtime

import (
	"fmt"
	"slices"

	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/kernels"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// The builders and kernels of the fused nodes fuse.go makes.

func init() {
	registerBuilders(fusedDomain, map[string]buildFunc{
		"MatMul": buildDense,
		"Gemm":   buildDense,
		"Conv":   buildFusedConv,
	})
}

func buildDense(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	fd := b.fused.dense[n.Name]
	x := in[0]
	if fd == nil {
		return nil, fmt.Errorf("%s: no fused weights", n.Describe()) // a bug
	}
	if x.dt != tensor.Float32 {
		return nil, b.errInvalid("input dtype %v: the weights are float32, want the same", x.dt)
	}
	if len(x.shape) == 0 || x.shape[len(x.shape)-1] != fd.k {
		return nil, b.errInvalid("cannot multiply %v by [%d %d]", x.shape, fd.k, fd.n)
	}
	m := prod(x.shape[:len(x.shape)-1])
	out := append(slices.Clone(x.shape[:len(x.shape)-1]), fd.n)
	if fd.biasShape != nil {
		out, _ = broadcastShape(out, fd.biasShape) // [N] or [1 N]: no new elements
	}
	k := &denseKernel{fd: fd, m: m}
	if fd.q != nil {
		k.aq = make([]uint8, m*fd.k)
		if !fd.q.static {
			k.sx = make([]float32, m)
			k.zx = make([]uint8, m)
		}
	}
	return one(b.apply(k, tensor.Float32, out, x))
}

// denseKernel runs a fusedDense on m rows. Its scratch belongs to one
// graph.
type denseKernel struct {
	fd *fusedDense
	m  int
	aq []uint8 // x quantized, m x K

	// Dynamic quantization: each row's parameters.
	sx []float32
	zx []uint8
}

func (k *denseKernel) String() string { return fmt.Sprintf("%s[m=%d]", k.fd.desc, k.m) }

func (k *denseKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	x, y := ins[0].Float32s(), out.Float32s()
	fd, m, kk, n := k.fd, k.m, k.fd.k, k.fd.n
	if fd.fp != nil {
		var beta float32
		if fd.bias != nil {
			for r := range m {
				copy(y[r*n:(r+1)*n], fd.bias)
			}
			beta = 1
		}
		kernels.SgemmPacked(false, m, 1, x, kk, fd.fp, beta, y, n)
		if fd.relu {
			reluInPlace(y)
		}
		return nil
	}
	q := fd.q
	if q.static {
		if err := kernels.QuantizeU8(k.aq, x, q.sx, q.zx); err != nil {
			return err
		}
		return kernels.GemmU8S8Dequant(m, k.aq, kk, q.zx, q.sx, q.packed, q.wScale, fd.bias, fd.relu, y, n)
	}
	// Per row: a request's rows are quantized on their own, whatever was
	// batched with them.
	if err := kernels.QuantizeRowsDynamicU8(k.aq, x, m, kk, k.sx, k.zx); err != nil {
		return err
	}
	uniform := true
	for _, z := range k.zx[:m] {
		uniform = uniform && z == k.zx[0]
	}
	// One zero point for the GEMM: the rows' own if they share it, else
	// 0, and each row's own is taken off as the rows are dequantized.
	var aZero uint8
	zs := k.zx[:m]
	if uniform {
		aZero, zs = k.zx[0], nil
	}
	return kernels.GemmU8S8DequantRows(m, k.aq, kk, aZero, k.sx[:m], zs, q.packed, q.wScale, fd.bias, fd.relu, y, n)
}

// reluInPlace sets y's negative values to 0, float32 with the vector loop
// (kernels.ReLU).
func reluInPlace[T float32 | float64](y []T) {
	if y32, ok := any(y).([]float32); ok {
		kernels.ReLU(y32, y32)
		return
	}
	for i, v := range y {
		if v < 0 {
			y[i] = 0
		}
	}
}

// buildFusedConv is Conv with its ReLU, in float32 or on the int8 GEMM.
func buildFusedConv(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	fc := b.fused.conv[n.Name]
	if fc == nil {
		return nil, fmt.Errorf("%s: no fused weights", n.Describe()) // a bug
	}
	k, out, ins, err := b.newConv(n, in)
	if err != nil {
		return nil, err
	}
	if fc.q == nil {
		k.relu = fc.relu
		return one(b.apply(k, in[0].dt, out, ins...))
	}
	if in[0].dt != tensor.Float32 {
		return nil, b.errInvalid("input dtype %v: the weights are float32, want the same", in[0].dt)
	}
	qc := &qconvKernel{
		w: k.w, batch: k.batch, inC: k.inC, outC: k.outC, group: k.group, direct: k.direct,
		xDT: tensor.Uint8, wDT: tensor.Int8, yDT: tensor.Int32,
		wz: make([]int32, k.outC),
	}
	qc.packShared(fc.wq)
	ik := &int8ConvKernel{qc: qc, q: fc.q, relu: fc.relu}
	if bias := optional(in, 2); bias != nil {
		ik.bias = bias.konst.Data.([]float32)
	}
	ik.xu = make([]uint8, k.inC*k.w.inSize())
	ik.acc = make([]int32, k.outC*k.w.outSize())
	return one(b.apply(ik, tensor.Float32, out, in[0]))
}

// int8ConvKernel quantizes each image (dynamic) or the whole input
// (static), runs ConvInteger's GEMM path and dequantizes with the bias and
// ReLU: y[m][p] = sx * w_scale[m] * acc[m][p] + bias[m]. With one group,
// every image's rows go through one GEMM (M = batch * positions), which on
// small images costs far less than a GEMM per image.
type int8ConvKernel struct {
	qc   *qconvKernel
	q    *fusedInt8
	bias []float32
	relu bool
	xu   []uint8 // one image, quantized
	acc  []int32 // one image's accumulators [M][P] (per-image path)

	// The batched path (one group): each image's rows [P][K] of A, the
	// GEMM's output [batch*P][M], and per image its scale and zero point.
	a, col []uint8
	c      []int32
	sx     []float32
	zx     []uint8
	yt     []float32 // one image's output [P][M]
	rs     []float32 // its P rows' scale, and zero point (all the image's)
	rz     []uint8
}

func (k *int8ConvKernel) String() string {
	return fmt.Sprintf("Conv+Relu=%t(%s, %s)", k.relu, k.q, k.qc)
}

func (k *int8ConvKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	if k.qc.group == 1 {
		return k.runBatched(out.Float32s(), ins[0].Float32s())
	}
	qc := k.qc
	x, y := ins[0].Float32s(), out.Float32s()
	inImage, p := qc.inC*qc.w.inSize(), qc.positions()
	image := qc.outC * p
	for n := range qc.batch {
		sx, zx, err := k.quantize(k.xu, x[n*inImage:(n+1)*inImage])
		if err != nil {
			return err
		}
		qc.gemmImage(k.xu, zx, k.acc)
		yi := y[n*image : (n+1)*image]
		for m := range qc.outC {
			s := sx * k.q.wScale[m]
			var bm float32
			if k.bias != nil {
				bm = k.bias[m]
			}
			ym, am := yi[m*p:(m+1)*p], k.acc[m*p:(m+1)*p]
			for i, a := range am {
				v := float32(a)*s + bm
				if k.relu && v < 0 {
					v = 0
				}
				ym[i] = v
			}
		}
	}
	return nil
}

// quantize quantizes one image into dst with the static parameters, or
// with its own range.
func (k *int8ConvKernel) quantize(dst []uint8, x []float32) (float32, uint8, error) {
	if k.q.static {
		return k.q.sx, k.q.zx, kernels.QuantizeU8(dst, x, k.q.sx, k.q.zx)
	}
	return kernels.QuantizeDynamicU8(dst, x)
}

func (k *int8ConvKernel) runBatched(y, x []float32) error {
	qc := k.qc
	kk, p, inImage := qc.rows(), qc.positions(), qc.inC*qc.w.inSize()
	mOut, batch := qc.outC, qc.batch
	k.a = qconvGrow(k.a, batch*p*kk)
	k.c = qconvGrow(k.c, batch*p*mOut)
	k.sx = qconvGrow(k.sx, batch)
	k.zx = qconvGrow(k.zx, batch)
	if !qc.direct {
		k.col = qconvGrow(k.col, kk*p)
	}
	uniform := true
	for n := range batch {
		sx, zx, err := k.quantize(k.xu, x[n*inImage:(n+1)*inImage])
		if err != nil {
			return err
		}
		k.sx[n], k.zx[n] = sx, zx
		uniform = uniform && zx == k.zx[0]
		a := k.a[n*p*kk : (n+1)*p*kk]
		if qc.direct {
			qconvTranspose(k.xu, kk, p, a, nil, false, zx)
		} else {
			im2rowPad(&qc.w, qc.w.tapTable(&qc.taps), qc.inC, k.xu, k.col, a, zx)
		}
	}
	var aZero uint8
	if uniform {
		aZero = k.zx[0]
	}
	kernels.GemmU8S8(batch*p, k.a, kk, aZero, qc.packed[0], k.c, mOut)
	image := mOut * p
	k.yt = qconvGrow(k.yt, p*mOut)
	k.rs, k.rz = qconvGrow(k.rs, p), qconvGrow(k.rz, p)
	for n := range batch {
		c, yi := k.c[n*p*mOut:(n+1)*p*mOut], y[n*image:(n+1)*image]
		// [P][M] rows dequantize with the kernels' epilogue (per-channel
		// scales and bias along the row; the image's zero point taken off
		// if the GEMM took 0), then transpose to [M][P].
		var zs []uint8
		for i := range p {
			k.rs[i] = k.sx[n]
		}
		if !uniform {
			zs = k.rz
			for i := range p {
				zs[i] = k.zx[n]
			}
		}
		if err := kernels.DequantizeRowsBiasReLU(c, p, mOut, mOut, k.rs, zs, qc.packed[0], k.q.wScale, k.bias, k.relu, k.yt); err != nil {
			return err
		}
		for i := range p {
			for m, v := range k.yt[i*mOut : (i+1)*mOut] {
				yi[m*p+i] = v
			}
		}
	}
	return nil
}
