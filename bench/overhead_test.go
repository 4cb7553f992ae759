package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
)

// echoService answers Predict with the request's own inputs.
type echoService struct {
	corvidv1.UnimplementedInferenceServiceServer
}

func (echoService) Predict(_ context.Context, req *corvidv1.PredictRequest) (*corvidv1.PredictResponse, error) {
	return &corvidv1.PredictResponse{Model: req.GetModel(), Outputs: req.GetInputs()}, nil
}

// identityModel is an ONNX model whose output "y" is its input "x", [N 768]
// float32: serving it costs what serving costs, and next to no compute.
func identityModel(b *testing.B) []byte {
	info := func(name string) *onnxpb.ValueInfoProto {
		dims := []*onnxpb.TensorShapeProto_Dimension{
			{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}},
			{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 768}}}
		return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: 1, Shape: &onnxpb.TensorShapeProto{Dim: dims}}}}}
	}
	g := &onnxpb.GraphProto{Name: "identity", Input: []*onnxpb.ValueInfoProto{info("x")}, Output: []*onnxpb.ValueInfoProto{info("y")},
		Node: []*onnxpb.NodeProto{{Name: "id", OpType: "Identity", Input: []string{"x"}, Output: []string{"y"}}}}
	data, err := proto.Marshal(&onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}}, Graph: g})
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkServingOverhead measures, in one run, Predict of batch 1 and 32
// rows of 768 float32 (3 KiB and 98 KiB each way) one request at a time:
// against a bare grpc-go server that echoes the request (grpc-go's defaults
// on both ends), and against Corvid serving an Identity model through the Go
// SDK. Corvid's p50 minus the echo's is what serving adds to moving the
// bytes.
func BenchmarkServingOverhead(b *testing.B) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	echo := grpc.NewServer()
	corvidv1.RegisterInferenceServiceServer(echo, echoService{})
	go echo.Serve(lis)
	b.Cleanup(echo.Stop)
	echoClient := corvidv1.NewInferenceServiceClient(dial(b, lis.Addr().String()))

	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "identity", "1"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "identity", "1", "model.onnx"), identityModel(b), 0o644); err != nil {
		b.Fatal(err)
	}
	c, err := corvid.Dial(serveDir(b, dir).GRPCAddr())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	ctx := context.Background()
	for _, batch := range []int64{1, 32} {
		x := make([]float32, batch*768)
		for i := range x {
			x[i] = float32(i%17) - 8
		}
		in := map[string]*corvidv1.Tensor{"x": corvid.Float32Tensor(x, batch, 768)}
		b.Run(fmt.Sprintf("batch=%d/grpc-echo", batch), func(b *testing.B) {
			req := &corvidv1.PredictRequest{Model: "identity", Inputs: in}
			measure(b, func() error {
				_, err := echoClient.Predict(ctx, req)
				return err
			})
		})
		b.Run(fmt.Sprintf("batch=%d/corvid", batch), func(b *testing.B) {
			measure(b, func() error {
				_, err := c.Predict(ctx, "identity", in)
				return err
			})
		})
	}
}
