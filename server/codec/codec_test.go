package codec

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

// sizes of raw payloads: none, under grpc-go's 1 KiB pooling threshold, at
// and around class edges, one HTTP/2 frame and many, above 1 MiB.
var sizes = []int{0, 100, 1000, 1025, 4090, 4097, 16 << 10, 100_000, 1<<20 + 3, 5 << 20}

// soil fills a buffer of every class up to 2^23 with 0xa5 and returns it to
// the pool, so that later Gets may hand out dirty memory.
func soil() {
	for c := minClass; c <= 23; c++ {
		b := pool.Get(1 << c)
		for i := range *b {
			(*b)[i] = 0xa5
		}
		pool.Put(b)
	}
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestMarshalUnmarshal checks Marshal against proto.Marshal byte for byte,
// and Unmarshal of the same bytes cut into frames of several sizes, with
// dirty buffers in the pool.
func TestMarshalUnmarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range sizes {
		soil()
		m := &corvidv1.Tensor{Dtype: corvidv1.DataType_DATA_TYPE_UINT8, Shape: []int64{int64(n)}, Raw: randomBytes(r, n)}
		want, err := proto.Marshal(m) // a Tensor has no map: one encoding
		if err != nil {
			t.Fatal(err)
		}
		got, err := Codec{}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Materialize(), want) {
			t.Fatalf("%d raw bytes: Marshal differs from proto.Marshal", n)
		}
		got.Free()
		for _, frame := range []int{16 << 10, 1000, len(want) + 1} {
			var data mem.BufferSlice
			for rest := want; len(rest) > 0; rest = rest[min(frame, len(rest)):] {
				data = append(data, mem.SliceBuffer(rest[:min(frame, len(rest))]))
			}
			back := new(corvidv1.Tensor)
			if err := (Codec{}).Unmarshal(data, back); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(back, m) {
				t.Fatalf("%d raw bytes in frames of %d: Unmarshal gives another tensor", n, frame)
			}
		}
	}
}

func TestNotAMessage(t *testing.T) {
	if _, err := (Codec{}).Marshal(42); err == nil {
		t.Fatal("Marshal(42) succeeded")
	}
	if err := (Codec{}).Unmarshal(nil, new(int)); err == nil {
		t.Fatal("Unmarshal into *int succeeded")
	}
}

func TestPoolClasses(t *testing.T) {
	for _, c := range []struct{ n, cap int }{
		{1, 1 << minClass}, {4096, 4096}, {4097, 8192}, {100_000, 128 << 10},
		{1 << maxClass, 1 << maxClass}, {1<<maxClass + 1, 1<<maxClass + 1},
	} {
		b := pool.Get(c.n)
		if len(*b) != c.n || cap(*b) != c.cap {
			t.Errorf("Get(%d): len %d cap %d, want len %d cap %d", c.n, len(*b), cap(*b), c.n, c.cap)
		}
		pool.Put(b)
	}
	odd := make([]byte, 5000)
	pool.Put(&odd) // not a class size: dropped
	if b := pool.Get(5000); cap(*b) != 8192 {
		t.Errorf("Get(5000) after Put of a 5000-byte buffer: cap %d, want 8192", cap(*b))
	}
}

type echo struct {
	corvidv1.UnimplementedInferenceServiceServer
}

func (echo) Predict(_ context.Context, req *corvidv1.PredictRequest) (*corvidv1.PredictResponse, error) {
	return &corvidv1.PredictResponse{Model: req.GetModel(), Outputs: req.GetInputs()}, nil
}

// TestOverGRPC sends tensors of every size through a real gRPC server on
// loopback and back, with the codec on both ends and on one end only
// against grpc-go's own: the bytes on the wire are the same protobuf.
func TestOverGRPC(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const limit = 16 << 20
	for _, ends := range []struct {
		name           string
		server, client bool
	}{{"both", true, true}, {"server", true, false}, {"client", false, true}} {
		t.Run(ends.name, func(t *testing.T) {
			opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(limit)}
			if ends.server {
				opts = append(opts, grpc.ForceServerCodecV2(Codec{}))
			}
			srv := grpc.NewServer(opts...)
			corvidv1.RegisterInferenceServiceServer(srv, echo{})
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(lis)
			defer srv.Stop()
			callOpts := []grpc.CallOption{grpc.MaxCallRecvMsgSize(limit), grpc.MaxCallSendMsgSize(limit)}
			if ends.client {
				callOpts = append(callOpts, grpc.ForceCodecV2(Codec{}))
			}
			conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(callOpts...))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			cl := corvidv1.NewInferenceServiceClient(conn)
			for round := range 2 { // the second round reuses the pool's buffers
				for _, n := range sizes {
					raw := randomBytes(r, n)
					model := fmt.Sprintf("m-%d-%d", round, n)
					resp, err := cl.Predict(context.Background(), &corvidv1.PredictRequest{Model: model,
						Inputs: map[string]*corvidv1.Tensor{"x": {Dtype: corvidv1.DataType_DATA_TYPE_UINT8, Shape: []int64{int64(n)}, Raw: raw}}})
					if err != nil {
						t.Fatalf("%d bytes: %v", n, err)
					}
					if resp.GetModel() != model || !bytes.Equal(resp.GetOutputs()["x"].GetRaw(), raw) {
						t.Fatalf("round %d, %d bytes: the echo differs from the request", round, n)
					}
				}
			}
		})
	}
}
