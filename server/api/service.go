package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/kernels"
	"github.com/corvidml/corvid/server/auth"
	"github.com/corvidml/corvid/server/batching"
	"github.com/corvidml/corvid/server/middleware"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/repository"
	"github.com/corvidml/corvid/server/tensor"
)

// Service implements corvid.v1.InferenceService over a model repository.
type Service struct {
	corvidv1.UnimplementedInferenceServiceServer

	repo              *repository.Repository
	log               *slog.Logger
	streamConcurrency int
	authz             authorizer
	maxElements       int64
}

// Options configures a Service.
type Options struct {
	// StreamConcurrency bounds the requests of one Stream computed at once.
	StreamConcurrency int
	// Logger receives errors that are not the caller's fault.
	Logger *slog.Logger
	// Policy authorizes callers per model and action; nil allows all.
	Policy *auth.Policy
	// MaxRequestElements bounds the input elements of one request; 0 means
	// no bound beyond the message size.
	MaxRequestElements int64
}

// New returns a Service serving the models of repo.
func New(repo *repository.Repository, opts Options) *Service {
	if opts.StreamConcurrency < 1 {
		opts.StreamConcurrency = 1
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{repo: repo, log: log, streamConcurrency: opts.StreamConcurrency, authz: authorizer{opts.Policy, log},
		maxElements: opts.MaxRequestElements}
}

// Predict runs one request.
func (s *Service) Predict(ctx context.Context, req *corvidv1.PredictRequest) (*corvidv1.PredictResponse, error) {
	id := req.GetRequestId()
	if id == "" {
		id = middleware.RequestID(ctx)
	}
	resp, err := s.predict(ctx, req, id)
	return resp, toStatus(ctx, s.log, err)
}

// predict is the request path shared by Predict and Stream.
func (s *Service) predict(ctx context.Context, req *corvidv1.PredictRequest, id string) (*corvidv1.PredictResponse, error) {
	if id == "" {
		id = uuid.NewString()
	}
	if err := s.authz.allow(ctx, auth.ActionPredict, req.GetModel()); err != nil {
		return nil, err
	}
	servable, err := s.repo.Resolve(req.GetModel(), req.GetVersion(), req.GetVersionLabel(), s.routingKey(ctx, req))
	if err != nil {
		return nil, err
	}
	defer servable.Release()
	version := servable.Version
	if len(req.GetInputs()) == 0 {
		return nil, fmt.Errorf("%w: no inputs, want %s", errInvalidRequest, describe(servable.Inputs()))
	}
	if err := s.checkElements(req.GetInputs()); err != nil {
		return nil, err
	}
	inputs := make(map[string]*tensor.Tensor, len(req.GetInputs()))
	raw := true
	for name, p := range req.GetInputs() {
		t, err := decodeTensor(name, p)
		if err != nil {
			return nil, err
		}
		if len(p.GetRaw()) == 0 && t.Len() > 0 {
			raw = false
		}
		inputs[name] = t
	}
	outputs, err := servable.Run(ctx, inputs, req.GetOutputFilter())
	if err != nil {
		return nil, fmt.Errorf("model %q version %d: %w", req.GetModel(), version, err)
	}
	// The shadow gets its copy now; noise and encoding below do not change
	// these tensors.
	servable.Mirror(inputs, req.GetOutputFilter(), outputs)
	if servable.Privacy != nil {
		outputs = addNoise(servable.Privacy, outputs)
	}
	if pl := servable.PayloadLog; pl != nil && sampled(pl.Sample) {
		s.logPayload(ctx, req.GetModel(), version, id, inputs, outputs, pl.Redact)
	}
	resp := &corvidv1.PredictResponse{
		Model:     req.GetModel(),
		Version:   version,
		RequestId: id,
		Outputs:   make(map[string]*corvidv1.Tensor, len(outputs)),
	}
	// Answer in the form the caller used: raw bytes for raw callers (the fast
	// path), typed fields for JSON callers.
	for name, t := range outputs {
		resp.Outputs[name] = encodeTensor(t, raw)
	}
	return resp, nil
}

// routingKey is the value that routes req when the model splits traffic:
// its routing_key, or the request metadata key model.yaml names in
// routing.sticky_by.
func (s *Service) routingKey(ctx context.Context, req *corvidv1.PredictRequest) string {
	by := s.repo.StickyBy(req.GetModel())
	if by == "routing_key" {
		return req.GetRoutingKey()
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if vals := md.Get(by); len(vals) > 0 {
			return vals[0]
		}
	}
	return ""
}

// checkElements bounds the elements a request's shapes declare, summed
// with overflow checks, before any tensor is decoded.
func (s *Service) checkElements(inputs map[string]*corvidv1.Tensor) error {
	if s.maxElements <= 0 {
		return nil
	}
	var total int64
	for name, p := range inputs {
		n, err := tensor.NumElements(p.GetShape())
		if err != nil {
			return fmt.Errorf("%w: input %q: %v", errInvalidTensor, name, err)
		}
		if total += int64(n); total > s.maxElements {
			return fmt.Errorf("%w: the inputs declare more than the limit of %d elements (max_request_elements)", errTooLarge, s.maxElements)
		}
	}
	return nil
}

// describe lists a signature for error messages: `input fp32 [-1 64]`.
func describe(vs []onnx.ValueInfo) string {
	s := ""
	for i, v := range vs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q %v %v", v.Name, v.DType, v.Shape)
	}
	return s
}

