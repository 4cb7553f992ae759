package runtime

import (
	"fmt"
	"slices"
	"strings"

	"gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
	gt "gorgonia.org/tensor"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// Conv and ConvTranspose: im2col (col2im) around a float GEMM, the BLAS
// Gorgonia's own matrix products use. This file also holds the
// sliding-window geometry the pooling operators share, and the GEMM
// helpers MatMul uses for stacks of float matrices.

func init() {
	registerBuilders(onnx.DomainDefault, map[string]buildFunc{
		"Conv":          buildConv,
		"ConvTranspose": buildConvTranspose,
	})
}

// maxSpatial is the most spatial dimensions a sliding-window op takes:
// 1-D (sequences), 2-D (images) and 3-D (volumes).
const maxSpatial = 3

// window is the geometry of a sliding-window op. Every array holds
// exactly maxSpatial dimensions: fewer spatial dimensions are lifted by
// prepending dimensions of size 1 (kernel 1, stride 1, no padding), which
// changes no result and lets one loop nest serve 1-D, 2-D and 3-D.
type window struct {
	in, out, kernel, stride, dilation, padBegin, padEnd [maxSpatial]int
}

func (w *window) inSize() int     { return w.in[0] * w.in[1] * w.in[2] }
func (w *window) outSize() int    { return w.out[0] * w.out[1] * w.out[2] }
func (w *window) kernelSize() int { return w.kernel[0] * w.kernel[1] * w.kernel[2] }

// String goes into the op's hash and its description.
func (w *window) String() string {
	return fmt.Sprintf("k%v s%v d%v p%v%v", w.kernel, w.stride, w.dilation, w.padBegin, w.padEnd)
}

// liftSpatial right-aligns vals in a maxSpatial array, filling the front.
func liftSpatial(vals []int, fill int) [maxSpatial]int {
	var a [maxSpatial]int
	lead := maxSpatial - len(vals)
	for i := range a {
		if i < lead {
			a[i] = fill
		} else {
			a[i] = vals[i-lead]
		}
	}
	return a
}

// tapRange returns the range [lo, hi) of the positions o in [0, n) at
// which o*s + off falls in [0, limit): the output positions a kernel tap
// reads real input at, the input positions a transposed tap writes real
// output at, or the taps of one window that land on real input.
func tapRange(n, s, off, limit int) (lo, hi int) {
	if off < 0 {
		lo = (-off + s - 1) / s
	}
	if last := limit - 1 - off; last >= 0 {
		hi = min(n, last/s+1)
	}
	return min(lo, hi), hi
}

// windowAttrs are the attributes every sliding-window op reads, checked
// against the number of spatial dimensions.
type windowAttrs struct {
	strides, dilations []int
	pads               []int // begin..., end...; nil when auto_pad is set
	autoPad            string
}

var autoPads = []string{"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"}

// readWindowAttrs reads strides, dilations, pads and auto_pad for nsp
// spatial dimensions; x is the input's shape, for messages.
func (b *builder) readWindowAttrs(n *onnx.Node, nsp int, x []int) (*windowAttrs, error) {
	a := &windowAttrs{autoPad: n.String("auto_pad", "NOTSET")}
	if a.autoPad == "" { // some exporters write the empty string for the default
		a.autoPad = "NOTSET"
	}
	if !slices.Contains(autoPads, a.autoPad) {
		return nil, b.errInvalid("auto_pad is %q, want one of %s", a.autoPad, strings.Join(autoPads, ", "))
	}
	var err error
	if a.strides, err = b.spatialInts(n, "strides", nsp, 1, 1, x); err != nil {
		return nil, err
	}
	if a.dilations, err = b.spatialInts(n, "dilations", nsp, 1, 1, x); err != nil {
		return nil, err
	}
	if a.pads, err = b.spatialInts(n, "pads", 2*nsp, 0, 0, x); err != nil {
		return nil, err
	}
	if a.autoPad != "NOTSET" {
		// The spec forbids both; zeros are what some exporters write
		// beside auto_pad, and mean nothing.
		if slices.ContainsFunc(a.pads, func(p int) bool { return p != 0 }) {
			return nil, b.errInvalid("pads %v and auto_pad %q are both set; a node may use only one", a.pads, a.autoPad)
		}
		a.pads = nil
	}
	return a, nil
}

// spatialInts reads an INTS attribute that must have count entries, each
// at least least, defaulting to count copies of def.
func (b *builder) spatialInts(n *onnx.Node, name string, count, def, least int, x []int) ([]int, error) {
	if !n.Has(name) {
		out := make([]int, count)
		for i := range out {
			out[i] = def
		}
		return out, nil
	}
	vals := n.Ints(name, nil)
	if len(vals) != count {
		return nil, b.errInvalid("%s has %d values, want %d for input shape %v", name, len(vals), count, x)
	}
	out := make([]int, count)
	for i, v := range vals {
		switch {
		case v < int64(least):
			return nil, b.errInvalid("%s[%d] is %d, want >= %d", name, i, v, least)
		case v > tensor.MaxElements:
			return nil, b.errUnsupported("%s[%d] is %d, more than %d", name, i, v, tensor.MaxElements)
		}
		out[i] = int(v)
	}
	return out, nil
}

// forwardWindow works out the geometry of a Conv or pool: the output size
// and padding along each spatial axis. in and kernel are the spatial
// sizes of the input and the kernel. ceil rounds the output size up (pools'
// ceil_mode) rather than down.
func (b *builder) forwardWindow(a *windowAttrs, in, kernel []int, ceil bool) (*window, error) {
	nsp := len(in)
	out := make([]int, nsp)
	pb, pe := make([]int, nsp), make([]int, nsp)
	for i := range nsp {
		s, ek := a.strides[i], (kernel[i]-1)*a.dilations[i]+1
		switch a.autoPad {
		case "NOTSET":
			pb[i], pe[i] = a.pads[i], a.pads[nsp+i]
			span := in[i] + pb[i] + pe[i] - ek
			if span < 0 {
				return nil, b.errInvalid("along spatial axis %d the kernel spans %d (size %d, dilation %d), more than the padded input's %d (%d + pads %d and %d)",
					i, ek, kernel[i], a.dilations[i], in[i]+pb[i]+pe[i], in[i], pb[i], pe[i])
			}
			out[i] = span/s + 1
			if ceil && span%s != 0 {
				out[i]++
				// As ONNX Runtime and PyTorch: the last window must
				// start inside the input or its leading padding.
				if (out[i]-1)*s >= in[i]+pb[i] {
					out[i]--
				}
			}
		case "VALID":
			if in[i] < ek {
				return nil, b.errInvalid("along spatial axis %d the kernel spans %d (size %d, dilation %d), more than the input's %d with auto_pad VALID",
					i, ek, kernel[i], a.dilations[i], in[i])
			}
			// ceil_mode changes nothing here: ceil((in-ek+1)/s) is
			// floor((in-ek)/s)+1.
			out[i] = (in[i]-ek)/s + 1
		default: // SAME_UPPER, SAME_LOWER: out = ceil(in / stride)
			out[i] = (in[i] + s - 1) / s
			total := max(0, (out[i]-1)*s+ek-in[i])
			small, big := total/2, total-total/2
			if a.autoPad == "SAME_UPPER" { // the odd pixel goes at the end
				pb[i], pe[i] = small, big
			} else {
				pb[i], pe[i] = big, small
			}
		}
		if out[i] <= 0 {
			return nil, b.errInvalid("spatial axis %d of the output would be empty (input %d, kernel %d)", i, in[i], kernel[i])
		}
	}
	return &window{
		in: liftSpatial(in, 1), out: liftSpatial(out, 1), kernel: liftSpatial(kernel, 1),
		stride: liftSpatial(a.strides, 1), dilation: liftSpatial(a.dilations, 1),
		padBegin: liftSpatial(pb, 0), padEnd: liftSpatial(pe, 0),
	}, nil
}

// spatialRank checks that x is [N C D1 ... Dk] with 1 <= k <= maxSpatial
// and returns k.
func (b *builder) spatialRank(x *value, what string) (int, error) {
	nsp := len(x.shape) - 2
	if nsp < 1 || nsp > maxSpatial {
		return 0, b.errUnsupported("%s has shape %v; want [N C D1 ... Dk] with 1 to %d spatial dimensions", what, x.shape, maxSpatial)
	}
	return nsp, nil
}

// convOperands checks the dtypes and ranks Conv and ConvTranspose share:
// X [N C D...], W of the same rank, B a vector, all of one float dtype.
// It returns the number of spatial dimensions and the kernel's size,
// checked against kernel_shape when the node sets it.
func (b *builder) convOperands(n *onnx.Node, x, w, bias *value) (int, []int, error) {
	if err := b.checkDType(x, "input X", floats); err != nil {
		return 0, nil, err
	}
	if w.dt != x.dt || (bias != nil && bias.dt != x.dt) {
		return 0, nil, b.errInvalid("X, W and B must share a dtype, got %v, %v and %v", x.dt, w.dt, dtypeName(bias))
	}
	return b.convShapes(n, x, w)
}

// convShapes is convOperands without the dtype checks: the ranks of X
// and W and the kernel's size. The integer convolutions check their own
// dtypes.
func (b *builder) convShapes(n *onnx.Node, x, w *value) (int, []int, error) {
	nsp, err := b.spatialRank(x, "input X")
	if err != nil {
		return 0, nil, err
	}
	if len(w.shape) != len(x.shape) {
		return 0, nil, b.errInvalid("weights W %v must have the rank of X %v", w.shape, x.shape)
	}
	kernel := slices.Clone(w.shape[2:])
	if n.Has("kernel_shape") {
		ks := n.Ints("kernel_shape", nil)
		if !slices.Equal(ks, int64Shape(kernel)) {
			return 0, nil, b.errInvalid("kernel_shape %v does not match the weights' spatial shape %v (W %v)", ks, kernel, w.shape)
		}
	}
	if slices.Contains(kernel, 0) {
		return 0, nil, b.errInvalid("weights W %v have an empty kernel", w.shape)
	}
	return nsp, kernel, nil
}

// dtypeName names an optional operand's dtype for messages.
func dtypeName(v *value) any {
	if v == nil {
		return "none"
	}
	return v.dt
}

// convGroup reads the group attribute and checks it divides both channel
// counts.
func (b *builder) convGroup(n *onnx.Node, inC, outC int, x, w []int) (int, error) {
	g := n.Int("group", 1)
	if g < 1 || g > tensor.MaxElements {
		return 0, b.errInvalid("group is %d, want >= 1", g)
	}
	group := int(g)
	if inC%group != 0 || outC%group != 0 {
		return 0, b.errInvalid("group %d does not divide the %d input and %d output channels (X %v, W %v)", group, inC, outC, x, w)
	}
	return group, nil
}

// buildConv: Y[n, m] = sum over the channels of m's group of W[m] slid
// over X[n], plus B[m].
func buildConv(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	k, out, ins, err := b.newConv(n, in)
	if err != nil {
		return nil, err
	}
	return one(b.apply(k, in[0].dt, out, ins...))
}

// newConv checks a Conv node and makes its kernel, output shape and the
// kernel's inputs.
func (b *builder) newConv(n *onnx.Node, in []*value) (*convKernel, []int, []*value, error) {
	x, w, bias := in[0], in[1], optional(in, 2)
	nsp, kernel, err := b.convOperands(n, x, w, bias)
	if err != nil {
		return nil, nil, nil, err
	}
	inC, outC := x.shape[1], w.shape[0]
	group, err := b.convGroup(n, inC, outC, x.shape, w.shape)
	if err != nil {
		return nil, nil, nil, err
	}
	if w.shape[1]*group != inC {
		return nil, nil, nil, b.errInvalid("X %v has %d channels, but W %v with group %d expects %d", x.shape, inC, w.shape, group, w.shape[1]*group)
	}
	if bias != nil && !slices.Equal(bias.shape, []int{outC}) {
		return nil, nil, nil, b.errInvalid("bias B %v must be [%d], one per output channel", bias.shape, outC)
	}
	a, err := b.readWindowAttrs(n, nsp, x.shape)
	if err != nil {
		return nil, nil, nil, err
	}
	win, err := b.forwardWindow(a, x.shape[2:], kernel, false)
	if err != nil {
		return nil, nil, nil, err
	}
	k := &convKernel{w: *win, batch: x.shape[0], inC: inC, outC: outC, group: group}
	// A 1x1 kernel with unit strides and no padding reads X as it is:
	// no im2col, no scratch.
	k.direct = win.kernelSize() == 1 && win.stride == [maxSpatial]int{1, 1, 1} &&
		win.padBegin == [maxSpatial]int{} && win.padEnd == [maxSpatial]int{}
	if !k.direct {
		if err := b.reserve(x.dt, []int{inC / group * win.kernelSize(), win.outSize()}); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: im2col scratch: %w", n.Describe(), err)
		}
	}
	out := append([]int{x.shape[0], outC}, win.out[maxSpatial-nsp:]...)
	ins := []*value{x, w}
	if bias != nil {
		ins = append(ins, bias)
	}
	return k, out, ins, nil
}

