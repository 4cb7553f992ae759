package quantize

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
	"github.com/corvidml/corvid/kernels"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// perChannel quantizes w, of the given shape, to int8 symmetrically per
// index along axis (kernels.QuantizeWeightsS8's rule: scale = max|w| / 127
// over the channel, zero point 0). It returns the int8 values in w's layout
// and one scale per channel.
func perChannel(w []float32, shape []int64, axis int) ([]int8, []float32, error) {
	outer, n, inner := 1, int(shape[axis]), 1
	for _, d := range shape[:axis] {
		outer *= int(d)
	}
	for _, d := range shape[axis+1:] {
		inner *= int(d)
	}
	// QuantizeWeightsS8 quantizes per column of a [rows][n] matrix: move
	// the channel axis last.
	rows := outer * inner
	t := make([]float32, rows*n)
	for o := range outer {
		for i := range n {
			for j := range inner {
				t[(o*inner+j)*n+i] = w[(o*n+i)*inner+j]
			}
		}
	}
	qt, scales, err := kernels.QuantizeWeightsS8(t, rows, n)
	if err != nil {
		return nil, nil, err
	}
	q := make([]int8, len(w))
	for o := range outer {
		for i := range n {
			for j := range inner {
				q[(o*n+i)*inner+j] = qt[(o*inner+j)*n+i]
			}
		}
	}
	return q, scales, nil
}

// transpose2D returns the [c][r] transpose of the row-major [r][c] matrix w.
func transpose2D(w []float32, r, c int) []float32 {
	t := make([]float32, len(w))
	for i := range r {
		for j := range c {
			t[j*r+i] = w[i*c+j]
		}
	}
	return t
}

func finite(w []float32) bool {
	for _, v := range w {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}

// initializerValue decodes an initializer with server/onnx's checks.
func initializerValue(tp *onnxpb.TensorProto) (*tensor.Tensor, error) {
	b, err := proto.Marshal(tp)
	if err != nil {
		return nil, err
	}
	_, t, err := onnx.DecodeTensor(b)
	return t, err
}

func floatInit(name string, dims []int64, v []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return &onnxpb.TensorProto{Name: name, Dims: dims, DataType: int32(onnxpb.TensorProto_FLOAT), RawData: raw}
}

func int8Init(name string, dims []int64, v []int8) *onnxpb.TensorProto {
	raw := make([]byte, len(v))
	for i, x := range v {
		raw[i] = byte(x)
	}
	return &onnxpb.TensorProto{Name: name, Dims: dims, DataType: int32(onnxpb.TensorProto_INT8), RawData: raw}
}

func uint8Init(name string, dims []int64, v []uint8) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: name, Dims: dims, DataType: int32(onnxpb.TensorProto_UINT8), RawData: append([]byte(nil), v...)}
}

// ---- attributes ---------------------------------------------------------

func attr(n *onnxpb.NodeProto, name string) *onnxpb.AttributeProto {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

func intAttr(n *onnxpb.NodeProto, name string, def int64) int64 {
	if a := attr(n, name); a != nil {
		return a.GetI()
	}
	return def
}

func floatAttr(n *onnxpb.NodeProto, name string, def float32) float32 {
	if a := attr(n, name); a != nil {
		return a.GetF()
	}
	return def
}

func dropAttrs(n *onnxpb.NodeProto, names ...string) {
	kept := n.Attribute[:0]
	for _, a := range n.Attribute {
		drop := false
		for _, name := range names {
			drop = drop || a.GetName() == name
		}
		if !drop {
			kept = append(kept, a)
		}
	}
	n.Attribute = kept
}

func intAttrProto(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INT, I: v}
}

func node(name, op string, ins, outs []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{Name: name, OpType: op, Input: ins, Output: outs, Attribute: attrs}
}

// namer hands out value and node names not yet used in the graph.
type namer struct{ used map[string]bool }

func newNamer(gp *onnxpb.GraphProto) *namer {
	n := &namer{used: map[string]bool{}}
	for _, vi := range gp.GetInput() {
		n.used[vi.GetName()] = true
	}
	for _, vi := range gp.GetOutput() {
		n.used[vi.GetName()] = true
	}
	for _, vi := range gp.GetValueInfo() {
		n.used[vi.GetName()] = true
	}
	for _, tp := range gp.GetInitializer() {
		n.used[tp.GetName()] = true
	}
	for _, np := range gp.GetNode() {
		n.used[np.GetName()] = true
		for _, s := range np.GetInput() {
			n.used[s] = true
		}
		for _, s := range np.GetOutput() {
			n.used[s] = true
		}
	}
	return n
}

func (n *namer) fresh(base string) string {
	name := base
	for i := 2; n.used[name]; i++ {
		name = fmt.Sprintf("%s_%d", base, i)
	}
	n.used[name] = true
	return name
}