// Stream runs a stream of requests, up to streamConcurrency at once. Every
// request gets exactly one response; a failed request gets its error and the
// stream goes on.
func (s *Service) Stream(stream corvidv1.InferenceService_StreamServer) error {
	ctx := stream.Context()
	var (
		sendMu  sync.Mutex
		sendErr error
		wg      sync.WaitGroup
	)
	sem := make(chan struct{}, s.streamConcurrency)
	// No Send may happen after the handler returns.
	defer wg.Wait()
	send := func(r *corvidv1.StreamResponse) {
		sendMu.Lock()
		defer sendMu.Unlock()
		if sendErr == nil {
			sendErr = stream.Send(r)
		}
	}
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			wg.Wait()
			sendMu.Lock()
			defer sendMu.Unlock()
			return sendErr
		}
		if err != nil {
			return err
		}
		req := in.GetRequest()
		id := req.GetRequestId()
		if id == "" {
			id = uuid.NewString()
		}
		if req == nil {
			send(errorResponse(id, status.New(codes.InvalidArgument, "stream item has no request")))
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			send(s.streamItem(ctx, req, id))
		}()
	}
}

// streamItem computes one stream request, turning a panic into that item's
// Internal error: the recovery interceptor does not see this goroutine.
func (s *Service) streamItem(ctx context.Context, req *corvidv1.PredictRequest, id string) (out *corvidv1.StreamResponse) {
	defer func() {
		if p := recover(); p != nil {
			s.log.ErrorContext(ctx, "panic in stream item", "request_id", id, "panic", fmt.Sprint(p))
			out = errorResponse(id, status.New(codes.Internal, "internal error while running the model"))
		}
	}()
	resp, err := s.predict(ctx, req, id)
	if err != nil {
		st, _ := status.FromError(toStatus(ctx, s.log, err))
		return errorResponse(id, st)
	}
	return &corvidv1.StreamResponse{RequestId: id, Result: &corvidv1.StreamResponse_Response{Response: resp}}
}

func errorResponse(id string, st *status.Status) *corvidv1.StreamResponse {
	return &corvidv1.StreamResponse{RequestId: id, Result: &corvidv1.StreamResponse_Error{Error: st.Proto()}}
}

// ModelStatus reports every version of one model.
func (s *Service) ModelStatus(ctx context.Context, req *corvidv1.ModelStatusRequest) (*corvidv1.ModelStatusResponse, error) {
	if err := s.authz.allow(ctx, auth.ActionStatus, req.GetModel()); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	ms, err := s.repo.Status(req.GetModel())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &corvidv1.ModelStatusResponse{Model: modelInfo(ms)}, nil
}

// ListModels reports every model.
func (s *Service) ListModels(ctx context.Context, _ *corvidv1.ListModelsRequest) (*corvidv1.ListModelsResponse, error) {
	resp := &corvidv1.ListModelsResponse{}
	list := s.repo.List()
	names := make([]string, len(list))
	for i, ms := range list {
		names[i] = ms.Name
	}
	visible := s.authz.visible(ctx, names)
	for _, ms := range list {
		if visible[ms.Name] {
			resp.Models = append(resp.Models, modelInfo(ms))
		}
	}
	return resp, nil
}

