package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/corvidml/corvid/bench/stats"
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

// quantModel is a model BenchmarkQuantServing and BenchmarkKernelLinger
// serve: its name, its ONNX bytes, and the shape of one row of its input.
type quantModel struct {
	name  string
	model []byte
	shape []int64
}

// rowLen is how many elements one row of m's input holds.
func (m quantModel) rowLen() int64 {
	n := int64(1)
	for _, d := range m.shape {
		n *= d
	}
	return n
}

// quantModels returns the 768-3072-768 MLP and the digits CNN.
func quantModels(b *testing.B) []quantModel {
	cnn, err := os.ReadFile(filepath.Join("..", "testdata", "digits_cnn", "1", "model.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	return []quantModel{
		{"mlp768", mlpModel(b, 768, 3072, 768), []int64{768}},
		{"cnn", cnn, []int64{1, 8, 8}},
	}
}

// serveQuant starts a server with each of models in each of modes, as
// "<name>-<mode>", and returns its gRPC address.
func serveQuant(b *testing.B, models []quantModel, modes []string) string {
	dir := b.TempDir()
	for _, m := range models {
		for _, mode := range modes {
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
	return serveDir(b, dir).GRPCAddr()
}

// BenchmarkQuantServing serves the 768-3072-768 MLP and the digits CNN in
// fp32 and int8-dynamic (model.yaml) on one server and measures Predict
// over gRPC at batch 1 and 32: latency one request at a time (p50, p99)
// and throughput with 4 concurrent clients (rows/s), each mode in its own
// sub-benchmark; then int8-vs-fp32, the two modes in turn in windows of 20
// requests, which reports, per round of one window each, fp32's p50 over
// int8's: its median (speedup-p50) and quartiles over the rounds, and each
// mode's p50 over all its requests. The host's speed drifts between
// sub-benchmarks; within a round both modes meet the same state.
func BenchmarkQuantServing(b *testing.B) {
	models, modes := quantModels(b), []string{"fp32", "int8-dynamic"}
	addr := serveQuant(b, models, modes)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	for _, m := range models {
		row := m.rowLen()
		// One client per mode, and the name of its model's input.
		clients, inputs := make([]*corvid.Client, len(modes)), make([]string, len(modes))
		for i, mode := range modes {
			c, err := corvid.Dial(addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			st, err := c.ModelStatus(ctx, m.name+"-"+mode)
			if err != nil {
				b.Fatal(err)
			}
			clients[i], inputs[i] = c, st.GetVersions()[0].GetInputs()[0].GetName()
		}
		for _, batch := range []int64{1, 32} {
			x := make([]float32, batch*row)
			for i := range x {
				x[i] = float32(r.Float64() * 4)
			}
			in := corvid.Float32Tensor(x, append([]int64{batch}, m.shape...)...)
			predict := make([]func() error, len(modes))
			for i, mode := range modes {
				c, name, req := clients[i], m.name+"-"+mode, map[string]*corvidv1.Tensor{inputs[i]: in}
				predict[i] = func() error {
					_, err := c.Predict(ctx, name, req)
					return err
				}
				prefix := fmt.Sprintf("%s/batch=%d/%s/", m.name, batch, mode)
				b.Run(prefix+"latency", func(b *testing.B) { measure(b, predict[i]) })
				b.Run(prefix+"throughput", func(b *testing.B) {
					b.SetParallelism(2) // 2 x GOMAXPROCS clients
					start := time.Now()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := predict[i](); err != nil {
								b.Error(err)
								return
							}
						}
					})
					b.ReportMetric(float64(b.N)*float64(batch)/time.Since(start).Seconds(), "rows/s")
				})
			}
			b.Run(fmt.Sprintf("%s/batch=%d/int8-vs-fp32", m.name, batch), func(b *testing.B) {
				fp32, int8 := interleave(b, 20, "fp32", predict[0], "int8", predict[1])
				stats.Ratio(b, "speedup-p50", fp32, int8)
			})
		}
	}
}

// interleave runs a and then b (b first in every other round) window times
// each per round, b.N requests in all (at least three rounds), after a
// warm-up. It reports each one's p50 over all its requests, as
// <aName>-p50-µs and <bName>-p50-µs, and returns each round's p50 of each.
func interleave(bm *testing.B, window int, aName string, a func() error, bName string, b func() error) (aP50, bP50 []float64) {
	bm.Helper()
	ops := []func() error{a, b}
	for range 50 {
		for _, op := range ops {
			if err := op(); err != nil {
				bm.Fatal(err)
			}
		}
	}
	rounds := max(bm.N/(2*window), 3)
	var all [2][]time.Duration
	var p50 [2][]float64
	lat := make([]time.Duration, window)
	bm.ResetTimer()
	for round := range rounds {
		for k := range 2 {
			v := k ^ round&1
			for i := range lat {
				t0 := time.Now()
				if err := ops[v](); err != nil {
					bm.Fatal(err)
				}
				lat[i] = time.Since(t0)
			}
			all[v] = append(all[v], lat...)
			p50[v] = append(p50[v], median(lat))
		}
	}
	bm.StopTimer()
	bm.ReportMetric(median(all[0]), aName+"-p50-µs")
	bm.ReportMetric(median(all[1]), bName+"-p50-µs")
	return p50[0], p50[1]
}

// median returns the median of d in µs (sorting d).
func median(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2].Nanoseconds()) / 1e3
}
