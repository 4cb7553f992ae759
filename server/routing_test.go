package server_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
	"github.com/corvidml/corvid/server/config"
)

// TestTrafficSplit: with routing.traffic {1: 90, 2: 10}, 10,000 requests
// without a key land within ±2 points of the weights; a routing key (the
// request's field, or the metadata key sticky_by names) always reaches the
// same version; a version or label asked for is served whatever the split;
// ModelStatus shows the weights.
func TestTrafficSplit(t *testing.T) {
	model := digitsModel(t)
	dir := modelsDir(t, map[string][]byte{
		"digits/model.yaml":   []byte("routing: {traffic: {1: 90, 2: 10}}\n"),
		"digits/1/model.onnx": model,
		"digits/2/model.onnx": model,
		"sticky/model.yaml":   []byte("routing: {traffic: {1: 50, 2: 50}, sticky_by: x-user}\n"),
		"sticky/1/model.onnx": model,
		"sticky/2/model.onnx": model,
	})
	in := start(t, dir)
	ctx := context.Background()
	h := loadHeldout(t)
	x := map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.flatten(0, 1), 1, 64)}

	const n = 10000
	counts := map[int64]int{}
	for range n {
		resp, err := in.client.Predict(ctx, "digits", x)
		if err != nil {
			t.Fatal(err)
		}
		counts[resp.GetVersion()]++
	}
	if share := float64(counts[2]) / n; math.Abs(share-0.10) > 0.02 {
		t.Errorf("version 2 served %.3f of requests, want 0.10 ± 0.02 (counts %v)", share, counts)
	}
	t.Logf("90/10 split over %d requests: %v", n, counts)

	for _, model := range []string{"digits", "sticky"} {
		moved := 0
		spread := map[int64]int{}
		for k := range 200 {
			key := fmt.Sprintf("user-%d", k)
			var first int64
			for i := range 5 {
				var resp *corvidv1.PredictResponse
				var err error
				if model == "sticky" {
					resp, err = in.client.Predict(metadata.AppendToOutgoingContext(ctx, "x-user", key), model, x)
				} else {
					resp, err = in.client.Predict(ctx, model, x, corvid.RoutingKey(key))
				}
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = resp.GetVersion()
					spread[first]++
				} else if resp.GetVersion() != first {
					moved++
				}
			}
		}
		if moved != 0 {
			t.Errorf("%s: a routing key changed version %d times", model, moved)
		}
		if len(spread) != 2 {
			t.Errorf("%s: 200 keys all reached %v: the key must still split", model, spread)
		}
	}

	if resp, err := in.client.Predict(ctx, "digits", x, corvid.Version(2)); err != nil || resp.GetVersion() != 2 {
		t.Errorf("version 2 asked for: %v, %v", resp.GetVersion(), err)
	}
	info, err := in.client.ModelStatus(ctx, "digits")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range info.GetVersions() {
		if want := map[int64]int32{1: 90, 2: 10}[v.GetVersion()]; v.GetTrafficWeight() != want {
			t.Errorf("v%d traffic weight %d, want %d", v.GetVersion(), v.GetTrafficWeight(), want)
		}
	}
}

// TestShadow: the shadow version gets copies of the traffic, never callers;
// a shadow that disagrees (another model: it predicts a constant class)
// shows agreement below 1 and above 0 in ModelStatus, with its latency.
func TestShadow(t *testing.T) {
	model := digitsModel(t)
	dir := modelsDir(t, map[string][]byte{
		"digits/model.yaml":   []byte("routing: {shadow: {version: 2, sample: 1.0, queue_size: 1024, timeout: 5s}}\n"),
		"digits/1/model.onnx": model,
		"digits/2/model.onnx": constantClassModel(t),
	})
	in := start(t, dir, func(c *config.Config) { c.RescanInterval = config.Duration(time.Second) })
	ctx := context.Background()
	h := loadHeldout(t)
	for i := range 50 {
		resp, err := in.client.Predict(ctx, "digits", map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(h.flatten(i*4, i*4+4), 4, 64)})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetVersion() != 1 {
			t.Fatalf("a caller was served by version %d, want 1 (2 is the shadow)", resp.GetVersion())
		}
	}
	var sh *corvidv1.ShadowStatus
	waitFor(t, func() bool {
		info, err := in.client.ModelStatus(ctx, "digits")
		if err != nil {
			return false
		}
		sh = info.GetVersions()[1].GetShadow()
		return sh != nil && sh.GetCompared()+sh.GetDropped()+sh.GetFailed() == 50
	})
	if sh.GetCompared() == 0 || sh.GetLabelRows() != 4*sh.GetCompared() {
		t.Errorf("shadow compared %d requests, %d label rows: want 4 rows per request", sh.GetCompared(), sh.GetLabelRows())
	}
	if a := sh.GetAgreement(); !(a > 0 && a < 0.5) {
		t.Errorf("agreement %v with a constant-class shadow: want about 0.1", a)
	}
	if sh.GetLatencyP50().AsDuration() <= 0 || sh.GetMaxAbsDiff() <= 0 {
		t.Errorf("shadow latency %v, max abs diff %v: want both > 0", sh.GetLatencyP50().AsDuration(), sh.GetMaxAbsDiff())
	}
	t.Logf("shadow: %v", sh)
}

// constantClassModel has the digits model's signature (input fp32 [N 64];
// label int64 [N], probabilities fp32 [N 10]) but always predicts class 3.
func constantClassModel(t *testing.T) []byte {
	t.Helper()
	f32 := func(name string, dims []int64, vals []float32) *onnxpb.TensorProto {
		return &onnxpb.TensorProto{Name: name, Dims: dims, DataType: 1, FloatData: vals}
	}
	bias := make([]float32, 10)
	bias[3] = 5
	info := valueInfo
	axis := &onnxpb.AttributeProto{Name: "axis", Type: onnxpb.AttributeProto_INT, I: 1}
	keep := &onnxpb.AttributeProto{Name: "keepdims", Type: onnxpb.AttributeProto_INT, I: 0}
	m := &onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}}, Graph: &onnxpb.GraphProto{
		Name: "constant",
		Node: []*onnxpb.NodeProto{
			{Name: "mm", OpType: "MatMul", Input: []string{"input", "w"}, Output: []string{"z"}},
			{Name: "add", OpType: "Add", Input: []string{"z", "b"}, Output: []string{"logits"}},
			{Name: "softmax", OpType: "Softmax", Input: []string{"logits"}, Output: []string{"probabilities"}, Attribute: []*onnxpb.AttributeProto{axis}},
			{Name: "argmax", OpType: "ArgMax", Input: []string{"probabilities"}, Output: []string{"label"}, Attribute: []*onnxpb.AttributeProto{axis, keep}},
		},
		Initializer: []*onnxpb.TensorProto{f32("w", []int64{64, 10}, make([]float32, 640)), f32("b", []int64{10}, bias)},
		Input:       []*onnxpb.ValueInfoProto{info("input", 1, -1, 64)},
		Output:      []*onnxpb.ValueInfoProto{info("label", 7, -1), info("probabilities", 1, -1, 10)},
	}}
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// valueInfo declares a tensor for hand-built ONNX models: elem is the ONNX
// element type, a -1 dimension is dynamic ("N").
func valueInfo(name string, elem int32, dims ...int64) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}}
		if d < 0 {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: elem, Shape: shape}}}}
}