func modelInfo(ms repository.ModelStatus) *corvidv1.ModelInfo {
	info := &corvidv1.ModelInfo{Name: ms.Name, VersionPolicy: ms.Config.VersionPolicy.String()}
	if ms.ConfigErr != nil {
		info.ConfigError = ms.ConfigErr.Error()
	}
	for _, v := range ms.Versions {
		vs := &corvidv1.ModelVersionStatus{
			Version:      v.Version,
			State:        stateToProto(v.State),
			Sha256:       v.SHA256,
			Inputs:       tensorInfos(v.Inputs),
			Outputs:      tensorInfos(v.Outputs),
			MaxBatchSize: int64(v.MaxBatch),
			Labels:       v.Labels,
			Metadata:     v.Metadata,
		}
		if v.Err != nil {
			vs.Error = v.Err.Error()
		}
		if v.ReloadErr != nil {
			vs.ReloadError = v.ReloadErr.Error()
		}
		vs.TrafficWeight = int32(v.TrafficWeight)
		if b := v.Batching; b != nil {
			vs.Batching = batchingStatus(ms.Config.Batching, b)
		}
		if sh := v.Shadow; sh != nil {
			vs.Shadow = &corvidv1.ShadowStatus{
				Sample: sh.Sample, Offered: sh.Offered, Sampled: sh.Sampled, Dropped: sh.Dropped,
				Failed: sh.Failed, TimedOut: sh.TimedOut, Compared: sh.Compared,
				LabelRows: sh.LabelRows, Agreement: sh.Agreement,
				MeanAbsDiff: sh.MeanAbsDiff, MaxAbsDiff: sh.MaxAbsDiff, Mismatched: sh.Mismatched,
				LatencyP50: durationpb.New(sh.LatencyP50), LatencyP99: durationpb.New(sh.LatencyP99),
			}
		}
		if !v.LoadedAt.IsZero() {
			vs.LoadedAt = timestamppb.New(v.LoadedAt)
			vs.LoadDuration = durationpb.New(v.LoadDuration)
		}
		if v.State == repository.StateAvailable {
			vs.ExecutionMode = executionModes[v.ExecutionMode]
			vs.KernelTier = kernels.Active().String()
		}
		info.Versions = append(info.Versions, vs)
	}
	return info
}

func batchingStatus(cfg *repository.BatchingConfig, b *batching.Stats) *corvidv1.BatchingStatus {
	out := &corvidv1.BatchingStatus{
		QueueDepth: int64(b.QueueDepth), Batches: b.Batches, Requests: b.Requests, Rows: b.Rows,
		MeanBatchRows: b.MeanBatchRows, MaxBatchRows: int64(b.MaxBatchRows),
		QueueTimeP50: durationpb.New(b.QueueTimeP50), QueueTimeP99: durationpb.New(b.QueueTimeP99),
		Rejected: b.Rejected, Expired: b.Expired,
	}
	if cfg != nil {
		out.MaxBatchSize, out.MaxQueueSize = int64(cfg.MaxBatchSize), int64(cfg.MaxQueueSize)
		out.MaxQueueDelay = durationpb.New(time.Duration(cfg.MaxQueueDelay))
		for _, n := range cfg.PreferredBatchSizes {
			out.PreferredBatchSizes = append(out.PreferredBatchSizes, int64(n))
		}
	}
	return out
}

func tensorInfos(vs []onnx.ValueInfo) []*corvidv1.TensorInfo {
	out := make([]*corvidv1.TensorInfo, 0, len(vs))
	for _, v := range vs {
		out = append(out, &corvidv1.TensorInfo{Name: v.Name, Dtype: dtypeToProto(v.DType), Shape: v.Shape})
	}
	return out
}

// executionModes maps a Servable's ExecutionMode to the API's; an unknown
// mode is UNSPECIFIED.
var executionModes = map[string]corvidv1.ExecutionMode{
	"fp32":              corvidv1.ExecutionMode_EXECUTION_MODE_FP32,
	"int8-dynamic":      corvidv1.ExecutionMode_EXECUTION_MODE_INT8_DYNAMIC,
	"int8-static":       corvidv1.ExecutionMode_EXECUTION_MODE_INT8_STATIC,
	"int8-prequantized": corvidv1.ExecutionMode_EXECUTION_MODE_INT8_PREQUANTIZED,
}

func stateToProto(s repository.State) corvidv1.ModelState {
	switch s {
	case repository.StateLoading:
		return corvidv1.ModelState_MODEL_STATE_LOADING
	case repository.StateAvailable:
		return corvidv1.ModelState_MODEL_STATE_AVAILABLE
	case repository.StateUnloading:
		return corvidv1.ModelState_MODEL_STATE_UNLOADING
	case repository.StateUnloaded:
		return corvidv1.ModelState_MODEL_STATE_UNLOADED
	case repository.StateFailed:
		return corvidv1.ModelState_MODEL_STATE_FAILED
	}
	return corvidv1.ModelState_MODEL_STATE_UNSPECIFIED
}
