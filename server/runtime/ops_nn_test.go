package runtime

import (
	"math/rand/v2"
	"testing"

	gt "gorgonia.org/tensor"
)

// BenchmarkConvKernel times Conv's kernel alone (im2col and GEMM, no
// graph machinery) on LeNet's layers and a ResNet-style 3x3 layer.
func BenchmarkConvKernel(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	randDense := func(shape ...int) *gt.Dense {
		d := gt.New(gt.Of(gt.Float32), gt.WithShape(shape...))
		for i := range d.Float32s() {
			d.Float32s()[i] = float32(r.NormFloat64())
		}
		return d
	}
	for _, c := range []struct {
		name                     string
		batch, inC, outC, hw, kk int
		stride, pad              int
	}{
		{"lenet1 1x28x28->6x5x5", 1, 1, 6, 28, 5, 1, 0},
		{"lenet1 batch32", 32, 1, 6, 28, 5, 1, 0},
		{"lenet2 6x12x12->16x5x5", 1, 6, 16, 12, 5, 1, 0},
		{"resnet 64x56x56->64x3x3", 1, 64, 64, 56, 3, 1, 1},
		// The digits CNN's layers (testdata/digits_cnn) at batch 32.
		{"digits1 batch32 1x8x8->16x3x3", 32, 1, 16, 8, 3, 1, 1},
		{"digits2 batch32 16x8x8->32x3x3/2", 32, 16, 32, 8, 3, 2, 1},
	} {
		b.Run(c.name, func(b *testing.B) {
			pad, s := c.pad, c.stride
			out := (c.hw+2*pad-c.kk)/s + 1
			k := &convKernel{batch: c.batch, inC: c.inC, outC: c.outC, group: 1, w: window{
				in: [3]int{1, c.hw, c.hw}, out: [3]int{1, out, out}, kernel: [3]int{1, c.kk, c.kk},
				stride: [3]int{1, s, s}, dilation: [3]int{1, 1, 1}, padBegin: [3]int{0, pad, pad}, padEnd: [3]int{0, pad, pad},
			}}
			x, w, bias := randDense(c.batch, c.inC, c.hw, c.hw), randDense(c.outC, c.inC, c.kk, c.kk), randDense(c.outC)
			y := gt.New(gt.Of(gt.Float32), gt.WithShape(c.batch, c.outC, out, out))
			ins := []*gt.Dense{x, w, bias}
			for b.Loop() {
				if err := k.run(y, ins); err != nil {
					b.Fatal(err)
				}
			}
			flops := 2 * float64(c.batch*c.outC*out*out*c.inC*c.kk*c.kk)
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}