// convKernel is Conv as, per image and group, im2col of the input into a
// [C/group * kernel, output positions] matrix and a GEMM with the group's
// weights [M/group, C/group * kernel].
type convKernel struct {
	w                       window
	batch, inC, outC, group int
	direct                  bool // 1x1, unit stride, no padding: X is its own im2col
	relu                    bool // a fused Relu (fuse.go)
	col32                   []float32
	col64                   []float64
	taps                    []int32 // the window's tap table, once built
}

func (k *convKernel) String() string {
	return fmt.Sprintf("Conv(%d->%d, group %d, %v, relu %t)", k.inC, k.outC, k.group, &k.w, k.relu)
}

func (k *convKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	switch out.Dtype() {
	case gt.Float32:
		k.col32 = conv(k, k.col32, out.Float32s(), ins[0].Float32s(), ins[1].Float32s(), convBias[float32](ins))
	case gt.Float64:
		k.col64 = conv(k, k.col64, out.Float64s(), ins[0].Float64s(), ins[1].Float64s(), convBias[float64](ins))
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

// convBias returns the optional third input's data, nil without one.
func convBias[T float32 | float64](ins []*gt.Dense) []T {
	if len(ins) < 3 {
		return nil
	}
	return ins[2].Data().([]T)
}

// conv returns the scratch it used, so that the next run reuses it.
func conv[T float32 | float64](k *convKernel, col, y, x, w, bias []T) []T {
	cg, mg := k.inC/k.group, k.outC/k.group
	rows, p := cg*k.w.kernelSize(), k.w.outSize()
	inPlane := k.w.inSize()
	if !k.direct && len(col) < rows*p {
		col = make([]T, rows*p)
	}
	for n := range k.batch {
		for g := range k.group {
			xg := x[(n*k.inC+g*cg)*inPlane : (n*k.inC+(g+1)*cg)*inPlane]
			yg := y[(n*k.outC+g*mg)*p : (n*k.outC+(g+1)*mg)*p]
			wg := w[g*mg*rows : (g+1)*mg*rows]
			// The bias is the GEMM's starting value (beta = 1), which
			// saves a pass over the output.
			var beta T
			if bias != nil {
				for m := range mg {
					setAll(yg[m*p:(m+1)*p], bias[g*mg+m])
				}
				beta = 1
			}
			src := xg
			if !k.direct {
				src = col[:rows*p]
				im2col(&k.w, k.w.tapTable(&k.taps), cg, xg, src)
			}
			blasGemm(false, false, mg, p, rows, wg, rows, src, p, beta, yg, p)
			if k.relu {
				reluInPlace(yg)
			}
		}
	}
	return col
}

// fillPad sets s to pad, with the builtin clear for the usual 0.
func fillPad[T float32 | float64 | uint8](s []T, pad T) {
	if pad == 0 {
		clear(s)
		return
	}
	setAll(s, pad)
}

func setAll[T any](s []T, v T) {
	for i := range s {
		s[i] = v
	}
}

// im2col writes the [channels * kernel, output positions] matrix whose
// row (c, k0, k1, k2) holds, for every output position, the input
// element that kernel tap multiplies (0 where it falls in the padding).
// taps is the window's tap table or nil (tapTable).
func im2col[T float32 | float64](w *window, taps []int32, channels int, x, col []T) {
	im2colPad(w, taps, channels, x, col, 0)
}

// im2colPad is im2col with the padding read as pad: the integer
// convolutions pad with the input's zero point.
func im2colPad[T float32 | float64 | uint8](w *window, taps []int32, channels int, x, col []T, pad T) {
	if taps == nil {
		im2colLines(w, channels, x, col, pad)
		return
	}
	ks, p, inPlane := w.kernelSize(), w.outSize(), w.inSize()
	for c := range channels {
		xc := x[c*inPlane : (c+1)*inPlane]
		for t := range ks {
			row := col[(c*ks+t)*p:][:p]
			for j, ix := range taps[t*p:][:p] {
				v := pad
				if ix > 0 {
					v = xc[ix-1]
				}
				row[j] = v
			}
		}
	}
}

// im2rowPad writes im2colPad's matrix transposed, [output positions]
// [channels * kernel], into a: the integer GEMM's A. With a tap table it
// gathers the rows directly; without, it goes through col (im2colPad) and
// transposes.
func im2rowPad(w *window, taps []int32, channels int, x, col, a []uint8, pad uint8) {
	ks, p, inPlane := w.kernelSize(), w.outSize(), w.inSize()
	kk := channels * ks
	if taps == nil {
		im2colLines(w, channels, x, col, pad)
		qconvTranspose(col, kk, p, a, nil, false, pad)
		return
	}
	for c := range channels {
		xc := x[c*inPlane : (c+1)*inPlane]
		for t := range ks {
			r := c*ks + t
			for j, ix := range taps[t*p:][:p] {
				v := pad
				if ix > 0 {
					v = xc[ix-1]
				}
				a[j*kk+r] = v
			}
		}
	}
}

// Tap tables: where the output lines are short (small images), im2col's
// loops spend most of their time working out where each line comes from,
// not moving it: a 16-channel 8x8 image at stride 2 (lines of 4) took
// 13 us for 2,304 values. A kernel then keeps its window's tap table, and
// im2col gathers each row through it.
const (
	tapTableMaxLine = 16      // longest output line to use a table for
	tapTableMax     = 1 << 16 // most entries (taps x output positions)
)

// tapTable returns the window's tap table, building it into *cache on
// first use: entry t*P+j is 1 + the index in an input plane of the value
// kernel tap t (k0, k1, k2 in row-major order) meets at output position j,
// or 0 where that falls in the padding. It returns nil for windows whose
// lines are long enough for im2colLines' copies, or whose table would be
// larger than tapTableMax.
func (w *window) tapTable(cache *[]int32) []int32 {
	if *cache != nil {
		return *cache
	}
	ks, p := w.kernelSize(), w.outSize()
	if w.out[2] > tapTableMaxLine || ks*p > tapTableMax || ks*p == 0 {
		return nil
	}
	t := make([]int32, ks*p)
	i := 0
	for k0 := range w.kernel[0] {
		for k1 := range w.kernel[1] {
			for k2 := range w.kernel[2] {
				j := 0
				for o0 := range w.out[0] {
					i0 := o0*w.stride[0] + k0*w.dilation[0] - w.padBegin[0]
					for o1 := range w.out[1] {
						i1 := o1*w.stride[1] + k1*w.dilation[1] - w.padBegin[1]
						for o2 := range w.out[2] {
							i2 := o2*w.stride[2] + k2*w.dilation[2] - w.padBegin[2]
							if i0 >= 0 && i0 < w.in[0] && i1 >= 0 && i1 < w.in[1] && i2 >= 0 && i2 < w.in[2] {
								t[i*p+j] = int32((i0*w.in[1]+i1)*w.in[2]+i2) + 1
							}
							j++
						}
					}
				}
				i++
			}
		}
	}
	*cache = t
	return t
}

// im2colLines is im2colPad by lines of output positions, copying each
// line's taps that fall inside the input.
func im2colLines[T float32 | float64 | uint8](w *window, channels int, x, col []T, pad T) {
	out1, out2 := w.out[1], w.out[2]
	p, inPlane := w.outSize(), w.inSize()
	r := 0
	for c := range channels {
		xc := x[c*inPlane : (c+1)*inPlane]
		for k0 := range w.kernel[0] {
			off0 := k0*w.dilation[0] - w.padBegin[0]
			lo0, hi0 := tapRange(w.out[0], w.stride[0], off0, w.in[0])
			for k1 := range w.kernel[1] {
				off1 := k1*w.dilation[1] - w.padBegin[1]
				lo1, hi1 := tapRange(out1, w.stride[1], off1, w.in[1])
				for k2 := range w.kernel[2] {
					off2 := k2*w.dilation[2] - w.padBegin[2]
					lo2, hi2 := tapRange(out2, w.stride[2], off2, w.in[2])
					s2 := w.stride[2]
					row := col[r*p : (r+1)*p]
					r++
					for o0 := range w.out[0] {
						plane := row[o0*out1*out2 : (o0+1)*out1*out2]
						if o0 < lo0 || o0 >= hi0 {
							fillPad(plane, pad)
							continue
						}
						i0 := o0*w.stride[0] + off0
						for o1 := range out1 {
							line := plane[o1*out2 : (o1+1)*out2]
							if o1 < lo1 || o1 >= hi1 {
								fillPad(line, pad)
								continue
							}
							i1 := o1*w.stride[1] + off1
							src := xc[(i0*w.in[1]+i1)*w.in[2]:]
							fillPad(line[:lo2], pad)
							fillPad(line[hi2:], pad)
							if s2 == 1 && lo2 < hi2 {
								copy(line[lo2:hi2], src[lo2+off2:hi2+off2])
							} else {
								for o2 := lo2; o2 < hi2; o2++ {
									line[o2] = src[o2*s2+off2]
								}
							}
						}
					}
				}
			}
		}
	}
}

// buildConvTranspose is the gradient of Conv with respect to its input:
// every input element scatters W[c] (scaled by it) into the output at
// stride spacing.
func buildConvTranspose(b *builder, n *onnx.Node, in []*value) ([]*value, error) {
	x, w, bias := in[0], in[1], optional(in, 2)
	nsp, kernel, err := b.convOperands(n, x, w, bias)
	if err != nil {
		return nil, err
	}
	inC := x.shape[1]
	if w.shape[0] != inC {
		return nil, b.errInvalid("X %v has %d channels, but W %v is for %d ([C M/group k...])", x.shape, inC, w.shape, w.shape[0])
	}
	g := n.Int("group", 1)
	if g < 1 || g > tensor.MaxElements {
		return nil, b.errInvalid("group is %d, want >= 1", g)
	}
	outC := w.shape[1] * int(g)
	group, err := b.convGroup(n, inC, outC, x.shape, w.shape)
	if err != nil {
		return nil, err
	}
	if bias != nil && !slices.Equal(bias.shape, []int{outC}) {
		return nil, b.errInvalid("bias B %v must be [%d], one per output channel", bias.shape, outC)
	}
	a, err := b.readWindowAttrs(n, nsp, x.shape)
	if err != nil {
		return nil, err
	}
	win, err := b.transposedWindow(n, a, x.shape, kernel)
	if err != nil {
		return nil, err
	}
	if err := b.reserve(x.dt, []int{outC / group * win.kernelSize(), win.inSize()}); err != nil {
		return nil, fmt.Errorf("%s: col2im scratch: %w", n.Describe(), err)
	}
	k := &convTransposeKernel{w: *win, batch: x.shape[0], inC: inC, outC: outC, group: group}
	out := append([]int{x.shape[0], outC}, win.out[maxSpatial-nsp:]...)
	ins := []*value{x, w}
	if bias != nil {
		ins = append(ins, bias)
	}
	return one(b.apply(k, x.dt, out, ins...))
}

// transposedWindow works out ConvTranspose's output size and padding for
// input shape x. The window's in is X's spatial size and out Y's: output
// position o gets input i through tap k when o = i*stride + k*dilation -
// padBegin.
func (b *builder) transposedWindow(n *onnx.Node, a *windowAttrs, x, kernel []int) (*window, error) {
	in := x[2:]
	nsp := len(in)
	outPad, err := b.spatialInts(n, "output_padding", nsp, 0, 0, x)
	if err != nil {
		return nil, err
	}
	var outShape []int
	if n.Has("output_shape") {
		// Some exporters write the full [N C D...] shape; the spec wants
		// the spatial dimensions only.
		spec := n.Ints("output_shape", nil)
		if len(spec) == nsp+2 {
			spec = spec[2:]
		}
		if len(spec) != nsp {
			return nil, b.errInvalid("output_shape %v has %d values, want %d (the spatial dimensions)", n.Ints("output_shape", nil), len(spec), nsp)
		}
		outShape = make([]int, nsp)
		for i, d := range spec {
			if d < 1 || d > tensor.MaxElements {
				return nil, b.errInvalid("output_shape[%d] is %d, want >= 1", i, d)
			}
			outShape[i] = int(d)
		}
	}
	out := make([]int, nsp)
	pb, pe := make([]int, nsp), make([]int, nsp)
	for i := range nsp {
		s, d := a.strides[i], a.dilations[i]
		if outPad[i] >= s && outPad[i] >= d {
			return nil, b.errInvalid("output_padding[%d] is %d, want less than the stride %d or the dilation %d", i, outPad[i], s, d)
		}
		full := s*(in[i]-1) + outPad[i] + (kernel[i]-1)*d + 1 // the output with no padding
		switch {
		case outShape != nil || a.autoPad == "SAME_UPPER" || a.autoPad == "SAME_LOWER":
			if outShape != nil {
				out[i] = outShape[i]
			} else {
				out[i] = in[i] * s
			}
			// total may be negative when output_shape asks for more
			// than the full result: the extra positions get the bias.
			total := full - out[i]
			if a.autoPad == "SAME_UPPER" {
				pb[i] = floorDivInt(total, 2)
			} else {
				pb[i] = total - floorDivInt(total, 2)
			}
			pe[i] = total - pb[i]
		case a.autoPad == "VALID":
			out[i] = full
		default:
			pb[i], pe[i] = a.pads[i], a.pads[nsp+i]
			out[i] = full - pb[i] - pe[i]
		}
		if out[i] <= 0 {
			return nil, b.errInvalid("spatial axis %d of the output would have size %d (input %d, stride %d, kernel %d, pads %d and %d)",
				i, out[i], in[i], s, kernel[i], pb[i], pe[i])
		}
	}
	return &window{
		in: liftSpatial(in, 1), out: liftSpatial(out, 1), kernel: liftSpatial(kernel, 1),
		stride: liftSpatial(a.strides, 1), dilation: liftSpatial(a.dilations, 1),
		padBegin: liftSpatial(pb, 0), padEnd: liftSpatial(pe, 0),
	}, nil
}

// floorDivInt is a/b rounded toward negative infinity, for b > 0.
func floorDivInt(a, b int) int {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// convTransposeKernel is ConvTranspose as, per image and group, a GEMM
// W' X giving each input position's contribution to every (output
// channel, kernel tap), then col2im adding those into the output.
type convTransposeKernel struct {
	w                       window
	batch, inC, outC, group int
	col32                   []float32
	col64                   []float64
}

func (k *convTransposeKernel) String() string {
	return fmt.Sprintf("ConvTranspose(%d->%d, group %d, %v)", k.inC, k.outC, k.group, &k.w)
}

func (k *convTransposeKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	switch out.Dtype() {
	case gt.Float32:
		k.col32 = convTranspose(k, k.col32, out.Float32s(), ins[0].Float32s(), ins[1].Float32s(), convBias[float32](ins))
	case gt.Float64:
		k.col64 = convTranspose(k, k.col64, out.Float64s(), ins[0].Float64s(), ins[1].Float64s(), convBias[float64](ins))
	default:
		return fmt.Errorf("dtype %v not supported", out.Dtype())
	}
	return nil
}

func convTranspose[T float32 | float64](k *convTransposeKernel, col, y, x, w, bias []T) []T {
	cg, mg := k.inC/k.group, k.outC/k.group
	rows, pin, pout := mg*k.w.kernelSize(), k.w.inSize(), k.w.outSize()
	if len(col) < rows*pin {
		col = make([]T, rows*pin)
	}
	for n := range k.batch {
		for g := range k.group {
			xg := x[(n*k.inC+g*cg)*pin : (n*k.inC+(g+1)*cg)*pin]
			yg := y[(n*k.outC+g*mg)*pout : (n*k.outC+(g+1)*mg)*pout]
			wg := w[g*cg*rows : (g+1)*cg*rows] // [C/group, M/group * kernel]
			for m := range mg {
				var v T
				if bias != nil {
					v = bias[g*mg+m]
				}
				setAll(yg[m*pout:(m+1)*pout], v)
			}
			blasGemm(true, false, rows, pin, cg, wg, rows, xg, pin, 0, col[:rows*pin], pin)
			col2im(&k.w, mg, col, yg)
		}
	}
	return col
}

// col2im adds the [channels * kernel, input positions] matrix into the
// output: the inverse walk of im2col.
func col2im[T float32 | float64](w *window, channels int, col, y []T) {
	pin, outPlane := w.inSize(), w.outSize()
	r := 0
	for c := range channels {
		yc := y[c*outPlane : (c+1)*outPlane]
		for k0 := range w.kernel[0] {
			off0 := k0*w.dilation[0] - w.padBegin[0]
			lo0, hi0 := tapRange(w.in[0], w.stride[0], off0, w.out[0])
			for k1 := range w.kernel[1] {
				off1 := k1*w.dilation[1] - w.padBegin[1]
				lo1, hi1 := tapRange(w.in[1], w.stride[1], off1, w.out[1])
				for k2 := range w.kernel[2] {
					off2 := k2*w.dilation[2] - w.padBegin[2]
					lo2, hi2 := tapRange(w.in[2], w.stride[2], off2, w.out[2])
					s2 := w.stride[2]
					row := col[r*pin : (r+1)*pin]
					r++
					for i0 := lo0; i0 < hi0; i0++ {
						o0 := i0*w.stride[0] + off0
						for i1 := lo1; i1 < hi1; i1++ {
							o1 := i1*w.stride[1] + off1
							dst := yc[(o0*w.out[1]+o1)*w.out[2]:]
							src := row[(i0*w.in[1]+i1)*w.in[2]:]
							for i2 := lo2; i2 < hi2; i2++ {
								dst[i2*s2+off2] += src[i2]
							}
						}
					}
				}
			}
		}
	}
}

// blasGemm computes c = op(a) op(b) + beta c for row-major matrices, op
// transposing when asked: op(a) is m x k, op(b) k x n. It calls the BLAS
// Gorgonia uses (gonum's by default, or whatever gorgonia.Use installed),
// so Conv speeds up with MatMul when a faster one is plugged in.
func blasGemm[T float32 | float64](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 { // the BLAS refuses lda = 0; the product is empty
		for i := range m {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
		return
	}
	ta, tb := blas.NoTrans, blas.NoTrans
	if transA {
		ta = blas.Trans
	}
	if transB {
		tb = blas.Trans
	}
	switch a := any(a).(type) {
	case []float32:
		G.WhichBLAS().Sgemm(ta, tb, m, n, k, 1, a, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		G.WhichBLAS().Dgemm(ta, tb, m, n, k, 1, a, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// blasMatmulKernel is MatMul over stacks of float matrices (numpy's
// batched, broadcasting matmul): matmulKernel's plan, with each matrix
// product a BLAS GEMM rather than a plain loop.
type blasMatmulKernel struct{ *matmulKernel }

func (k blasMatmulKernel) run(out *gt.Dense, ins []*gt.Dense) error {
	switch out.Dtype() {
	case gt.Float32:
		matmulBLAS(k.matmulKernel, out.Float32s(), ins[0].Float32s(), ins[1].Float32s())
	case gt.Float64:
		matmulBLAS(k.matmulKernel, out.Float64s(), ins[0].Float64s(), ins[1].Float64s())
	default:
		return k.matmulKernel.run(out, ins)
	}
	return nil
}

func matmulBLAS[T float32 | float64](k *matmulKernel, out, a, b []T) {
	mn := k.m * k.n
	for i := range k.aOff {
		blasGemm(false, false, k.m, k.n, k.k, a[k.aOff[i]:k.aOff[i]+k.m*k.k], k.k, b[k.bOff[i]:k.bOff[i]+k.k*k.n], k.n, 0, out[i*mn:(i+1)*mn], k.n)
	}
}
