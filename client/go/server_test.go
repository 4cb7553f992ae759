package corvid_test

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Models the fake server knows. Any other name is echoed.
const (
	modelBad   = "bad"   // every request fails alone (InvalidArgument)
	modelHold  = "hold"  // Stream: never answered
	modelBreak = "break" // Stream: the server ends the stream with Unavailable
	modelEmpty = "empty" // Stream: answered with neither a response nor an error
	modelStray = "stray" // Stream: an answer for an unknown id comes first
	modelSlow  = "slow"  // Stream: answered once the test closes fakeServer.release
)

// fakeServer is a small InferenceService: Predict and Stream echo their
// inputs as outputs, with the special models above for the error paths.
type fakeServer struct {
	corvidv1.UnimplementedInferenceServiceServer

	// reverse > 1 makes Stream collect that many answerable requests and
	// answer them last first, to prove matching does not rely on order.
	reverse int
	// received, if set, gets each Stream request's id once the server holds
	// it, so tests can act when the server is known to have a request.
	received chan string
	// release, closed by the test, lets modelSlow requests be answered.
	release chan struct{}

	mu          sync.Mutex
	last        *corvidv1.PredictRequest // last unary request
	md          metadata.MD              // its metadata
	hadDeadline bool                     // whether it came with a deadline
}

func echo(req *corvidv1.PredictRequest) *corvidv1.PredictResponse {
	return &corvidv1.PredictResponse{
		Model:     req.GetModel(),
		Version:   max(req.GetVersion(), 1),
		Outputs:   req.GetInputs(),
		RequestId: req.GetRequestId(),
	}
}

// errBad is the error for modelBad, with a detail to show details survive.
func errBad(req *corvidv1.PredictRequest) *status.Status {
	st := status.Newf(codes.InvalidArgument, "model %q rejects request %q", req.GetModel(), req.GetRequestId())
	st, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: "inputs", Description: "fake rejection"},
	}})
	if err != nil {
		panic(err)
	}
	return st
}

func (f *fakeServer) Predict(ctx context.Context, req *corvidv1.PredictRequest) (*corvidv1.PredictResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	_, hasDeadline := ctx.Deadline()
	f.mu.Lock()
	f.last, f.md, f.hadDeadline = req, md, hasDeadline
	f.mu.Unlock()
	if req.GetModel() == modelBad {
		return nil, errBad(req).Err()
	}
	return echo(req), nil
}

// lastCall returns what the last unary Predict received.
func (f *fakeServer) lastCall() (*corvidv1.PredictRequest, metadata.MD, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last, f.md, f.hadDeadline
}

func (f *fakeServer) Stream(stream corvidv1.InferenceService_StreamServer) error {
	// Slow answers are sent from their own goroutines, and a gRPC stream
	// takes one sender at a time.
	var (
		sendMu sync.Mutex
		slow   sync.WaitGroup
	)
	defer slow.Wait()
	send := func(resp *corvidv1.StreamResponse) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(resp)
	}

	var held []*corvidv1.PredictRequest
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil // requests still held are never answered, like modelHold
		}
		if err != nil {
			return err
		}
		req := in.GetRequest()
		if f.received != nil {
			f.received <- req.GetRequestId()
		}
		switch req.GetModel() {
		case modelHold:
			continue
		case modelBreak:
			return status.Error(codes.Unavailable, "fake server broke the stream")
		case modelEmpty:
			err = send(&corvidv1.StreamResponse{RequestId: req.GetRequestId()})
		case modelStray:
			err = errors.Join(
				send(&corvidv1.StreamResponse{RequestId: "stray-" + req.GetRequestId()}),
				send(streamAnswer(req)))
		case modelSlow:
			slow.Go(func() {
				select {
				case <-f.release:
					_ = send(streamAnswer(req))
				case <-stream.Context().Done():
				}
			})
		default:
			held = append(held, req)
			if len(held) < f.reverse {
				continue
			}
			for _, r := range slices.Backward(held) {
				err = errors.Join(err, send(streamAnswer(r)))
			}
			held = held[:0]
		}
		if err != nil {
			return err
		}
	}
}

func streamAnswer(req *corvidv1.PredictRequest) *corvidv1.StreamResponse {
	if req.GetModel() == modelBad {
		return &corvidv1.StreamResponse{
			RequestId: req.GetRequestId(),
			Result:    &corvidv1.StreamResponse_Error{Error: errBad(req).Proto()},
		}
	}
	return &corvidv1.StreamResponse{
		RequestId: req.GetRequestId(),
		Result:    &corvidv1.StreamResponse_Response{Response: echo(req)},
	}
}

var testModels = []*corvidv1.ModelInfo{
	{Name: "digits", Versions: []*corvidv1.ModelVersionStatus{
		{Version: 1, State: corvidv1.ModelState_MODEL_STATE_AVAILABLE, Sha256: "3f2a"},
		{Version: 2, State: corvidv1.ModelState_MODEL_STATE_FAILED, Error: "bad graph"},
	}},
	{Name: "iris", Versions: []*corvidv1.ModelVersionStatus{
		{Version: 1, State: corvidv1.ModelState_MODEL_STATE_LOADING},
	}},
}

func (f *fakeServer) ModelStatus(_ context.Context, req *corvidv1.ModelStatusRequest) (*corvidv1.ModelStatusResponse, error) {
	for _, m := range testModels {
		if m.GetName() == req.GetModel() {
			return &corvidv1.ModelStatusResponse{Model: m}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "model %q not found", req.GetModel())
}

func (f *fakeServer) ListModels(context.Context, *corvidv1.ListModelsRequest) (*corvidv1.ListModelsResponse, error) {
	return &corvidv1.ListModelsResponse{Models: testModels}, nil
}

// serve starts srv on a loopback port for the duration of the test and
// returns its address. It also checks, after everything else the test
// cleans up, that no goroutine outlives it.
func serve(t *testing.T, srv corvidv1.InferenceServiceServer, opts ...grpc.ServerOption) string {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	corvidv1.RegisterInferenceServiceServer(s, srv)
	served := make(chan error, 1)
	go func() { served <- s.Serve(lis) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// dial returns a Client for a fake server started for the test.
func dial(t *testing.T, srv corvidv1.InferenceServiceServer, opts ...corvid.Option) *corvid.Client {
	t.Helper()
	c, err := corvid.Dial(serve(t, srv), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
	})
	return c
}

// predictRequest is a request for model whose one input identifies it.
func predictRequest(model, id string, value float32) *corvidv1.PredictRequest {
	return &corvidv1.PredictRequest{
		Model:     model,
		RequestId: id,
		Inputs:    map[string]*corvidv1.Tensor{"x": corvid.Float32Tensor([]float32{value})},
	}
}

func protoClone[M proto.Message](m M) M { return proto.Clone(m).(M) }
