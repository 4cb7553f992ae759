package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
)

// mlpModel returns an ONNX MLP with the given layer sizes (Gemm + Relu
// between layers, no activation after the last), random weights from a
// fixed seed, input "x" [N sizes[0]] and output "y".
func mlpModel(b *testing.B, sizes ...int64) []byte { return buildMLP(b, false, sizes...) }

// slowDigitsModel has the digits model's signature (input [N 64]; label and
// probabilities over 10 classes) but a 64-2048-2048-10 MLP behind it: some
// 4.3 M multiply-accumulates per row, about 70 times the digits model.
func slowDigitsModel(b *testing.B) []byte { return buildMLP(b, true, 64, 2048, 2048, 10) }

// buildMLP writes the MLP; classifier names the input "input" and adds a
// Softmax ("probabilities") and an ArgMax ("label") after the last layer.
func buildMLP(b *testing.B, classifier bool, sizes ...int64) []byte {
	b.Helper()
	r := rand.New(rand.NewPCG(7, 8))
	floats := func(name string, dims ...int64) *onnxpb.TensorProto {
		n := int64(1)
		for _, d := range dims {
			n *= d
		}
		raw := make([]byte, 4*n)
		for i := range n {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(r.NormFloat64()*0.05)))
		}
		return &onnxpb.TensorProto{Name: name, Dims: dims, DataType: 1, RawData: raw}
	}
	info := func(name string, elem int32, n int64) *onnxpb.ValueInfoProto {
		dims := []*onnxpb.TensorShapeProto_Dimension{{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}}}
		if n > 0 {
			dims = append(dims, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: n}})
		}
		return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: elem, Shape: &onnxpb.TensorShapeProto{Dim: dims}}}}}
	}
	input, last := "x", sizes[len(sizes)-1]
	if classifier {
		input = "input"
	}
	g := &onnxpb.GraphProto{Name: "mlp", Input: []*onnxpb.ValueInfoProto{info(input, 1, sizes[0])}}
	prev := input
	for i := 1; i < len(sizes); i++ {
		w, bias, out := fmt.Sprintf("w%d", i), fmt.Sprintf("b%d", i), fmt.Sprintf("h%d", i)
		g.Initializer = append(g.Initializer, floats(w, sizes[i-1], sizes[i]), floats(bias, sizes[i]))
		if i == len(sizes)-1 {
			out = "y"
		}
		g.Node = append(g.Node, &onnxpb.NodeProto{Name: "fc" + out, OpType: "Gemm", Input: []string{prev, w, bias}, Output: []string{out}})
		prev = out
		if i < len(sizes)-1 {
			g.Node = append(g.Node, &onnxpb.NodeProto{Name: "relu" + out, OpType: "Relu", Input: []string{out}, Output: []string{out + "r"}})
			prev = out + "r"
		}
	}
	g.Output = []*onnxpb.ValueInfoProto{info("y", 1, last)}
	if classifier {
		axis := &onnxpb.AttributeProto{Name: "axis", Type: onnxpb.AttributeProto_INT, I: 1}
		keep := &onnxpb.AttributeProto{Name: "keepdims", Type: onnxpb.AttributeProto_INT, I: 0}
		g.Node = append(g.Node,
			&onnxpb.NodeProto{Name: "softmax", OpType: "Softmax", Input: []string{"y"}, Output: []string{"probabilities"}, Attribute: []*onnxpb.AttributeProto{axis}},
			&onnxpb.NodeProto{Name: "argmax", OpType: "ArgMax", Input: []string{"probabilities"}, Output: []string{"label"}, Attribute: []*onnxpb.AttributeProto{axis, keep}})
		g.Output = []*onnxpb.ValueInfoProto{info("label", 7, 0), info("probabilities", 1, last)}
	}
	data, err := proto.Marshal(&onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}}, Graph: g})
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkQuantServing serves the 768-3072-768 MLP and the digits CNN in
// fp32 and int8-dynamic (model.yaml) on one server and measures Predict
// over gRPC at batch 1 and 32: latency one request at a time (p50, p99)
// and throughput with 4 concurrent clients (rows/s). Compare fp32 and int8
// rows of the same run.
func BenchmarkQuantServing(b *testing.B) {
	dir := b.TempDir()
	cnn, err := os.ReadFile(filepath.Join("..", "testdata", "digits_cnn", "1", "model.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	models := []struct {
		name  string
		model []byte
		shape []int64 // one row
	}{
		{"mlp768", mlpModel(b, 768, 3072, 768), []int64{768}},
		{"cnn", cnn, []int64{1, 8, 8}},
	}
	for _, m := range models {
		for _, mode := range []string{"fp32", "int8-dynamic"} {
			p := filepath.Join(dir, m.name+"-"+mode)
			if err := os.MkdirAll(filepath.Join(p, "1"), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(p, "1", "model.onnx"), m.model, 0o644); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(p, "model.yaml"), []byte("quantization: "+mode+"\n"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	addr := serveDir(b, dir).GRPCAddr()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	for _, m := range models {
		row := int64(1)
		for _, d := range m.shape {
			row *= d
		}
		for _, batch := range []int64{1, 32} {
			x := make([]float32, batch*row)
			for i := range x {
				x[i] = float32(r.Float64() * 4)
			}
			in := map[string]*corvidv1.Tensor{"": corvid.Float32Tensor(x, append([]int64{batch}, m.shape...)...)}
			for _, mode := range []string{"fp32", "int8-dynamic"} {
				name := m.name + "-" + mode
				c, err := corvid.Dial(addr)
				if err != nil {
					b.Fatal(err)
				}
				st, err := c.ModelStatus(ctx, name)
				if err != nil {
					b.Fatal(err)
				}
				input := st.GetVersions()[0].GetInputs()[0].GetName()
				req := map[string]*corvidv1.Tensor{input: in[""]}
				prefix := fmt.Sprintf("%s/batch=%d/%s/", m.name, batch, mode)
				b.Run(prefix+"latency", func(b *testing.B) {
					measure(b, func() error {
						_, err := c.Predict(ctx, name, req)
						return err
					})
				})
				b.Run(prefix+"throughput", func(b *testing.B) {
					b.SetParallelism(2) // 2 x GOMAXPROCS clients
					start := time.Now()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := c.Predict(ctx, name, req); err != nil {
								b.Error(err)
								return
							}
						}
					})
					b.ReportMetric(float64(b.N)*float64(batch)/time.Since(start).Seconds(), "rows/s")
				})
				c.Close()
			}
		}
	}
}
